import importlib
import pkgutil

import recurbill


def _isort_style(name: str) -> tuple[int, str]:
    # constants, then classes, then functions: the order ruff's RUF022 keeps
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_complete() -> None:
    assert recurbill.__all__ == sorted(recurbill.__all__, key=_isort_style)
    for name in recurbill.__all__:
        assert hasattr(recurbill, name), name


def test_every_public_name_has_a_docstring() -> None:
    for name in recurbill.__all__:
        obj = getattr(recurbill, name)
        assert (obj.__doc__ or "").strip(), name


def test_every_module_declares_all() -> None:
    for info in pkgutil.walk_packages(recurbill.__path__, "recurbill."):
        if info.name.startswith(("recurbill.payments.stripe", "recurbill.cli")):
            continue
        module = importlib.import_module(info.name)
        assert hasattr(module, "__all__"), info.name


def test_names_that_moved_out_of_collection_still_import_from_it() -> None:
    """chargeable, notices and set_aside split off collection; the names
    earlier docs imported from there are the same objects."""
    collection = importlib.import_module("recurbill.collection")
    for module in ("chargeable", "notices", "set_aside"):
        moved = importlib.import_module(f"recurbill.{module}")
        kept = set(collection.__all__) & set(moved.__all__)
        assert kept, module
        for name in kept:
            assert getattr(collection, name) is getattr(moved, name), name

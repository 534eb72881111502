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

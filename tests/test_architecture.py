"""Imports point one way: errors <- money <- core <- records <- ports <- billing."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parent.parent / "src" / "recurbill"

# Lower layers never import higher ones.
LAYERS = {
    "errors": 0,
    "money": 1,
    "ids": 1,
    "addresses": 1,
    "schedule": 2,
    "invoice": 2,
    "references": 2,
    "settlement": 3,
    "payee": 3,
    "records": 4,
    "storage.protocol": 5,
    "payments.protocol": 5,
    "notify.protocol": 5,
    "notify.message": 4,
    "notify.texts": 4,
    "notify.render": 6,
    "arguments": 5,
    "set_aside": 6,
    "chargeable": 6,
    "notices": 7,
    "collection": 8,
    "summaries": 5,
    "views": 7,
    "issuing": 9,
    "mass_payment": 9,
    "corrections": 9,
    "credit": 9,
    "customers": 9,
    "accounts": 10,
    "cards": 10,
    "templates": 10,
    "sessions": 10,
    "daily": 10,
    "events": 10,
    "billing": 11,
    "testing": 12,
    "demo": 13,
    "cli": 14,
}
CORE_TOP = 4  # an adapter may import the core up to records (and notify.message)
MAY_IMPORT_ADAPTERS = {"testing", "demo", "cli"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            if name.startswith("recurbill."):
                found.add(name.removeprefix("recurbill."))
    return found


def _resolve(name: str) -> str | None:
    while name:
        if name in LAYERS or (SRC / (name.replace(".", "/") + ".py")).exists():
            return name
        if (SRC / name.replace(".", "/") / "__init__.py").exists():
            return name
        name = name.rpartition(".")[0]
    return None


def _is_adapter(name: str) -> bool:
    package, _, leaf = name.partition(".")
    return (
        package in {"storage", "payments", "notify"}
        and bool(leaf)
        and (name not in LAYERS)
    )


MODULES = sorted(p for p in SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p) or "recurbill")
def test_imports_point_one_way(path: Path) -> None:
    me = _module_name(path)
    for target in filter(None, map(_resolve, _imports(path))):
        if target == me or path.name == "__init__.py":
            continue
        if _is_adapter(target):
            same_package = target.split(".")[0] == me.split(".")[0]
            assert me in MAY_IMPORT_ADAPTERS or same_package, f"{me} -> {target}"
            continue
        if target.split(".")[0] in {"storage", "payments", "notify"} and "." not in (
            target
        ):
            continue  # a package's __init__ re-exports
        if _is_adapter(me):
            own = target.split(".")[0] == me.split(".")[0]
            assert own or LAYERS[target] <= CORE_TOP, f"{me} -> {target}"
        elif me in LAYERS:
            assert LAYERS[target] < LAYERS[me], f"{me} -> {target}"


def test_the_core_reads_no_clock() -> None:
    for name in ("money", "schedule", "invoice", "references", "settlement"):
        path = SRC / f"{name}.py"
        if path.exists():
            text = path.read_text()
            for forbidden in ("datetime.now(", "date.today(", "time.time("):
                assert forbidden not in text, f"{name} calls {forbidden}"

"""Imports point one way: errors <- inputs <- money <- core <- records <- ports
<- billing."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parent.parent / "src" / "recurbill"

# Lower layers never import higher ones.
LAYERS = {
    "errors": 0,
    "inputs": 1,
    "money": 2,
    "ids": 2,
    "addresses": 2,
    "schedule": 3,
    "invoice": 3,
    "references": 3,
    "settlement": 4,
    "payee": 4,
    "records": 5,
    "storage.protocol": 6,
    "payments.protocol": 6,
    "notify.protocol": 6,
    "notify.message": 5,
    "notify.texts": 5,
    "notify.render": 7,
    "arguments": 6,
    "set_aside": 7,
    "chargeable": 7,
    "notices": 8,
    "collection": 9,
    "summaries": 6,
    "views": 8,
    "issuing": 10,
    "mass_payment": 10,
    "corrections": 10,
    "credit": 10,
    "customers": 10,
    "accounts": 11,
    "cards": 11,
    "templates": 11,
    "sessions": 11,
    "daily": 11,
    "events": 11,
    "billing": 12,
    "testing": 13,
    "demo": 14,
    "cli": 15,
}
CORE_TOP = 5  # an adapter may import the core up to records (and notify.message)
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

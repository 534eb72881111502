"""The documentation imports recurbill's names from its public modules only:
the package itself and the subpackages that export them."""

import ast
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PAGES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
PUBLIC = {
    "recurbill",
    "recurbill.notify",
    "recurbill.payments",
    "recurbill.storage",
    "recurbill.testing",
}
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def _recurbill_imports(page: Path) -> Iterator[tuple[str, str]]:
    """(module, name) of each import of recurbill in the page's Python blocks."""
    for block in PYTHON_BLOCK.findall(page.read_text()):
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and node.module:
                modules = [(node.module, a.name) for a in node.names]
            elif isinstance(node, ast.Import):
                modules = [(a.name, "") for a in node.names]
            else:
                continue
            for module, name in modules:
                if module.split(".")[0] == "recurbill":
                    yield module, name


def test_the_pages_import_recurbill() -> None:
    assert any(any(_recurbill_imports(page)) for page in PAGES)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_import_only_public_names(page: Path) -> None:
    for module, name in _recurbill_imports(page):
        assert module in PUBLIC, f"{module} is internal; use a public module"
        if name:
            exported = importlib.import_module(module).__all__
            assert name in exported, f"{module} does not export {name}"


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_every_exported_name_imports(module: str) -> None:
    package = importlib.import_module(module)
    for name in package.__all__:
        assert getattr(package, name) is not None, f"{module}.{name}"

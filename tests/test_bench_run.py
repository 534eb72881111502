"""The daily-run benchmark still runs: a tiny seeding, both scenarios, SQLite."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

_SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_run.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_run", _SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("args", "issued"),
    [(["--templates", "300"], 10), (["--templates", "40", "--storm"], 40)],
)
def test_the_benchmark_reports_the_run_against_its_ceiling(
    args: list[str], issued: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _bench().main([*args, "--breakdown"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"run: +{issued} invoices issued", out), out
    assert re.search(r"ceiling: .*\(fastest of [\d.]+, [\d.]+, [\d.]+ s\)", out)
    assert re.search(r"ratio: +[\d.]+% of the ceiling", out)
    assert "storage.due_templates" in out  # the breakdown times the storage calls

"""The daily-run benchmarks still run: tiny seedings, every scenario, SQLite."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

from recurbill.notify import render

_BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _bench(name: str = "bench_run") -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, _BENCHMARKS / f"{name}.py")
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


def test_the_retries_benchmark_compares_a_history_with_none(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _bench("bench_retries").main(["--accounts", "3", "--per-account", "4"]) == 0
    out = capsys.readouterr().out
    assert "3 accounts, 12 paid invoices, SQLite" in out
    assert re.search(r"history / baseline +: +[\d.]+x \(limit 50x\)", out), out


def test_the_rendering_benchmark_compares_two_versions_of_the_renderer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    against = Path(render.__file__)  # this version against itself: same e-mails
    args = ["--count", "20", "--rounds", "1", "--against", str(against)]
    assert _bench("bench_render").main(args) == 0
    out = capsys.readouterr().out
    for name in ("render_invoice", "render_receipt"):
        assert re.search(rf"{name}: other +[\d.]+ us, this +[\d.]+ us \(", out), out


def test_the_preview_benchmark_lists_every_template_and_its_memory(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _bench("bench_preview").main(["--templates", "30", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"no templates: +[\d.]+ s +peak +\d+ MiB +\(1 line\)", out), out
    assert re.search(r"list +: +[\d.]+ s +peak +\d+ MiB +\(32 lines\)", out), out
    assert re.search(r"the list's own: -?\d+ MiB", out), out

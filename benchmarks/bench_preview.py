"""The template list of ``recurbill preview --db``: time and peak memory.

Seeds N templates of one account (default 100,000) into a SQLite file, as
``bench_run.py`` seeds them, and a second account with none. Then it runs
``recurbill preview --db FILE --account acct`` in a child process, and the same
for the empty account (what the command costs before it lists anything: the
interpreter, the imports, opening the file). Each is run ``--rounds`` times;
the fastest time and the largest peak memory (RSS) of the rounds count. The
script checks that the list has a line per template.

The seeding runs in a child process too: a child's peak memory counts the
process it was started from, so that one stays small (it imports neither
recurbill nor SQLAlchemy).

    python benchmarks/bench_preview.py                    # 100,000 templates
    python benchmarks/bench_preview.py --templates 1000000
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_Measured = tuple[float, int, int]  # seconds, peak RSS (bytes), lines printed


def _seed(path: Path, templates: int) -> None:
    """Run in a child process: the accounts and templates."""
    from recurbill.billing import Billing
    from recurbill.payments.memory import InMemoryGateway
    from recurbill.storage.sql import SqlStorage

    spec = importlib.util.spec_from_file_location(
        "bench_run", Path(__file__).with_name("bench_run.py")
    )
    assert spec is not None
    assert spec.loader is not None
    bench_run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_run)
    with SqlStorage.from_url(f"sqlite:///{path}") as storage:
        storage.migrate()
        bench_run._seed(storage, InMemoryGateway(), templates, storm=False)
        Billing(storage=storage, gateway=InMemoryGateway()).create_account(
            account_id="empty",
            name="Empty AS",
            currency="NOK",
            locale="nb_NO",
            timezone="Europe/Oslo",
            summary_email="empty@example.no",
        )


def _environment() -> dict[str, str]:
    """The environment of the children: they import the recurbill this
    process would import (found, not imported)."""
    spec = importlib.util.find_spec("recurbill")
    if spec is None or spec.origin is None:
        raise SystemExit("recurbill is not installed")
    source = str(Path(spec.origin).parent.parent)
    paths = [source, *filter(None, [os.environ.get("PYTHONPATH")])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def _child(command: list[str], out: int | None = None) -> tuple[float, int]:
    """Seconds and peak RSS (bytes) of *command* run as a child process."""
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=out, env=_environment())
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"{command[1:4]} exited with status {child.returncode}")
    peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return elapsed, peak


def _listing(path: Path, account: str) -> _Measured:
    """Seconds, peak RSS (bytes) and lines printed of one listing."""
    command = [sys.executable, "-m", "recurbill.cli", "preview", "--db", str(path)]
    with tempfile.TemporaryFile() as out:
        elapsed, peak = _child([*command, "--account", account], out.fileno())
        out.seek(0)
        lines = out.read().count(b"\n")
    return elapsed, peak, lines


def _rounds(path: Path, account: str, rounds: int) -> _Measured:
    """The fastest time, the largest peak memory and the lines of *rounds*."""
    runs = [_listing(path, account) for _ in range(rounds)]
    return min(r[0] for r in runs), max(r[1] for r in runs), runs[0][2]


def _report(
    templates: int, rounds: int, seeded: float, empty: _Measured, listed: _Measured
) -> None:
    print(
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} cores; seeded {templates:,} templates in "
        f"{seeded:.1f} s; best of {rounds}"
    )
    for name, (elapsed, peak, lines) in (("no templates", empty), ("list", listed)):
        plural = "" if lines == 1 else "s"
        print(
            f"{name:<12}: {elapsed:6.2f} s  peak {peak / 2**20:5.0f} MiB  "
            f"({lines:,} line{plural})"
        )
    own = (listed[1] - empty[1]) / 2**20
    print(f"the list's own: {own:.0f} MiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--templates", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=Path, help=argparse.SUPPRESS)  # the child
    args = parser.parse_args(argv)
    if args.seed is not None:
        _seed(args.seed, args.templates)
        return 0
    workdir = Path(tempfile.mkdtemp())
    try:
        path = workdir / "bench.sqlite3"
        seed = [sys.executable, __file__, "--seed", str(path)]
        seeded, _ = _child([*seed, "--templates", str(args.templates)])
        empty = _rounds(path, "empty", args.rounds)
        listed = _rounds(path, "acct", args.rounds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    _report(args.templates, args.rounds, seeded, empty, listed)
    if listed[2] != args.templates + 2:  # its first line and the column names
        print(f"expected {args.templates + 2:,} lines", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``recurbill`` command: ``demo``, ``run``, ``preview`` and ``migrate``.

Errors print one line to stderr and exit with status 1 (2 for bad usage);
no traceback. This is the only module that reads the clock.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import date, datetime, timezone

from recurbill.errors import RecurbillError
from recurbill.schedule import OccurrenceStatus, Schedule

__all__ = ["main"]


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date; use YYYY-MM-DD"
        ) from None


def _parse_instant(text: str) -> datetime:
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date-time; use e.g. 2027-01-31T06:15:00+01:00"
        ) from None
    if instant.utcoffset() is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no UTC offset; add one, e.g. +00:00"
        )
    return instant


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recurbill", description="Embeddable billing: recurring invoices."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser(
        "demo", help="simulate 120 days of billing for three Nordic businesses"
    )
    demo.add_argument("--db", default="recurbill-demo.sqlite3", help="SQLite file")
    demo.add_argument("--days", type=int, default=120, help="days to simulate")
    demo.add_argument(
        "--start", type=_parse_date, default=None, help="first day (default: today)"
    )

    run = commands.add_parser("run", help="run the daily job against a database")
    run.add_argument("--db", required=True, help="database URL or SQLite file")
    run.add_argument(
        "--as-of", type=_parse_instant, default=None, help="instant (default: now)"
    )

    preview = commands.add_parser("preview", help="list a schedule's next dates")
    preview.add_argument("--start", type=_parse_date, required=True)
    preview.add_argument(
        "--period", choices=["week", "month", "quarter", "year"], required=True
    )
    preview.add_argument("--every", type=int, default=1)
    preview.add_argument("--end", type=_parse_date, default=None)
    preview.add_argument("--count", type=int, default=12)
    preview.add_argument("--month-end", action="store_true")
    preview.add_argument("--db", default=None, help="with --template: a database")
    preview.add_argument("--account", default=None)
    preview.add_argument("--template", default=None)

    migrate = commands.add_parser("migrate", help="create or upgrade the schema")
    migrate.add_argument("--db", required=True, help="database URL or SQLite file")
    return parser


def _url(db: str) -> str:
    return db if "://" in db else f"sqlite:///{db}"


def _preview(args: argparse.Namespace) -> int:
    schedule = Schedule(
        start=args.start,
        period=args.period,
        every=args.every,
        end=args.end,
        month_end=args.month_end,
    )
    occurrences = schedule.upcoming(after=args.start, count=args.count)
    for occurrence in occurrences:
        note = (
            ""
            if occurrence.status is OccurrenceStatus.SCHEDULED
            else (f"  ({occurrence.status.value})")
        )
        print(f"{occurrence.index:>4}  {occurrence.on.isoformat()}{note}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from recurbill.billing import Billing
    from recurbill.payments.memory import InMemoryGateway
    from recurbill.storage.sql import SqlStorage

    storage = SqlStorage.from_url(_url(args.db))
    as_of = args.as_of or datetime.now(timezone.utc)
    billing = Billing(storage=storage, gateway=InMemoryGateway())
    for report in billing.run(as_of):
        print(
            f"{report.account_id}: {len(report.issued)} issued, "
            f"{len(report.charges)} charged, {len(report.skipped)} skipped, "
            f"{len(report.ended)} ended"
        )
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from recurbill.storage.sql import migrate

    version = migrate(_url(args.db))
    print(f"schema is at version {version}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from recurbill.demo import run_demo

    start = args.start or datetime.now(timezone.utc).date()
    run_demo(_url(args.db), start=start, days=args.days, out=sys.stdout)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``recurbill`` command with *argv*; return its exit status."""
    args = _parser().parse_args(argv)
    handlers = {"demo": _demo, "run": _run, "preview": _preview, "migrate": _migrate}
    try:
        return handlers[args.command](args)
    except RecurbillError as error:
        print(f"recurbill: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

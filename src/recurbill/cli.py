"""The ``recurbill`` command: ``demo``, ``run``, ``preview`` and ``migrate``.

Errors print one line to stderr and exit with status 1 (2 for bad usage);
no traceback. This is the only module that reads the clock.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING

from recurbill.errors import RecurbillError
from recurbill.schedule import Occurrence, OccurrenceStatus, Schedule

if TYPE_CHECKING:
    from recurbill.notify.protocol import Notifier
    from recurbill.payments.protocol import PaymentGateway

__all__ = ["main"]


class UsageError(Exception):
    """The command line asks for something that cannot be done (exit status 2)."""


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
    run.add_argument(
        "--gateway",
        choices=["stripe", "memory"],
        default="stripe",
        help="stripe (key from STRIPE_SECRET_KEY) or memory (a dry run, no money)",
    )
    run.add_argument(
        "--smtp",
        metavar="HOST:PORT",
        default=None,
        help="deliver the outbox through this SMTP server after the run",
    )
    run.add_argument("--smtp-sender", default=None, help="From address for e-mail")
    run.add_argument(
        "--smtp-security", choices=["starttls", "tls", "none"], default="starttls"
    )
    run.add_argument(
        "--smtp-user",
        default=None,
        help="SMTP login (the password comes from RECURBILL_SMTP_PASSWORD)",
    )

    preview = commands.add_parser(
        "preview",
        help="list the next dates of a schedule, or of a stored template",
    )
    preview.add_argument("--start", type=_parse_date, help="a schedule's first day")
    preview.add_argument("--period", choices=["week", "month", "quarter", "year"])
    preview.add_argument("--every", type=int, default=1)
    preview.add_argument("--end", type=_parse_date, default=None)
    preview.add_argument("--count", type=int, default=12)
    preview.add_argument("--month-end", action="store_true")
    preview.add_argument("--db", default=None, help="database of --template")
    preview.add_argument("--account", default=None, help="account of --template")
    preview.add_argument("--template", default=None, help="a stored template's id")

    migrate = commands.add_parser("migrate", help="create or upgrade the schema")
    migrate.add_argument("--db", required=True, help="database URL or SQLite file")
    return parser


def _url(db: str) -> str:
    return db if "://" in db else f"sqlite:///{db}"


def _print(occurrences: Sequence[Occurrence], amount: str = "") -> None:
    for occurrence in occurrences:
        note = (
            ""
            if occurrence.status is OccurrenceStatus.SCHEDULED
            else f"  ({occurrence.status.value})"
        )
        print(f"{occurrence.index:>4}  {occurrence.on.isoformat()}{amount}{note}")


def _preview(args: argparse.Namespace) -> int:
    if args.template is not None:
        return _preview_template(args)
    if args.start is None or args.period is None:
        raise UsageError(
            "preview needs --start and --period, or --db, --account and --template"
        )
    schedule = Schedule(
        start=args.start,
        period=args.period,
        every=args.every,
        end=args.end,
        month_end=args.month_end,
    )
    _print(schedule.upcoming(after=args.start, count=args.count))
    return 0


def _preview_template(args: argparse.Namespace) -> int:
    from recurbill.money import format_money
    from recurbill.storage.sql import SqlStorage
    from recurbill.views import template_view

    if args.db is None or args.account is None:
        raise UsageError("preview --template needs --db and --account too")
    with SqlStorage.from_url(_url(args.db)) as storage:
        view = template_view(storage, args.account, args.template, upcoming=args.count)
        with storage.transaction() as tx:
            locale = tx.get_account(args.account).locale
    for coming in view.upcoming:
        _print([coming.occurrence], f"  {format_money(coming.amount, locale)}")
    if not view.upcoming:
        status = view.template.status.value
        print(f"template {args.template} has nothing coming ({status})")
    return 0


def _gateway(choice: str) -> PaymentGateway:
    if choice == "memory":
        from recurbill.payments.memory import InMemoryGateway

        return InMemoryGateway()
    key = os.environ.get("STRIPE_SECRET_KEY", "")
    if not key:
        raise UsageError(
            "set STRIPE_SECRET_KEY to charge through Stripe, or pass "
            "--gateway memory for a dry run that moves no money"
        )
    import stripe

    from recurbill.payments.stripe import StripeGateway

    return StripeGateway(stripe.StripeClient(key))


def _run(args: argparse.Namespace) -> int:
    from recurbill.billing import Billing
    from recurbill.storage.sql import SqlStorage

    gateway = _gateway(args.gateway)
    notifier = _notifier(args)
    as_of = args.as_of or datetime.now(timezone.utc)
    with SqlStorage.from_url(_url(args.db)) as storage:
        reports = Billing(storage=storage, gateway=gateway).run(as_of)
        for report in reports:
            print(
                f"{report.account_id}: {len(report.issued)} issued, "
                f"{len(report.charges)} charged, {len(report.skipped)} skipped, "
                f"{len(report.ended)} ended"
            )
        if notifier is not None:
            from recurbill.notify.delivery import deliver_pending

            delivered = deliver_pending(storage, notifier, now=as_of, limit=10_000)
            print(
                f"e-mail: {len(delivered.sent)} sent, {len(delivered.failed)} "
                "failed (kept in the outbox for the next run)"
            )
    return 0


def _notifier(args: argparse.Namespace) -> Notifier | None:
    if args.smtp is None:
        return None
    from recurbill.notify.smtp import SmtpNotifier

    host, _, port = args.smtp.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(
            f"--smtp {args.smtp!r} is not HOST:PORT, e.g. smtp.example.no:587"
        )
    if not args.smtp_sender:
        raise UsageError("--smtp needs --smtp-sender, the From address of the e-mail")
    return SmtpNotifier(
        host,
        int(port),
        sender=args.smtp_sender,
        security=args.smtp_security,
        username=args.smtp_user,
        password=os.environ.get("RECURBILL_SMTP_PASSWORD") if args.smtp_user else None,
    )


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
    except UsageError as error:
        print(f"recurbill: {error}", file=sys.stderr)
        return 2
    except RecurbillError as error:
        print(f"recurbill: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

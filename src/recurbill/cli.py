"""The ``recurbill`` command: ``demo``, ``run``, ``preview`` and ``migrate``.

Errors print one line to stderr and exit with status 1 (2 for bad usage);
no traceback. This is the only module that reads the clock.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from contextlib import closing
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from recurbill.errors import GatewayError, RecurbillError, UnreadableRecordError
from recurbill.records import PaymentStatus
from recurbill.schedule import Occurrence, OccurrenceStatus, Schedule

if TYPE_CHECKING:
    from recurbill.notify.protocol import Notifier
    from recurbill.payments.protocol import PaymentGateway
    from recurbill.records import RunReport
    from recurbill.storage.sql import SqlStorage

__all__ = ["main"]

_ENDED = (PaymentStatus.SUCCEEDED, PaymentStatus.DECLINED, PaymentStatus.CANCELED)


class UsageError(Exception):
    """The command line asks for something that cannot be done (exit status 2)."""


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date; use YYYY-MM-DD"
        ) from None


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return number


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


_RUN_DESCRIPTION = """\
Run the daily job: issue every due recurring invoice, charge the customers
who pay by card, queue the e-mails, and print a line per account.
"""

_RUN_EPILOG = """\
exit status:
  0  everything due was done (declined cards and charges awaiting an
     outcome are results, not errors)
  1  something could not be issued or charged: a recurring invoice could not
     be issued, a stored row could not be read (set aside and named in the
     daily summary), the gateway stopped the charging (a refused key, an
     outage), an e-mail in the outbox could not be read, or another error
     stopped the run (one line on stderr)
  2  the command line cannot be run (no such SQLite file, no STRIPE_SECRET_KEY,
     --smtp without --smtp-sender, --dry-run with --smtp)
"""

_PREVIEW_DESCRIPTION = """\
List the next dates of a schedule, in one of two modes:
  a schedule given here: --start and --period (and --every, --end,
    --month-end), without saving anything;
  a stored template: --db, --account and --template, each date with the
    amount of its invoice (--start, --period, --every, --end and
    --month-end are not used then).
--count says how many dates to list in both modes.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recurbill",
        description="Embeddable billing: recurring invoices, charge after each "
        "session, mass payment. This command runs a demo, the daily job, a "
        "preview of a schedule and the schema migration.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _demo_arguments(
        commands.add_parser(
            "demo", help="simulate 120 days of billing for three Nordic businesses"
        )
    )
    _run_arguments(
        commands.add_parser(
            "run",
            help="run the daily job against a database",
            description=_RUN_DESCRIPTION,
            epilog=_RUN_EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    _preview_arguments(
        commands.add_parser(
            "preview",
            help="list the next dates of a schedule, or of a stored template",
            description=_PREVIEW_DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    migrate = commands.add_parser("migrate", help="create or upgrade the schema")
    migrate.add_argument("--db", required=True, help="database URL or SQLite file")
    return parser


def _demo_arguments(demo: argparse.ArgumentParser) -> None:
    demo.add_argument(
        "--db",
        default="recurbill-demo.sqlite3",
        help="SQLite file or database URL to create the demo in: a file is "
        "replaced only if an earlier demo made it, a server database must be "
        "empty (no tables) (default: %(default)s)",
    )
    demo.add_argument(
        "--days",
        type=_positive,
        default=120,
        help="days to simulate, 1 or more (default: %(default)s)",
    )
    demo.add_argument(
        "--start",
        type=_parse_date,
        default=None,
        help="first day, YYYY-MM-DD (default: today)",
    )


def _run_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--db",
        required=True,
        help="database URL or SQLite file (the file must exist: "
        "recurbill migrate creates it)",
    )
    run.add_argument(
        "--as-of",
        type=_parse_instant,
        default=None,
        help="the instant to run as: an ISO date-time with a UTC offset, e.g. "
        "2027-01-31T06:15+01:00 (default: now)",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="run on a temporary copy of a SQLite file with an in-memory gateway "
        "that knows no cards: print what would be issued and charged, save "
        "nothing, charge nothing; refuses --smtp, it sends no e-mail (default: "
        "the real run, through Stripe with the key in STRIPE_SECRET_KEY)",
    )
    _smtp_arguments(run)


def _smtp_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--smtp",
        metavar="HOST:PORT",
        default=None,
        help="deliver the outbox through this SMTP server after the run; needs "
        "--smtp-sender, and --dry-run refuses it (default: no e-mail is sent, "
        "it stays in the outbox)",
    )
    run.add_argument(
        "--smtp-sender", default=None, help="From address of the e-mail (for --smtp)"
    )
    run.add_argument(
        "--smtp-security",
        choices=["starttls", "tls", "none"],
        default="starttls",
        help="starttls (connect, then upgrade; usually port 587), tls (TLS from "
        "the start; usually port 465) or none (unencrypted, a local relay; no "
        "login) (default: %(default)s)",
    )
    run.add_argument(
        "--smtp-user",
        default=None,
        help="SMTP login, the password in RECURBILL_SMTP_PASSWORD (default: no login)",
    )


def _preview_arguments(preview: argparse.ArgumentParser) -> None:
    preview.add_argument(
        "--start", type=_parse_date, help="a schedule's first day, YYYY-MM-DD"
    )
    preview.add_argument(
        "--period",
        choices=["week", "month", "quarter", "year"],
        help="how often: week, month, quarter or year",
    )
    preview.add_argument(
        "--every",
        type=int,
        default=1,
        help="every this many periods, e.g. --period week --every 2 for "
        "fortnightly (default: %(default)s)",
    )
    preview.add_argument(
        "--end",
        type=_parse_date,
        default=None,
        help="last day a date may fall on, YYYY-MM-DD, inclusive (default: no end)",
    )
    preview.add_argument(
        "--count",
        type=_positive,
        default=12,
        help="dates to list, 1 or more (default: %(default)s)",
    )
    preview.add_argument(
        "--month-end",
        action="store_true",
        help="a schedule that starts on a month's last day stays on last days "
        "(from 2027-02-28: 2027-03-31, not 2027-03-28); months, quarters and "
        "years only (default: the start's day of the month, moved to the last "
        "day of a shorter month)",
    )
    preview.add_argument("--db", default=None, help="database of --template")
    preview.add_argument("--account", default=None, help="account of --template")
    preview.add_argument("--template", default=None, help="a stored template's id")


def _url(db: str) -> str:
    return db if "://" in db else f"sqlite:///{db}"


def _sqlite_file(db: str) -> Path | None:
    """The file of a SQLite *db* (a path, or a URL as SQLAlchemy reads it), else None.

    A URL that cannot be parsed is left to the storage to refuse.
    """
    if "://" not in db:
        return Path(db)
    from recurbill.storage.engine import sqlite_file

    return sqlite_file(db)


def _existing(db: str) -> str:
    """The URL of *db*; a SQLite file must be there already (nothing is created)."""
    path = _sqlite_file(db)
    if path is not None and not path.is_file():
        raise UsageError(
            f"no database at {path}; create one with: recurbill migrate --db {db}"
        )
    return _url(db)


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
    with SqlStorage.from_url(_existing(args.db)) as storage:
        view = template_view(storage, args.account, args.template, upcoming=args.count)
        with storage.transaction(read_only=True) as tx:
            locale = tx.get_account(args.account).locale
    for coming in view.upcoming:
        _print([coming.occurrence], f"  {format_money(coming.amount, locale)}")
    if not view.upcoming:
        status = view.template.status.value
        print(f"template {args.template} has nothing coming ({status})")
    return 0


def _stripe() -> PaymentGateway:
    key = os.environ.get("STRIPE_SECRET_KEY", "")
    if not key:
        raise UsageError(
            "set STRIPE_SECRET_KEY to charge through Stripe, or pass --dry-run "
            "to see what a run would do without saving or charging anything"
        )
    try:
        import stripe
    except ImportError:
        raise UsageError(
            "charging through Stripe needs the stripe package; install it with: "
            "pip install '.[stripe]' in recurbill's checkout"
        ) from None

    from recurbill.payments.stripe import StripeGateway

    return StripeGateway(stripe.StripeClient(key))


def _run(args: argparse.Namespace) -> int:
    if args.dry_run:
        return _dry_run(args)
    url = _existing(args.db)
    notifier = _notifier(args)
    gateway = _stripe()
    as_of = args.as_of or datetime.now(timezone.utc)
    with _storage(url) as storage:
        try:
            status = _daily(storage, gateway, as_of)
        except Exception:  # a run stopped by the gateway still queued its e-mail
            if notifier is not None:
                _deliver_beside(storage, notifier, as_of)
            raise  # the run's error is the one reported
        if notifier is not None and not _deliver(storage, notifier, as_of):
            status = 1
        return status


def _deliver_beside(storage: SqlStorage, notifier: Notifier, as_of: datetime) -> None:
    """:func:`_deliver` after the run failed: its own failure is printed, so
    that the run's error stays the one reported."""
    from recurbill.errors import RecurbillError

    try:
        _deliver(storage, notifier, as_of)
    except RecurbillError as error:
        print(f"recurbill: e-mail not delivered: {error}", file=sys.stderr)


def _deliver(storage: SqlStorage, notifier: Notifier, as_of: datetime) -> bool:
    """Send the outbox and print what happened; False if a message's stored
    row could not be read (it stays queued, unsent, and is named on stderr)."""
    from recurbill.notify.delivery import deliver_pending

    delivered = deliver_pending(storage, notifier, now=as_of, limit=10_000)
    print(
        f"e-mail: {len(delivered.sent)} sent, {len(delivered.failed)} "
        "failed (kept in the outbox for the next run)"
    )
    for key in delivered.unreadable:
        print(
            f"recurbill: outbox message {key!r} could not be read and was not "
            "sent; correct its row to what recurbill writes, or restore it from "
            "a backup, and the next run sends it",
            file=sys.stderr,
        )
    return not delivered.unreadable


def _dry_run(args: argparse.Namespace) -> int:
    """The daily job on a copy of a SQLite file, with a gateway that knows no cards."""
    import sqlite3
    import tempfile

    from recurbill.errors import StorageUnavailableError
    from recurbill.payments.memory import InMemoryGateway

    path = _sqlite_file(args.db)
    if path is None:
        raise UsageError(
            "--dry-run works on a SQLite file (it runs on a copy); for another "
            "database, run against a copy of it"
        )
    if args.smtp is not None:
        raise UsageError("--dry-run sends no e-mail; leave out --smtp")
    _existing(args.db)
    as_of = args.as_of or datetime.now(timezone.utc)
    with tempfile.TemporaryDirectory() as folder:
        copy = Path(folder) / "copy.sqlite3"
        try:
            source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
            with closing(source), closing(sqlite3.connect(copy)) as target:
                source.backup(target)
        except sqlite3.Error as error:
            raise StorageUnavailableError(
                problem=f"{path} cannot be copied for a dry run ({error})",
                allowed="give the path of a recurbill SQLite database",
            ) from None
        with _storage(_url(str(copy))) as storage:
            # the copy is thrown away and no card is known: it may run where
            # production is declared (RECURBILL_PRODUCTION), as a dry run should
            gateway = InMemoryGateway(environ={})
            status = _daily(storage, gateway, as_of, dry=True)
    print(f"dry run on a copy of {path}: nothing was saved, no card was charged")
    return status


def _storage(url: str) -> SqlStorage:
    from recurbill.storage.sql import SqlStorage

    return SqlStorage.from_url(url)


def _daily(
    storage: SqlStorage, gateway: PaymentGateway, as_of: datetime, *, dry: bool = False
) -> int:
    """The daily run, then :func:`_report`. A run the gateway stopped (a refused
    key, an outage), or that could not read an account, still prints the
    other accounts' lines and the note on what could not be issued, then
    raises its error."""
    from recurbill.billing import Billing

    try:
        reports = Billing(storage=storage, gateway=gateway).run(as_of)
    except (GatewayError, UnreadableRecordError) as error:
        _report(error.reports, dry=dry)
        raise
    return _report(reports, dry=dry)


def _report(reports: Sequence[RunReport], *, dry: bool = False) -> int:
    """Print a line per account; 1 if a template could not be issued or a
    stored row was set aside, else 0."""
    _lines(reports, dry=dry)
    failures = sum(len(report.failed) for report in reports)
    if failures:
        print(
            f"recurbill: {failures} recurring invoice(s) could not be issued; "
            "the daily summary says why (they are tried again next run)",
            file=sys.stderr,
        )
    unreadable = sum(len(report.unreadable) for report in reports)
    if unreadable:
        print(
            f"recurbill: {unreadable} stored record(s) could not be read and "
            "were set aside; the daily summary names them (they are tried "
            "again next run)",
            file=sys.stderr,
        )
    return 1 if failures or unreadable else 0


def _lines(reports: Sequence[RunReport], *, dry: bool) -> None:
    """A line per account: what the run did, or for a dry run would do."""
    for report in reports:
        print(f"{report.account_id}: {_done(report, dry=dry)}{_extra(report)}")


def _done(report: RunReport, *, dry: bool) -> str:
    """A real run counts its charges by outcome (those a stopped run saved but
    did not send await one); a dry run (whose gateway knows no card) only how
    many it would make."""
    issued, skipped, ended = map(len, (report.issued, report.skipped, report.ended))
    if dry:
        charges = len(report.charges)
        return f"would issue {issued}, charge {charges}, skip {skipped}, end {ended}"
    charged, declined, canceled = (report.count(s) for s in _ENDED)
    waiting = len(report.charges) - charged - declined - canceled
    outcomes = f"{charged} charged, {declined} declined, {waiting} awaiting an outcome"
    if canceled:
        outcomes += f", {canceled} canceled"
    return f"{issued} issued, {outcomes}, {skipped} skipped, {ended} ended"


def _extra(report: RunReport) -> str:
    """What went wrong, or was not charged, if anything."""
    extra = f", {len(report.failed)} failed" if report.failed else ""
    if report.unreadable:
        extra += f", {len(report.unreadable)} unreadable (set aside)"
    if report.uncharged:
        extra += f", {len(report.uncharged)} not charged (sent as invoices)"
    return extra


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
    except BrokenPipeError:  # the reader went away (``| head``): stop quietly
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (flushed at exit)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""The ``recurbill`` command: ``demo``, ``run``, ``preview`` and ``migrate``.

Errors print one line to stderr, no traceback. Exit status 2 is a command
line that cannot be run: an option's value it does not take (the line names
the option and what it takes), options that do not go together or are
missing, a SQLite file that is not there. Exit status 1 is an error from the
library or the stored data (an account or template not found, a database
not migrated, a row that cannot be read) or from the gateway. This is the
only module that reads the clock.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import closing
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from recurbill.errors import GatewayError, RecurbillError, UnreadableRecordError
from recurbill.records import (
    FIRST_YEAR,
    LAST_YEAR,
    PaymentStatus,
    RecurringTemplate,
    TemplateStatus,
    in_range,
)
from recurbill.schedule import Occurrence, OccurrenceStatus, Schedule

if TYPE_CHECKING:
    from recurbill.notify.protocol import Notifier
    from recurbill.payments.protocol import PaymentGateway
    from recurbill.records import RunReport
    from recurbill.storage.protocol import Transaction
    from recurbill.storage.sql import SqlStorage

__all__ = ["main"]

_ENDED = (PaymentStatus.SUCCEEDED, PaymentStatus.DECLINED, PaymentStatus.CANCELED)
_PAGE = 1000  # templates read at a time for the list of stored templates


class UsageError(Exception):
    """The command line asks for something that cannot be done (exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """A parser whose errors are one line, like the command's other errors."""

    def error(self, message: str) -> NoReturn:
        """Print *message* (it names the option) on one line; exit with status 2."""
        self.exit(2, f"recurbill: {message} (see {self.prog} --help)\n")


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
    if not in_range(instant):  # as the daily run refuses it
        raise argparse.ArgumentTypeError(
            f"{text!r} is outside the calendar; give an instant in the years "
            f"{FIRST_YEAR} to {LAST_YEAR} (in UTC)"
        )
    return instant


_RUN_DESCRIPTION = """\
Run the daily job: issue every due recurring invoice, charge the customers
who pay by card, queue the e-mails, and print a line per account.
"""

_RUN_EPILOG = f"""\
exit status:
  0  everything due was done (declined cards and charges awaiting an
     outcome are results, not errors)
  1  something could not be issued or charged: a recurring invoice could not
     be issued, a stored row could not be read (set aside and named in the
     daily summary), the gateway stopped the charging (a refused key, an
     outage), an e-mail in the outbox could not be read, or another error
     stopped the run (one line on stderr)
  2  the command line cannot be run (an option's value it does not take,
     such as an --as-of outside the years {FIRST_YEAR} to {LAST_YEAR} in UTC;
     no such SQLite file, no STRIPE_SECRET_KEY, --smtp without
     --smtp-sender, --smtp-sender, --smtp-security or --smtp-user without
     --smtp, --dry-run with --smtp)
"""

_PREVIEW_DESCRIPTION = """\
List the next dates of a schedule, in one of two modes:
  a schedule given here: --start and --period (and --every, --end,
    --month-end), without saving anything;
  a stored template: --db, --account and --template, each date with the
    amount of its invoice.
--count says how many dates to list in both modes. A first line says what
is listed. To find a template's id, give --db alone (or with --account):
that lists the stored templates, with their account, customer, period,
state (active, paused or ended) and next date. An option the chosen mode
does not take is refused, not ignored (--every with --template, --count
with the list of stored templates). preview changes no record (opening a
SQLite file, as every command does, turns on its WAL journal).
"""

_PREVIEW_EPILOG = """\
exit status:
  0  listed
  1  the database cannot be read: no such account or template, a schema
     that is not migrated, a stored row recurbill cannot read
  2  the command line cannot be run: an option's value it does not take
     (--every 0, --count 0, --end before --start, --month-end with weeks;
     the line names the option and what it takes), a mode's option
     missing, an option of another mode (the line names it and the mode
     that takes it), no such SQLite file
"""

_EPILOG = """\
Each command exits with status 0 when done, 1 for an error from the
library, the stored data or the gateway, and 2 for a command line it cannot
run (such as an option's value it does not take); the error is one line on
standard error. recurbill COMMAND --help says more.
"""


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="recurbill",
        description="Embeddable billing: recurring invoices, charge after each "
        "session, mass payment. This command runs a demo, the daily job, a "
        "preview of a schedule and the schema migration.",
        epilog=_EPILOG,
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
            help="list the next dates of a schedule or of a stored template, "
            "or the stored templates",
            description=_PREVIEW_DESCRIPTION,
            epilog=_PREVIEW_EPILOG,
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
        help=f"the instant to run as, in the years {FIRST_YEAR} to {LAST_YEAR} "
        "in UTC: an ISO date-time with a UTC offset, e.g. 2027-01-31T06:15+01:00 "
        "(default: now)",
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
        default=None,  # given or not: only --smtp takes it
        help="starttls (connect, then upgrade; usually port 587), tls (TLS from "
        "the start; usually port 465) or none (unencrypted, a local relay; no "
        "login) (for --smtp) (default: starttls)",
    )
    run.add_argument(
        "--smtp-user",
        default=None,
        help="SMTP login, the password in RECURBILL_SMTP_PASSWORD (for --smtp) "
        "(default: no login)",
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
        type=_positive,
        default=None,  # given or not: only a schedule given here takes it
        help="every this many periods, 1 or more, e.g. --period week --every 2 "
        f"for fortnightly (default: {_EVERY})",
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
        default=None,  # given or not: the list of stored templates refuses it
        help=f"dates to list, 1 or more (default: {_COUNT})",
    )
    preview.add_argument(
        "--month-end",
        action="store_true",
        help="a schedule that starts on a month's last day stays on last days "
        "(from 2027-02-28: 2027-03-31, not 2027-03-28); months, quarters and "
        "years only (default: the start's day of the month, moved to the last "
        "day of a shorter month)",
    )
    preview.add_argument(
        "--db",
        default=None,
        help="database URL or SQLite file of --template; without --template "
        "(and without --start and --period), list its stored templates",
    )
    preview.add_argument(
        "--account",
        default=None,
        help="account of --template; without --template, list only its templates",
    )
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


def _rhythm(schedule: Schedule) -> str:
    """How often *schedule* recurs: ``every month``, ``every 2 weeks``."""
    unit = schedule.period.value
    every = f"every {schedule.every} {unit}s" if schedule.every > 1 else f"every {unit}"
    last_day = (schedule.start + timedelta(days=1)).day == 1
    return f"{every} on month ends" if schedule.month_end and last_day else every


def _dates(count: int, which: str) -> str:
    """``the next date`` or ``the next 3 dates``, for *which* ``next``."""
    return f"the {which} date" if count == 1 else f"the {which} {count} dates"


_EVERY = 1
_COUNT = 12

_SCHEDULE = "a schedule given here"
_TEMPLATE = "a stored template"
_LISTING = "the list of stored templates"
_CHOSEN_BY = (  # each mode of preview, and what chooses it
    (_SCHEDULE, "--start and --period"),
    (_TEMPLATE, "--template"),
    (_LISTING, "--db without --template"),
)

_TAKEN_BY = (  # each option of preview, and the modes that take it
    ("--start", (_SCHEDULE,)),
    ("--period", (_SCHEDULE,)),
    ("--every", (_SCHEDULE,)),
    ("--end", (_SCHEDULE,)),
    ("--month-end", (_SCHEDULE,)),
    ("--count", (_SCHEDULE, _TEMPLATE)),
    ("--db", (_TEMPLATE, _LISTING)),
    ("--account", (_TEMPLATE, _LISTING)),
)


def _preview(args: argparse.Namespace) -> int:
    mode = _mode(args)
    _refuse_others(args, mode)
    if mode == _TEMPLATE:
        return _preview_template(args)
    if mode == _SCHEDULE:
        return _preview_schedule(args)
    return _list_templates(args)


def _mode(args: argparse.Namespace) -> str:
    """Which of preview's modes the command line asks for."""
    if args.template is not None:
        return _TEMPLATE
    if args.start is not None or args.period is not None:
        return _SCHEDULE
    if args.db is not None:
        return _LISTING
    raise UsageError(
        "preview needs --start and --period (a schedule given here), or --db, "
        "--account and --template (a stored template), or --db alone (a list "
        "of the stored templates)"
    )


def _refuse_others(args: argparse.Namespace, mode: str) -> None:
    """Refuse the options given that *mode* does not take, naming the modes
    that take them: an option left unused would be a silent surprise."""
    given = {
        "--start": args.start,
        "--period": args.period,
        "--every": args.every,
        "--end": args.end,
        "--month-end": args.month_end or None,
        "--count": args.count,
        "--db": args.db,
        "--account": args.account,
    }
    others: dict[tuple[str, ...], list[str]] = {}
    for option, modes in _TAKEN_BY:
        if given[option] is not None and mode not in modes:
            others.setdefault(modes, []).append(option)
    if others:
        named = _and([f"{_and(o)} (for {' or '.join(m)})" for m, o in others.items()])
        one = sum(map(len, others.values())) == 1
        do, them = ("does", "it") if one else ("do", "them")
        chosen_by = dict(_CHOSEN_BY)[mode]
        raise UsageError(
            f"{named} {do} not apply to {mode} ({chosen_by}); leave {them} out"
        )


def _and(items: Sequence[str]) -> str:
    """*items* as a list in a sentence: ``a``, ``a and b``, ``a, b and c``."""
    return " and ".join(filter(None, [", ".join(items[:-1]), items[-1]]))


def _count(args: argparse.Namespace) -> int:
    """How many dates to list: --count, or its default."""
    return _COUNT if args.count is None else int(args.count)


def _preview_schedule(args: argparse.Namespace) -> int:
    if args.start is None or args.period is None:
        raise UsageError(
            "a schedule given here needs --start and --period (--db alone lists "
            "the stored templates)"
        )
    if args.end is not None and args.end < args.start:
        raise UsageError(
            f"--end {args.end} is before --start {args.start}; give an --end on "
            "or after the start"
        )
    if args.month_end and args.period == "week":
        raise UsageError(
            "--month-end applies to --period month, quarter or year, not week"
        )
    schedule = Schedule(
        start=args.start,
        period=args.period,
        every=_EVERY if args.every is None else args.every,
        end=args.end,
        month_end=args.month_end,
    )
    occurrences = schedule.upcoming(after=args.start, count=_count(args))
    until = "" if args.end is None else f" to {args.end}"
    print(
        f"schedule {_rhythm(schedule)} from {args.start}{until}: "
        f"{_dates(len(occurrences), 'first')}"
    )
    _print(occurrences)
    return 0


def _preview_template(args: argparse.Namespace) -> int:
    from recurbill.money import format_money
    from recurbill.storage.sql import SqlStorage
    from recurbill.views import template_view

    if args.db is None or args.account is None:
        raise UsageError("preview --template needs --db and --account too")
    with SqlStorage.from_url(_existing(args.db)) as storage:
        view = template_view(
            storage, args.account, args.template, upcoming=_count(args)
        )
        with storage.transaction(read_only=True) as tx:
            locale = tx.get_account(args.account).locale
            customer = tx.get_customer(args.account, view.template.customer_id)
    template = view.template
    about = (
        f"template {template.id} of account {args.account} "
        f"({customer.name}, {_rhythm(template.schedule)})"
    )
    if not view.upcoming:
        print(f"{about}: nothing coming ({_state(template)[0]})")
        return 0
    print(f"{about}: {_dates(len(view.upcoming), 'next')}")
    for coming in view.upcoming:
        _print([coming.occurrence], f"  {format_money(coming.amount, locale)}")
    return 0


def _state(template: RecurringTemplate) -> tuple[str, date | None]:
    """Whether *template* is active, paused or ended, and the next date it
    issues an invoice for (None if none is planned).

    Paused means that the next occurrence the daily run handles falls in a
    pause; ended, that none is left (the run may not have finished it yet).
    """
    schedule, n = template.schedule, template.next_index
    status = schedule.status(n)
    if template.status is TemplateStatus.FINISHED:
        return "ended", None
    if status is OccurrenceStatus.AFTER_END:
        return "ended", None
    paused = status is OccurrenceStatus.SKIPPED_PAUSED
    issued = schedule.next_issued(n)
    return ("paused" if paused else "active"), None if issued is None else issued.on


def _list_templates(args: argparse.Namespace) -> int:
    """Print the stored templates (of --account), read in one read-only unit.

    Templates are read a page at a time; only their rows of text are kept,
    as the columns' widths depend on every row."""
    from recurbill.storage.sql import SqlStorage

    with (
        SqlStorage.from_url(_existing(args.db)) as storage,
        storage.transaction(read_only=True) as tx,
    ):
        if args.account is not None:
            tx.get_account(args.account)  # an unknown account is named
        ids = [args.account] if args.account is not None else tx.list_account_ids()
        rows = [row for account_id in ids for row in _template_rows(tx, account_id)]
    where = "" if args.account is None else f" of account {args.account}"
    if not rows:
        print(f"no stored templates{where}")
        return 0
    count = "1 stored template" if len(rows) == 1 else f"{len(rows)} stored templates"
    print(f"{count}{where}; preview one with --account and --template")
    _table([("account", "template", "customer", "period", "state", "next"), *rows])
    return 0


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    """Print *rows* in columns two spaces apart."""
    widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


def _template_rows(tx: Transaction, account_id: str) -> Iterator[tuple[str, ...]]:
    """A row per template of *account_id*, in the order of their ids, read
    :data:`_PAGE` templates at a time."""
    page = tx.list_templates(account_id, limit=_PAGE)
    yield from _page_rows(tx, account_id, page)
    while len(page) == _PAGE:
        page = tx.list_templates(account_id, after=page[-1].id, limit=_PAGE)
        yield from _page_rows(tx, account_id, page)


def _page_rows(
    tx: Transaction, account_id: str, templates: Sequence[RecurringTemplate]
) -> list[tuple[str, ...]]:
    """A row per template of *templates*: account, template, customer, period,
    state and next date."""
    wanted = sorted({t.customer_id for t in templates})
    names = {c.id: c.name for c in tx.get_customers(account_id, wanted)}
    rows: list[tuple[str, ...]] = []
    for template in templates:
        state, next_on = _state(template)
        rhythm = _rhythm(template.schedule)
        shown = "-" if next_on is None else next_on.isoformat()
        customer = names[template.customer_id]
        rows.append((account_id, template.id, customer, rhythm, state, shown))
    return rows


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
    _require_smtp(args)
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


def _require_smtp(args: argparse.Namespace) -> None:
    """Refuse the e-mail options when --smtp, which they are for, is not given."""
    given = {
        "--smtp-sender": args.smtp_sender,
        "--smtp-security": args.smtp_security,
        "--smtp-user": args.smtp_user,
    }
    named = [option for option, value in given.items() if value is not None]
    if named and args.smtp is None:
        needs, them = ("needs", "it") if len(named) == 1 else ("need", "them")
        raise UsageError(
            f"{' and '.join(named)} {needs} --smtp HOST:PORT, the server that "
            f"sends the e-mail; give --smtp too, or leave {them} out"
        )


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
        security=args.smtp_security or "starttls",
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

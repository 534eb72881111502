"""``recurbill demo``: three Nordic businesses billing for 120 simulated days.

Builds a database (a new SQLite file, or an empty PostgreSQL database) with
accounts in NOK, SEK and ISK (each with the account it is paid to and its VAT
number), customers with Stripe's test cards (one that
declines), weekly / monthly / quarterly / yearly templates (one paused, one
with an end date, one starting on a 31st), then runs the daily job for every
simulated day and records after-session charges, and prints what happened
per account."""

from __future__ import annotations

import enum
import random
import sqlite3
from collections.abc import Iterator
from contextlib import suppress
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TextIO

import attrs
import sqlalchemy as sa

from recurbill.billing import Billing
from recurbill.errors import InvalidInputError
from recurbill.invoice import InvoiceLine, VatCategory
from recurbill.money import Money, format_money
from recurbill.notify.delivery import deliver_pending
from recurbill.notify.memory import Outbox
from recurbill.payee import PayeeAccount
from recurbill.payments.memory import InMemoryGateway
from recurbill.records import (
    CollectionMethod,
    InvoiceStatus,
    OccurrenceOutcome,
    PaymentStatus,
)
from recurbill.storage import schema
from recurbill.storage.engine import create_engine, sqlite_file
from recurbill.storage.sql import SqlStorage
from recurbill.storage.sqlerrors import translate_errors

__all__ = ["run_demo"]

_VAT = Decimal(25)
DEMO_ACCOUNTS = frozenset({"fjord-fysio", "sthlm-hosting", "reykjavik-radgjof"})


def _line(description: str, price: str, rate: Decimal = _VAT) -> InvoiceLine:
    if rate:
        return InvoiceLine(
            description=description, quantity=1, unit_price=price, vat_rate=rate
        )
    return InvoiceLine(
        description=description,
        quantity=1,
        unit_price=price,
        vat_category=VatCategory.EXEMPT,
        exemption_reason="Health care services are exempt from VAT",
    )


def _next_31st(after: date) -> date:
    day = after + timedelta(days=1)
    while day.day != 31:
        day += timedelta(days=1)
    return day


@attrs.define
class _Counter:
    """Readable ids for the demo database: ``cus_0003``."""

    seen: dict[str, int] = attrs.Factory(dict)

    def __call__(self, prefix: str) -> str:
        self.seen[prefix] = self.seen.get(prefix, 0) + 1
        return f"{prefix}_{self.seen[prefix]:04d}"


def _progress(out: TextIO, done: int, total: int) -> None:
    if not out.isatty() and done % 10 and done != total:
        return  # a log, not a terminal: a line every ten days
    width = 30
    filled = width * done // total
    bar = "#" * filled + "." * (width - filled)
    out.write(f"\r  simulating [{bar}] day {done:>3}/{total}")
    if done == total or not out.isatty():
        out.write("\n")
    out.flush()


def _days(start: date, count: int) -> Iterator[date]:
    for offset in range(1, count + 1):
        yield start + timedelta(days=offset)


def _seed(billing: Billing, start: date) -> dict[str, list[str]]:
    """Accounts, customers, cards and templates; returns session customers."""
    created = datetime.combine(start, time(12), tzinfo=timezone.utc)
    tomorrow = start + timedelta(days=1)
    fysio = billing.create_account(
        account_id="fjord-fysio",
        name="Fjord Fysio AS",
        currency="NOK",
        locale="nb_NO",
        timezone="Europe/Oslo",
        summary_email="post@fjordfysio.no",
        payee_account=PayeeAccount(kind="no_account", number="1503 55 12346"),
        vat_number="NO 987 654 325 MVA",
    )
    hosting = billing.create_account(
        account_id="sthlm-hosting",
        name="Stockholm Hosting AB",
        currency="SEK",
        locale="sv_SE",
        timezone="Europe/Stockholm",
        summary_email="drift@sthlmhosting.se",
        payment_terms_days=30,
        payee_account=PayeeAccount(kind="bankgiro", number="5050-1055"),
        vat_number="SE556677889901",
    )
    radgjof = billing.create_account(
        account_id="reykjavik-radgjof",
        name="Reykjavík Ráðgjöf ehf.",
        currency="ISK",
        locale="is_IS",
        timezone="Atlantic/Reykjavik",
        summary_email="reikningar@radgjof.is",
        payee_account=PayeeAccount(
            kind="iban", number="IS14 0159 2600 7654 5510 7303 39", bic="NBIIISRE"
        ),
        vat_number="510109-0190",
    )
    people: dict[str, list[tuple[str, str | None, CollectionMethod]]] = {
        fysio.id: [
            ("Kari Nordmann", "pm_card_visa", CollectionMethod.CHARGE_AUTOMATICALLY),
            ("Ola Hansen", "pm_card_mastercard", CollectionMethod.CHARGE_AUTOMATICALLY),
            (
                "Ingrid Berg",
                "pm_card_visa_chargeDeclinedInsufficientFunds",
                CollectionMethod.CHARGE_AUTOMATICALLY,
            ),
            ("Per Olsen", None, CollectionMethod.SEND_INVOICE),
        ],
        hosting.id: [
            ("Åsa Lindqvist", "pm_card_visa", CollectionMethod.CHARGE_AUTOMATICALLY),
            ("Björn Ek AB", None, CollectionMethod.SEND_INVOICE),
        ],
        radgjof.id: [
            (
                "Guðrún Jónsdóttir",
                "pm_card_visa",
                CollectionMethod.CHARGE_AUTOMATICALLY,
            ),
            ("Þór Sigurðsson", "pm_card_amex", CollectionMethod.CHARGE_AUTOMATICALLY),
        ],
    }
    customers: dict[str, list[str]] = {}
    for account_id, entries in people.items():
        for name, card, method in entries:
            slug = name.split()[0].lower()
            customer = billing.add_customer(
                account_id,
                name=name,
                email=f"{slug}@example.com",
                collection_method=method,
            )
            if card is not None:
                billing.save_card(account_id, customer.id, token=card)
            customers.setdefault(account_id, []).append(customer.id)
    kari, ola, ingrid, per = customers[fysio.id]
    asa, bjorn = customers[hosting.id]
    gudrun, thor = customers[radgjof.id]
    plan: list[tuple[str, str, list[InvoiceLine], str, date, date | None]] = [
        (
            fysio.id,
            kari,
            [_line("Treningsoppfølging, uke", "450", Decimal(0))],
            "week",
            tomorrow,
            None,
        ),
        (fysio.id, ola, [_line("Treningsabonnement", "699")], "month", tomorrow, None),
        (
            fysio.id,
            ingrid,
            [_line("Treningsabonnement", "699")],
            "month",
            tomorrow + timedelta(days=3),
            None,
        ),
        (
            fysio.id,
            per,
            [_line("Kvartalsvis oppfølging", "1500")],
            "quarter",
            tomorrow,
            None,
        ),
        (hosting.id, asa, [_line("VPS 4 GB", "249")], "month", _next_31st(start), None),
        (hosting.id, bjorn, [_line("Domän .se", "129")], "year", tomorrow, None),
        (
            hosting.id,
            asa,
            [_line("Backup", "49")],
            "week",
            tomorrow,
            start + timedelta(days=90),
        ),
        (
            radgjof.id,
            gudrun,
            [_line("Ráðgjöf, mánaðargjald", "45000")],
            "month",
            tomorrow,
            None,
        ),
        (radgjof.id, thor, [_line("Bókhald", "12990")], "week", tomorrow, None),
    ]
    templates = []
    for account_id, customer_id, lines, period, first, end in plan:
        templates.append(
            billing.create_template(
                account_id,
                customer_id,
                lines=lines,
                start=first,
                period=period,
                end=end,
                now=created,
            )
        )
    paused = templates[-1]  # Þór's weekly bookkeeping pauses for a month
    billing.pause_template(
        paused.account_id,
        paused.id,
        on=start + timedelta(days=30),
        resume=start + timedelta(days=60),
    )
    return {fysio.id: [kari, ola, ingrid], radgjof.id: [gudrun]}


def run_demo(url: str, *, start: date, days: int, out: TextIO) -> None:
    """Build the demo database at *url* and simulate *days* days from *start*.

    The demo writes only where it can lose nothing: a database with no
    tables at all, or a SQLite file an earlier demo made (recurbill's tables
    and no account but the demo's three), which it deletes and makes again.
    Any other database, and a server database an earlier demo made (the demo
    deletes no server database), is refused with :class:`InvalidInputError`
    before anything is written. Its runs touch only the demo's accounts.
    """
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise InvalidInputError(
            problem=f"days={days!r}", allowed="a whole number of days, 1 or more"
        )
    _make_room(url)
    with SqlStorage.from_url(url) as storage:
        storage.migrate()
        out.write(f"recurbill demo: {days} days from {start.isoformat()} into {url}\n")
        _simulate(storage, start, days, out)


def _simulate(storage: SqlStorage, start: date, days: int, out: TextIO) -> None:
    """Seed the demo's accounts, then run *days* days for them alone."""
    # test cards on a demo database: no money moves, so the demo runs where
    # production is declared too (RECURBILL_PRODUCTION guards real billing)
    gateway = InMemoryGateway(environ={})
    billing = Billing(storage=storage, gateway=gateway, ids=_Counter())
    outbox = Outbox()
    session_customers = _seed(billing, start)
    chance = random.Random(2026)  # the same demo every time
    for done, day in enumerate(_days(start, days), start=1):
        as_of = datetime.combine(day, time(21), tzinfo=timezone.utc)
        billing.run(as_of, account_ids=sorted(DEMO_ACCOUNTS))
        if day.weekday() < 5:
            for account_id, customers in session_customers.items():
                customer_id = chance.choice(customers)
                price = "850" if account_id == "fjord-fysio" else "18000"
                billing.record_session(
                    account_id,
                    customer_id,
                    lines=[_line("Behandling" if price == "850" else "Fundur", price)],
                    now=as_of,
                    session_id=f"{day.isoformat()}-{customer_id}",
                )
        # the outbox holds the demo's messages only: _make_room let no
        # other account into this database
        deliver_pending(storage, outbox, now=as_of)
        _progress(out, done, days)
    _summary(storage, start + timedelta(days=days), out, len(outbox.sent))


class _Holds(enum.Enum):
    """What a database holds, as far as the demo is concerned."""

    NOTHING = "no tables"
    DEMO = "recurbill's tables and no account but the demo's"
    OTHER = "other data"


def _make_room(url: str) -> None:
    """Refuse a database the demo may not write; delete an earlier demo's file."""
    path = sqlite_file(url)
    if path is None:
        _require_empty_server(url)
        return
    if not _replaceable(path):
        raise InvalidInputError(
            problem=f"{path} exists and is not a database the demo made",
            allowed="give --db the name of a new file (the demo replaces "
            "only its own earlier database)",
        )
    for suffix in ("", "-wal", "-shm"):
        with suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


def _replaceable(path: Path) -> bool:
    """No file at *path*, an empty one, or a SQLite file with no tables or the
    demo's."""
    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return True
    return path.is_file() and _inspect(_read_only(path)) is not _Holds.OTHER


def _require_empty_server(url: str) -> None:
    """Refuse a server database that has any table (an earlier demo's too)."""
    engine = create_engine(url)
    holds = _inspect(engine)
    if holds is _Holds.NOTHING:
        return
    shown = engine.url.render_as_string(hide_password=True)
    earlier = " (an earlier demo)" if holds is _Holds.DEMO else ""
    raise InvalidInputError(
        problem=f"the database {shown} is not empty{earlier}",
        allowed="give --db a new, empty database (the demo writes a server "
        "database only while it has no tables) or a SQLite file",
    )


def _read_only(path: Path) -> sa.Engine:
    """An engine that opens the SQLite file at *path* read-only."""
    uri = f"{path.resolve().as_uri()}?mode=ro"
    return sa.create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True))


def _inspect(engine: sa.Engine) -> _Holds:
    """:func:`_holds`, then the engine's connections are closed."""
    try:
        with translate_errors("reading what the database holds"):
            return _holds(engine)
    finally:
        engine.dispose()


def _holds(engine: sa.Engine) -> _Holds:
    """Whether the database of *engine* has no tables, is the demo's, or other.

    A SQLite file that cannot be read as a database is other data.
    """
    try:
        with engine.connect() as conn:
            names = _names(sa.inspect(conn))
            if not names:
                return _Holds.NOTHING
            if not names <= set(schema.metadata.tables):
                return _Holds.OTHER
            if schema.accounts.name in names:
                found = set(conn.scalars(sa.select(schema.accounts.c.id)))
                if not found <= DEMO_ACCOUNTS:
                    return _Holds.OTHER
            return _Holds.DEMO
    except sa.exc.DBAPIError:
        if engine.dialect.name != "sqlite":
            raise
        return _Holds.OTHER  # a file that is not a SQLite database


def _names(inspector: sa.Inspector) -> set[str]:
    """The tables and views of every schema but the SQL standard's catalogue."""
    return {
        name
        for found in inspector.get_schema_names()
        if found != "information_schema"
        for name in (
            *inspector.get_table_names(schema=found),
            *inspector.get_view_names(schema=found),
        )
    }


def _summary(storage: SqlStorage, last: date, out: TextIO, mails: int) -> None:
    """Per demo account: invoices by state, declined charges, skipped dates and
    the total billed; then the e-mails delivered."""
    out.write("\n")
    with storage.transaction() as tx:
        ids = [i for i in tx.list_account_ids() if i in DEMO_ACCOUNTS]
        for account in [tx.get_account(i) for i in ids]:
            invoices = tx.list_invoices(account.id)
            payments = tx.list_payments(account.id)
            skipped = sum(
                1
                for template in tx.list_templates(account.id)
                for occurrence in tx.list_occurrences(account.id, template.id)
                if occurrence.outcome is OccurrenceOutcome.SKIPPED
            )
            paid = [i for i in invoices if i.status is InvoiceStatus.PAID]
            open_ = [i for i in invoices if i.status is InvoiceStatus.OPEN]
            overdue = [i for i in open_ if i.is_overdue(on=last)]
            declined = [p for p in payments if p.status is PaymentStatus.DECLINED]
            refused = {i for p in declined for i in p.invoice_ids}
            billed = sum((i.total.amount for i in invoices), Decimal(0))
            total = format_money(Money(billed, account.currency), account.locale)
            out.write(f"{account.name} ({account.currency.code}, {account.timezone})\n")
            out.write(_row("invoices issued", len(invoices)))
            out.write(_row("paid", len(paid)))
            late = f"{len(overdue)} overdue" if overdue else ""
            out.write(_row("open", len(open_), late))
            out.write(
                _row(
                    "charge attempts declined",
                    len(declined),
                    f"for {len(refused)} invoice{'' if len(refused) == 1 else 's'}"
                    if refused
                    else "",
                )
            )
            out.write(_row("skipped (paused)", skipped))
            out.write(f"  {'billed in total':<24}{total}\n\n")
    out.write(f"{mails} e-mails delivered to the demo outbox.\n")


def _row(label: str, count: int, note: str = "") -> str:
    """A line of the summary: *label*, *count* and a *note* if there is one."""
    return f"  {label:<24}{count:>5}{f'  ({note})' if note else ''}\n"

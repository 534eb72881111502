"""Every stored row that cannot be read raises UnreadableRecordError, naming it.

One row of each table is corrupted with raw SQL (as a hand edit would) and
the public call that reads it raises the one error, naming the record, its
account, the column and why: a JSON or text column on SQLite and PostgreSQL,
and on SQLite also the typed columns it keeps as text (instants, dates,
amounts), which fail while SQLAlchemy converts the row. Nothing is written.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import attrs
import pytest
import sqlalchemy as sa

from billing_helpers import World, at, line, make_world
from recurbill.errors import NotFoundError, UnreadableRecordError
from recurbill.money import Money
from recurbill.records import CollectionMethod, PaymentStatus
from recurbill.storage import schema
from recurbill.storage.bulk import ByIds
from recurbill.storage.sql import SqlStorage
from recurbill.views import PaymentOutcome

DAY = date(2027, 1, 31)
NEXT = at(DAY + timedelta(days=1))


@attrs.frozen
class Stored:
    """A world holding a row of every table, and the ids of those rows."""

    world: World
    ids: dict[str, str]

    def list_credit_notes(self) -> Any:
        with self.world.storage.transaction(read_only=True) as tx:
            return tx.list_credit_notes("fjord")

    def list_refunds(self) -> Any:
        with self.world.storage.transaction(read_only=True) as tx:
            return tx.list_refunds("fjord")

    def declined(self) -> Any:
        """The read of the run's retries (which sets such a row aside)."""
        with self.world.storage.transaction(read_only=True) as tx:
            return tx.list_payments("fjord", statuses=[PaymentStatus.DECLINED])

    def pending_notifications(self) -> Any:
        with self.world.storage.transaction(read_only=True) as tx:
            return tx.pending_notifications()


def _stored(engine: sa.Engine) -> Stored:
    """Templates run once (paid, declined), a mass payment, a credit note on
    its paid invoice (credit), a refund, a declined try to pay the open
    invoice, and the e-mails queued for all."""
    storage = SqlStorage(engine)
    storage.migrate()
    world = make_world(storage=storage)
    kari = world.customer("Kari Nordmann")
    template = world.template(kari, start=DAY)
    ola = world.customer("Ola Nordmann", card="pm_card_chargeDeclinedExpiredCard")
    world.template(ola, start=DAY)
    per = world.customer("Per Olsen", method=CollectionMethod.SEND_INVOICE)
    (card,) = (
        m.id for m in world.billing.overview("fjord", per.id, on=DAY).payment_methods
    )
    paid, open_ = (
        world.billing.record_session(
            "fjord", per.id, lines=[line()], now=at(DAY - timedelta(days=n))
        ).invoice.id
        for n in (2, 1)
    )
    world.billing.run(at(DAY))
    settled = world.billing.mass_pay(
        "fjord", per.id, [paid], payment_method_id=card, now=at(DAY)
    )
    note = world.billing.credit_invoice(
        "fjord", paid, amount=Money("100", "NOK"), reason="discount", now=at(DAY)
    )
    declines = world.billing.save_card(
        "fjord", per.id, token="pm_card_chargeDeclinedExpiredCard", make_default=False
    )
    tried = world.billing.pay(
        "fjord", open_, payment_method_id=declines.id, now=at(DAY, 13)
    )
    assert tried.payment is not None
    assert tried.payment.status is PaymentStatus.DECLINED
    payments = {(p.customer_id, p.status): p.id for p in world.payments()}
    refund = world.billing.refund(
        "fjord", payments[kari.id, PaymentStatus.SUCCEEDED], now=at(DAY)
    )
    with storage.transaction() as tx:
        (entry,) = tx.list_credit_entries("fjord", per.id)
        (receipt,) = tx.list_receipts("fjord", per.id)
        notification = tx.pending_notifications(limit=1)[0]
    ids = {
        "template": template,
        "customer": per.id,
        "open": open_,
        "card": card,
        "settlement": settled.settlement.id,
        "mass payment": payments[per.id, PaymentStatus.SUCCEEDED],
        "tried": tried.payment.id,
        "declined": payments[ola.id, PaymentStatus.DECLINED],
        "receipt": receipt.id,
        "credit note": note.id,
        "refund": refund.id,
        "credit entry": entry.id,
        "notification": notification.id,
    }
    return Stored(world=world, ids=ids)


def _overview(stored: Stored) -> object:
    return stored.world.billing.overview("fjord", stored.ids["customer"], on=DAY)


def _template_view(stored: Stored) -> object:
    return stored.world.billing.template_view("fjord", stored.ids["template"])


def _pay(stored: Stored) -> PaymentOutcome:
    ids = stored.ids
    return stored.world.billing.pay(
        "fjord", ids["open"], payment_method_id=ids["card"], now=NEXT
    )


@attrs.frozen
class Case:
    """A row (its table, the key in ``Stored.ids``), a column set to
    *value*, the call that reads it, and the kind the error names."""

    table: str
    row: str
    column: str
    value: str | None
    read: Callable[[Stored], object]
    kind: str


BOTH = {  # JSON or text columns: bad values on either database
    "account": Case("accounts", "", "run_time", "noon", _overview, "account"),
    "customer": Case(
        "customers", "customer", "collection_method", "often", _overview, "customer"
    ),
    "template": Case(
        "templates", "template", "schedule", "{", _template_view, "template"
    ),
    "occurrence": Case(
        "occurrences", "template", "outcome", "maybe", _template_view, "occurrence"
    ),
    "invoice": Case("invoices", "open", "lines", "[{}]", _overview, "invoice"),
    "payment, by pay": Case("payments", "tried", "invoice_ids", "{", _pay, "payment"),
    "payment, by the declined": Case(
        "payments", "declined", "invoice_ids", "[", Stored.declined, "payment"
    ),
    "settlement": Case(
        "settlements",
        "settlement",
        "items",
        '[{"invoice_id": "x"}]',
        lambda s: s.world.billing.mass_payment("fjord", s.ids["settlement"]),
        "settlement",
    ),
    "receipt": Case("receipts", "receipt", "items", "{", _overview, "receipt"),
    "receipt without paid_at": Case(
        "receipts", "receipt", "paid_at", None, _overview, "receipt"
    ),
    "credit note": Case(
        "credit_notes",
        "credit note",
        "lines",
        "null",
        Stored.list_credit_notes,
        "credit note",
    ),
    "refund": Case(
        "refunds", "refund", "currency", "ABC", Stored.list_refunds, "refund"
    ),
    "credit entry": Case(
        "credit_entries", "credit entry", "currency", "KR", _overview, "credit entry"
    ),
    "notification": Case(
        "notifications",
        "notification",
        "headers",
        "[1]",
        Stored.pending_notifications,
        "notification",
    ),
}

SQLITE = {  # typed columns SQLite keeps as text: they fail while converting
    "template instant": attrs.evolve(
        BOTH["template"], column="created_at", value="now"
    ),
    "occurrence date": attrs.evolve(
        BOTH["occurrence"], column="on_date", value="2027-02-30"
    ),
    "invoice amount": attrs.evolve(BOTH["invoice"], column="total", value="1 000,00"),
    "invoice date": attrs.evolve(BOTH["invoice"], column="due_date", value="soon"),
    "payment instant": attrs.evolve(
        BOTH["payment, by the declined"], column="updated_at", value="x"
    ),
    "payment amount": attrs.evolve(BOTH["payment, by pay"], column="amount", value="-"),
    "receipt instant": attrs.evolve(BOTH["receipt"], column="issued_at", value="today"),
    "credit entry amount": attrs.evolve(
        BOTH["credit entry"], column="amount", value="lots"
    ),
    "notification instant": attrs.evolve(
        BOTH["notification"], column="created_at", value=""
    ),
}

CASES = [
    *(pytest.param("sqlite", case, id=f"sqlite-{name}") for name, case in BOTH.items()),
    *(
        pytest.param("postgresql", case, id=f"postgresql-{name}")
        for name, case in BOTH.items()
    ),
    *(
        pytest.param("sqlite", case, id=f"sqlite-{name}")
        for name, case in SQLITE.items()
    ),
]


def _where(case: Case, stored: Stored) -> tuple[str, dict[str, Any], str]:
    """The SQL condition of the case's row, its parameters, and its key."""
    if case.table == "accounts":
        return "id = :id", {"id": "fjord"}, "fjord"
    key = stored.ids[case.row]
    if case.table == "occurrences":
        return "template_id = :id AND occurrence_index = 0", {"id": key}, f"{key}/0"
    return "id = :id", {"id": key}, key


def _column(engine: sa.Engine, case: Case, where: str, params: dict[str, Any]) -> Any:
    with engine.connect() as conn:
        query = sa.text(f"SELECT {case.column} FROM {case.table} WHERE {where}")
        return conn.execute(query, params).scalar_one()


@pytest.mark.parametrize(("engine", "case"), CASES, indirect=["engine"])
def test_a_row_that_cannot_be_read_raises_naming_it(
    engine: sa.Engine, case: Case
) -> None:
    stored = _stored(engine)
    where, params, key = _where(case, stored)
    with engine.begin() as conn:
        statement = f"UPDATE {case.table} SET {case.column} = :value WHERE {where}"
        assert (
            conn.execute(sa.text(statement), {**params, "value": case.value}).rowcount
            == 1
        )
    with pytest.raises(UnreadableRecordError) as raised:
        case.read(stored)
    error = raised.value
    assert (error.fields["kind"], error.fields["key"]) == (case.kind, key)
    assert error.fields["account"] == "fjord"
    assert str(error).startswith(
        f"stored {case.kind} {key!r} of account 'fjord' could not be read "
        f"({case.column}: "
    )
    assert str(error).endswith(
        "; correct the row to what recurbill writes, or restore it from a backup"
    )
    assert _column(engine, case, where, params) == case.value  # left as it is


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
def test_paying_an_invoice_reads_its_own_payments_not_the_customers_others(
    engine: sa.Engine,
) -> None:
    """The customer's mass payment of another invoice cannot be read: paying
    the open invoice does not meet it (it reads that invoice's payments)."""
    stored = _stored(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE payments SET invoice_ids = '{' WHERE id = :id"),
            {"id": stored.ids["mass payment"]},
        )
    outcome = _pay(stored)
    assert outcome.payment is not None
    assert outcome.payment.status is PaymentStatus.SUCCEEDED
    assert outcome.invoices[0].status.value == "paid"
    assert [p.attempt for p in _payments_of(stored, stored.ids["open"])] == [1, 1]
    with pytest.raises(UnreadableRecordError):  # still unreadable, and named
        stored.world.billing.confirm_payment(
            "fjord", stored.ids["mass payment"], now=NEXT
        )


def _payments_of(stored: Stored, invoice_id: str) -> list[Any]:
    with stored.world.storage.transaction(read_only=True) as tx:
        return tx.list_payments("fjord", invoice_id=invoice_id)


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
def test_the_run_sets_aside_a_template_whose_customer_cannot_be_read(
    engine: sa.Engine,
) -> None:
    storage = SqlStorage(engine)
    storage.migrate()
    world = make_world(storage=storage)
    kari, ola = world.customer("Kari Nordmann"), world.customer("Ola Nordmann")
    world.template(kari, start=DAY)
    bad = world.template(ola, start=DAY)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE customers SET collection_method = 'x' WHERE id = :id"),
            {"id": ola.id},
        )
    (report,) = world.billing.run(at(DAY))
    assert [line.customer_name for line in report.issued] == ["Kari Nordmann"]
    (failed,) = report.failed
    assert (failed.template_id, failed.error) == (bad, "UnreadableRecordError")
    assert failed.problem.startswith(
        f"stored customer {ola.id!r} of account 'fjord' could not be read "
        "(collection_method: 'x' is not a valid CollectionMethod)"
    )


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_another_accounts_unreadable_row_is_not_found_not_named(
    engine: sa.Engine,
) -> None:
    stored = _stored(engine)
    invoice = stored.ids["open"]
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE invoices SET total = 'x' WHERE id = :id"), {"id": invoice}
        )
    stored.world.billing.create_account(
        account_id="vik",
        name="Vik Vekst AS",
        currency="NOK",
        locale="nb_NO",
        timezone="Europe/Oslo",
        summary_email="post@vikvekst.no",
    )
    with stored.world.storage.transaction(read_only=True) as tx:
        with pytest.raises(NotFoundError):
            tx.get_invoice("vik", invoice)
        with pytest.raises(UnreadableRecordError):
            tx.get_invoice("fjord", invoice)


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_a_run_for_one_account_never_reads_anothers_rows(engine: sa.Engine) -> None:
    """A run for one account reads only that account's payments (in flight,
    declined), and a write naming another account's id is NotFoundError:
    another account's unreadable row neither stops it nor is named."""
    stored = _stored(engine)
    with engine.begin() as conn:  # every fjord payment unreadable, in flight
        conn.execute(
            sa.text("UPDATE payments SET invoice_ids = '[{bad', status = 'pending'")
        )
        conn.execute(sa.text("UPDATE templates SET next_due_at = 'next week'"))
    world = stored.world
    vik = world.billing.create_account(
        account_id="vik",
        name="Vik Vekst AS",
        currency="NOK",
        locale="nb_NO",
        timezone="Europe/Oslo",
        summary_email="post@vikvekst.no",
    )
    other = attrs.evolve(world, account=vik)
    other.template(other.customer("Vik Kunde"), start=DAY)
    (report,) = world.billing.run(NEXT, account_ids=["vik"])
    assert len(report.issued) == 1
    with world.storage.transaction(read_only=True) as tx:
        (mine,) = tx.list_templates("vik")
    fjords = stored.ids["template"]
    with world.storage.transaction() as tx, pytest.raises(NotFoundError):
        tx.update_templates([attrs.evolve(mine, id=fjords)])


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_replacing_a_template_whose_due_instant_cannot_be_read_names_it(
    engine: sa.Engine,
) -> None:
    """A bulk update reads the stored indexed columns first (to leave out
    those it does not change); one it cannot convert raises the one error
    naming the template and the column, and nothing is written."""
    stored = _stored(engine)
    key = stored.ids["template"]
    storage = stored.world.storage
    with storage.transaction(read_only=True) as tx:
        template = tx.get_template("fjord", key)
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE templates SET next_due_at = 'soon' WHERE id = :id"),
            {"id": key},
        )
    with storage.transaction() as tx, pytest.raises(UnreadableRecordError) as raised:
        tx.update_templates([attrs.evolve(template, memo="changed")])
    error = raised.value
    assert (error.fields["kind"], error.fields["key"]) == ("template", key)
    assert str(error).startswith(
        f"stored template {key!r} of account 'fjord' could not be read (next_due_at: "
    )
    with engine.connect() as conn:
        query = sa.text("SELECT next_due_at, memo FROM templates WHERE id = :id")
        assert tuple(conn.execute(query, {"id": key}).one()) == ("soon", template.memo)


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
def test_rows_read_by_id_on_the_driver_convert_as_sqlalchemy_does(
    engine: sa.Engine,
) -> None:
    """Reads and checks by id run on the driver with the columns' own
    conversions: every row of every table with ids comes back with the values
    a SQLAlchemy select gives (instants, dates, amounts, flags)."""
    _stored(engine)
    tables = [t for t in schema.metadata.sorted_tables if "id" in t.c]
    with engine.connect() as conn:
        compared = 0
        for table in tables:
            expected = {
                row["id"]: dict(row)
                for row in conn.execute(sa.select(table)).mappings()
            }
            names = tuple(column.name for column in table.columns)
            found = ByIds(table, names, conn.dialect).run(conn, sorted(expected))
            assert {
                values[0]: dict(zip(names, values, strict=True)) for values in found
            } == expected
            compared += len(expected)
    assert compared > len(tables)

"""A stored payment, refund, invoice, customer or account row that cannot be
read never stops the run for anyone else.

The row is corrupted with raw SQL (as a hand edit would): the run does
everything else it would have done, reports the row it set aside, leaves it
as it is, and handles it exactly once after the row is corrected. Nothing is
charged twice.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from billing_helpers import World, at, line, make_world
from recurbill.collection import RetryPolicy
from recurbill.errors import GatewayUnavailableError, UnreadableRecordError
from recurbill.money import Money
from recurbill.notify.render import render_summary
from recurbill.records import (
    Customer,
    InvoiceStatus,
    Payment,
    PaymentStatus,
    Refund,
    RunReport,
    UnreadableLine,
)
from recurbill.storage.memory import InMemoryStorage
from recurbill.storage.sql import SqlStorage

DAY = date(2027, 1, 4)
DECLINES = "pm_card_visa_chargeDeclinedInsufficientFunds"


@pytest.fixture
def world(engine: sa.Engine) -> World:
    storage = SqlStorage(engine)
    storage.migrate()
    return make_world(storage=storage, retry_policy=RetryPolicy((3, 5, 7)))


def _get(engine: sa.Engine, table: str, key: str, column: str) -> object:
    with engine.connect() as conn:
        query = sa.text(f"SELECT {column} FROM {table} WHERE id = :id")
        return conn.execute(query, {"id": key}).scalar_one()


def _set(engine: sa.Engine, table: str, key: str, column: str, value: object) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE {table} SET {column} = :value WHERE id = :id"),
            {"value": value, "id": key},
        )


def _payment_of(world: World, customer: Customer) -> Payment:
    (payment,) = [p for p in world.payments() if p.customer_id == customer.id]
    return payment


def _charged(report: RunReport) -> list[tuple[str, PaymentStatus]]:
    return sorted((line.customer_name, line.status) for line in report.charges)


def _kinds(report: RunReport) -> list[tuple[str, str]]:
    return [(line.kind, line.key) for line in report.unreadable]


def test_an_unreadable_payment_in_flight_is_reported_and_the_rest_run(
    world: World, engine: sa.Engine
) -> None:
    kari, ola, per = (world.customer(n) for n in ("Kari", "Ola", "Per"))
    world.template(kari, start=DAY)
    world.template(ola, start=DAY)
    world.template(per, start=DAY + timedelta(days=1))
    world.gateway.fail_next("timeout_after", times=2)  # charged, answers lost
    (first,) = world.billing.run(at(DAY, 7))
    assert _charged(first) == [
        ("Kari", PaymentStatus.FAILED_UNKNOWN),
        ("Ola", PaymentStatus.FAILED_UNKNOWN),
    ]
    bad = _payment_of(world, kari).id
    good = _get(engine, "payments", bad, "invoice_ids")
    _set(engine, "payments", bad, "invoice_ids", "[{not json")

    (report,) = world.billing.run(at(DAY + timedelta(days=1), 7))
    assert _charged(report) == [  # Ola's finished, Per's issued and charged
        ("Ola", PaymentStatus.SUCCEEDED),
        ("Per", PaymentStatus.SUCCEEDED),
    ]
    assert [line.customer_name for line in report.issued] == ["Per"]
    assert _kinds(report) == [("payment", bad)]
    (line,) = report.unreadable
    assert line.problem.startswith(
        f"stored payment {bad!r} of account 'fjord' could not be read (invoice_ids"
    )
    assert _get(engine, "payments", bad, "status") == "failed_unknown"  # as it was
    assert len(world.gateway.ledger) == 3
    summary = render_summary(world.account, report)
    assert "Lagrede poster som ikke kunne leses (1)" in summary.text
    assert line.problem in " ".join(summary.text.split())  # wrapped in lines

    _set(engine, "payments", bad, "invoice_ids", good)  # the row is corrected
    (fixed,) = world.billing.run(at(DAY + timedelta(days=2), 7))
    assert _charged(fixed) == [("Kari", PaymentStatus.SUCCEEDED)]
    assert fixed.unreadable == ()
    (again,) = world.billing.run(at(DAY + timedelta(days=3), 7))
    assert again.is_empty
    assert len(world.gateway.ledger) == 3  # each card charged exactly once
    assert {i.status for i in world.storage_invoices()} == {InvoiceStatus.PAID}


def _declined(world: World) -> tuple[Customer, Customer]:
    """Kari and Ola declined on DAY; both have a good card before the retry
    (due DAY + 3)."""
    kari, ola = (world.customer(n, card=DECLINES) for n in ("Kari", "Ola"))
    world.template(kari, start=DAY)
    world.template(ola, start=DAY)
    (first,) = world.billing.run(at(DAY, 7))
    assert _charged(first) == [
        ("Kari", PaymentStatus.DECLINED),
        ("Ola", PaymentStatus.DECLINED),
    ]
    for customer in (kari, ola):
        world.billing.save_card(world.account.id, customer.id, token="pm_card_visa")
    return kari, ola


@pytest.mark.parametrize("table", ["payments", "invoices"])
def test_an_unreadable_declined_payment_or_invoice_waits_and_the_rest_retry(
    world: World, engine: sa.Engine, table: str
) -> None:
    kari, _ = _declined(world)
    declined = _payment_of(world, kari)
    bad = declined.id if table == "payments" else declined.invoice_ids[0]
    column = "invoice_ids" if table == "payments" else "lines"
    good = _get(engine, table, bad, column)
    _set(engine, table, bad, column, "[{not json")

    (report,) = world.billing.run(at(DAY + timedelta(days=3), 7))
    assert _charged(report) == [("Ola", PaymentStatus.SUCCEEDED)]
    assert _kinds(report) == [(table[:-1], bad)]
    assert len(world.gateway.ledger) == 1
    with world.storage.transaction() as tx:  # no attempt 2 of Kari's
        kept = tx.list_payments("fjord", customer_id=kari.id, skip_ids=[bad])
    assert [p.attempt for p in kept] == ([] if table == "payments" else [1])

    _set(engine, table, bad, column, good)  # the row is corrected
    (fixed,) = world.billing.run(at(DAY + timedelta(days=4), 7))
    assert _charged(fixed) == [("Kari", PaymentStatus.SUCCEEDED)]
    assert fixed.unreadable == ()
    assert world.billing.run(at(DAY + timedelta(days=5), 7))[0].is_empty
    assert len(world.gateway.ledger) == 2  # each card charged exactly once
    assert sorted(p.attempt for p in world.payments()) == [1, 1, 2, 2]


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_a_declined_payment_whose_instant_is_no_instant_is_set_aside_too(
    world: World, engine: sa.Engine
) -> None:
    """On SQLite the row fails while its columns are converted."""
    kari, _ = _declined(world)
    bad = _payment_of(world, kari).id
    good = _get(engine, "payments", bad, "updated_at")
    _set(engine, "payments", bad, "updated_at", "yesterday")
    (report,) = world.billing.run(at(DAY + timedelta(days=3), 7))
    assert _charged(report) == [("Ola", PaymentStatus.SUCCEEDED)]
    assert _kinds(report) == [("payment", bad)]
    assert "could not be read (updated_at: " in report.unreadable[0].problem
    _set(engine, "payments", bad, "updated_at", good)
    (fixed,) = world.billing.run(at(DAY + timedelta(days=4), 7))
    assert _charged(fixed) == [("Kari", PaymentStatus.SUCCEEDED)]
    assert len(world.gateway.ledger) == 2


def test_a_retry_waits_while_an_attempt_before_it_cannot_be_read(
    world: World, engine: sa.Engine
) -> None:
    """The latest attempt unreadable: the one before it must not be retried
    again (that would make the unreadable attempt a second time)."""
    kari, ola = (world.customer(n, card=DECLINES) for n in ("Kari", "Ola"))
    world.template(kari, start=DAY)
    world.template(ola, start=DAY)
    world.billing.run(at(DAY, 7))
    (second,) = world.billing.run(at(DAY + timedelta(days=3), 7))
    assert [line.status for line in second.charges] == [PaymentStatus.DECLINED] * 2
    for customer in (kari, ola):
        world.billing.save_card(world.account.id, customer.id, token="pm_card_visa")
    (bad,) = [
        p.id for p in world.payments() if p.customer_id == kari.id and p.attempt == 2
    ]
    good = _get(engine, "payments", bad, "invoice_ids")
    _set(engine, "payments", bad, "invoice_ids", "{")

    (report,) = world.billing.run(at(DAY + timedelta(days=5), 7))
    assert _charged(report) == [("Ola", PaymentStatus.SUCCEEDED)]
    assert _kinds(report) == [("payment", bad)]
    assert len(world.gateway.ledger) == 1

    _set(engine, "payments", bad, "invoice_ids", good)
    (fixed,) = world.billing.run(at(DAY + timedelta(days=6), 7))
    assert _charged(fixed) == [("Kari", PaymentStatus.SUCCEEDED)]
    assert len(world.gateway.ledger) == 2
    kari_attempts = sorted(
        p.attempt for p in world.payments() if p.customer_id == kari.id
    )
    assert kari_attempts == [1, 2, 3]


def test_a_retry_reads_its_invoices_payments_not_the_customers_others(
    world: World, engine: sa.Engine
) -> None:
    """A payment of another of the customer's invoices cannot be read: the
    retry is made all the same (only its invoice's attempts decide it),
    once, and that row is not reported (no read of the run met it)."""
    kari = world.customer("Kari")
    session = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(DAY - timedelta(days=1))
    )
    assert session.payment is not None
    other = session.payment.id
    world.billing.save_card(world.account.id, kari.id, token=DECLINES)
    world.template(kari, start=DAY)
    (first,) = world.billing.run(at(DAY, 7))
    assert _charged(first) == [("Kari", PaymentStatus.DECLINED)]
    world.billing.save_card(world.account.id, kari.id, token="pm_card_visa")
    _set(engine, "payments", other, "invoice_ids", "{")

    (report,) = world.billing.run(at(DAY + timedelta(days=3), 7))
    assert _charged(report) == [("Kari", PaymentStatus.SUCCEEDED)]
    assert report.unreadable == ()
    assert world.billing.run(at(DAY + timedelta(days=4), 7))[0].is_empty
    assert len(world.gateway.ledger) == 2  # the session and the retry, once each
    with world.storage.transaction() as tx:
        retried = tx.list_payments("fjord", customer_id=kari.id, skip_ids=[other])
    assert [(p.attempt, p.status) for p in retried] == [
        (1, PaymentStatus.DECLINED),
        (2, PaymentStatus.SUCCEEDED),
    ]


def _other_account(world: World, account_id: str) -> World:
    """Another account of the same service, with one due template."""
    account = world.billing.create_account(
        account_id=account_id,
        name=f"{account_id.title()} AS",
        currency="NOK",
        locale="nb_NO",
        timezone="Europe/Oslo",
        summary_email=f"post@{account_id}.no",
    )
    other = World(
        billing=world.billing,
        storage=world.storage,
        gateway=world.gateway,
        account=account,
    )
    other.template(other.customer(f"{account_id.title()} Kunde"), start=DAY)
    return other


def _summaries(world: World) -> list[str]:
    with world.storage.transaction() as tx:
        return sorted(
            n.account_id
            for n in tx.pending_notifications(limit=10_000)
            if n.kind == "daily_summary"
        )


def test_an_unreadable_account_is_raised_after_the_others_ran(
    world: World, engine: sa.Engine
) -> None:
    world.template(world.customer("Kari"), start=DAY)
    bad = _other_account(world, "lund")
    _other_account(world, "vik")
    good = _get(engine, "accounts", "lund", "run_time")
    _set(engine, "accounts", "lund", "run_time", "noon")

    only = world.billing.run(at(DAY, 7), account_ids=["fjord"])  # not affected
    assert [(r.account_id, len(r.issued)) for r in only] == [("fjord", 1)]
    with pytest.raises(UnreadableRecordError) as raised:
        world.billing.run(at(DAY, 7))
    error = raised.value
    assert (error.fields["kind"], error.fields["key"]) == ("account", "lund")
    assert "could not be read (run_time" in str(error)
    assert [(r.account_id, len(r.issued)) for r in error.reports] == [
        ("fjord", 0),  # issued by the run before
        ("vik", 1),
    ]
    assert _summaries(world) == ["fjord", "vik"]
    assert len(world.gateway.ledger) == 2
    assert bad.storage_invoices() == []

    _set(engine, "accounts", "lund", "run_time", good)  # the row is corrected
    reports = world.billing.run(at(DAY + timedelta(days=1), 7))
    assert [(r.account_id, len(r.issued)) for r in reports] == [
        ("fjord", 0),
        ("lund", 1),
        ("vik", 0),
    ]
    assert [i.issue_date for i in bad.storage_invoices()] == [DAY]
    assert len(world.gateway.ledger) == 3  # each card charged exactly once


def test_list_payments_skips_the_ids_it_is_given_past_an_unreadable_row(
    world: World, engine: sa.Engine
) -> None:
    kari, ola = world.customer("Kari"), world.customer("Ola")
    for customer in (kari, ola):
        world.template(customer, start=DAY)
    world.billing.run(at(DAY, 7))
    bad = _payment_of(world, kari).id
    _set(engine, "payments", bad, "invoice_ids", "{")
    with world.storage.transaction() as tx:
        with pytest.raises(UnreadableRecordError) as raised:
            tx.list_payments("fjord")
        rest = tx.list_payments("fjord", skip_ids=[bad])
    assert (raised.value.fields["kind"], raised.value.fields["key"]) == ("payment", bad)
    assert [p.customer_id for p in rest] == [ola.id]


def test_the_summary_lists_the_rows_set_aside() -> None:
    world = make_world()
    problem = "stored payment 'pay_1' of account 'fjord' could not be read (x)"
    report = RunReport(
        account_id="fjord",
        as_of=at(DAY, 7),
        unreadable=(UnreadableLine(kind="payment", key="pay_1", problem=problem),),
    )
    assert not report.is_empty
    summary = render_summary(world.account, report)
    assert "Lagrede poster som ikke kunne leses (1)" in summary.text
    assert problem in summary.text
    assert summary.html is not None
    assert html.escape(problem) in summary.html


class _OlderTransaction:
    """A storage adapter's transaction from before ``list_payments`` and
    ``list_refunds`` took ``skip_ids``."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def list_payments(
        self,
        account_id: str | None = None,
        *,
        customer_id: str | None = None,
        statuses: Sequence[PaymentStatus] | None = None,
    ) -> list[Payment]:
        return self._inner.list_payments(  # type: ignore[no-any-return]
            account_id, customer_id=customer_id, statuses=statuses
        )

    def list_refunds(
        self,
        account_id: str,
        payment_id: str | None = None,
        *,
        statuses: Sequence[str] | None = None,
    ) -> list[Refund]:
        return self._inner.list_refunds(  # type: ignore[no-any-return]
            account_id, payment_id, statuses=statuses
        )


class _OlderStorage:
    def __init__(self) -> None:
        self.inner = InMemoryStorage()

    @contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[_OlderTransaction]:
        with self.inner.transaction(read_only=read_only) as tx:
            yield _OlderTransaction(tx)


def test_an_adapter_without_skip_ids_on_list_payments_keeps_working() -> None:
    world = make_world(storage=_OlderStorage())  # type: ignore[arg-type]
    world.template(world.customer("Ola"), start=DAY)
    kari = world.customer("Kari", card=DECLINES)
    world.template(kari, start=DAY)
    world.gateway.fail_next("timeout_after")  # Ola charged, the answer lost
    (first,) = world.billing.run(at(DAY, 7))
    assert _charged(first) == [
        ("Kari", PaymentStatus.DECLINED),
        ("Ola", PaymentStatus.FAILED_UNKNOWN),
    ]
    world.billing.save_card(world.account.id, kari.id, token="pm_card_visa")
    (later,) = world.billing.run(at(DAY + timedelta(days=3), 7))
    assert _charged(later) == [
        ("Kari", PaymentStatus.SUCCEEDED),  # the retry
        ("Ola", PaymentStatus.SUCCEEDED),  # finished
    ]
    assert len(world.gateway.ledger) == 2


def test_an_adapter_without_skip_ids_on_list_refunds_keeps_working() -> None:
    world = make_world(storage=_OlderStorage())  # type: ignore[arg-type]
    waiting = _refund_unanswered(world, world.customer("Kari"))
    world.gateway.hold_next_refund()
    pending = _refund_unanswered(world, world.customer("Ola"))
    world.billing.run(at(DAY, 7))
    assert _refund_status(world, waiting) == "succeeded"
    world.gateway.finish_refund(_refund_status(world, pending, "refund_id"), "failed")
    world.billing.run(at(DAY + timedelta(days=1), 7))
    assert _refund_status(world, pending) == "failed_to_credit"
    assert len(world.gateway.refunds) == 2


def _refund_unanswered(world: World, customer: Customer) -> Refund:
    """A session of *customer* paid by card two days before DAY, and a
    refund of it the day before whose answer was lost (the gateway made it):
    stored ``requested``, for the run to finish."""
    outcome = world.billing.record_session(
        world.account.id, customer.id, lines=[line()], now=at(DAY - timedelta(2))
    )
    assert outcome.payment is not None
    world.gateway.fail_next("timeout_after", operation="refund")
    with pytest.raises(GatewayUnavailableError):
        world.billing.refund(
            world.account.id, outcome.payment.id, now=at(DAY - timedelta(1))
        )
    with world.storage.transaction() as tx:
        (refund,) = tx.list_refunds(world.account.id, outcome.payment.id)
    return refund


def _refund_status(world: World, refund: Refund, field: str = "status") -> str:
    with world.storage.transaction() as tx:
        (now,) = [
            r
            for r in tx.list_refunds(world.account.id, refund.payment_id)
            if r.id == refund.id
        ]
    return str(getattr(now, field))


def _ledger(world: World) -> tuple[int, int]:
    """Charges and refunds the gateway made."""
    return len(world.gateway.ledger), len(world.gateway.refunds)


@pytest.mark.parametrize("table", ["refunds", "payments"])
def test_an_unreadable_unanswered_refund_or_its_payment_is_set_aside(
    world: World, engine: sa.Engine, table: str
) -> None:
    kari, ola, per = (world.customer(n) for n in ("Kari", "Ola", "Per"))
    refund = _refund_unanswered(world, kari)
    other = _refund_unanswered(world, per)  # finished by the same run
    world.template(ola, start=DAY)
    assert _ledger(world) == (2, 2)
    bad = refund.id if table == "refunds" else refund.payment_id
    column = "currency" if table == "refunds" else "invoice_ids"
    good = _get(engine, table, bad, column)
    _set(engine, table, bad, column, "ZZZ" if table == "refunds" else "[{not")

    (report,) = world.billing.run(at(DAY, 7))
    assert [line.customer_name for line in report.issued] == ["Ola"]
    assert _charged(report) == [("Ola", PaymentStatus.SUCCEEDED)]
    assert _kinds(report) == [(table[:-1], bad)]
    assert _get(engine, "refunds", refund.id, "status") == "requested"  # as it was
    assert _refund_status(world, other) == "succeeded"
    assert _summaries(world) == ["fjord"]
    summary = render_summary(world.account, report)
    assert report.unreadable[0].problem in " ".join(summary.text.split())
    assert _ledger(world) == (3, 2)

    _set(engine, table, bad, column, good)  # the row is corrected
    (fixed,) = world.billing.run(at(DAY + timedelta(days=1), 7))
    assert fixed.unreadable == ()
    assert _refund_status(world, refund) == "succeeded"
    (invoice,) = [i for i in world.storage_invoices() if i.customer_id == kari.id]
    assert invoice.status is InvoiceStatus.OPEN  # reopened, once
    assert invoice.paid == invoice.total - refund.amount
    world.billing.run(at(DAY + timedelta(days=2), 7))
    assert _ledger(world) == (3, 2)  # nothing charged or refunded twice
    assert _refund_status(world, refund) == "succeeded"


@pytest.mark.parametrize("answer", ["lost", "pending"])
def test_an_unreadable_earlier_refund_of_the_payment_holds_the_next_one(
    world: World, engine: sa.Engine, answer: str
) -> None:
    """A refund's slice of the payment depends on the refunds before it: one
    of those unreadable, its answer (lost, or a pending one's end) is not
    recorded, and the gateway is not asked to refund a second time."""
    kari = world.customer("Kari")
    outcome = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(DAY - timedelta(2))
    )
    assert outcome.payment is not None
    pay, part = outcome.payment.id, Money("100", "NOK")
    first = world.billing.refund(
        world.account.id, pay, amount=part, now=at(DAY - timedelta(2))
    )
    if answer == "lost":
        world.gateway.fail_next("timeout_after", operation="refund")
        with pytest.raises(GatewayUnavailableError):
            world.billing.refund(
                world.account.id, pay, amount=part, now=at(DAY - timedelta(1))
            )
    else:
        world.gateway.hold_next_refund()
        held = world.billing.refund(
            world.account.id, pay, amount=part, now=at(DAY - timedelta(1))
        )
        assert held.refund_id is not None
        world.gateway.finish_refund(held.refund_id, "failed")
    (second,) = [r for r in _refunds_of(world, pay) if r.id != first.id]
    was = second.status
    good = _get(engine, "refunds", first.id, "currency")
    _set(engine, "refunds", first.id, "currency", "ZZZ")

    (report,) = world.billing.run(at(DAY, 7))
    assert _kinds(report) == [("refund", first.id)]
    assert _get(engine, "refunds", second.id, "status") == was
    assert _ledger(world) == (1, 2)

    _set(engine, "refunds", first.id, "currency", good)
    (fixed,) = world.billing.run(at(DAY + timedelta(days=1), 7))
    assert fixed.unreadable == ()
    ended = "succeeded" if answer == "lost" else "failed_to_credit"
    assert _refund_status(world, second) == ended
    (invoice,) = world.storage_invoices()
    assert invoice.paid == invoice.total - part - part  # each taken back once
    world.billing.run(at(DAY + timedelta(days=2), 7))
    assert _ledger(world) == (1, 2)
    assert _refund_status(world, second) == ended


def _refunds_of(world: World, payment_id: str) -> list[Refund]:
    with world.storage.transaction() as tx:
        return tx.list_refunds(world.account.id, payment_id)


def test_an_unreadable_pending_refund_is_followed_once_after_repair(
    world: World, engine: sa.Engine
) -> None:
    kari, ola = world.customer("Kari"), world.customer("Ola")
    world.gateway.hold_next_refund()
    refund = _refund_unanswered(world, kari)
    world.billing.run(at(DAY - timedelta(days=1), 13))  # answered pending
    assert _refund_status(world, refund) == "pending"
    world.gateway.finish_refund(_refund_status(world, refund, "refund_id"), "failed")
    world.template(ola, start=DAY)
    good = _get(engine, "refunds", refund.id, "currency")
    _set(engine, "refunds", refund.id, "currency", "ZZZ")

    (report,) = world.billing.run(at(DAY, 7))
    assert _charged(report) == [("Ola", PaymentStatus.SUCCEEDED)]
    assert _kinds(report) == [("refund", refund.id)]
    assert _get(engine, "refunds", refund.id, "status") == "pending"

    _set(engine, "refunds", refund.id, "currency", good)
    (fixed,) = world.billing.run(at(DAY + timedelta(days=1), 7))
    assert fixed.unreadable == ()
    assert _refund_status(world, refund) == "failed_to_credit"
    world.billing.run(at(DAY + timedelta(days=2), 7))
    with world.storage.transaction() as tx:  # its amount became credit, once
        credit = [
            e.amount
            for e in tx.list_credit_entries(world.account.id, kari.id)
            if e.source_id == refund.id
        ]
    assert credit == [refund.amount]
    assert _ledger(world) == (2, 1)


@pytest.mark.parametrize(
    ("table", "column", "bad_value"),
    [("invoices", "lines", "[{bad"), ("customers", "collection_method", "bogus")],
)
def test_a_payment_in_flight_whose_invoice_or_customer_cannot_be_read_is_reported(
    world: World, engine: sa.Engine, table: str, column: str, bad_value: str
) -> None:
    """The charge went through, its answer was lost: the money may have been
    taken, so the owner hears of it every run until the row is corrected."""
    kari, ola = world.customer("Kari"), world.customer("Ola")
    world.template(kari, start=DAY)
    world.template(ola, start=DAY + timedelta(days=1))
    world.gateway.fail_next("timeout_after")  # charged, the answer lost
    (first,) = world.billing.run(at(DAY, 7))
    assert _charged(first) == [("Kari", PaymentStatus.FAILED_UNKNOWN)]
    payment = _payment_of(world, kari)
    bad = payment.invoice_ids[0] if table == "invoices" else kari.id
    good = _get(engine, table, bad, column)
    _set(engine, table, bad, column, bad_value)

    for days in (1, 2):  # read again, and reported again, by each run
        (report,) = world.billing.run(at(DAY + timedelta(days=days), 7))
        assert _kinds(report) == [(table[:-1], bad)]
        assert not report.is_empty
        assert _get(engine, "payments", payment.id, "status") == "failed_unknown"
    assert _charged(report) == []
    assert _summaries(world) == ["fjord", "fjord", "fjord"]
    assert len(world.gateway.ledger) == 2  # Kari's, and Ola's on DAY + 1

    _set(engine, table, bad, column, good)  # the row is corrected
    (fixed,) = world.billing.run(at(DAY + timedelta(days=3), 7))
    assert _charged(fixed) == [("Kari", PaymentStatus.SUCCEEDED)]
    assert fixed.unreadable == ()
    assert world.billing.run(at(DAY + timedelta(days=4), 7))[0].is_empty
    assert len(world.gateway.ledger) == 2  # Kari charged exactly once
    assert {i.status for i in world.storage_invoices()} == {InvoiceStatus.PAID}

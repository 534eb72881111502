"""A "payment failed" e-mail never goes out once its invoice is closed another way.

The notice says the invoice stays open for the customer to pay. If the
invoice is paid (by hand, in a mass payment, by bank transfer, with credit),
credited in full, voided or written off before the outbox is delivered, the
notice is withdrawn in the transaction that closes the invoice, and a
decline learned only after the invoice closed queues none. While the
invoice stays open (a part payment, a partial credit note) it goes out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import attrs
import pytest
import sqlalchemy as sa

from billing_helpers import World, at, line, make_world
from recurbill.collection import Collector, RetryPolicy
from recurbill.money import Money
from recurbill.notices import PAYMENT_FAILED
from recurbill.notices import payment_notice_id as notice_id
from recurbill.payments.protocol import ChargeResult, ChargeStatus
from recurbill.records import (
    Invoice,
    InvoiceStatus,
    NotificationStatus,
    Payment,
    PaymentStatus,
)
from recurbill.storage.memory import InMemoryStorage
from recurbill.storage.protocol import Storage
from recurbill.storage.sql import SqlStorage

DAY = date(2027, 3, 1)


def _declined(world: World) -> tuple[Payment, Invoice]:
    """A session's automatic charge declined for good (no retries): its
    "payment failed" notice is queued; the payment and its invoice."""
    kari = world.customer(card="pm_card_visa_chargeDeclined")
    payment = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(DAY, 9)
    ).payment
    assert payment is not None
    assert payment.status is PaymentStatus.DECLINED
    assert world.notification_kinds() == [PAYMENT_FAILED]
    return payment, world.invoice_of(payment)


def _status(world: World, payment: Payment) -> NotificationStatus:
    with world.storage.transaction() as tx:
        key = notice_id(payment, PAYMENT_FAILED)
        return tx.get_notification(world.account.id, key).status


def _visa(world: World, invoice: Invoice) -> str:
    return world.billing.save_card(
        world.account.id, invoice.customer_id, token="pm_card_visa"
    ).id


def _pay_by_hand(world: World, invoice: Invoice) -> None:
    card = _visa(world, invoice)
    world.billing.pay(world.account.id, invoice.id, payment_method_id=card, now=at(DAY))


def _mass_pay(world: World, invoice: Invoice) -> None:
    card = _visa(world, invoice)
    world.billing.mass_pay(
        world.account.id,
        invoice.customer_id,
        [invoice.id],
        payment_method_id=card,
        now=at(DAY),
    )


def _transfer(world: World, invoice: Invoice, amount: Money) -> None:
    world.billing.record_bank_transfer(
        world.account.id,
        invoice.customer_id,
        amount=amount,
        now=at(DAY),
        reference=f"NO-{invoice.number}",
    )


def _bank_transfer(world: World, invoice: Invoice) -> None:
    _transfer(world, invoice, invoice.total)


def _credit_in_full(world: World, invoice: Invoice) -> None:
    world.billing.credit_invoice(
        world.account.id,
        invoice.id,
        amount=invoice.total,
        reason="session cancelled",
        now=at(DAY),
    )


def _void(world: World, invoice: Invoice) -> None:
    world.billing.void_invoice(world.account.id, invoice.id, now=at(DAY))


def _write_off(world: World, invoice: Invoice) -> None:
    world.billing.mark_uncollectible(world.account.id, invoice.id, now=at(DAY))


CLOSING = [_pay_by_hand, _mass_pay, _bank_transfer, _credit_in_full, _void, _write_off]


@pytest.mark.parametrize("close", CLOSING)
def test_closing_the_invoice_withdraws_its_failed_notice(
    storage: Storage, close: Callable[[World, Invoice], None]
) -> None:
    world = make_world(storage=storage, retry_policy=RetryPolicy(()))
    payment, invoice = _declined(world)
    close(world, invoice)
    assert world.invoice_of(payment).status is not InvoiceStatus.OPEN
    assert _status(world, payment) is NotificationStatus.WITHDRAWN
    sent = world.deliver(at(DAY, 16))
    assert PAYMENT_FAILED not in sent
    paid_by_card = close in (_pay_by_hand, _mass_pay)
    assert sent == (["receipt"] if paid_by_card else [])
    assert world.deliver(at(DAY, 17)) == []  # withdrawn: never sent later either


def test_credit_used_on_the_invoice_withdraws_its_failed_notice(
    storage: Storage,
) -> None:
    world = make_world(storage=storage, retry_policy=RetryPolicy(()))
    kari = world.customer(card="pm_card_visa_chargeDeclined")
    world.billing.record_bank_transfer(  # nothing open yet: all of it is credit
        world.account.id,
        kari.id,
        amount=Money(5000, "NOK"),
        now=at(DAY, 8),
        reference="NO-1",
    )
    payment = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(DAY, 9)
    ).payment
    assert payment is not None
    assert payment.status is PaymentStatus.DECLINED
    world.billing.apply_credit(world.account.id, kari.id, now=at(DAY, 10))
    assert world.invoice_of(payment).status is InvoiceStatus.PAID
    assert _status(world, payment) is NotificationStatus.WITHDRAWN
    assert world.deliver(at(DAY, 16)) == []


def _part_transfer(world: World, invoice: Invoice) -> None:
    _transfer(world, invoice, Money(100, "NOK"))


def _part_credit(world: World, invoice: Invoice) -> None:
    world.billing.credit_invoice(
        world.account.id,
        invoice.id,
        amount=Money(100, "NOK"),
        reason="discount",
        now=at(DAY),
    )


@pytest.mark.parametrize("part", [_part_transfer, _part_credit])
def test_an_invoice_left_open_keeps_its_failed_notice(
    storage: Storage, part: Callable[[World, Invoice], None]
) -> None:
    world = make_world(storage=storage, retry_policy=RetryPolicy(()))
    payment, invoice = _declined(world)
    part(world, invoice)
    left = world.invoice_of(payment)
    assert left.status is InvoiceStatus.OPEN
    assert left.outstanding == invoice.total - Money(100, "NOK")
    assert _status(world, payment) is NotificationStatus.PENDING
    assert world.deliver(at(DAY, 16)) == [PAYMENT_FAILED]


def test_a_notice_sent_before_the_invoice_closed_stays_sent(storage: Storage) -> None:
    world = make_world(storage=storage, retry_policy=RetryPolicy(()))
    payment, invoice = _declined(world)
    assert world.deliver(at(DAY, 10)) == [PAYMENT_FAILED]
    _void(world, invoice)
    assert _status(world, payment) is NotificationStatus.SENT


def test_closing_one_invoice_keeps_the_notice_of_another(storage: Storage) -> None:
    world = make_world(storage=storage, retry_policy=RetryPolicy(()))
    first, invoice = _declined(world)
    second = world.billing.record_session(
        world.account.id, first.customer_id, lines=[line()], now=at(DAY, 10)
    ).payment
    assert second is not None
    assert second.status is PaymentStatus.DECLINED
    _void(world, invoice)
    assert _status(world, first) is NotificationStatus.WITHDRAWN
    assert _status(world, second) is NotificationStatus.PENDING
    assert world.deliver(at(DAY, 16)) == [PAYMENT_FAILED]


def test_a_first_attempt_paid_late_withdraws_the_last_retrys_notice(
    storage: Storage,
) -> None:
    """The first attempt declined, the one retry declined for good (its
    notice queued); the gateway then reports the first attempt succeeded
    after all: the invoice is paid, and the retry's notice withdrawn."""
    world = make_world(storage=storage, retry_policy=RetryPolicy((3,)))
    kari = world.customer(card="pm_card_visa_chargeDeclined")
    first = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(DAY, 9)
    ).payment
    assert first is not None
    assert first.status is PaymentStatus.DECLINED
    assert world.notification_kinds() == []  # a retry comes
    world.billing.run(at(DAY + 3 * date.resolution, 7))
    retry = next(p for p in world.payments() if p.attempt == 2)
    assert retry.status is PaymentStatus.DECLINED
    assert _status(world, retry) is NotificationStatus.PENDING
    success = ChargeResult(
        status=ChargeStatus.SUCCEEDED,
        charge_id=first.charge_id,
        amount=first.amount,
        idempotency_key=first.idempotency_key,
    )
    collector = Collector(world.storage, world.gateway, world.billing.ids)
    collector.apply(first, success, now=at(DAY + 3 * date.resolution, 15))
    assert world.invoice_of(first).status is InvoiceStatus.PAID
    assert _status(world, retry) is NotificationStatus.WITHDRAWN
    assert PAYMENT_FAILED not in world.deliver(at(DAY + 3 * date.resolution, 16))


class _Counting:
    """A storage whose transactions count the payment records they read
    (``records``) and the payments they look up by id (``lookups``, how
    withdrawing failed notices reads)."""

    def __init__(self, inner: Storage) -> None:
        self.inner, self.records, self.lookups = inner, 0, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @contextlib.contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[Any]:
        with self.inner.transaction(read_only=read_only) as tx:
            yield _CountedTx(tx, self)


@attrs.define
class _CountedTx:
    inner: Any
    owner: _Counting

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def list_payments(self, *args: Any, **kwargs: Any) -> Any:
        found = self.inner.list_payments(*args, **kwargs)
        self.owner.records += len(found)
        return found

    def get_payments(self, *args: Any, **kwargs: Any) -> Any:
        found = self.inner.get_payments(*args, **kwargs)
        self.owner.records += len(found)
        return found

    def get_payment(self, *args: Any, **kwargs: Any) -> Any:
        self.owner.lookups += 1
        found = self.inner.get_payment(*args, **kwargs)
        self.owner.records += 1
        return found


def test_the_daily_runs_charges_read_no_declined_payments() -> None:
    """An invoice's first automatic charge is the only payment it has had:
    paid by it, the invoice has no failed notice to withdraw, and the run
    looks nothing up for it (one look-up per invoice would slow every run)."""
    storage = _Counting(InMemoryStorage())
    world = make_world(storage=storage, retry_policy=RetryPolicy(()))
    for n in range(3):
        world.template(world.customer(f"Kunde {n}"), start=DAY)
    (report,) = world.billing.run(at(DAY, 7))
    assert len(report.issued) == 3
    assert [p.status for p in world.payments()] == [PaymentStatus.SUCCEEDED] * 3
    assert storage.lookups == 0
    world.deliver(at(DAY, 8))  # the receipts and the summary
    payment, invoice = _declined(world)
    before = storage.lookups
    _bank_transfer(world, invoice)  # while closing another way looks up
    assert storage.lookups - before == 2  # its one attempt, and no second one
    assert _status(world, payment) is NotificationStatus.WITHDRAWN


def _declines(world: World, name: str, count: int) -> tuple[Payment, list[Payment]]:
    """A customer with *count* + 1 invoices, each one's automatic charge
    declined for good: the first payment, and the others."""
    kari = world.customer(name, card="pm_card_visa_chargeDeclined")
    payments = []
    for hour in range(count + 1):
        payment = world.billing.record_session(
            world.account.id, kari.id, lines=[line()], now=at(DAY, 8 + hour)
        ).payment
        assert payment is not None
        assert payment.status is PaymentStatus.DECLINED
        payments.append(payment)
    return payments[0], payments[1:]


@pytest.mark.parametrize("close", [c for c in CLOSING if c is not _pay_by_hand])
def test_closing_reads_no_payment_of_the_customers_other_invoices(
    storage: Storage, close: Callable[[World, Invoice], None]
) -> None:
    """Closing an invoice reads as many payments for a customer with many
    declined payments on other invoices as for one with a single one: the
    read is bounded by the invoice closed, not the customer's history.
    (Paying by hand lists the customer's payments itself, to number its
    attempt and to report its outcome: it is left out here.)"""
    counting = _Counting(storage)
    world = make_world(storage=counting, retry_policy=RetryPolicy(()))
    reads = []
    for name, others in (("Kari Nordmann", 1), ("Ola Nordmann", 12)):
        payment, other = _declines(world, name, others)
        before = counting.records
        close(world, world.invoice_of(payment))
        reads.append(counting.records - before)
        assert _status(world, payment) is NotificationStatus.WITHDRAWN
        for kept in other:
            assert _status(world, kept) is NotificationStatus.PENDING
    few, many = reads
    assert many == few


def test_a_decline_learned_after_the_invoice_closed_queues_no_notice(
    storage: Storage,
) -> None:
    """The charge's answer was lost; a bank transfer pays the invoice (a
    charge without an outcome is left alone), and only then is the decline
    found: the invoice is paid, so no "payment failed" notice is queued."""
    world = make_world(storage=storage, retry_policy=RetryPolicy(()))
    kari = world.customer(card="pm_card_visa_chargeDeclined")
    world.gateway.fail_next("timeout_after")  # the charge is made, its answer lost
    lost = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(DAY, 9)
    ).payment
    assert lost is not None
    assert lost.status is PaymentStatus.FAILED_UNKNOWN
    _bank_transfer(world, world.invoice_of(lost))
    outcome = world.billing.confirm_payment(world.account.id, lost.id, now=at(DAY, 15))
    assert outcome.payment is not None
    assert outcome.payment.status is PaymentStatus.DECLINED
    assert world.invoice_of(lost).status is InvoiceStatus.PAID
    assert world.notification_kinds() == []
    assert world.deliver(at(DAY, 16)) == []


def test_an_unreadable_attempt_leaves_the_later_ones_withdrawn(
    engine: sa.Engine,
) -> None:
    """The first attempt's row cannot be read (changed by hand): closing
    the invoice passes over it and still withdraws the retry's notice."""
    storage = SqlStorage(engine)
    storage.migrate()
    world = make_world(storage=storage, retry_policy=RetryPolicy((3,)))
    kari = world.customer(card="pm_card_visa_chargeDeclined")
    first = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(DAY, 9)
    ).payment
    assert first is not None
    world.billing.run(at(DAY + 3 * date.resolution, 7))
    retry = next(p for p in world.payments() if p.attempt == 2)
    assert _status(world, retry) is NotificationStatus.PENDING
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE payments SET invoice_ids = '[{not json' WHERE id = :id"),
            {"id": first.id},
        )
    _void(world, world.invoice_of(retry))
    assert world.invoice_of(retry).status is InvoiceStatus.VOID
    assert _status(world, retry) is NotificationStatus.WITHDRAWN

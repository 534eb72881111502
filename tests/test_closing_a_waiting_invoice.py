"""An invoice closed another way cancels its payment that waits for 3-D Secure.

A card charge the bank holds for the customer's authentication can still be
completed by them. When its invoice stops being payable some other way (a
bank transfer pays it, a credit note credits all of it, it is voided or
written off), that charge is canceled at the gateway first and its "confirm
your payment" notice withdrawn, so the customer is never asked to pay, nor
charged for, an invoice that is settled. A payment without an outcome yet
is left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from datetime import date
from typing import Any

import pytest

from billing_helpers import (
    CrashError,
    Faults,
    FaultyGateway,
    FaultyStorage,
    World,
    at,
    line,
    make_world,
)
from recurbill.collection import Collector
from recurbill.errors import (
    CreditExceedsInvoiceError,
    GatewayUnavailableError,
    InvalidInputError,
    StateError,
)
from recurbill.money import Money
from recurbill.notices import NEEDS_ACTION, needs_action_notice_id
from recurbill.notify import Outbox, deliver_pending
from recurbill.payments.memory import InMemoryGateway
from recurbill.records import (
    Invoice,
    InvoiceStatus,
    NotificationStatus,
    Payment,
    PaymentStatus,
    SettlementStatus,
)
from recurbill.storage.memory import InMemoryStorage
from recurbill.storage.sql import SqlStorage

DAY = date(2027, 3, 1)
LATER = at(DAY, 14)


def _waiting(world: World) -> tuple[Invoice, Payment]:
    """A session's invoice whose automatic charge waits for 3-D Secure."""
    kari = world.customer(card="pm_card_authenticationRequired")
    outcome = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(DAY, 9)
    )
    assert outcome.payment is not None
    assert outcome.payment.status is PaymentStatus.REQUIRES_ACTION
    assert world.notification_kinds() == [NEEDS_ACTION]
    return outcome.invoice, outcome.payment


def _transfer(world: World, invoice: Invoice) -> None:
    world.billing.record_bank_transfer(
        world.account.id,
        invoice.customer_id,
        amount=invoice.total,
        now=LATER,
        reference="bank-1",
    )


def _credit(world: World, invoice: Invoice) -> None:
    world.billing.credit_invoice(
        world.account.id, invoice.id, amount=invoice.total, reason="Goodwill", now=LATER
    )


def _void(world: World, invoice: Invoice) -> None:
    world.billing.void_invoice(world.account.id, invoice.id, now=LATER)


def _write_off(world: World, invoice: Invoice) -> None:
    world.billing.mark_uncollectible(world.account.id, invoice.id, now=LATER)


CLOSINGS: list[tuple[Callable[[World, Invoice], None], InvoiceStatus]] = [
    (_transfer, InvoiceStatus.PAID),
    (_credit, InvoiceStatus.PAID),
    (_void, InvoiceStatus.VOID),
    (_write_off, InvoiceStatus.UNCOLLECTIBLE),
]


def _stored(world: World, invoice: Invoice, payment: Payment) -> tuple[Any, ...]:
    """The invoice's status, the payment's, and its notice's."""
    notice_id = needs_action_notice_id(payment)
    with world.storage.transaction() as tx:
        return (
            tx.get_invoice(world.account.id, invoice.id).status,
            tx.get_payment(world.account.id, payment.id).status,
            tx.get_notification(world.account.id, notice_id).status,
        )


def _delivered(world: World) -> list[str]:
    """The kinds of the messages the outbox sends now."""
    result = deliver_pending(world.storage, Outbox(), now=at(DAY, 16))
    with world.storage.transaction() as tx:
        return [tx.get_notification(world.account.id, k).kind for k in result.sent]


def _never_charged(gateway: InMemoryGateway, payment: Payment) -> None:
    """The customer's page can no longer complete the charge: nothing moved."""
    with pytest.raises(InvalidInputError, match="not waiting"):
        gateway.settle(payment.charge_id or "", succeed=True)
    assert gateway.ledger == []


def _closes_and_cancels(
    world: World, close: Callable[[World, Invoice], None], status: InvoiceStatus
) -> None:
    invoice, payment = _waiting(world)
    close(world, invoice)
    assert _stored(world, invoice, payment) == (
        status,
        PaymentStatus.CANCELED,
        NotificationStatus.WITHDRAWN,
    )
    assert NEEDS_ACTION not in _delivered(world)
    _never_charged(world.gateway, payment)
    world.billing.run(at(DAY + date.resolution, 7))  # nothing left to finish
    assert _stored(world, invoice, payment)[:2] == (status, PaymentStatus.CANCELED)
    assert world.gateway.ledger == []


@pytest.mark.parametrize(("close", "status"), CLOSINGS)
def test_closing_the_invoice_cancels_the_waiting_payment(
    close: Callable[[World, Invoice], None], status: InvoiceStatus
) -> None:
    _closes_and_cancels(make_world(), close, status)


@pytest.mark.parametrize(("close", "status"), CLOSINGS)
def test_sql_storage_closing_the_invoice_cancels_the_waiting_payment(
    sql_storage: SqlStorage,
    close: Callable[[World, Invoice], None],
    status: InvoiceStatus,
) -> None:
    _closes_and_cancels(make_world(storage=sql_storage), close, status)


def test_a_payment_completed_just_before_the_transfer_is_kept() -> None:
    """The cancel finds the charge succeeded: the card paid the invoice, and
    the transfer, finding nothing open, becomes the customer's credit."""
    world = make_world()
    invoice, payment = _waiting(world)
    world.gateway.settle(payment.charge_id or "", succeed=True)
    _transfer(world, invoice)
    assert _stored(world, invoice, payment) == (
        InvoiceStatus.PAID,
        PaymentStatus.SUCCEEDED,
        NotificationStatus.WITHDRAWN,
    )
    assert [c.idempotency_key for c in world.gateway.ledger] == [
        payment.idempotency_key
    ]
    overview = world.billing.overview(world.account.id, invoice.customer_id, on=DAY)
    assert overview.credit_balance == invoice.total
    assert _delivered(world) == ["receipt"]


def test_a_part_payment_leaves_the_waiting_payment() -> None:
    """An invoice still open stays payable: its waiting charge stays too, and
    what it pays beyond what is owed becomes credit."""
    world = make_world()
    invoice, payment = _waiting(world)
    part = Money("100", "NOK")
    world.billing.record_bank_transfer(
        world.account.id, invoice.customer_id, amount=part, now=LATER, reference="b"
    )
    assert _stored(world, invoice, payment) == (
        InvoiceStatus.OPEN,
        PaymentStatus.REQUIRES_ACTION,
        NotificationStatus.PENDING,
    )
    assert "cancel_charge" not in [r.operation for r in world.gateway.requests]


def test_a_payment_without_an_outcome_is_left_alone() -> None:
    """A processing charge may still take money: the transfer pays the
    invoice, the charge is not canceled, and if it succeeds its amount
    becomes the customer's credit."""
    world = make_world()
    kari = world.customer()
    world.gateway.process_next()
    outcome = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(DAY, 9)
    )
    payment = outcome.payment
    assert payment is not None
    assert payment.status is PaymentStatus.PROCESSING
    _transfer(world, outcome.invoice)
    assert "cancel_charge" not in [r.operation for r in world.gateway.requests]
    world.gateway.settle(payment.charge_id or "", succeed=True)
    world.billing.confirm_payment(world.account.id, payment.id, now=LATER)
    overview = world.billing.overview(world.account.id, kari.id, on=DAY)
    assert overview.credit_balance == outcome.invoice.total


def test_a_waiting_mass_payment_of_several_invoices_is_canceled() -> None:
    """One of its invoices paid by transfer, the mass payment's amount is
    wrong: it is canceled, and the customer pays the rest again."""
    world = make_world()
    per, stuck, visa = world.paying_by_hand()
    invoices = [
        world.billing.record_session(
            world.account.id, per.id, lines=[line(price)], now=at(date(2027, 1, n))
        ).invoice
        for n, price in [(1, "100"), (2, "200")]
    ]
    ids = [i.id for i in invoices]
    waiting = world.billing.mass_pay(
        world.account.id, per.id, ids, payment_method_id=stuck, now=at(DAY)
    )
    assert waiting.payment is not None
    assert waiting.status is SettlementStatus.REQUIRES_ACTION
    _transfer(world, invoices[0])  # the oldest: this pays it, not the other
    after = world.billing.mass_payment(world.account.id, waiting.settlement.id)
    assert after.status is SettlementStatus.ABANDONED
    assert after.payment is not None
    assert after.payment.status is PaymentStatus.CANCELED
    _never_charged(world.gateway, waiting.payment)
    assert [i.status for i in after.invoices] == [
        InvoiceStatus.PAID,
        InvoiceStatus.OPEN,
    ]
    rest = world.billing.mass_pay(
        world.account.id, per.id, ids[1:], payment_method_id=visa, now=LATER
    )
    assert rest.status is SettlementStatus.SUCCEEDED
    assert [c.amount for c in world.gateway.ledger] == [invoices[1].total]


def test_closing_without_now_is_refused_as_before() -> None:
    """Without *now* (when the cancel happens) voiding and writing off leave
    the waiting payment, and are refused, as they were."""
    world = make_world()
    invoice, payment = _waiting(world)
    for close in (world.billing.void_invoice, world.billing.mark_uncollectible):
        with pytest.raises(StateError, match="give now= to cancel that payment"):
            close(world.account.id, invoice.id)
    assert _stored(world, invoice, payment) == (
        InvoiceStatus.OPEN,
        PaymentStatus.REQUIRES_ACTION,
        NotificationStatus.PENDING,
    )


def test_a_refused_close_cancels_nothing() -> None:
    world = make_world()
    invoice, payment = _waiting(world)
    with pytest.raises(CreditExceedsInvoiceError):
        world.billing.credit_invoice(
            world.account.id,
            invoice.id,
            amount=invoice.total + Money("1", "NOK"),
            reason="Too much",
            now=LATER,
        )
    assert "cancel_charge" not in [r.operation for r in world.gateway.requests]
    assert _stored(world, invoice, payment)[1] is PaymentStatus.REQUIRES_ACTION


@pytest.mark.parametrize(("close", "status"), CLOSINGS)
def test_a_waiting_payment_started_meanwhile_refuses_the_close(
    monkeypatch: pytest.MonkeyPatch,
    close: Callable[[World, Invoice], None],
    status: InvoiceStatus,
) -> None:
    """Another tab starts a payment on the 3-D Secure card after the waiting
    ones were canceled: the close is refused, nothing closed, and done again
    it cancels that one too."""
    world = make_world()
    invoice, first = _waiting(world)
    started: list[Payment] = []
    close_way = Collector.close_way

    def then_another_tab(self: Collector, *args: Any, **kwargs: Any) -> None:
        close_way(self, *args, **kwargs)
        if not started:
            again = world.billing.pay(
                world.account.id,
                invoice.id,
                payment_method_id=first.payment_method_id,
                now=LATER,
            )
            assert again.payment is not None
            started.append(again.payment)

    monkeypatch.setattr(Collector, "close_way", then_another_tab)
    with pytest.raises(StateError, match="started meanwhile"):
        close(world, invoice)
    (second,) = started
    with world.storage.transaction() as tx:
        assert tx.get_invoice(world.account.id, invoice.id).status is (
            InvoiceStatus.OPEN
        )
        assert tx.get_payment(world.account.id, second.id).status is (
            PaymentStatus.REQUIRES_ACTION
        )
    close(world, invoice)
    statuses = {p.id: p.status for p in world.payments()}
    assert statuses == {
        first.id: PaymentStatus.CANCELED,
        second.id: PaymentStatus.CANCELED,
    }
    assert world.storage_invoices()[0].status is status
    assert world.gateway.ledger == []


@pytest.mark.parametrize(("close", "status"), CLOSINGS)
@pytest.mark.parametrize(
    ("kind", "mode"),
    [
        ("storage", "crash"),
        ("storage", "timeout_after"),
        ("gateway", "crash"),
        ("gateway", "timeout_after"),
    ],
)
def test_a_fault_at_every_call_then_closing_again_ends_consistent(
    close: Callable[[World, Invoice], None],
    status: InvoiceStatus,
    kind: str,
    mode: str,
) -> None:
    """The payment is canceled before the invoice is closed: after a fault
    at any step, a closed invoice never has a payment its customer can still
    complete, and closing again (while it is open) ends as a clean run."""
    k = 1
    while True:
        storage_faults, gateway_faults = Faults(mode=mode), Faults(mode=mode)
        gateway = InMemoryGateway()
        world = make_world(
            storage=FaultyStorage(InMemoryStorage(), storage_faults),  # type: ignore[arg-type]
            gateway=FaultyGateway(gateway, gateway_faults),  # type: ignore[arg-type]
        )
        invoice, payment = _waiting(world)
        target = storage_faults if kind == "storage" else gateway_faults
        target.calls, target.fail_at = 0, k
        with suppress(CrashError, GatewayUnavailableError):
            close(world, invoice)
        fired = target.calls >= k
        target.fail_at = None
        (closed,) = world.storage_invoices()
        live = gateway.retrieve_charge(charge_id=payment.charge_id)
        assert live is not None
        if closed.status is not InvoiceStatus.OPEN:  # never beside a live charge
            assert live.status.value == "canceled", f"{kind} {mode} fault at {k}"
        else:
            close(world, invoice)
        assert _stored(world, invoice, payment) == (
            status,
            PaymentStatus.CANCELED,
            NotificationStatus.WITHDRAWN,
        ), f"{kind} {mode} fault at call {k}"
        assert NEEDS_ACTION not in _delivered(world)
        _never_charged(gateway, payment)
        if not fired:
            break  # past the last call: every step was covered
        k += 1
    # the gateway is asked once (the cancel), storage often
    assert k > (10 if kind == "storage" else 1), "the harness must have covered them"

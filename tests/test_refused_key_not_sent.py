"""A charge the gateway refused for the API key was never sent: it is marked so.

Such a payment (``pending``, ``error_code`` ``NOT_SENT``) is unmarked, under
its invoices' locks and committed, before anything sends it. If its invoices
were settled another way meanwhile (a bank transfer, a full credit note, a
void), it is never sent: it is canceled with ``INVOICE_CLOSED``, and the
customer pays once. A payment whose request may have reached the gateway
(not marked) is still sent with its key, its amount then credit.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from datetime import date, timedelta
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
    together,
)
from recurbill.errors import (
    GatewayAuthenticationError,
    GatewayUnavailableError,
    StateError,
)
from recurbill.money import Money
from recurbill.payments.memory import InMemoryGateway
from recurbill.records import (
    INVOICE_CLOSED,
    NOT_SENT,
    ChargeLine,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentStatus,
    SettlementStatus,
)
from recurbill.storage.memory import InMemoryStorage
from recurbill.storage.protocol import Storage

DAY = date(2027, 1, 31)
NEXT = DAY + timedelta(days=1)


def _refused_run(world: World, customers: int = 1) -> None:
    """Templates due on DAY for *customers*; their first charge meets a
    refused API key (the run still issues every invoice)."""
    for n in range(customers):
        world.template(world.customer(f"Kunde{n} Nordmann"), start=DAY)
    world.gateway.fail_next("unauthorized")
    with pytest.raises(GatewayAuthenticationError):
        world.billing.run(at(DAY, 7))


def _only_payment(world: World) -> Payment:
    (payment,) = world.payments()
    return payment


def _transfer(world: World, invoice: Invoice) -> None:
    world.billing.record_bank_transfer(
        world.account.id,
        invoice.customer_id,
        amount=invoice.total,
        now=at(DAY, 12),
        reference="NO-4711",
    )


def _credit(world: World, invoice: Invoice) -> None:
    world.billing.credit_invoice(
        world.account.id,
        invoice.id,
        amount=invoice.total,
        reason="Timen ble avlyst",
        now=at(DAY, 12),
    )


def _void(world: World, invoice: Invoice) -> None:
    world.billing.void_invoice(world.account.id, invoice.id, now=at(DAY, 12))


CLOSERS: dict[str, Callable[[World, Invoice], None]] = {
    "bank transfer": _transfer,
    "full credit note": _credit,
    "void": _void,
}


def _credit_from(world: World, payment: Payment) -> list[Money]:
    """The credit entries *payment* made, and its receipts' amounts."""
    with world.storage.transaction() as tx:
        entries = tx.list_credit_entries(world.account.id, payment.customer_id)
        receipts = tx.list_receipts(world.account.id, payment.customer_id)
    return [e.amount for e in entries if e.source_id == payment.id] + [
        r.amount for r in receipts if r.payment_id == payment.id
    ]


def _last_summary(world: World) -> str:
    with world.storage.transaction() as tx:
        notes = tx.pending_notifications(limit=10_000)
    return [n.text for n in notes if n.kind == "daily_summary"][-1]


def test_the_refused_charge_of_a_run_is_marked_not_sent(storage: Storage) -> None:
    world = make_world(storage=storage)
    _refused_run(world, customers=3)
    payments = world.payments()
    assert [p.status for p in payments] == [PaymentStatus.PENDING] * 3
    assert [p.error_code for p in payments] == [NOT_SENT] * 3  # refused, untried
    assert world.gateway.ledger == []


@pytest.mark.parametrize("close", CLOSERS.values(), ids=CLOSERS.keys())
def test_a_charge_refused_for_the_key_is_not_sent_after_the_invoice_closed(
    storage: Storage, close: Callable[[World, Invoice], None]
) -> None:
    world = make_world(storage=storage)
    _refused_run(world)
    payment = _only_payment(world)
    close(world, world.invoice_of(payment))
    (report,) = world.billing.run(at(NEXT, 7))  # the key works again
    assert world.gateway.ledger == []  # the customer paid once, another way
    canceled = _only_payment(world)
    assert canceled.status is PaymentStatus.CANCELED
    assert canceled.error_code == INVOICE_CLOSED
    assert _credit_from(world, canceled) == []
    (charge,) = report.charges
    assert charge == ChargeLine.of(
        canceled,
        invoice_number=world.invoice_of(payment).display_number,
        customer_name="Kunde0 Nordmann",
    )
    assert charge.status is PaymentStatus.CANCELED
    assert charge.decline_code == INVOICE_CLOSED
    summary = " ".join(_last_summary(world).split())  # (its lines wrap)
    assert "Kansellert (fakturaen gjort opp på annen måte)" in summary
    assert "payment_failed" not in world.notification_kinds()
    (again,) = world.billing.run(at(NEXT + timedelta(days=1), 7))
    assert again.charges == ()
    assert world.gateway.ledger == []


def test_a_charge_refused_for_the_key_is_sent_once_while_its_invoice_is_open(
    storage: Storage,
) -> None:
    world = make_world(storage=storage)
    _refused_run(world, customers=2)
    assert {p.error_code for p in world.payments()} == {NOT_SENT}
    (report,) = world.billing.run(at(NEXT, 7))
    assert [c.status for c in report.charges] == [PaymentStatus.SUCCEEDED] * 2
    keys = sorted(c.idempotency_key for c in world.gateway.ledger)
    assert keys == sorted(p.idempotency_key for p in world.payments())
    for payment in world.payments():
        assert payment.status is PaymentStatus.SUCCEEDED
        assert payment.error_code is None
        assert world.invoice_of(payment).status is InvoiceStatus.PAID
    world.billing.run(at(NEXT + timedelta(days=1), 7))
    assert len(world.gateway.ledger) == 2


class _RefusedFrom(InMemoryGateway):
    """Refuses the API key for every charge from the *first*-th on."""

    def __init__(self, first: int) -> None:
        super().__init__()
        self.first, self.charges = first, 0

    def _begin(self, operation: str, params: Any, key: str | None = None) -> None:
        super()._begin(operation, params, key)
        if operation == "charge":
            self.charges += 1
            if self.charges >= self.first:
                raise GatewayAuthenticationError(
                    problem="injected: key revoked", allowed="fix it"
                )


def test_only_the_refused_and_untried_charges_of_a_batch_are_marked() -> None:
    world = make_world(gateway=_RefusedFrom(first=2))
    for n in range(4):
        world.template(world.customer(f"Kunde{n} Nordmann"), start=DAY)
    with pytest.raises(GatewayAuthenticationError):
        world.billing.run(at(DAY, 7))
    codes = sorted((p.status.value, p.error_code or "") for p in world.payments())
    assert codes == [("pending", NOT_SENT)] * 3 + [("succeeded", "")]


def test_a_session_charge_refused_for_the_key_is_canceled_once_paid_by_transfer(
    storage: Storage,
) -> None:
    world = make_world(storage=storage)
    kari = world.customer()
    world.gateway.fail_next("unauthorized")
    with pytest.raises(GatewayAuthenticationError, match="canceled instead"):
        world.billing.record_session(
            world.account.id, kari.id, lines=[line()], now=at(DAY, 9)
        )
    payment = _only_payment(world)
    assert payment.error_code == NOT_SENT
    _transfer(world, world.invoice_of(payment))
    outcome = world.billing.confirm_payment(
        world.account.id, payment.id, now=at(DAY, 13)
    )
    assert outcome.payment is not None
    assert outcome.payment.status is PaymentStatus.CANCELED
    assert outcome.payment.error_code == INVOICE_CLOSED
    assert world.gateway.ledger == []
    assert _credit_from(world, payment) == []


def test_a_payment_by_hand_refused_for_the_key_is_marked_and_sent_later() -> None:
    world = make_world()
    per, _, visa = world.paying_by_hand()
    outcome = world.billing.record_session(
        world.account.id, per.id, lines=[line()], now=at(DAY, 9)
    )
    (invoice,) = outcome.invoices
    world.gateway.fail_next("unauthorized")
    with pytest.raises(GatewayAuthenticationError):
        world.billing.pay(
            world.account.id, invoice.id, payment_method_id=visa, now=at(DAY, 10)
        )
    payment = _only_payment(world)
    assert payment.error_code == NOT_SENT
    done = world.billing.confirm_payment(world.account.id, payment.id, now=at(DAY, 11))
    assert done.payment is not None
    assert done.payment.status is PaymentStatus.SUCCEEDED
    assert [c.idempotency_key for c in world.gateway.ledger] == [
        payment.idempotency_key
    ]


def test_a_mass_payment_refused_for_the_key_is_abandoned_once_voided() -> None:
    world = make_world()
    per, _, visa = world.paying_by_hand()
    invoices = [
        world.billing.record_session(
            world.account.id, per.id, lines=[line()], now=at(DAY, hour)
        ).invoices[0]
        for hour in (9, 10)
    ]
    world.gateway.fail_next("unauthorized")
    with pytest.raises(GatewayAuthenticationError):
        world.billing.mass_pay(
            world.account.id,
            per.id,
            [i.id for i in invoices],
            payment_method_id=visa,
            now=at(DAY, 11),
        )
    (payment,) = world.payments()
    assert payment.error_code == NOT_SENT
    _void(world, invoices[0])
    assert payment.settlement_id is not None
    confirmation = world.billing.confirm_mass_payment(
        world.account.id, payment.settlement_id, now=at(DAY, 13)
    )
    assert confirmation.payment is not None
    assert confirmation.payment.status is PaymentStatus.CANCELED
    assert confirmation.settlement.status is SettlementStatus.ABANDONED
    assert world.gateway.ledger == []


def test_a_retry_refused_for_the_key_is_not_sent_after_a_bank_transfer() -> None:
    world = make_world()
    kari = world.customer(card="pm_card_visa_chargeDeclinedInsufficientFunds")
    world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(DAY, 9)
    )
    world.billing.save_card(world.account.id, kari.id, token="pm_card_visa")
    world.gateway.fail_next("unauthorized")
    with pytest.raises(GatewayAuthenticationError):
        world.billing.run(at(DAY + timedelta(days=3), 7))  # the first retry
    retry = next(p for p in world.payments() if p.attempt == 2)
    assert (retry.status, retry.error_code) == (PaymentStatus.PENDING, NOT_SENT)
    _transfer(world, world.invoice_of(retry))
    world.billing.run(at(DAY + timedelta(days=4), 7))
    assert world.gateway.ledger == []
    canceled = next(p for p in world.payments() if p.attempt == 2)
    assert (canceled.status, canceled.error_code) == (
        PaymentStatus.CANCELED,
        INVOICE_CLOSED,
    )


class _CrashOnCharge(InMemoryGateway):
    """Dies (the process) at its next charge, before sending it, when armed."""

    armed = False

    def charge(self, *args: Any, **kwargs: Any) -> Any:
        if self.armed:
            self.armed = False
            raise CrashError("gateway call charge")
        return super().charge(*args, **kwargs)


def test_a_charge_that_may_have_been_sent_keeps_its_key_and_becomes_credit() -> None:
    gateway = _CrashOnCharge()
    world = make_world(gateway=gateway)
    kari = world.customer()
    gateway.armed = True  # crashed between its commit and its answer: unknown
    with pytest.raises(CrashError):
        world.billing.record_session(
            world.account.id, kari.id, lines=[line()], now=at(DAY, 9)
        )
    gateway.fail_next("unauthorized")
    with pytest.raises(GatewayAuthenticationError):
        world.billing.run(at(DAY, 10))  # finishes it: not known to be unsent
    payment = _only_payment(world)
    assert (payment.status, payment.error_code) == (PaymentStatus.PENDING, None)
    _transfer(world, world.invoice_of(payment))
    world.billing.run(at(NEXT, 7))
    assert [c.idempotency_key for c in gateway.ledger] == [payment.idempotency_key]
    assert _credit_from(world, payment) == [payment.amount, payment.amount]


def test_a_crash_after_the_mark_is_removed_leaves_a_charge_made_once() -> None:
    gateway = _CrashOnCharge()
    world = make_world(gateway=gateway)
    _refused_run(world)
    assert _only_payment(world).error_code == NOT_SENT
    gateway.armed = True
    with pytest.raises(CrashError):
        world.billing.run(at(NEXT, 7))
    payment = _only_payment(world)
    assert (payment.status, payment.error_code) == (PaymentStatus.PENDING, None)
    world.billing.run(at(NEXT, 8))
    assert [c.idempotency_key for c in gateway.ledger] == [payment.idempotency_key]
    assert _only_payment(world).status is PaymentStatus.SUCCEEDED
    assert world.invoice_of(payment).status is InvoiceStatus.PAID


def _faulty_world(storage_faults: Faults, gateway_faults: Faults) -> World:
    """A world over faulty adapters whose charge was refused for the key."""
    inner = InMemoryGateway()
    world = make_world(
        storage=FaultyStorage(InMemoryStorage(), storage_faults),  # type: ignore[arg-type]
        gateway=FaultyGateway(inner, gateway_faults),  # type: ignore[arg-type]
    )
    world.gateway = inner  # (its ledger and faults)
    _refused_run(world)
    assert _only_payment(world).error_code == NOT_SENT
    return world


@pytest.mark.parametrize("closed", [False, True], ids=["open", "closed"])
@pytest.mark.parametrize(
    ("kind", "mode"),
    [
        ("storage", "crash"),
        ("storage", "timeout_after"),
        ("gateway", "crash"),
        ("gateway", "timeout_after"),
    ],
)
def test_a_fault_at_every_call_of_the_next_run_then_a_rerun_charges_once(
    kind: str, mode: str, closed: bool
) -> None:
    k = 1
    while True:
        faults = {"storage": Faults(mode=mode), "gateway": Faults(mode=mode)}
        world = _faulty_world(faults["storage"], faults["gateway"])
        payment = _only_payment(world)
        if closed:
            _void(world, world.invoice_of(payment))
        target = faults[kind]
        target.calls, target.fail_at = 0, k
        with suppress(CrashError, GatewayUnavailableError):
            world.billing.run(at(NEXT, 7))
        fired = target.calls >= k
        target.fail_at = None
        world.billing.run(at(NEXT, 8))
        world.billing.run(at(NEXT, 9))  # reconciliation may need a second pass
        done = _only_payment(world)
        keys = [c.idempotency_key for c in world.gateway.ledger]
        where = f"{kind} {mode} fault at call {k}"
        if closed:
            assert keys == [], where
            assert (done.status, done.error_code) == (
                PaymentStatus.CANCELED,
                INVOICE_CLOSED,
            ), where
        else:
            assert keys == [payment.idempotency_key], where
            assert done.status is PaymentStatus.SUCCEEDED, where
        assert _credit_from(world, payment) == ([] if closed else [done.amount]), where
        if not fired:
            break  # k is past the run's last call: every step was covered
        k += 1
    assert k > (1 if kind == "gateway" else 5), "the harness covered too few calls"


def test_a_void_and_a_send_at_once_never_both_happen(storage: Storage) -> None:
    world = make_world(storage=storage)
    _refused_run(world)
    payment = _only_payment(world)
    assert payment.error_code == NOT_SENT
    invoice = world.invoice_of(payment)
    voided, _ = together(
        lambda: world.billing.void_invoice(world.account.id, invoice.id),
        lambda: world.billing.confirm_payment(
            world.account.id, payment.id, now=at(DAY, 13)
        ),
    )
    done = _only_payment(world)
    if isinstance(voided, StateError):  # the send came first: the void waits
        assert done.status is PaymentStatus.SUCCEEDED
        assert len(world.gateway.ledger) == 1
    else:
        assert voided.status is InvoiceStatus.VOID
        assert (done.status, done.error_code) == (
            PaymentStatus.CANCELED,
            INVOICE_CLOSED,
        )
        assert world.gateway.ledger == []

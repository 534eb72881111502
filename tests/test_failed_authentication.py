"""A charge declined after it asked for authentication never takes money twice.

At Stripe a PaymentIntent whose 3-D Secure failed goes back to
``requires_payment_method``: the customer's page still holds its client
secret and can confirm it again, even after the invoice was paid with another
card. recurbill cancels such a charge before it records the decline, and
should a success still be reported for a payment recorded as declined or
canceled, the money is recorded (on the invoice if still open, else as
credit), with a receipt, once.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import attrs
import pytest

from billing_helpers import World, at, line, make_world
from recurbill.errors import GatewayUnavailableError, InvalidInputError
from recurbill.money import Money
from recurbill.payments.memory import InMemoryGateway
from recurbill.payments.protocol import ChargeResult, ChargeStatus
from recurbill.records import InvoiceStatus, Payment, PaymentStatus

DAY = date(2027, 3, 1)


def _waiting(world: World) -> tuple[str, str, str, Payment]:
    """A customer paying invoice A (125 NOK) with a card asking for 3-D Secure."""
    per, stuck, visa = world.paying_by_hand()
    account = world.account.id
    invoice = world.billing.record_session(
        account, per.id, lines=[line("100")], now=at(date(2027, 1, 1))
    ).invoice.id
    payment = world.billing.pay(
        account, invoice, payment_method_id=stuck, now=at(DAY, 9)
    ).payment
    assert payment is not None
    assert payment.status is PaymentStatus.REQUIRES_ACTION
    assert payment.charge_id is not None
    return per.id, invoice, visa, payment


def _deliver(world: World, type_: str) -> Any:
    event = [e for e in world.gateway.events if e.type == type_][-1]
    received = at(DAY, 15)
    body, signature = world.gateway.webhook(
        event.event_id, now=int(received.timestamp())
    )
    return world.billing.handle_webhook(body, signature=signature, now=received)


def _stored(world: World, payment_id: str) -> Payment:
    (payment,) = [p for p in world.payments() if p.id == payment_id]
    return payment


def _receipts_and_credit(world: World, customer_id: str) -> tuple[int, list[Money]]:
    with world.storage.transaction() as tx:
        receipts = tx.list_receipts(world.account.id, customer_id)
        credit = tx.list_credit_entries(world.account.id, customer_id)
    return len(receipts), [entry.amount for entry in credit]


def test_a_decline_after_authentication_is_recorded_once_its_charge_is_canceled() -> (
    None
):
    world = make_world()
    per, invoice, visa, first = _waiting(world)
    assert first.charge_id is not None
    world.gateway.settle(first.charge_id, succeed=False, decline_code="auth_failed")
    declined = _deliver(world, "payment_intent.payment_failed")
    assert declined.status is PaymentStatus.DECLINED
    assert declined.decline_code == "auth_failed"
    found = world.gateway.retrieve_charge(charge_id=first.charge_id)
    assert found is not None
    assert found.status is ChargeStatus.CANCELED
    with pytest.raises(InvalidInputError, match="cannot be confirmed again"):
        world.gateway.confirm_again(first.charge_id)  # the old tab tries again
    second = world.billing.pay(
        world.account.id, invoice, payment_method_id=visa, now=at(DAY, 10)
    )
    assert second.status is PaymentStatus.SUCCEEDED
    assert len(world.gateway.ledger) == 1
    assert _receipts_and_credit(world, per) == (1, [])


def test_paying_again_first_cancels_a_charge_whose_authentication_failed() -> None:
    """The decline's webhook has not come yet: the new payment's look-up finds
    it, cancels the charge, records the decline, then charges the new card."""
    world = make_world()
    _, invoice, visa, first = _waiting(world)
    assert first.charge_id is not None
    world.gateway.settle(first.charge_id, succeed=False)
    second = world.billing.pay(
        world.account.id, invoice, payment_method_id=visa, now=at(DAY, 10)
    )
    assert second.status is PaymentStatus.SUCCEEDED
    assert _stored(world, first.id).status is PaymentStatus.DECLINED
    with pytest.raises(InvalidInputError):
        world.gateway.confirm_again(first.charge_id)
    assert len(world.gateway.ledger) == 1


def test_a_cancel_without_an_answer_leaves_the_payment_waiting_until_it_is_made() -> (
    None
):
    world = make_world()
    _, _, _, first = _waiting(world)
    assert first.charge_id is not None
    world.gateway.settle(first.charge_id, succeed=False)
    world.gateway.fail_next("timeout_before", operation="cancel_charge")
    with pytest.raises(GatewayUnavailableError):
        _deliver(world, "payment_intent.payment_failed")
    assert _stored(world, first.id).status is PaymentStatus.REQUIRES_ACTION
    redelivered = _deliver(world, "payment_intent.payment_failed")
    assert redelivered.status is PaymentStatus.DECLINED
    again = world.billing.confirm_payment(world.account.id, first.id, now=at(DAY, 16))
    assert again.payment is not None
    assert again.payment.status is PaymentStatus.DECLINED  # canceled once: no more
    cancels = [r for r in world.gateway.requests if r.operation == "cancel_charge"]
    assert len(cancels) == 2  # the one without an answer, and the one made


def test_a_cancel_whose_answer_was_lost_still_records_the_decline() -> None:
    """The gateway canceled the charge, its answer was lost: its cancel's
    webhook finds it canceled, with the decline's codes, and records the
    decline, as the look-up would have."""
    world = make_world()
    _, _, _, first = _waiting(world)
    assert first.charge_id is not None
    world.gateway.settle(first.charge_id, succeed=False, decline_code="auth_failed")
    world.gateway.fail_next("timeout_after", operation="cancel_charge")
    with pytest.raises(GatewayUnavailableError):
        _deliver(world, "payment_intent.payment_failed")
    assert _stored(world, first.id).status is PaymentStatus.REQUIRES_ACTION
    recorded = _deliver(world, "payment_intent.canceled")
    assert (recorded.status, recorded.decline_code, recorded.error_code) == (
        PaymentStatus.DECLINED,
        "auth_failed",
        "card_declined",
    )
    cancels = [r for r in world.gateway.requests if r.operation == "cancel_charge"]
    assert len(cancels) == 1  # canceled already: not asked again


def test_removing_a_card_whose_charge_was_declined_meanwhile_records_it() -> None:
    """The card's waiting charge is canceled before the card goes; one the
    gateway declined meanwhile is recorded as declined, not canceled."""
    world = make_world()
    per, _, _, first = _waiting(world)
    assert first.charge_id is not None
    world.gateway.settle(first.charge_id, succeed=False, decline_code="auth_failed")
    world.billing.remove_card(
        world.account.id, per, first.payment_method_id, now=at(DAY, 10)
    )
    stored = _stored(world, first.id)
    assert (stored.status, stored.decline_code) == (
        PaymentStatus.DECLINED,
        "auth_failed",
    )
    found = world.gateway.retrieve_charge(charge_id=first.charge_id)
    assert found is not None
    assert found.status is ChargeStatus.CANCELED


class _ConfirmedWhileCanceling(InMemoryGateway):
    """The customer's page confirms the charge again just before the cancel."""

    def cancel_charge(self, charge_id: str) -> ChargeResult:
        self.confirm_again(charge_id)
        return super().cancel_charge(charge_id)


def test_a_cancel_that_finds_the_charge_succeeded_records_the_success() -> None:
    world = make_world(gateway=_ConfirmedWhileCanceling())
    per, invoice, _, first = _waiting(world)
    assert first.charge_id is not None
    world.gateway.settle(first.charge_id, succeed=False)
    recorded = _deliver(world, "payment_intent.payment_failed")
    assert recorded.status is PaymentStatus.SUCCEEDED
    (paid,) = world.storage_invoices()
    assert paid.id == invoice
    assert paid.status is InvoiceStatus.PAID
    assert _receipts_and_credit(world, per) == (1, [])
    assert len(world.gateway.ledger) == 1


def _declined_the_old_way(world: World, payment: Payment) -> None:
    """Record *payment* declined while its charge stays open, as before
    recurbill canceled such charges (data from an earlier version)."""
    with world.storage.transaction() as tx:
        stored = tx.get_payment(world.account.id, payment.id)
        tx.update_payments(
            [attrs.evolve(stored, status=PaymentStatus.DECLINED, client_secret=None)]
        )
        tx.commit()


def test_a_success_after_a_recorded_decline_is_recorded_as_credit_once() -> None:
    world = make_world()
    per, invoice, visa, first = _waiting(world)
    assert first.charge_id is not None
    world.gateway.settle(first.charge_id, succeed=False)
    _declined_the_old_way(world, first)
    second = world.billing.pay(
        world.account.id, invoice, payment_method_id=visa, now=at(DAY, 10)
    )
    assert second.status is PaymentStatus.SUCCEEDED
    world.gateway.confirm_again(first.charge_id)  # the old tab: money arrives
    assert len(world.gateway.ledger) == 2
    for _ in range(2):  # the webhook, its redelivery, and a look-up: once
        recorded = _deliver(world, "payment_intent.succeeded")
        assert recorded is None or recorded.status is PaymentStatus.SUCCEEDED
    looked_up = world.billing.confirm_payment(
        world.account.id, first.id, now=at(DAY, 16)
    )
    assert looked_up.payment is not None
    assert looked_up.payment.status is PaymentStatus.SUCCEEDED
    receipts, credit = _receipts_and_credit(world, per)
    assert receipts == 2
    assert credit == [Money("125.00", "NOK")]  # the invoice was paid already
    assert world.notification_kinds().count("receipt") == 2


def test_a_success_after_a_recorded_decline_pays_the_invoice_if_still_open() -> None:
    world = make_world()
    per, invoice, _, first = _waiting(world)
    assert first.charge_id is not None
    world.gateway.settle(first.charge_id, succeed=False)
    _declined_the_old_way(world, first)
    world.gateway.confirm_again(first.charge_id)
    recorded = _deliver(world, "payment_intent.succeeded")
    assert recorded.status is PaymentStatus.SUCCEEDED
    (paid,) = world.storage_invoices()
    assert paid.id == invoice
    assert paid.status is InvoiceStatus.PAID
    assert _receipts_and_credit(world, per) == (1, [])

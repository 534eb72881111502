"""``Payment.refunded``: what the payment's refunds took back, on every path.

It counts a refund once the gateway has accepted it (``pending`` or
``succeeded``), and keeps counting one that failed after that (its amount
became credit); a refund waiting for its answer, or refused, is not in it.
It always equals the sum of those refunds, as stored in all three storages.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from billing_helpers import World, at, line, make_world
from recurbill import GatewayUnavailableError, InvalidInputError, Money
from recurbill.records import Payment
from recurbill.storage.protocol import Storage

DAY = date(2027, 3, 1)
COUNTED = ("pending", "requires_action", "succeeded", "failed_to_credit")


def _nok(amount: str) -> Money:
    return Money(amount, "NOK")


def _paid(world: World) -> Payment:
    """A session of 1000 NOK (with VAT), charged."""
    outcome = world.billing.record_session(
        world.account.id, world.customer().id, lines=[line()], now=at(DAY, 9)
    )
    assert outcome.payment is not None
    return outcome.payment


def _refunded(world: World, payment: Payment) -> Money | None:
    """The payment's ``refunded`` as stored, checked against its refunds."""
    with world.storage.transaction(read_only=True) as tx:
        stored = tx.get_payment(world.account.id, payment.id)
        refunds = tx.list_refunds(world.account.id, payment.id)
    counted = [r.amount for r in refunds if r.status in COUNTED]
    assert stored.refunded == (sum(counted, _nok("0")) if counted else None)
    return stored.refunded


def _deliver(world: World, type_: str) -> Any:
    event = [e for e in world.gateway.events if e.type == type_][-1]
    received = at(DAY, 15)
    body, signature = world.gateway.webhook(
        event.event_id, now=int(received.timestamp())
    )
    return world.billing.handle_webhook(body, signature=signature, now=received)


def test_partial_refunds_add_up_and_a_repeat_counts_once(storage: Storage) -> None:
    world = make_world(storage=storage)
    payment = _paid(world)
    assert _refunded(world, payment) is None
    first = world.billing.refund(
        world.account.id,
        payment.id,
        amount=_nok("100"),
        now=at(DAY, 10),
        refund_id="ticket-1001",
    )
    assert _refunded(world, payment) == _nok("100.00")
    repeated = world.billing.refund(
        world.account.id,
        payment.id,
        amount=_nok("100"),
        now=at(DAY, 11),
        refund_id="ticket-1001",
    )
    assert repeated == first
    assert _refunded(world, payment) == _nok("100.00")
    world.billing.refund(world.account.id, payment.id, now=at(DAY, 12))  # the rest
    assert _refunded(world, payment) == payment.amount


def test_a_refund_whose_answer_was_lost_counts_once_it_is_finished(
    storage: Storage,
) -> None:
    world = make_world(storage=storage)
    payment = _paid(world)
    world.gateway.fail_next("timeout_after", operation="refund")
    with pytest.raises(GatewayUnavailableError):
        world.billing.refund(
            world.account.id, payment.id, amount=_nok("300"), now=at(DAY, 10)
        )
    assert _refunded(world, payment) is None  # saved, not answered
    world.billing.run(at(DAY + timedelta(days=1), 7))  # finishes it
    assert _refunded(world, payment) == _nok("300.00")


def test_a_pending_refund_counts_and_stays_counted_when_it_fails_later() -> None:
    world = make_world()
    payment = _paid(world)
    world.gateway.hold_next_refund()
    pending = world.billing.refund(
        world.account.id, payment.id, amount=_nok("400"), now=at(DAY, 10)
    )
    assert pending.status == "pending"
    assert _refunded(world, payment) == _nok("400.00")
    assert pending.refund_id is not None
    world.gateway.finish_refund(pending.refund_id, "failed")
    _deliver(world, "refund.failed")
    assert _refunded(world, payment) == _nok("400.00")  # now the customer's credit


def test_a_refund_answered_later_by_webhook_counts_once() -> None:
    world = make_world()
    payment = _paid(world)
    world.gateway.fail_next("timeout_after", operation="refund")
    with pytest.raises(GatewayUnavailableError):
        world.billing.refund(world.account.id, payment.id, now=at(DAY, 10))
    assert _refunded(world, payment) is None
    _deliver(world, "refund.created")
    _deliver(world, "refund.created")  # a redelivery
    assert _refunded(world, payment) == payment.amount
    world.billing.run(at(DAY + timedelta(days=1), 7))
    assert _refunded(world, payment) == payment.amount


def test_a_refund_the_gateway_refuses_is_not_counted(storage: Storage) -> None:
    world = make_world(storage=storage)
    payment = _paid(world)
    assert payment.charge_id is not None
    # refunded in full at the gateway, outside recurbill (its dashboard)
    world.gateway.refund(payment.charge_id, amount=None, idempotency_key="dashboard")
    with pytest.raises(InvalidInputError, match="already refunded in full"):
        world.billing.refund(world.account.id, payment.id, now=at(DAY, 10))
    assert _refunded(world, payment) is None

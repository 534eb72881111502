"""A "payment failed" e-mail never goes out once the payment succeeded after all.

An automatic charge declined for good queues a notice that the payment
failed. Should the gateway report the charge succeeded after all (the
customer's page confirmed it again) before the outbox is delivered, the
notice is withdrawn in the transaction that records the success, and the
receipt goes out alone; one whose payment stays declined is sent as before.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from billing_helpers import Counter, World, at, line, make_world
from recurbill.collection import Collector, RetryPolicy
from recurbill.errors import InvalidInputError
from recurbill.notices import NEEDS_ACTION, PAYMENT_FAILED, payment_notice_id
from recurbill.notify import Outbox, deliver_pending
from recurbill.payments.protocol import ChargeResult, ChargeStatus
from recurbill.records import Notification, NotificationStatus, Payment, PaymentStatus
from recurbill.storage.protocol import Storage
from recurbill.storage.sql import SqlStorage

DAY = date(2027, 3, 1)


def _world(storage: Storage | None = None) -> World:
    """No retries: a decline is final, and says so at once."""
    return make_world(storage=storage, retry_policy=RetryPolicy(()))


def _declined(world: World) -> tuple[Payment, str]:
    """A session's automatic charge recorded declined for good while the
    charge stays open at the gateway (its answer was lost, so recurbill
    never held it waiting: the decline is recorded as found); the payment
    and its charge id."""
    kari = world.customer(card="pm_card_authenticationRequired")
    world.gateway.fail_next("timeout_after")
    lost = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(DAY, 9)
    ).payment
    assert lost is not None
    assert lost.status is PaymentStatus.FAILED_UNKNOWN
    charge = world.gateway.retrieve_charge(idempotency_key=lost.idempotency_key)
    assert charge is not None
    assert charge.charge_id is not None
    world.gateway.settle(charge.charge_id, succeed=False)  # 3-D Secure failed
    payment = _confirm(world, lost)
    assert payment.status is PaymentStatus.DECLINED
    assert world.notification_kinds() == [PAYMENT_FAILED]
    return payment, charge.charge_id


def _notice(world: World, payment: Payment) -> Notification:
    with world.storage.transaction() as tx:
        key = payment_notice_id(payment, PAYMENT_FAILED)
        return tx.get_notification(world.account.id, key)


def _deliver(world: World) -> list[str]:
    return world.deliver(at(DAY, 16))


def _confirm(world: World, payment: Payment) -> Payment:
    outcome = world.billing.confirm_payment(
        world.account.id, payment.id, now=at(DAY, 15)
    )
    assert outcome.payment is not None
    return outcome.payment


def _succeeded_event(world: World, _: Payment) -> None:
    event = [e for e in world.gateway.events if e.type == "payment_intent.succeeded"]
    received = at(DAY, 15)
    body, signature = world.gateway.webhook(
        event[-1].event_id, now=int(received.timestamp())
    )
    world.billing.handle_webhook(body, signature=signature, now=received)


@pytest.mark.parametrize("learn", [_confirm, _succeeded_event])
def test_a_success_after_the_final_decline_sends_the_receipt_alone(
    learn: Callable[[World, Payment], object],
) -> None:
    world = _world()
    payment, charge_id = _declined(world)
    world.gateway.confirm_again(charge_id)  # the customer's page: money arrives
    learn(world, payment)
    assert [p.status for p in world.payments()] == [PaymentStatus.SUCCEEDED]
    assert _notice(world, payment).status is NotificationStatus.WITHDRAWN
    assert _deliver(world) == ["receipt"]
    assert _deliver(world) == []  # withdrawn: never sent later either


def test_a_payment_that_stays_declined_sends_its_failed_notice_once() -> None:
    world = _world()
    payment, _ = _declined(world)
    assert _confirm(world, payment).status is PaymentStatus.DECLINED  # asked again
    assert _notice(world, payment).status is NotificationStatus.PENDING
    assert _deliver(world) == [PAYMENT_FAILED]
    assert _notice(world, payment).status is NotificationStatus.SENT
    assert _deliver(world) == []


def test_a_failed_notice_sent_before_the_success_stays_sent() -> None:
    world = _world()
    payment, charge_id = _declined(world)
    assert _deliver(world) == [PAYMENT_FAILED]
    world.gateway.confirm_again(charge_id)
    assert _confirm(world, payment).status is PaymentStatus.SUCCEEDED
    assert _notice(world, payment).status is NotificationStatus.SENT  # as it was
    assert _deliver(world) == ["receipt"]


def test_a_failed_send_then_the_success_is_not_sent_again() -> None:
    world = _world()
    payment, charge_id = _declined(world)
    outbox = Outbox()
    outbox.fail_next(1, reason="421 try again later")
    assert deliver_pending(world.storage, outbox, now=at(DAY, 10)).failed
    assert _notice(world, payment).status is NotificationStatus.FAILED
    world.gateway.confirm_again(charge_id)
    _confirm(world, payment)
    assert _notice(world, payment).status is NotificationStatus.WITHDRAWN
    assert _deliver(world) == ["receipt"]


def test_a_success_reported_after_a_failed_authentication_withdraws_both() -> None:
    """A charge held for 3-D Secure, then declined: the ask is withdrawn and
    the failure queued. recurbill cancels that charge, so only a gateway
    reporting a success anyway (the port allows it) takes back the failure."""
    world = _world()
    kari = world.customer(card="pm_card_authenticationRequired")
    waiting = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(DAY, 9)
    ).payment
    assert waiting is not None
    assert waiting.charge_id is not None
    world.gateway.settle(waiting.charge_id, succeed=False)
    declined = _confirm(world, waiting)
    assert declined.status is PaymentStatus.DECLINED
    assert world.notification_kinds() == [PAYMENT_FAILED]
    collector = Collector(world.storage, world.gateway, Counter())
    success = ChargeResult(
        status=ChargeStatus.SUCCEEDED,
        charge_id=waiting.charge_id,
        amount=waiting.amount,
        idempotency_key=waiting.idempotency_key,
    )
    assert collector.apply(declined, success, now=at(DAY, 16)).status is (
        PaymentStatus.SUCCEEDED
    )
    with world.storage.transaction() as tx:
        notices = [
            tx.get_notification(world.account.id, payment_notice_id(waiting, kind))
            for kind in (NEEDS_ACTION, PAYMENT_FAILED)
        ]
    assert [n.status for n in notices] == [NotificationStatus.WITHDRAWN] * 2
    assert _deliver(world) == ["receipt"]


def test_sql_storage_keeps_a_withdrawn_failed_notice_out_of_delivery(
    sql_storage: SqlStorage,
) -> None:
    world = _world(sql_storage)
    payment, charge_id = _declined(world)
    world.gateway.confirm_again(charge_id)
    assert _confirm(world, payment).status is PaymentStatus.SUCCEEDED
    assert _notice(world, payment).status is NotificationStatus.WITHDRAWN
    assert _deliver(world) == ["receipt"]


def test_sql_storage_still_sends_the_notice_of_a_payment_that_stays_declined(
    sql_storage: SqlStorage,
) -> None:
    world = _world(sql_storage)
    payment, _ = _declined(world)
    assert _deliver(world) == [PAYMENT_FAILED]
    assert _notice(world, payment).status is NotificationStatus.SENT


def test_a_notice_id_is_only_for_a_payment_status_notice() -> None:
    world = _world()
    payment, _ = _declined(world)
    with pytest.raises(InvalidInputError, match="'receipt' is not the kind"):
        payment_notice_id(payment, "receipt")

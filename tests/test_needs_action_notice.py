"""A "confirm your payment" e-mail never goes out once the payment stops waiting.

An off-session charge the bank holds for 3-D Secure queues a notice asking
the customer to confirm it. If the payment ends before the outbox is
delivered (the customer confirmed it, it was canceled, it was declined), the
notice is withdrawn in the transaction that records the outcome, and never
sent; one whose payment still waits is sent as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import attrs
import pytest

from billing_helpers import Counter, World, at, line, make_world
from recurbill.collection import Collector, RetryPolicy
from recurbill.notices import NEEDS_ACTION, PAYMENT_FAILED, needs_action_notice_id
from recurbill.notify import Outbox, deliver_pending
from recurbill.payments.protocol import ChargeResult, ChargeStatus
from recurbill.records import Notification, NotificationStatus, Payment, PaymentStatus
from recurbill.storage.memory import InMemoryStorage
from recurbill.storage.sql import SqlStorage

DAY = date(2027, 3, 1)


def _waiting(world: World) -> Payment:
    """An automatic charge of a session that waits for 3-D Secure."""
    kari = world.customer(card="pm_card_authenticationRequired")
    payment = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(DAY, 9)
    ).payment
    assert payment is not None
    assert payment.status is PaymentStatus.REQUIRES_ACTION
    assert payment.charge_id is not None
    assert world.notification_kinds() == [NEEDS_ACTION]
    return payment


def _notice(world: World, payment: Payment) -> Notification:
    with world.storage.transaction() as tx:
        return tx.get_notification(world.account.id, needs_action_notice_id(payment))


def _deliver(world: World) -> list[str]:
    return world.deliver(at(DAY, 16))


def _webhook(world: World, type_: str) -> None:
    event = [e for e in world.gateway.events if e.type == type_][-1]
    received = at(DAY, 15)
    body, signature = world.gateway.webhook(
        event.event_id, now=int(received.timestamp())
    )
    world.billing.handle_webhook(body, signature=signature, now=received)


def _confirm(world: World, payment: Payment) -> None:
    world.billing.confirm_payment(world.account.id, payment.id, now=at(DAY, 15))


def _run(world: World, _: Payment) -> None:
    world.billing.run(at(DAY + date.resolution, 7))  # finishes waiting payments


def _succeeded_event(world: World, _: Payment) -> None:
    _webhook(world, "payment_intent.succeeded")


@pytest.mark.parametrize("learn", [_confirm, _succeeded_event, _run])
def test_a_payment_completed_before_delivery_sends_the_receipt_alone(
    learn: Callable[[World, Payment], None],
) -> None:
    world = make_world()
    payment = _waiting(world)
    assert payment.charge_id is not None
    world.gateway.settle(payment.charge_id, succeed=True)  # 3-D Secure done
    learn(world, payment)
    assert [p.status for p in world.payments()] == [PaymentStatus.SUCCEEDED]
    assert _notice(world, payment).status is NotificationStatus.WITHDRAWN
    to_customer = [kind for kind in _deliver(world) if kind != "daily_summary"]
    assert to_customer == ["receipt"]
    assert _deliver(world) == []  # withdrawn: never sent later either


def test_the_notice_of_a_payment_that_still_waits_is_sent_once() -> None:
    world = make_world()
    payment = _waiting(world)
    _confirm(world, payment)  # asked: still waiting
    assert _deliver(world) == [NEEDS_ACTION]
    assert _notice(world, payment).status is NotificationStatus.SENT
    assert payment.charge_id is not None
    world.gateway.settle(payment.charge_id, succeed=True)
    _confirm(world, payment)
    assert _notice(world, payment).status is NotificationStatus.SENT  # as it was
    assert _deliver(world) == ["receipt"]


def test_a_declined_authentication_withdraws_the_notice() -> None:
    world = make_world()
    payment = _waiting(world)
    assert payment.charge_id is not None
    world.gateway.settle(payment.charge_id, succeed=False)
    _webhook(world, "payment_intent.payment_failed")
    assert [p.status for p in world.payments()] == [PaymentStatus.DECLINED]
    assert _notice(world, payment).status is NotificationStatus.WITHDRAWN
    assert NEEDS_ACTION not in _deliver(world)


def test_a_failed_send_then_completion_is_not_sent_again() -> None:
    world = make_world()
    payment = _waiting(world)
    outbox = Outbox()
    outbox.fail_next(1, reason="421 try again later")
    assert deliver_pending(world.storage, outbox, now=at(DAY, 10)).failed
    assert _notice(world, payment).status is NotificationStatus.FAILED
    assert payment.charge_id is not None
    world.gateway.settle(payment.charge_id, succeed=True)
    _confirm(world, payment)
    assert _notice(world, payment).status is NotificationStatus.WITHDRAWN
    assert _deliver(world) == ["receipt"]


def test_removing_the_card_cancels_the_payment_and_withdraws_the_notice() -> None:
    world = make_world()
    payment = _waiting(world)
    world.billing.remove_card(
        world.account.id, payment.customer_id, payment.payment_method_id, now=at(DAY)
    )
    assert [p.status for p in world.payments()] == [PaymentStatus.CANCELED]
    assert _notice(world, payment).status is NotificationStatus.WITHDRAWN
    assert _deliver(world) == []


def _pay_by_hand(world: World, payment: Payment, card: str) -> None:
    (invoice,) = payment.invoice_ids
    world.billing.pay(world.account.id, invoice, payment_method_id=card, now=at(DAY))


def _mass_pay(world: World, payment: Payment, card: str) -> None:
    world.billing.mass_pay(
        world.account.id,
        payment.customer_id,
        list(payment.invoice_ids),
        payment_method_id=card,
        now=at(DAY),
    )


@pytest.mark.parametrize("pay", [_pay_by_hand, _mass_pay])
def test_paying_with_another_card_sends_the_receipt_alone(
    pay: Callable[[World, Payment, str], None],
) -> None:
    world = make_world()
    payment = _waiting(world)
    visa = world.billing.save_card(
        world.account.id, payment.customer_id, token="pm_card_visa"
    )
    pay(world, payment, visa.id)
    statuses = {p.id: p.status for p in world.payments()}
    assert statuses.pop(payment.id) is PaymentStatus.CANCELED
    assert list(statuses.values()) == [PaymentStatus.SUCCEEDED]
    assert _notice(world, payment).status is NotificationStatus.WITHDRAWN
    assert _deliver(world) == ["receipt"]


def test_a_payment_that_waits_again_is_asked_again() -> None:
    """No gateway of recurbill's takes a payment back to waiting, but the
    port allows it: its notice is then pending again, never a conflict."""
    world = make_world()
    payment = _waiting(world)
    collector = Collector(world.storage, world.gateway, Counter())
    waiting = world.gateway.retrieve_charge(charge_id=payment.charge_id)
    assert waiting is not None
    processing = attrs.evolve(waiting, status=ChargeStatus.PROCESSING)
    stored = collector.apply(payment, processing, now=at(DAY, 10))
    assert _notice(world, payment).status is NotificationStatus.WITHDRAWN
    collector.apply(stored, waiting, now=at(DAY, 11))
    again = _notice(world, payment)
    assert (again.status, again.created_at) == (NotificationStatus.PENDING, at(DAY, 11))
    assert _deliver(world) == [NEEDS_ACTION]


def test_sql_storage_keeps_a_withdrawn_notice_out_of_delivery(
    sql_storage: SqlStorage,
) -> None:
    world = make_world(storage=sql_storage)
    payment = _waiting(world)
    assert payment.charge_id is not None
    world.gateway.settle(payment.charge_id, succeed=True)
    _confirm(world, payment)
    assert _notice(world, payment).status is NotificationStatus.WITHDRAWN
    assert _deliver(world) == ["receipt"]


def test_a_result_the_gateway_repeats_changes_no_notice() -> None:
    world = make_world()
    payment = _waiting(world)
    collector = Collector(world.storage, world.gateway, Counter())
    same = ChargeResult(
        status=ChargeStatus.REQUIRES_ACTION,
        charge_id=payment.charge_id,
        amount=payment.amount,
        idempotency_key=payment.idempotency_key,
        client_secret=payment.client_secret,
    )
    collector.apply(payment, same, now=at(DAY, 10))
    assert _notice(world, payment).status is NotificationStatus.PENDING
    assert _deliver(world) == [NEEDS_ACTION]


class _CountingLookUps:
    """A storage whose transactions count ``get_notification`` calls."""

    def __init__(self, inner: InMemoryStorage) -> None:
        self.inner, self.look_ups = inner, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @contextlib.contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[Any]:
        with self.inner.transaction(read_only=read_only) as tx:
            yield _Counted(tx, self)


class _Counted:
    def __init__(self, inner: Any, owner: _CountingLookUps) -> None:
        self._inner, self._owner = inner, owner

    def __getattr__(self, name: str) -> Any:
        if name == "get_notification":
            self._owner.look_ups += 1
        return getattr(self._inner, name)


@pytest.mark.parametrize(
    "card", ["pm_card_authenticationRequired", "pm_card_visa_chargeDeclined"]
)
def test_a_first_answer_queues_its_notice_without_looking_for_one(card: str) -> None:
    """A charge answered for the first time cannot have a notice yet: the
    daily run queues "confirm" or "failed" notices without a read each."""
    storage = _CountingLookUps(InMemoryStorage())
    world = make_world(storage=storage, retry_policy=RetryPolicy(days=()))  # type: ignore[arg-type]
    for n in range(3):
        customer = world.customer(card=card)
        world.billing.record_session(
            world.account.id, customer.id, lines=[line()], now=at(DAY, 9 + n)
        )
    assert storage.look_ups == 0
    kinds = world.notification_kinds()
    assert kinds.count(NEEDS_ACTION) + kinds.count(PAYMENT_FAILED) == 3

"""Refunds that change after their answer, reported by webhook or the daily run.

A refund answered ``succeeded`` can fail later (Stripe: a closed card), and
one answered ``pending`` ends later. Whichever reports it first (one of its
events, a redelivery, the daily run's look-up), its failure makes its amount
the customer's credit exactly once.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

import pytest

from billing_helpers import Counter, World, at, line, make_world, together
from recurbill.billing import Billing
from recurbill.errors import GatewayUnavailableError, StateError
from recurbill.money import Money
from recurbill.payments.memory import InMemoryGateway
from recurbill.payments.protocol import RefundResult
from recurbill.records import CreditEntry, InvoiceStatus, Payment, Refund
from recurbill.storage.memory import InMemoryStorage
from recurbill.storage.sql import SqlStorage

DAY = date(2027, 3, 1)
NOK = "NOK"


def _paid(world: World) -> tuple[str, Payment]:
    """A customer whose session of 1000 NOK (with VAT) was charged."""
    kari = world.customer()
    outcome = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(DAY, 9)
    )
    assert outcome.payment is not None
    return kari.id, outcome.payment


def _deliver(world: World, type_: str, *, nth: int = -1) -> Any:
    """Deliver the *nth* event of *type_* the gateway emitted; the result."""
    event = [e for e in world.gateway.events if e.type == type_][nth]
    received = at(DAY, 15)
    body, signature = world.gateway.webhook(
        event.event_id, now=int(received.timestamp())
    )
    return world.billing.handle_webhook(body, signature=signature, now=received)


def _credit(world: World, customer_id: str) -> list[CreditEntry]:
    with world.storage.transaction() as tx:
        return tx.list_credit_entries(world.account.id, customer_id)


def _refund(world: World) -> Refund:
    with world.storage.transaction() as tx:
        (refund,) = tx.list_refunds(world.account.id)
    return refund


def test_a_refund_that_succeeded_then_failed_becomes_credit_once() -> None:
    world = make_world()
    kari, payment = _paid(world)
    refund = world.billing.refund(world.account.id, payment.id, now=at(DAY, 10))
    assert refund.status == "succeeded"
    assert refund.refund_id is not None
    (invoice,) = world.storage_invoices()
    assert invoice.status is InvoiceStatus.OPEN  # owed again

    world.gateway.fail_refund(refund.refund_id)  # the card was closed
    failed = _deliver(world, "refund.failed")
    assert isinstance(failed, Refund)
    assert failed.status == "failed_to_credit"
    (entry,) = _credit(world, kari)
    assert entry.amount == payment.amount
    assert "expired_or_canceled_card" in entry.reason
    # the other event of the same change, a redelivery and the daily runs
    updated = _deliver(world, "refund.updated")
    assert isinstance(updated, Refund)
    assert updated.status == "failed_to_credit"
    assert _deliver(world, "refund.failed") is None  # seen before
    world.billing.run(at(DAY + timedelta(days=1), 7))
    world.billing.run(at(DAY + timedelta(days=2), 7))
    assert _credit(world, kari) == [entry]
    # it still counts as refunded: nothing is refunded twice
    with pytest.raises(StateError, match="refunded in full"):
        world.billing.refund(world.account.id, payment.id, now=at(DAY, 16))
    overview = world.billing.overview(world.account.id, kari, on=DAY)
    assert overview.credit_balance == payment.amount
    assert [i.outstanding for i in overview.open] == [payment.amount]


@pytest.mark.parametrize("first", ["webhook", "daily run"])
def test_a_pending_refund_that_failed_is_credited_once_in_either_order(
    first: str,
) -> None:
    world = make_world()
    kari, payment = _paid(world)
    world.gateway.hold_next_refund()
    pending = world.billing.refund(world.account.id, payment.id, now=at(DAY, 10))
    assert pending.status == "pending"
    assert pending.refund_id is not None
    world.gateway.finish_refund(pending.refund_id, "failed")
    steps: dict[str, Callable[[], object]] = {
        "webhook": partial(_deliver, world, "refund.failed"),
        "daily run": partial(world.billing.run, at(DAY + timedelta(days=1), 7)),
    }
    steps[first]()
    assert _refund(world).status == "failed_to_credit"
    for name, step in steps.items():
        if name != first:
            step()
    _deliver(world, "refund.updated")
    _deliver(world, "refund.failed")  # a redelivery
    (entry,) = _credit(world, kari)
    assert entry.amount == payment.amount


@pytest.mark.parametrize("status", ["succeeded", "failed", "canceled"])
def test_a_pending_refund_finished_by_webhook_before_the_daily_run(
    status: str,
) -> None:
    world = make_world()
    kari, payment = _paid(world)
    world.gateway.hold_next_refund()
    pending = world.billing.refund(world.account.id, payment.id, now=at(DAY, 10))
    assert pending.refund_id is not None
    world.gateway.finish_refund(pending.refund_id, status)
    recorded = _deliver(world, "refund.updated")
    assert isinstance(recorded, Refund)
    expected = "succeeded" if status == "succeeded" else "failed_to_credit"
    assert recorded.status == expected
    looked_up = len(
        [r for r in world.gateway.requests if r.operation == "retrieve_refund"]
    )
    world.billing.run(at(DAY + timedelta(days=1), 7))
    assert _refund(world).status == expected
    # no longer pending: the run did not look it up again
    assert looked_up == len(
        [r for r in world.gateway.requests if r.operation == "retrieve_refund"]
    )
    credit = sum((c.amount for c in _credit(world, kari)), Money.zero(NOK))
    assert credit == (Money.zero(NOK) if status == "succeeded" else payment.amount)


def test_the_events_of_a_refund_are_about_its_payment_and_itself() -> None:
    world = make_world()
    kari, payment = _paid(world)
    refund = world.billing.refund(world.account.id, payment.id, now=at(DAY, 10))
    assert refund.refund_id is not None
    about_refund = _deliver(world, "refund.created")  # its object: the Refund
    assert isinstance(about_refund, Refund)
    assert (about_refund.refund_id, about_refund.status) == (
        refund.refund_id,
        "succeeded",
    )
    about_charge = _deliver(world, "charge.refunded")  # its object: the Charge
    assert isinstance(about_charge, Payment)
    assert (about_charge.id, about_charge.charge_id) == (
        payment.id,
        payment.charge_id,
    )
    assert _refund(world).status == "succeeded"
    assert _credit(world, kari) == []


def test_a_refund_event_whose_look_up_fails_is_processed_when_redelivered() -> None:
    world = make_world()
    kari, payment = _paid(world)
    refund = world.billing.refund(world.account.id, payment.id, now=at(DAY, 10))
    assert refund.refund_id is not None
    world.gateway.fail_refund(refund.refund_id)
    world.gateway.fail_next("unavailable", operation="retrieve_refund")
    with pytest.raises(GatewayUnavailableError):
        _deliver(world, "refund.failed")
    assert _credit(world, kari) == []
    recorded = _deliver(world, "refund.failed")  # not remembered: done now
    assert isinstance(recorded, Refund)
    assert recorded.status == "failed_to_credit"
    assert [c.amount for c in _credit(world, kari)] == [payment.amount]


def test_a_refund_whose_answer_was_lost_is_recorded_from_its_failure() -> None:
    world = make_world()
    kari, payment = _paid(world)
    world.gateway.fail_next("timeout_after", operation="refund")
    with pytest.raises(GatewayUnavailableError):
        world.billing.refund(world.account.id, payment.id, now=at(DAY, 10))
    (made,) = world.gateway.refunds
    world.gateway.fail_refund(made.refund_id)
    recorded = _deliver(world, "refund.failed")
    assert isinstance(recorded, Refund)
    assert recorded.status == "failed"  # nothing went back, nothing applied
    (invoice,) = world.storage_invoices()
    assert invoice.status is InvoiceStatus.PAID
    assert _credit(world, kari) == []
    # so it can be refunded again
    again = world.billing.refund(world.account.id, payment.id, now=at(DAY, 16))
    assert again.status == "succeeded"


def test_events_about_refunds_recurbill_did_not_make_are_ignored() -> None:
    world = make_world()
    _, payment = _paid(world)
    assert payment.charge_id is not None
    made = world.gateway.refund(  # as from the gateway's dashboard
        payment.charge_id, amount=None, idempotency_key="dashboard-1"
    )
    world.gateway.fail_refund(made.refund_id)
    assert _deliver(world, "refund.failed") is None
    with world.storage.transaction() as tx:
        assert tx.list_refunds(world.account.id) == []


class _HeldLookUps(InMemoryGateway):
    """Holds each refund look-up until *parties* are waiting, then lets all go."""

    def __init__(self) -> None:
        super().__init__()
        self.barrier: threading.Barrier | None = None

    def retrieve_refund(
        self, charge_id: str, *, idempotency_key: str
    ) -> RefundResult | None:
        if self.barrier is not None:
            with contextlib.suppress(threading.BrokenBarrierError):
                self.barrier.wait(timeout=2)
        return super().retrieve_refund(charge_id, idempotency_key=idempotency_key)


def _sql_world(sql_storage: SqlStorage) -> tuple[World, _HeldLookUps]:
    gateway = _HeldLookUps()
    billing = Billing(storage=sql_storage, gateway=gateway, ids=Counter())
    account = billing.create_account(
        account_id="fjord",
        name="Fjord Fysio AS",
        currency=NOK,
        summary_email="post@fjordfysio.no",
        timezone="Europe/Oslo",
    )
    world = World(
        billing=billing, storage=sql_storage, gateway=gateway, account=account
    )
    return world, gateway


def _delivery(world: World, type_: str, received: datetime) -> Callable[[], Any]:
    (event,) = [e for e in world.gateway.events if e.type == type_]
    body, signature = world.gateway.webhook(
        event.event_id, now=int(received.timestamp())
    )
    return partial(
        world.billing.handle_webhook, body, signature=signature, now=received
    )


@pytest.mark.parametrize("answered", ["succeeded", "pending"])
def test_events_and_the_daily_run_at_once_credit_a_failed_refund_once(
    sql_storage: SqlStorage, answered: str
) -> None:
    world, gateway = _sql_world(sql_storage)
    kari, payment = _paid(world)
    if answered == "pending":
        gateway.hold_next_refund()
    refund = world.billing.refund(world.account.id, payment.id, now=at(DAY, 10))
    assert refund.status == answered
    assert refund.refund_id is not None
    if answered == "pending":
        gateway.finish_refund(refund.refund_id, "failed")
    else:
        gateway.fail_refund(refund.refund_id)
    received = at(DAY, 15)
    calls = [
        _delivery(world, "refund.failed", received),
        _delivery(world, "refund.updated", received),
        _delivery(world, "refund.failed", received),  # delivered twice at once
    ]
    if answered == "pending":  # the daily run looks pending refunds up
        calls.append(partial(world.billing.run, at(DAY + timedelta(days=1), 7)))
    gateway.barrier = threading.Barrier(len(calls))
    results = together(*calls)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert _refund(world).status == "failed_to_credit"
    assert [c.amount for c in _credit(world, kari)] == [payment.amount]


def _deployment(gateway: InMemoryGateway, account_id: str) -> Billing:
    billing = Billing(storage=InMemoryStorage(), gateway=gateway, ids=Counter())
    billing.create_account(
        account_id=account_id,
        name="Fjord Fysio AS",
        currency=NOK,
        summary_email="post@fjordfysio.no",
        timezone="Europe/Oslo",
    )
    return billing


@pytest.mark.parametrize("production_account", ["staging", "fjord"])
def test_events_of_another_deployment_on_the_same_gateway_are_ignored(
    production_account: str,
) -> None:
    """Staging and production send to one endpoint: production answers 2xx
    (None) to events naming an account, payment or refund it does not hold,
    whether or not it has an account of that id, and stores nothing."""
    gateway = InMemoryGateway()
    staging = _deployment(gateway, "staging")
    production = _deployment(gateway, production_account)
    kari = staging.add_customer("staging", name="Kari", email="kari@example.no")
    staging.save_card("staging", kari.id, token="pm_card_visa")
    paid = staging.record_session(
        "staging", kari.id, lines=[line()], now=at(DAY, 9)
    ).payment
    assert paid is not None
    refund = staging.refund("staging", paid.id, now=at(DAY, 10))
    assert refund.refund_id is not None
    gateway.fail_refund(refund.refund_id)
    received = at(DAY, 15)
    for type_ in ("payment_intent.succeeded", "refund.updated", "refund.failed"):
        (event,) = [e for e in gateway.events if e.type == type_]
        body, signature = gateway.webhook(event.event_id, now=int(received.timestamp()))
        assert production.handle_webhook(body, signature=signature, now=received) is (
            None
        )
    with production.storage.transaction() as tx:
        assert tx.list_payments(production_account) == []
        assert tx.list_refunds(production_account) == []


def test_an_event_naming_a_refund_its_payment_does_not_have_is_ignored() -> None:
    world = make_world()
    _, payment = _paid(world)
    assert payment.charge_id is not None
    made = world.gateway.refund(
        payment.charge_id,
        amount=None,
        idempotency_key="elsewhere-1",
        metadata={  # made by another deployment with colliding ids
            "recurbill_refund": "re_unknown",
            "recurbill_payment": payment.id,
            "account": world.account.id,
        },
    )
    world.gateway.fail_refund(made.refund_id)
    assert _deliver(world, "refund.failed") is None
    with world.storage.transaction() as tx:
        assert tx.list_refunds(world.account.id) == []

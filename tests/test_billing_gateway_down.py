"""A gateway that refuses the API key, or does not answer at all, stops charging.

Neither is the customer's doing: no charge is recorded as a decline, no
customer is told their bank refused. The run still issues every due invoice
and queues the summaries, then raises; the next run (once the key is fixed or
the gateway answers) charges every invoice exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from billing_helpers import Counter, World, at, line, make_world
from recurbill.billing import Billing
from recurbill.errors import GatewayAuthenticationError, GatewayUnavailableError
from recurbill.payments.memory import InMemoryGateway
from recurbill.records import (
    CollectionMethod,
    InvoiceStatus,
    Notification,
    PaymentStatus,
)
from recurbill.set_aside import UNKNOWN_IN_A_ROW
from recurbill.storage.sql import SqlStorage

DAY = date(2027, 1, 31)
CUSTOMERS = UNKNOWN_IN_A_ROW + 3


@pytest.fixture(params=["memory", "sqlite"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    if request.param == "memory":
        yield _customers(make_world())
        return
    with SqlStorage.sqlite(tmp_path / "billing.sqlite3") as storage:
        storage.migrate()
        yield _customers(make_world(storage=storage))


def _customers(world: World) -> World:
    """*world* with CUSTOMERS charged automatically, each due on DAY."""
    for n in range(CUSTOMERS):
        world.template(world.customer(f"Kunde{n} Nordmann"), start=DAY)
    return world


def _outbox(world: World) -> list[Notification]:
    with world.storage.transaction() as tx:
        return tx.pending_notifications(limit=10_000)


def _paid_once(world: World) -> None:
    invoices = world.storage_invoices()
    assert len(invoices) == CUSTOMERS
    assert all(i.status is InvoiceStatus.PAID for i in invoices)
    keys = [charge.idempotency_key for charge in world.gateway.ledger]
    assert len(keys) == len(set(keys)) == CUSTOMERS
    assert "payment_failed" not in world.notification_kinds()


def test_a_refused_api_key_stops_the_run_and_declines_nobody(world: World) -> None:
    world.gateway.fail_next("unauthorized")
    with pytest.raises(GatewayAuthenticationError):
        world.billing.run(at(DAY, 7))
    assert len(world.storage_invoices()) == CUSTOMERS  # issued before charging
    statuses = {p.status for p in world.payments()}
    assert PaymentStatus.DECLINED not in statuses
    assert world.gateway.ledger == []
    world.billing.run(at(DAY, 8))  # the key is fixed
    _paid_once(world)


def test_a_gateway_outage_stops_the_run_after_a_few_unanswered_charges(
    world: World,
) -> None:
    world.gateway.fail_next("timeout_before", times=UNKNOWN_IN_A_ROW)
    with pytest.raises(GatewayUnavailableError, match="did not answer"):
        world.billing.run(at(DAY, 7))
    asked = [r for r in world.gateway.requests if r.operation == "charge"]
    assert len(asked) == UNKNOWN_IN_A_ROW  # the rest were not sent
    statuses = sorted(p.status.value for p in world.payments())
    assert statuses == ["failed_unknown"] * UNKNOWN_IN_A_ROW + ["pending"] * 3
    world.billing.run(at(DAY, 8))  # the gateway answers again
    _paid_once(world)


def test_a_stopped_run_still_reports_what_it_issued(world: World) -> None:
    world.gateway.fail_next("unauthorized")
    with pytest.raises(GatewayAuthenticationError):
        world.billing.run(at(DAY, 7))
    assert world.notification_kinds().count("daily_summary") == 1
    world.billing.run(at(DAY, 8))  # the key is fixed: the pending charges are made
    summaries = [n.text for n in _outbox(world) if n.kind == "daily_summary"]
    assert len(summaries) == 2
    assert f"({CUSTOMERS})" in summaries[1]  # the charges finished by the second run


def test_a_stopped_run_hands_its_reports_on_with_the_error(world: World) -> None:
    import pickle

    world.gateway.fail_next("timeout_before", times=UNKNOWN_IN_A_ROW)
    with pytest.raises(GatewayUnavailableError) as stopped:
        world.billing.run(at(DAY, 7))
    (report,) = stopped.value.reports
    assert report.account_id == world.account.id
    assert len(report.issued) == CUSTOMERS  # every due invoice, as summarised
    assert [c.status for c in report.charges] == [
        PaymentStatus.FAILED_UNKNOWN
    ] * UNKNOWN_IN_A_ROW + [PaymentStatus.PENDING] * (
        CUSTOMERS - UNKNOWN_IN_A_ROW
    )  # the ones sent; the others wait, unsent, and are reported so
    again = pickle.loads(pickle.dumps(stopped.value))  # e.g. from a worker process
    assert again.reports == stopped.value.reports
    assert str(again) == str(stopped.value)


def test_a_key_still_refused_stops_the_next_run_too(world: World) -> None:
    world.gateway.fail_next("unauthorized")
    with pytest.raises(GatewayAuthenticationError):
        world.billing.run(at(DAY, 7))
    world.gateway.fail_next("unauthorized", operation="retrieve_charge")
    with pytest.raises(GatewayAuthenticationError):
        world.billing.run(at(DAY, 8))  # nothing new is due, the pending wait
    world.billing.run(at(DAY, 9))
    _paid_once(world)


def test_a_session_charge_refused_for_the_key_says_what_happens_next() -> None:
    world = make_world()
    kari = world.customer()
    world.gateway.fail_next("unauthorized")
    with pytest.raises(GatewayAuthenticationError, match="saved but not sent"):
        world.billing.record_session(
            world.account.id, kari.id, lines=[line()], now=at(DAY, 9)
        )
    (payment,) = world.payments()
    assert payment.status is PaymentStatus.PENDING
    world.billing.run(at(DAY + timedelta(days=1), 7))  # the key is fixed
    assert [c.idempotency_key for c in world.gateway.ledger] == [
        payment.idempotency_key
    ]
    (invoice,) = world.storage_invoices()
    assert invoice.status is InvoiceStatus.PAID


def _declined_once() -> World:
    """CUSTOMERS whose session charge was declined; each has a good card now."""
    world = make_world()
    for n in range(CUSTOMERS):
        kari = world.customer(
            f"Kunde{n} Nordmann", card="pm_card_visa_chargeDeclinedInsufficientFunds"
        )
        world.billing.record_session(
            world.account.id, kari.id, lines=[line()], now=at(DAY, 9)
        )
        world.billing.save_card(world.account.id, kari.id, token="pm_card_visa")
    return world


def test_retries_stop_after_a_few_unanswered_charges() -> None:
    world = _declined_once()
    world.gateway.fail_next("unavailable", times=UNKNOWN_IN_A_ROW)
    with pytest.raises(GatewayUnavailableError, match="did not answer"):
        world.billing.run(at(DAY + timedelta(days=3), 7))  # the first retries
    retried = [p for p in world.payments() if p.attempt == 2]
    assert len(retried) == UNKNOWN_IN_A_ROW
    world.billing.run(at(DAY + timedelta(days=3), 8))
    assert len(world.gateway.ledger) == CUSTOMERS


def _summaries(world: World) -> list[str]:
    return [n.text for n in _outbox(world) if n.kind == "daily_summary"]


class _KeyRevoked(InMemoryGateway):
    """Refuses the API key from the *after*-th call on, until ``fixed``."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after, self.calls, self.fixed = after, 0, False

    def _begin(self, operation: str, params: Any, key: str | None = None) -> None:
        super()._begin(operation, params, key)
        if operation in ("charge", "retrieve_charge", "refund", "retrieve_refund"):
            self.calls += 1
            if self.calls > self.after and not self.fixed:
                raise GatewayAuthenticationError(
                    problem="injected: key revoked", allowed="fix it"
                )


def test_a_revoked_key_stops_charging_but_not_invoicing_or_reporting() -> None:
    gateway = _KeyRevoked(after=3)
    world = _customers(make_world(gateway=gateway))
    ola = world.customer("Ola Nordmann", method=CollectionMethod.SEND_INVOICE)
    world.template(ola, start=DAY + timedelta(days=1))
    with pytest.raises(GatewayAuthenticationError):
        world.billing.run(at(DAY, 7))
    assert len(gateway.ledger) == 3
    (summary,) = _summaries(world)
    for invoice in world.storage_invoices():  # issued, and the first 3 charged
        assert invoice.display_number in summary
    with pytest.raises(GatewayAuthenticationError):  # the key is still refused
        world.billing.run(at(DAY + timedelta(days=1), 7))
    issued = [i for i in world.storage_invoices() if i.customer_id == ola.id]
    assert len(issued) == 1  # invoicing went on, and its e-mail is queued
    assert "invoice" in world.notification_kinds()
    gateway.fixed = True
    (report,) = world.billing.run(at(DAY + timedelta(days=1), 8))
    assert len(report.charges) == CUSTOMERS - 3  # the waiting ones, reported once
    assert len(gateway.ledger) == CUSTOMERS
    (report,) = world.billing.run(at(DAY + timedelta(days=1), 9))
    assert report.charges == ()


def test_a_refund_hit_by_a_refused_key_waits_and_is_made_later() -> None:
    world = make_world()
    kari = world.customer()
    outcome = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(DAY, 9)
    )
    assert outcome.payment is not None
    world.gateway.fail_next("timeout_before", operation="refund")
    with pytest.raises(GatewayUnavailableError):
        world.billing.refund(world.account.id, outcome.payment.id, now=at(DAY, 10))
    world.gateway.fail_next("unauthorized", operation="retrieve_refund")
    with pytest.raises(GatewayAuthenticationError):
        world.billing.run(at(DAY + timedelta(days=1), 7))
    world.gateway.fail_next("unauthorized", operation="refund")
    with pytest.raises(GatewayAuthenticationError):
        world.billing.refund(world.account.id, outcome.payment.id, now=at(DAY, 11))
    world.billing.run(at(DAY + timedelta(days=2), 7))  # the key is fixed
    with world.storage.transaction() as tx:
        (refund,) = tx.list_refunds(world.account.id)
    assert refund.status == "succeeded"
    assert len(world.gateway.refunds) == 1
    (invoice,) = world.storage_invoices()
    assert invoice.status is InvoiceStatus.OPEN


def test_an_outage_that_goes_on_stops_the_next_run_too(world: World) -> None:
    world.gateway.fail_next("timeout_before", times=UNKNOWN_IN_A_ROW)
    with pytest.raises(GatewayUnavailableError):
        world.billing.run(at(DAY, 7))
    world.gateway.fail_next("unavailable", operation="retrieve_charge", times=100)
    with pytest.raises(GatewayUnavailableError, match="did not answer"):
        world.billing.run(at(DAY, 8))
    asked = [r for r in world.gateway.requests if r.operation == "retrieve_charge"]
    assert len(asked) == UNKNOWN_IN_A_ROW


def test_retries_that_end_processing_are_answers_not_an_outage() -> None:
    world = _declined_once()
    world.gateway.process_next(times=CUSTOMERS)
    (report,) = world.billing.run(at(DAY + timedelta(days=3), 7))
    assert [c.status for c in report.charges] == [PaymentStatus.PROCESSING] * CUSTOMERS


def test_a_charge_a_later_run_makes_is_reported_whatever_its_outcome() -> None:
    world = make_world()
    kari = world.customer(card="pm_card_authenticationRequired")
    world.template(kari, start=DAY)
    world.gateway.fail_next("unauthorized")
    with pytest.raises(GatewayAuthenticationError):
        world.billing.run(at(DAY, 7))
    (report,) = world.billing.run(at(DAY, 8))
    assert [c.status for c in report.charges] == [PaymentStatus.REQUIRES_ACTION]
    (report,) = world.billing.run(at(DAY, 9))
    assert report.charges == ()  # not again


class _HoldsRefunds(InMemoryGateway):
    """A restricted key: charges work, refunds and their look-ups are refused."""

    def refund(self, *args: Any, **kwargs: Any) -> Any:
        raise GatewayAuthenticationError(problem="403: no refunds", allowed="fix it")

    def retrieve_refund(self, *args: Any, **kwargs: Any) -> Any:
        raise GatewayAuthenticationError(problem="403: no refunds", allowed="fix it")


def test_a_refund_refused_for_the_key_does_not_stop_invoicing_or_charging() -> None:
    world = make_world(gateway=_HoldsRefunds())
    kari = world.customer()
    paid = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(DAY, 9)
    )
    assert paid.payment is not None
    with pytest.raises(GatewayAuthenticationError):
        world.billing.refund(world.account.id, paid.payment.id, now=at(DAY, 10))
    world.template(world.customer("Ola Nordmann"), start=DAY + timedelta(days=1))
    with pytest.raises(GatewayAuthenticationError, match="no refunds") as stopped:
        world.billing.run(at(DAY + timedelta(days=1), 7))  # said at the end
    (report,) = stopped.value.reports  # what the run did comes with it
    assert [c.status for c in report.charges] == [PaymentStatus.SUCCEEDED]
    assert len(world.storage_invoices()) == 2  # the run issued and charged
    assert len(world.gateway.ledger) == 2
    assert "daily_summary" in world.notification_kinds()
    with world.storage.transaction() as tx:
        (refund,) = tx.list_refunds(world.account.id)
    assert refund.status == "requested"  # waits for a key that may refund


class _RunsAnotherWorker(InMemoryGateway):
    """Runs *hook* (another worker's run) in the middle of the first charge."""

    def __init__(self) -> None:
        super().__init__()
        self.hook: Any = None

    def charge(self, *args: Any, **kwargs: Any) -> Any:
        result = super().charge(*args, **kwargs)
        hook, self.hook = self.hook, None
        if hook is not None:
            hook()
        return result


def test_two_workers_report_every_charge_and_make_it_once() -> None:
    """The sender reports each charge it sent. The other worker may report one
    too, when it finds the charge made before its sender records it; the
    gateway makes it once, by its key."""
    gateway = _RunsAnotherWorker()
    world = make_world(gateway=gateway)
    for n in range(3):
        world.template(world.customer(f"Kunde{n} Nordmann"), start=DAY)
    other = Billing(storage=world.storage, gateway=gateway, ids=Counter({"ntf": 100}))
    theirs: list[Any] = []
    gateway.hook = lambda: theirs.extend(other.run(at(DAY, 7)))
    (mine,) = world.billing.run(at(DAY, 7))
    assert len(theirs) == 1
    everything = {i.display_number for i in world.storage_invoices()}
    assert {c.invoice_number for c in mine.charges} == everything
    assert len(gateway.ledger) == 3


class _DiesOnSecondCharge(InMemoryGateway):
    """The process dies (not a recurbill error) during the second charge."""

    def __init__(self) -> None:
        super().__init__()
        self.charges, self.dead = 0, True

    def charge(self, *args: Any, **kwargs: Any) -> Any:
        self.charges += 1
        if self.charges == 2 and self.dead:
            self.dead = False
            raise SystemExit("killed")
        return super().charge(*args, **kwargs)


def test_a_charge_whose_sender_died_is_reported_by_the_next_run() -> None:
    gateway = _DiesOnSecondCharge()
    world = make_world(gateway=gateway)
    for n in range(3):
        world.template(world.customer(f"Kunde{n} Nordmann"), start=DAY)
    with pytest.raises(SystemExit):
        world.billing.run(at(DAY, 7))
    (report,) = world.billing.run(at(DAY, 7))  # a rerun after the restart
    everything = {i.display_number for i in world.storage_invoices()}
    assert {c.invoice_number for c in report.charges} == everything
    assert len(gateway.ledger) == 3


def test_a_charge_sent_again_without_an_answer_is_not_reported_again() -> None:
    world = make_world()
    world.template(world.customer(), start=DAY)
    world.gateway.fail_next("timeout_before")
    (first,) = world.billing.run(at(DAY, 7))
    assert [c.status for c in first.charges] == [PaymentStatus.FAILED_UNKNOWN]
    world.gateway.fail_next("timeout_before")  # sent again: still no answer
    (second,) = world.billing.run(at(DAY, 8))
    assert second.charges == ()
    (third,) = world.billing.run(at(DAY, 9))
    assert [c.status for c in third.charges] == [PaymentStatus.SUCCEEDED]


def test_the_outage_count_goes_on_across_small_chunks() -> None:
    world = _customers(make_world(chunk_size=2))
    world.gateway.fail_next("unavailable", times=100)
    with pytest.raises(GatewayUnavailableError, match="did not answer"):
        world.billing.run(at(DAY, 7))
    asked = [r for r in world.gateway.requests if r.operation == "charge"]
    assert len(asked) == UNKNOWN_IN_A_ROW
    assert len(world.storage_invoices()) == CUSTOMERS  # all issued all the same


class _WebhookFirst(InMemoryGateway):
    """Delivers each charge's webhook to the service before the charge returns."""

    def __init__(self) -> None:
        super().__init__()
        self.billing: Any = None

    def charge(self, *args: Any, **kwargs: Any) -> Any:
        result = super().charge(*args, **kwargs)
        event_id, _ = self._events[-1]
        body, signature = self.webhook(event_id, now=int(DAY_AT.timestamp()))
        self.billing.handle_webhook(body, signature=signature, now=DAY_AT)
        return result


DAY_AT = at(DAY, 7)


def test_charges_a_webhook_recorded_first_are_still_in_the_summary() -> None:
    gateway = _WebhookFirst()
    world = _customers(make_world(gateway=gateway))
    gateway.billing = world.billing
    (report,) = world.billing.run(DAY_AT)
    assert len(report.charges) == CUSTOMERS
    assert {c.status for c in report.charges} == {PaymentStatus.SUCCEEDED}
    (report,) = world.billing.run(at(DAY, 8))
    assert report.charges == ()


def test_pending_refunds_are_followed_even_when_others_cannot_be_made() -> None:
    world = make_world()
    kari = world.customer()
    payments = []
    for hour in (9, 10):
        outcome = world.billing.record_session(
            world.account.id, kari.id, lines=[line()], now=at(DAY, hour)
        )
        assert outcome.payment is not None
        payments.append(outcome.payment)
    world.gateway.hold_next_refund()
    pending = world.billing.refund(world.account.id, payments[0].id, now=at(DAY, 12))
    assert pending.refund_id is not None
    world.gateway.finish_refund(pending.refund_id, "failed")
    world.gateway.fail_next("timeout_before", operation="refund")
    with pytest.raises(GatewayUnavailableError):
        world.billing.refund(world.account.id, payments[1].id, now=at(DAY, 13))
    world.gateway.fail_next("unauthorized", operation="retrieve_refund")
    with pytest.raises(GatewayAuthenticationError):  # the unanswered one waits
        world.billing.run(at(DAY + timedelta(days=1), 7))
    overview = world.billing.overview(
        world.account.id, kari.id, on=DAY + timedelta(days=1)
    )
    assert overview.credit_balance == payments[0].amount  # the failed one

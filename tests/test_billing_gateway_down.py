"""A gateway that refuses the API key, or does not answer at all, stops the run.

Neither is the customer's doing: no charge is recorded as a decline, no
customer is told their bank refused, and the next run (once the key is fixed
or the gateway answers) charges every invoice exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from billing_helpers import World, at, line, make_world
from recurbill.collection import UNKNOWN_IN_A_ROW
from recurbill.errors import GatewayAuthenticationError, GatewayUnavailableError
from recurbill.records import InvoiceStatus, Notification, PaymentStatus
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


def test_retries_stop_after_a_few_unanswered_charges() -> None:
    world = make_world()
    for n in range(CUSTOMERS):
        kari = world.customer(
            f"Kunde{n} Nordmann", card="pm_card_visa_chargeDeclinedInsufficientFunds"
        )
        world.billing.record_session(
            world.account.id, kari.id, lines=[line()], now=at(DAY, 9)
        )
        world.billing.set_default_card(  # a working card for the retry
            world.account.id,
            kari.id,
            world.billing.save_card(world.account.id, kari.id, token="pm_card_visa").id,
        )
    world.gateway.fail_next("unavailable", times=UNKNOWN_IN_A_ROW)
    with pytest.raises(GatewayUnavailableError, match="did not answer"):
        world.billing.run(at(DAY + timedelta(days=3), 7))  # the first retries
    retried = [p for p in world.payments() if p.attempt == 2]
    assert len(retried) == UNKNOWN_IN_A_ROW
    world.billing.run(at(DAY + timedelta(days=3), 8))
    assert len(world.gateway.ledger) == CUSTOMERS

"""A gateway that refuses the API key, or does not answer at all, stops the run.

Neither is the customer's doing: no charge is recorded as a decline, no
customer is told their bank refused, and the next run (once the key is fixed
or the gateway answers) charges every invoice exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from billing_helpers import World, at, make_world
from recurbill.collection import UNKNOWN_IN_A_ROW
from recurbill.errors import GatewayAuthenticationError, GatewayUnavailableError
from recurbill.records import InvoiceStatus, PaymentStatus
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

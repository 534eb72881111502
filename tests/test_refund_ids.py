"""Billing.refund with a refund_id of the caller's: safe to repeat.

A repeat (the same refund_id, payment, amount and reopen) returns the first
refund and refunds nothing more: called again, after a lost answer, and from
two threads on separate database connections at once. Other content under a
refund_id is refused with nothing written; empty or blank text is refused.
"""

from __future__ import annotations

import threading
import time
from datetime import date
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from billing_helpers import HeldRefunds, World, at, line, make_world, together
from recurbill.billing import Billing
from recurbill.errors import (
    ConflictError,
    GatewayUnavailableError,
    InvalidInputError,
    StateError,
)
from recurbill.ids import derived_id
from recurbill.money import Money
from recurbill.records import CollectionMethod, Refund
from recurbill.storage.sql import SqlStorage

NOW = at(date(2027, 1, 5))
LATER = at(date(2027, 1, 6))


def nok(amount: str) -> Money:
    return Money(amount, "NOK")


def _paid(world: World, sessions: int = 1) -> tuple[str, list[str]]:
    """A customer charged automatically for *sessions* sessions of 1000 NOK:
    their id and the payments' ids."""
    kari = world.customer()
    payments = []
    for _ in range(sessions):
        outcome = world.billing.record_session(
            world.account.id, kari.id, lines=[line()], now=NOW
        )
        assert outcome.payment is not None
        payments.append(outcome.payment.id)
    return kari.id, payments


def _state(world: World) -> tuple[object, ...]:
    """What a refund may write: the account's records, the gateway's calls."""
    account = world.account.id
    with world.storage.transaction(read_only=True) as tx:
        customers = tx.list_customers(account)
        return (
            tx.list_refunds(account),
            tx.list_invoices(account),
            tx.list_payments(account),
            tx.list_credit_notes(account),
            [tx.list_credit_entries(account, c.id) for c in customers],
            world.gateway.refunds,
            len(world.gateway.requests),
        )


def test_a_repeated_refund_returns_the_first_and_refunds_once() -> None:
    world = make_world()
    kari, (payment,) = _paid(world)
    refund = partial(
        world.billing.refund,
        world.account.id,
        payment,
        amount=nok("300"),
        refund_id="request-17",
    )
    first = refund(now=NOW)
    assert first.status == "succeeded"
    assert first.id == derived_id("re", world.account.id, "refund", "request-17")
    assert first.idempotency_key == f"recurbill-{first.id}"
    assert first.reopen is True
    assert refund(now=LATER) == first  # a retry comes later
    assert refund(now=LATER, amount=None) == first  # no amount: the first's
    assert [r.amount for r in world.gateway.refunds] == [nok("300.00")]
    with world.storage.transaction() as tx:
        assert tx.list_refunds(world.account.id) == [first]
    overview = world.billing.overview(world.account.id, kari, on=date(2027, 1, 6))
    assert overview.total_open == nok("300.00")  # reopened once


def test_without_a_refund_id_a_second_call_refunds_again() -> None:
    """Today's behaviour, kept: the contrast to the test above."""
    world = make_world()
    _, (payment,) = _paid(world)
    for _ in range(2):
        world.billing.refund(world.account.id, payment, amount=nok("300"), now=NOW)
    assert [r.amount for r in world.gateway.refunds] == [nok("300.00")] * 2


def test_a_repeat_finishes_a_refund_whose_answer_was_lost_with_its_own_key() -> None:
    world = make_world()
    kari, (payment,) = _paid(world)
    refund = partial(
        world.billing.refund,
        world.account.id,
        payment,
        amount=nok("300"),
        reopen=False,
        refund_id="request-17",
    )
    world.gateway.fail_next("timeout_after", operation="refund")
    with pytest.raises(GatewayUnavailableError):
        refund(now=NOW)
    assert len(world.gateway.refunds) == 1  # the money went back, the answer did not
    with world.storage.transaction() as tx:
        (lost,) = tx.list_refunds(world.account.id)
    assert lost.status == "requested_credit"
    world.gateway.forget_idempotency_keys()  # even after the gateway forgot it
    finished = refund(now=LATER)
    assert finished.id == lost.id
    assert finished.status == "succeeded"
    assert [r.amount for r in world.gateway.refunds] == [nok("300.00")]
    keys = {
        r.idempotency_key for r in world.gateway.requests if "refund" in r.operation
    }
    assert keys == {lost.idempotency_key}
    assert refund(now=LATER) == finished
    assert len(world.gateway.refunds) == 1
    with world.storage.transaction() as tx:
        (note,) = tx.list_credit_notes(world.account.id)
    assert note.amount == nok("300.00")  # credited once, not reopened
    overview = world.billing.overview(world.account.id, kari, on=date(2027, 1, 6))
    assert overview.total_open == nok("0")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"payment": 1}, "payment"),
        ({"amount": nok("200")}, "amount"),
        ({"reopen": False}, "reopen"),
        (
            {"payment": 1, "amount": nok("200"), "reopen": False},
            "payment, amount and reopen",
        ),
    ],
)
def test_other_content_under_a_refund_id_is_refused_and_writes_nothing(
    change: dict[str, Any], named: str
) -> None:
    world = make_world()
    _, payments = _paid(world, sessions=2)
    first = world.billing.refund(
        world.account.id,
        payments[0],
        amount=nok("300"),
        now=NOW,
        refund_id="request-17",
    )
    before = _state(world)
    with pytest.raises(ConflictError) as refused:
        world.billing.refund(
            world.account.id,
            payments[change.get("payment", 0)],
            amount=change.get("amount", nok("300")),
            reopen=change.get("reopen", True),
            now=LATER,
            refund_id="request-17",
        )
    message = str(refused.value)
    assert "'request-17'" in message
    assert f"differs in the {named}" in message
    assert f"of payment {first.payment_id}" in message
    assert _state(world) == before


def test_a_refund_id_of_a_payment_refunded_in_full_is_refused_as_a_conflict() -> None:
    """The refund_id's own refund is the reason, not the other payment's state."""
    world = make_world()
    _, payments = _paid(world, sessions=2)
    world.billing.refund(world.account.id, payments[1], now=NOW)  # all of it
    world.billing.refund(world.account.id, payments[0], now=NOW, refund_id="request-17")
    before = _state(world)
    with pytest.raises(ConflictError, match="differs in the payment"):
        world.billing.refund(
            world.account.id, payments[1], now=LATER, refund_id="request-17"
        )
    assert _state(world) == before
    with pytest.raises(StateError, match="refunded in full"):  # a new refund_id
        world.billing.refund(
            world.account.id, payments[1], now=LATER, refund_id="request-18"
        )
    assert _state(world) == before


@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_an_empty_or_blank_refund_id_is_refused(blank: str) -> None:
    world = make_world()
    _, (payment,) = _paid(world)
    before = _state(world)
    with pytest.raises(InvalidInputError, match="refund_id"):
        world.billing.refund(world.account.id, payment, now=NOW, refund_id=blank)
    assert _state(world) == before


def test_refund_ids_are_the_accounts_own() -> None:
    """The same refund_id in two accounts is two refunds."""
    world = make_world()
    _, (payment,) = _paid(world)
    beta = world.billing.create_account(
        account_id="beta",
        name="Beta AS",
        currency="NOK",
        summary_email="post@beta.no",
        timezone="Europe/Oslo",
    )
    per = world.billing.add_customer(
        beta.id,
        name="Per",
        email="per@example.no",
        collection_method="charge_automatically",
    )
    world.billing.save_card(beta.id, per.id, token="pm_card_visa")
    other = world.billing.record_session(beta.id, per.id, lines=[line()], now=NOW)
    assert other.payment is not None
    mine = world.billing.refund(world.account.id, payment, now=NOW, refund_id="r-1")
    theirs = world.billing.refund(beta.id, other.payment.id, now=NOW, refund_id="r-1")
    assert mine.id != theirs.id
    assert len(world.gateway.refunds) == 2


def test_a_new_refund_id_is_made_while_another_refund_waits_for_its_answer() -> None:
    """The waiting one counts as refunded; the daily run finishes it."""
    world = make_world()
    kari, (payment,) = _paid(world)
    world.gateway.fail_next("timeout_before", operation="refund")
    with pytest.raises(GatewayUnavailableError):
        world.billing.refund(
            world.account.id, payment, amount=nok("600"), now=NOW, refund_id="r-1"
        )
    with pytest.raises(InvalidInputError, match=r"up to the 400\.00 NOK"):
        world.billing.refund(
            world.account.id, payment, amount=nok("500"), now=NOW, refund_id="r-2"
        )
    second = world.billing.refund(
        world.account.id, payment, amount=nok("400"), now=NOW, refund_id="r-2"
    )
    assert second.status == "succeeded"
    world.billing.run(at(date(2027, 1, 6), 7))
    assert sorted(r.amount.amount for r in world.gateway.refunds) == [
        Decimal("400.00"),
        Decimal("600.00"),
    ]
    overview = world.billing.overview(world.account.id, kari, on=date(2027, 1, 6))
    assert overview.total_open == nok("1000.00")


# -- at once, on separate connections -----------------------------------------


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a new, migrated database: a SQLite file, then PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'billing.sqlite3'}"
    else:
        url = str(request.getfixturevalue("fresh_postgres_url"))
    with SqlStorage.from_url(url) as storage:
        storage.migrate()
    return url


def _services(
    url: str, count: int = 2
) -> tuple[list[Billing], HeldRefunds, list[SqlStorage]]:
    """*count* services on one database, each with its own SqlStorage,
    sharing a gateway, and an account "fjord" whose customer paid two
    sessions."""
    gateway = HeldRefunds(threading.Barrier(2))
    storages = [SqlStorage.from_url(url) for _ in range(count)]
    services = [Billing(storage=s, gateway=gateway) for s in storages]
    setup = services[0]
    setup.create_account(
        account_id="fjord",
        name="Fjord Fysio AS",
        currency="NOK",
        summary_email="post@fjordfysio.no",
        timezone="Europe/Oslo",
    )
    kari = setup.add_customer(
        "fjord",
        name="Kari",
        email="kari@example.no",
        collection_method=CollectionMethod.CHARGE_AUTOMATICALLY,
    )
    setup.save_card("fjord", kari.id, token="pm_card_visa")
    for _ in range(2):
        setup.record_session("fjord", kari.id, lines=[line()], now=NOW)
    return services, gateway, storages


def _answered(storage: SqlStorage) -> bool:
    """Whether a refund of the account has its answer recorded."""
    with storage.transaction(read_only=True) as tx:
        return bool(tx.list_refunds("fjord", statuses=["succeeded"]))


def _payments(storage: SqlStorage) -> list[str]:
    with storage.transaction() as tx:
        return sorted(p.id for p in tx.list_payments("fjord"))


def test_one_refund_id_from_three_services_at_once_refunds_once(database: str) -> None:
    """Two calls meet at the gateway; the third comes once the refund has
    its answer (without a refund_id, it would refund again)."""
    services, gateway, storages = _services(database, count=3)
    with storages[0], storages[1], storages[2]:
        payment = _payments(storages[0])[0]
        calls = [
            partial(
                service.refund,
                "fjord",
                payment,
                amount=nok("300"),
                now=NOW,
                refund_id="request-17",
            )
            for service in services
        ]

        def late() -> Any:
            while not _answered(storages[2]):
                time.sleep(0.01)
            return calls[2]()

        results = together(calls[0], calls[1], late)
        assert not [r for r in results if isinstance(r, Exception)], results
        assert all(isinstance(r, Refund) for r in results)
        assert len({r.id for r in results}) == 1
        assert [r.amount for r in gateway.refunds] == [nok("300.00")]
        with storages[0].transaction() as tx:
            (stored,) = tx.list_refunds("fjord")
            invoices = tx.list_invoices("fjord")
        assert stored.status == "succeeded"
        assert sum((i.paid for i in invoices), nok("0")) == nok("1700.00")


def test_one_refund_id_for_two_payments_at_once_is_one_refund(database: str) -> None:
    services, gateway, storages = _services(database)
    with storages[0], storages[1]:
        payments = _payments(storages[0])
        calls = [
            partial(
                service.refund,
                "fjord",
                payment,
                amount=nok("300"),
                now=NOW,
                refund_id="request-17",
            )
            for service, payment in zip(services, payments, strict=True)
        ]
        results = together(*calls)
        refused = [r for r in results if isinstance(r, Exception)]
        assert len(refused) == 1, results
        assert isinstance(refused[0], ConflictError)
        assert "differs in the payment" in str(refused[0])
        assert [r.amount for r in gateway.refunds] == [nok("300.00")]
        with storages[0].transaction() as tx:
            (stored,) = tx.list_refunds("fjord")
        assert [stored] == [r for r in results if isinstance(r, Refund)]

"""CrashError at any step, run again: nothing lost, nothing doubled.

A harness makes the k-th storage or gateway call fail, for every k across a
run that issues and charges a mix of templates, then runs again without
faults. The final state must equal the state of a run without faults, the
outbox included: every line of the daily summary queued once. The
same harness adds a customer: it ends with one gateway customer, never an
orphan beside it; and saves a card: saved again, it is stored once, attached
once and the default, and one that could not be stored is not left attached.
"""

from __future__ import annotations

import collections
import re
import threading
from contextlib import suppress
from datetime import date
from functools import partial
from typing import Any

import pytest

from billing_helpers import (
    Counter,
    CrashError,
    CustomersMade,
    Faults,
    FaultyGateway,
    FaultyStorage,
    at,
    make_world,
    together,
)
from recurbill.billing import Billing
from recurbill.collection import RetryPolicy
from recurbill.errors import ConflictError, GatewayUnavailableError
from recurbill.payments.memory import InMemoryGateway
from recurbill.payments.protocol import ChargeStatus
from recurbill.records import CollectionMethod, Customer, PaymentStatus
from recurbill.storage.memory import InMemoryStorage
from recurbill.storage.sql import SqlStorage


def _scenario(storage_faults: Faults, gateway_faults: Faults) -> tuple[Any, Any]:
    storage = InMemoryStorage()
    gateway = InMemoryGateway()
    world = make_world(
        storage=FaultyStorage(storage, storage_faults),  # type: ignore[arg-type]
        gateway=FaultyGateway(gateway, gateway_faults),  # type: ignore[arg-type]
    )
    kari = world.customer()
    ingrid = world.customer(
        "Ingrid Berg", card="pm_card_visa_chargeDeclinedInsufficientFunds"
    )
    per = world.customer("Per Olsen", card=None, method=CollectionMethod.SEND_INVOICE)
    world.template(kari, start=date(2027, 1, 4), period="week")
    world.template(ingrid, start=date(2027, 1, 5), period="week")
    world.template(per, start=date(2027, 1, 31), period="month")
    world.template(kari, start=date(2027, 1, 31), period="month", month_end=True)
    return world, gateway


_UNSETTLED = re.compile(r"(Ukjent utfall, undersøkes|Venter)$")  # nb
_ROW = re.compile(r"^  (INV-\d+)\s.*?(\S.*)$")


def _summary_lines(texts: list[str]) -> list[tuple[str, str]]:
    """Every invoice row the daily summaries list, as (section, row), each as
    often as listed. A charge listed with an unknown or pending outcome that
    a later summary lists with its outcome counts as that one line."""
    rows: list[tuple[str, str, str]] = []
    for text in texts:
        section, lines = "", text.splitlines()
        for before, after in zip(lines, [*lines[1:], ""], strict=True):
            if after.startswith("---") and not before.startswith(" "):
                section = before.split(" (")[0]
            elif match := _ROW.match(before):
                rows.append((section, match.group(1), " ".join(before.split())))
    settled = {(s, n) for s, n, row in rows if not _UNSETTLED.search(row)}
    return sorted(
        (s, row)
        for s, n, row in rows
        if not (_UNSETTLED.search(row) and (s, n) in settled)
    )


def _outbox(tx: Any) -> dict[str, Any]:
    notes = tx.pending_notifications(limit=10_000)
    summaries = [n.text for n in notes if n.kind == "daily_summary"]
    return {  # a summary may follow with an outcome learned later: not counted
        "e-mails": sorted(
            collections.Counter(
                n.kind for n in notes if n.text not in summaries
            ).items()
        ),
        "summaries": bool(summaries),
        "summary_lines": _summary_lines(summaries),
    }


def _state(world: Any, gateway: InMemoryGateway) -> dict[str, Any]:
    with world.storage.transaction() as tx:
        outbox = _outbox(tx)
        invoices = tx.list_invoices(world.account.id)
        payments = tx.list_payments(world.account.id)
        receipts = []
        for customer in tx.list_customers(world.account.id):
            receipts += tx.list_receipts(world.account.id, customer.id)
        occurrences = [
            (o.template_id, o.index, o.on, o.outcome)
            for t in tx.list_templates(world.account.id)
            for o in tx.list_occurrences(world.account.id, t.id)
        ]
    charged: dict[str, int] = {}
    for charge in gateway.ledger:
        charged[charge.idempotency_key] = charged.get(charge.idempotency_key, 0) + 1
    return {
        "invoices": sorted(
            (i.template_id, i.occurrence_index, i.number, i.status, i.total, i.paid)
            for i in invoices
        ),
        "payments": sorted(
            (p.invoice_ids, p.attempt, p.status, p.amount) for p in payments
        ),
        "receipts": sorted((r.payment_id, r.amount) for r in receipts),
        "occurrences": sorted(occurrences),
        "charges_per_key": sorted(charged.values()),
        "succeeded_payments": sum(
            1 for p in payments if p.status is PaymentStatus.SUCCEEDED
        ),
        **outbox,
    }


AS_OF = at(date(2027, 1, 31), 7)  # catch-up: weekly occurrences plus month ends


def _run_with_fault(kind: str, mode: str, k: int) -> tuple[dict[str, Any], bool]:
    storage_faults = Faults(mode=mode)
    gateway_faults = Faults(mode=mode)
    world, gateway = _scenario(storage_faults, gateway_faults)
    target = storage_faults if kind == "storage" else gateway_faults
    target.calls = 0
    target.fail_at = k
    with suppress(CrashError, GatewayUnavailableError):
        world.billing.run(AS_OF)
    fired = target.calls >= k
    target.fail_at = None
    world.billing.run(AS_OF)
    world.billing.run(AS_OF)  # reconciliation may need a second pass
    return _state(world, gateway), fired


def _clean() -> dict[str, Any]:
    world, gateway = _scenario(Faults(), Faults())
    world.billing.run(AS_OF)
    return _state(world, gateway)


@pytest.mark.parametrize(
    ("kind", "mode"),
    [
        ("storage", "crash"),
        ("storage", "timeout_after"),
        ("gateway", "crash"),
        ("gateway", "timeout_after"),
    ],
)
def test_a_fault_at_every_call_then_a_rerun_equals_a_clean_run(
    kind: str, mode: str
) -> None:
    clean = _clean()
    assert clean["invoices"], "the scenario must issue invoices"
    assert clean["summaries"]
    issued = [row for section, row in clean["summary_lines"] if "Utstedte" in section]
    assert len(issued) == len(clean["invoices"])
    assert clean["succeeded_payments"] >= 4
    assert clean["charges_per_key"]
    assert set(clean["charges_per_key"]) == {1}
    k = 1
    while True:
        state, fired = _run_with_fault(kind, mode, k)
        if not fired:
            break  # k is past the last call of the run: every step was covered
        assert state == clean, f"{kind} {mode} fault at call {k}"
        k += 1
    assert k > 5, "the harness must have covered many calls"


def _stored_customer(world: Any, customer_id: str) -> Customer | None:
    with world.storage.transaction() as tx:
        customers = {c.id: c for c in tx.list_customers(world.account.id)}
    return customers.get(customer_id)


@pytest.mark.parametrize(
    ("kind", "mode"),
    [("storage", "crash"), ("gateway", "crash"), ("gateway", "timeout_after")],
)
def test_add_customer_with_a_fault_at_every_call_makes_one_gateway_customer(
    kind: str, mode: str
) -> None:
    k = 1
    while True:
        storage_faults, gateway_faults = Faults(), Faults(mode=mode)
        gateway = CustomersMade()
        world = make_world(
            storage=FaultyStorage(InMemoryStorage(), storage_faults),  # type: ignore[arg-type]
            gateway=FaultyGateway(gateway, gateway_faults),  # type: ignore[arg-type]
        )
        target = storage_faults if kind == "storage" else gateway_faults
        target.calls, target.fail_at = 0, k
        add = partial(
            world.billing.add_customer,
            world.account.id,
            name="Kari Nordmann",
            email="kari@example.no",
            customer_id="kari",
        )
        with suppress(CrashError, GatewayUnavailableError):
            add()
        fired = target.calls >= k
        target.fail_at = None
        if k % 2 or _stored_customer(world, "kari") is None:
            assert add().id == "kari"  # repeated: it finishes the first call
        # else saving a card finishes it
        card = world.billing.save_card(world.account.id, "kari", token="pm_card_visa")
        kari = _stored_customer(world, "kari")
        assert kari is not None
        assert kari.gateway_customer_id is not None
        assert gateway.made == {kari.gateway_customer_id}, f"{kind} {mode} at {k}"
        assert [
            c.token for c in gateway.list_payment_methods(kari.gateway_customer_id)
        ] == [card.token]
        if not fired:
            break  # past the last call: every step was covered
        k += 1
    # add_customer makes one gateway call and several storage calls
    assert k > (5 if kind == "storage" else 1), "the harness must have covered them"


def test_a_customer_the_gateway_could_not_create_is_created_with_its_card() -> None:
    gateway = InMemoryGateway()
    world = make_world(gateway=gateway)
    gateway.fail_next("unavailable", operation="create_customer")
    with pytest.raises(GatewayUnavailableError):
        world.billing.add_customer(
            world.account.id, name="Kari", email="kari@example.no", customer_id="kari"
        )
    kari = _stored_customer(world, "kari")
    assert kari is not None  # kept: invoices can be sent meanwhile
    assert kari.gateway_customer_id is None
    setup = world.billing.start_card_setup(world.account.id, "kari")
    kari = _stored_customer(world, "kari")
    assert kari is not None
    assert setup.customer == kari.gateway_customer_id is not None
    with pytest.raises(ConflictError, match="other details"):
        world.billing.add_customer(
            world.account.id, name="Ola", email="ola@example.no", customer_id="kari"
        )
    creates = [r for r in gateway.requests if r.operation == "create_customer"]
    assert len(creates) == 2  # the failed one and the one that made it


@pytest.mark.parametrize("finish", ["add_customer", "start_card_setup"])
def test_a_customer_whose_answer_was_lost_is_found_after_the_key_expired(
    finish: str,
) -> None:
    """Repeated more than 24 hours later, when the gateway has forgotten the
    idempotency key: the customer its lost answer made is found by its
    metadata, not made a second time."""
    gateway = InMemoryGateway()
    world = make_world(gateway=gateway)
    gateway.fail_next("timeout_after", operation="create_customer")
    with pytest.raises(GatewayUnavailableError):
        world.billing.add_customer(
            world.account.id, name="Kari", email="kari@example.no", customer_id="kari"
        )
    gateway.forget_idempotency_keys()
    if finish == "add_customer":
        world.billing.add_customer(
            world.account.id, name="Kari", email="kari@example.no", customer_id="kari"
        )
    else:
        world.billing.start_card_setup(world.account.id, "kari")
    kari = _stored_customer(world, "kari")
    assert kari is not None
    creates = [r for r in gateway.requests if r.operation == "create_customer"]
    assert len(creates) == 1
    assert kari.gateway_customer_id is not None
    details = gateway.customer_details(kari.gateway_customer_id)
    assert details["metadata"] == {"recurbill_customer": "kari", "account": "fjord"}


def test_a_new_customer_is_created_without_a_search() -> None:
    """Nothing can have made it before: only a repeat searches (Stripe's
    search costs a request and lags)."""
    gateway = InMemoryGateway()
    world = make_world(gateway=gateway)
    world.billing.add_customer(
        world.account.id, name="Kari", email="kari@example.no", customer_id="kari"
    )
    assert "find_customer" not in [r.operation for r in gateway.requests]


def test_the_same_customer_added_twice_at_once_is_one_gateway_customer(
    sql_storage: SqlStorage,
) -> None:
    gateway = CustomersMade()
    billing = Billing(storage=sql_storage, gateway=gateway)
    account = billing.create_account(
        name="Fjord Fysio AS", currency="NOK", summary_email="post@fjordfysio.no"
    )
    gateway.barrier = threading.Barrier(2)
    add = partial(
        billing.add_customer,
        account.id,
        name="Kari",
        email="kari@example.no",
        customer_id="kari",
    )
    results = together(add, add)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len(gateway.made) == 1
    assert {r.gateway_customer_id for r in results} == gateway.made


@pytest.mark.parametrize("created", [True, False], ids=["created", "not-created"])
@pytest.mark.parametrize(
    ("kind", "mode"),
    [("storage", "crash"), ("gateway", "crash"), ("gateway", "timeout_after")],
)
def test_change_customer_with_a_fault_at_every_call_ends_in_step(
    kind: str, mode: str, created: bool
) -> None:
    """Crash anywhere in change_customer, call it again: storage and the
    gateway hold the new details, and there is one gateway customer."""
    k = 1
    while True:
        storage_faults, gateway_faults = Faults(), Faults(mode=mode)
        gateway = CustomersMade()
        world = make_world(
            storage=FaultyStorage(InMemoryStorage(), storage_faults),  # type: ignore[arg-type]
            gateway=FaultyGateway(gateway, gateway_faults),  # type: ignore[arg-type]
        )
        if not created:  # its creation's answer was lost: the key knows it
            gateway.fail_next("timeout_after", operation="create_customer")
        with suppress(GatewayUnavailableError):
            world.billing.add_customer(
                world.account.id,
                name="Kari Nordmann",
                email="kari@example.no",
                customer_id="kari",
            )
        target = storage_faults if kind == "storage" else gateway_faults
        target.calls, target.fail_at = 0, k
        change = partial(
            world.billing.change_customer,
            world.account.id,
            "kari",
            name="Kari Hansen",
            email="kari.hansen@example.no",
        )
        with suppress(CrashError, GatewayUnavailableError):
            change()
        fired = target.calls >= k
        target.fail_at = None
        kari = change()
        assert _stored_customer(world, "kari") == kari
        assert (kari.name, kari.email) == ("Kari Hansen", "kari.hansen@example.no")
        assert kari.gateway_customer_id is not None
        assert gateway.made == {kari.gateway_customer_id}, f"{kind} {mode} at {k}"
        kept = gateway.customer_details(kari.gateway_customer_id)
        assert (kept["name"], kept["email"]) == (kari.name, kari.email)
        if not fired:
            break  # past the last call: every step was covered
        k += 1
    assert k > (4 if kind == "storage" else 1), "the harness must have covered them"


def _kari_with_gateway(
    storage_faults: Faults, gateway_faults: Faults
) -> tuple[Any, InMemoryGateway]:
    """A world over faulty adapters whose customer ``kari`` has her gateway
    customer (added before any fault is armed), and the gateway inside."""
    gateway = InMemoryGateway()
    world = make_world(
        storage=FaultyStorage(InMemoryStorage(), storage_faults),  # type: ignore[arg-type]
        gateway=FaultyGateway(gateway, gateway_faults),  # type: ignore[arg-type]
    )
    world.billing.add_customer(
        world.account.id,
        name="Kari Nordmann",
        email="kari@example.no",
        customer_id="kari",
    )
    return world, gateway


def _confirmed_card(world: Any, gateway: InMemoryGateway) -> str:
    """The token of a card setup Kari confirmed (the gateway attached it)."""
    setup = world.billing.start_card_setup(world.account.id, "kari")
    return gateway.confirm_card_setup(setup.setup_id)


def _stored_cards(world: Any) -> list[Any]:
    with world.storage.transaction() as tx:
        return tx.list_payment_methods(world.account.id, "kari")


def _at_gateway(world: Any, gateway: InMemoryGateway) -> tuple[list[str], str | None]:
    """Kari's cards attached at the gateway, and her default card there."""
    kari = _stored_customer(world, "kari")
    assert kari is not None
    assert kari.gateway_customer_id is not None
    attached = gateway.list_payment_methods(kari.gateway_customer_id)
    return [c.token for c in attached], gateway.default_payment_method(
        kari.gateway_customer_id
    )


@pytest.mark.parametrize(
    ("kind", "mode"),
    [
        ("storage", "crash"),
        ("storage", "timeout_after"),
        ("gateway", "crash"),
        ("gateway", "timeout_after"),
    ],
)
def test_save_card_with_a_fault_at_every_call_then_again_saves_it_once(
    kind: str, mode: str
) -> None:
    """Fail any step of save_card (attach, store, make default), save again:
    one stored card, attached once and the default, in storage and at the
    gateway. A card detached because storing it failed is saved anew."""
    k = 1
    while True:
        storage_faults, gateway_faults = Faults(mode=mode), Faults(mode=mode)
        world, gateway = _kari_with_gateway(storage_faults, gateway_faults)
        token = _confirmed_card(world, gateway)
        target = storage_faults if kind == "storage" else gateway_faults
        target.calls, target.fail_at = 0, k
        save = partial(world.billing.save_card, world.account.id, "kari")
        with suppress(CrashError, GatewayUnavailableError):
            save(token=token)
        fired = target.calls >= k
        target.fail_at = None
        if token not in _at_gateway(world, gateway)[0]:  # detached: not stored
            assert (kind, _stored_cards(world)) == ("storage", [])
            token = _confirmed_card(world, gateway)  # the customer enters it again
        card = save(token=token)
        assert card.token == token
        assert _stored_cards(world) == [card], f"{kind} {mode} at {k}"
        assert _at_gateway(world, gateway) == ([token], token), f"{kind} {mode} {k}"
        kari = _stored_customer(world, "kari")
        assert kari is not None
        assert kari.default_payment_method_id == card.id
        if not fired:
            break  # past the last call: every step was covered
        k += 1
    # save_card makes two gateway calls and several storage calls
    assert k > (6 if kind == "storage" else 2), "the harness must have covered them"


def test_a_card_that_could_not_be_stored_is_not_left_at_the_gateway() -> None:
    """The caller gives up after a storage failure: no card stays attached
    that recurbill does not hold (the customer could never see or remove it)."""
    k, detached = 1, 0
    while True:
        faults = Faults()
        world, gateway = _kari_with_gateway(faults, Faults())
        faults.calls, faults.fail_at = 0, k
        with suppress(CrashError):
            world.billing.save_card(world.account.id, "kari", token="pm_card_visa")
        fired = faults.calls >= k
        faults.fail_at = None
        stored = [m.token for m in _stored_cards(world)]
        assert _at_gateway(world, gateway)[0] == stored, f"storage fault at {k}"
        operations = [r.operation for r in gateway.requests]
        detached += "detach_payment_method" in operations
        if not fired:
            break  # past the last call: every step was covered
        k += 1
    assert detached >= 3, "storing fails after the attach at several calls"


def test_a_card_whose_storing_lost_its_answer_is_kept() -> None:
    """The commit went through and only its answer was lost: the card is
    stored, so it stays attached, and saving it again returns it."""
    storage_faults = Faults(mode="timeout_after")
    world, gateway = _kari_with_gateway(storage_faults, Faults())
    token = _confirmed_card(world, gateway)
    # the customer, the look-up, the locked customer, her cards, add, default
    storage_faults.calls, storage_faults.fail_at = 0, 7
    with pytest.raises(CrashError, match="storage call commit"):
        world.billing.save_card(world.account.id, "kari", token=token)
    (card,) = _stored_cards(world)
    assert _at_gateway(world, gateway) == ([token], None)  # kept; no default yet
    assert world.billing.save_card(world.account.id, "kari", token=token) == card
    assert _at_gateway(world, gateway) == ([token], token)
    assert _stored_cards(world) == [card]


class AttachTogether(InMemoryGateway):
    """Each attach first waits (up to 2 s) for another call to reach it."""

    def __init__(self) -> None:
        super().__init__(environ={})
        self.barrier = threading.Barrier(2)

    def attach_payment_method(self, customer: str, *, token: str) -> Any:
        with suppress(threading.BrokenBarrierError):
            self.barrier.wait(timeout=2)
        return super().attach_payment_method(customer, token=token)


def test_the_same_card_saved_twice_at_once_is_stored_once(
    sql_storage: SqlStorage,
) -> None:
    """Two calls (a double-click) both find no card and attach it: the
    customer's row lock lets one store it and the other find it stored."""
    gateway = AttachTogether()
    billing = Billing(storage=sql_storage, gateway=gateway)
    account = billing.create_account(
        name="Fjord Fysio AS", currency="NOK", summary_email="post@fjordfysio.no"
    )
    kari = billing.add_customer(account.id, name="Kari", email="kari@example.no")
    setup = billing.start_card_setup(account.id, kari.id)
    token = gateway.confirm_card_setup(setup.setup_id)
    save = partial(billing.save_card, account.id, kari.id, token=token)
    results = together(save, save)
    assert not [r for r in results if isinstance(r, Exception)], results
    with sql_storage.transaction() as tx:
        stored = tx.list_payment_methods(account.id, kari.id)
    assert results == [*stored, *stored]


def _declined_after_authentication(
    storage_faults: Faults, gateway_faults: Faults
) -> tuple[Any, InMemoryGateway, str]:
    """Kari's automatic charge asked for 3-D Secure (the first run), then the
    customer authenticated and the card was declined; no run has looked since.

    Returns the world, the gateway behind the faults and the charge's id.
    """
    gateway = InMemoryGateway()
    world = make_world(
        storage=FaultyStorage(InMemoryStorage(), storage_faults),  # type: ignore[arg-type]
        gateway=FaultyGateway(gateway, gateway_faults),  # type: ignore[arg-type]
        retry_policy=RetryPolicy(()),  # the decline is final: the notice is sent
    )
    kari = world.customer(card="pm_card_authenticationRequired")
    world.template(kari, start=date(2027, 1, 4))
    world.billing.run(at(date(2027, 1, 4), 7))
    (waiting,) = world.payments()
    assert waiting.status is PaymentStatus.REQUIRES_ACTION
    assert waiting.charge_id is not None
    gateway.settle(waiting.charge_id, succeed=False, decline_code="insufficient_funds")
    return world, gateway, waiting.charge_id


def _after_the_decline(world: Any, gateway: InMemoryGateway, charge_id: str) -> Any:
    (payment,) = world.payments()
    found = gateway.retrieve_charge(charge_id=charge_id)
    assert found is not None
    return (
        (payment.status, payment.decline_code, payment.error_code),
        world.notification_kinds().count("payment_failed"),
        found.status,
        len(gateway.ledger),
    )


@pytest.mark.parametrize(
    ("kind", "mode"),
    [("storage", "crash"), ("gateway", "crash"), ("gateway", "timeout_after")],
)
def test_a_decline_after_authentication_with_a_fault_at_every_call_is_declined(
    kind: str, mode: str
) -> None:
    """The run that finds the decline cancels the charge, then records the
    decline: a fault between the two, run again, still records it declined
    with its code, sends the payment-failed notice once and reports it."""
    later = at(date(2027, 1, 5), 7)
    world, gateway, charge_id = _declined_after_authentication(Faults(), Faults())
    (report,) = world.billing.run(later)
    clean = _after_the_decline(world, gateway, charge_id)
    assert clean == (
        (PaymentStatus.DECLINED, "insufficient_funds", "card_declined"),
        1,
        ChargeStatus.CANCELED,
        0,
    )
    assert [(c.status, c.decline_code) for c in report.charges] == [
        (PaymentStatus.DECLINED, "insufficient_funds")
    ]
    k = 1
    while True:
        storage_faults, gateway_faults = Faults(), Faults(mode=mode)
        world, gateway, charge_id = _declined_after_authentication(
            storage_faults, gateway_faults
        )
        target = storage_faults if kind == "storage" else gateway_faults
        target.calls, target.fail_at = 0, k
        with suppress(CrashError, GatewayUnavailableError):
            world.billing.run(later)
        fired = target.calls >= k
        target.fail_at = None
        (before,) = world.payments()
        (rerun,) = world.billing.run(later)
        world.billing.run(later)
        assert _after_the_decline(world, gateway, charge_id) == clean, (
            f"{kind} {mode} fault at call {k}"
        )
        if before.status is PaymentStatus.REQUIRES_ACTION:  # the rerun recorded it
            assert [(c.status, c.decline_code) for c in rerun.charges] == [
                (PaymentStatus.DECLINED, "insufficient_funds")
            ], f"{kind} {mode} fault at call {k}"
        if not fired:
            break  # past the last call: every step was covered
        k += 1
    # the run asks the gateway twice (the look-up, the cancel), storage often
    assert k > (5 if kind == "storage" else 2), "the harness must have covered them"


def _summaries(world: Any) -> list[str]:
    with world.storage.transaction() as tx:
        notes = tx.pending_notifications(limit=10_000)
    return [n.text for n in notes if n.kind == "daily_summary"]


def test_a_run_that_crashed_after_issuing_is_summarised_once_by_the_rerun() -> None:
    """The invoices were committed, the process died at the first charge: the
    rerun issues nothing, yet its summary lists every invoice and charge of
    the crashed run, once; a third run queues nothing."""
    gateway_faults = Faults()
    world, _ = _scenario(Faults(), gateway_faults)
    gateway_faults.fail_on = "charge"
    with pytest.raises(CrashError):
        world.billing.run(AS_OF)
    assert _summaries(world) == []
    (rerun,) = world.billing.run(AS_OF)
    assert rerun.issued == ()  # what this call did: nothing new was issued
    (again,) = world.billing.run(AS_OF)
    assert again.is_empty
    (summary,) = _summaries(world)
    assert _summary_lines([summary]) == _clean()["summary_lines"]


def _storage_calls_of_a_clean_run() -> int:
    faults = Faults()
    world, _ = _scenario(faults, Faults())
    faults.calls = 0
    world.billing.run(AS_OF)
    return faults.calls


@pytest.mark.parametrize("mode", ["crash", "timeout_after"])
def test_a_summary_whose_commit_failed_is_queued_once(mode: str) -> None:
    """The run's last call, the commit that queues the summary, fails: not
    committed, the rerun queues it with every line; committed with its answer
    lost, the rerun queues no second one."""
    last = _storage_calls_of_a_clean_run()
    faults = Faults(mode=mode)
    world, _ = _scenario(faults, Faults())
    faults.calls, faults.fail_at = 0, last
    with pytest.raises(CrashError, match="storage call commit"):
        world.billing.run(AS_OF)
    assert len(_summaries(world)) == (mode == "timeout_after")
    faults.fail_at = None
    world.billing.run(AS_OF)
    (summary,) = _summaries(world)
    assert _summary_lines([summary]) == _clean()["summary_lines"]


def test_a_charge_whose_answer_was_lost_is_summarised_then_its_outcome() -> None:
    """The first summary lists the charge as unknown; the rerun that learns
    its outcome queues a summary of that outcome alone: news, no line again."""
    gateway_faults = Faults(mode="timeout_after")
    world, _ = _scenario(Faults(), gateway_faults)
    gateway_faults.fail_on = "charge"
    world.billing.run(AS_OF)
    (first,) = _summaries(world)
    (unknown,) = [row for _, row in _summary_lines([first]) if _UNSETTLED.search(row)]
    world.billing.run(AS_OF)
    world.billing.run(AS_OF)
    (second,) = [text for text in _summaries(world) if text != first]
    number = unknown.split()[0]
    assert [row for _, row in _summary_lines([second])] == [
        f"{number} Kari Nordmann 1 000,00 kr Betalt"
    ]
    assert _summary_lines([first, second]) == _clean()["summary_lines"]


class _OtherWorkerMidCharge(InMemoryGateway):
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


def test_two_workers_summarise_each_line_once() -> None:
    """Another worker runs while the first is charging its chunk: between
    them one summary lists each invoice and each charge once."""
    gateway = _OtherWorkerMidCharge()
    world = make_world(gateway=gateway)
    for name in ("Kari Nordmann", "Ola Hansen", "Per Olsen"):
        world.template(world.customer(name), start=date(2027, 1, 31))
    other = Billing(storage=world.storage, gateway=gateway, ids=Counter({"ntf": 100}))
    gateway.hook = partial(other.run, AS_OF)
    world.billing.run(AS_OF)
    (summary,) = _summaries(world)
    lines = _summary_lines([summary])
    assert len(lines) == len(set(lines)) == 6
    assert sorted(section for section, _ in lines) == 3 * ["Kortbetalinger"] + 3 * [
        "Utstedte fakturaer"
    ]
    assert all(row.endswith("Betalt") for s, row in lines if s == "Kortbetalinger")


def test_a_run_without_summaries_leaves_nothing_for_the_next_summary() -> None:
    world, _ = _scenario(Faults(), Faults())
    world.billing.run(AS_OF, send_summaries=False)
    assert _summaries(world) == []
    world.billing.run(AS_OF, summary_when_empty=True)
    (summary,) = _summaries(world)
    assert _summary_lines([summary]) == []


def test_a_run_without_summaries_keeps_a_crashed_runs_lines() -> None:
    """Only the lines of the run that sends no summary are dropped: those of
    an earlier run that crashed before its summary wait for the next one."""
    gateway_faults = Faults()
    world, _ = _scenario(Faults(), gateway_faults)
    gateway_faults.fail_on = "charge"
    with pytest.raises(CrashError):
        world.billing.run(AS_OF)
    world.billing.run(AS_OF, send_summaries=False)  # charges what was left
    assert _summaries(world) == []
    world.billing.run(AS_OF)
    (summary,) = _summaries(world)
    issued = [row for section, row in _summary_lines([summary]) if "faktura" in section]
    assert issued == [
        row for section, row in _clean()["summary_lines"] if "faktura" in section
    ]

"""Four processes run the daily job for the same instant: the result is one run's.

The processes share one database (a SQLite file, or PostgreSQL) and one
gateway, served to them by a multiprocessing manager the way Stripe serves
every worker of a real deployment. Afterwards the database holds exactly what
a single process's run leaves, and every charge was made once. The workers
take chunks of different sizes, so some walk the catch-up chunk by chunk
(a template's later occurrences waiting for their turn in date order). They
start their runs together (a barrier), and the test checks that at least two
runs were under way at once, so a loaded machine cannot turn the race into
runs one after another.
"""

from __future__ import annotations

import multiprocessing
from datetime import date, datetime, timedelta
from multiprocessing.managers import BaseManager
from pathlib import Path
from typing import Any

from billing_helpers import Counter, at, line
from recurbill.billing import Billing
from recurbill.payments.memory import InMemoryGateway
from recurbill.payments.protocol import ChargeResult
from recurbill.records import CollectionMethod
from recurbill.storage.sql import SqlStorage

CHUNK_SIZES = (1000, 5, 3, 1)  # one per process
PROCESSES = len(CHUNK_SIZES)
AS_OF = at(date(2027, 3, 1), 7)


class SharedGateway(InMemoryGateway):
    """The in-memory gateway with its ledger readable through a proxy."""

    def ledger_list(self) -> list[ChargeResult]:
        return self.ledger


class GatewayManager(BaseManager):
    """Serves one SharedGateway to every worker process."""


def _seed(billing: Billing) -> None:
    created = at(date(2027, 1, 1))
    cards = [
        "pm_card_visa",
        "pm_card_mastercard",
        "pm_card_visa_chargeDeclinedInsufficientFunds",
        None,
    ]
    for a, (currency, zone) in enumerate(
        [("NOK", "Europe/Oslo"), ("ISK", "Atlantic/Reykjavik")]
    ):
        account = billing.create_account(
            account_id=f"acct-{a}",
            name=f"Business {a}",
            currency=currency,
            timezone=zone,
            summary_email=f"billing{a}@example.no",
        )
        for c, card in enumerate(cards * 3):
            customer = billing.add_customer(
                account.id,
                name=f"Customer {a}-{c}",
                email=f"c{a}{c}@example.no",
                collection_method=(
                    CollectionMethod.CHARGE_AUTOMATICALLY
                    if card
                    else CollectionMethod.SEND_INVOICE
                ),
            )
            if card is not None:
                billing.save_card(account.id, customer.id, token=card)
            billing.create_template(
                account.id,
                customer.id,
                lines=[line("100" if currency == "NOK" else "12990")],
                start=date(2027, 1, 2) + timedelta(days=c),
                period="week" if c % 2 else "month",
                now=created,
            )


def _worker(
    url: str,
    address: Any,
    authkey: bytes,
    as_of: datetime,
    chunk_size: int,
    start: Any,
    running: Any,
) -> None:
    """One process's run, begun with the others' (*start*, a barrier).

    *running* is [runs under way, most runs under way at once], shared.
    """
    manager = GatewayManager(address=address, authkey=authkey)
    manager.connect()
    shared = manager.the_gateway()  # type: ignore[attr-defined]
    with SqlStorage.from_url(url) as storage:
        billing = Billing(storage=storage, gateway=shared, chunk_size=chunk_size)
        start.wait(timeout=120)
        with running.get_lock():
            running[0] += 1
            running[1] = max(running[1], running[0])
        billing.run(as_of)
        with running.get_lock():
            running[0] -= 1


_THE_GATEWAY: SharedGateway | None = None


def _the_gateway() -> SharedGateway:
    global _THE_GATEWAY  # lives in the manager's process only
    if _THE_GATEWAY is None:
        _THE_GATEWAY = SharedGateway()
    return _THE_GATEWAY


GatewayManager.register("the_gateway", _the_gateway)


def _state(url: str, ledger: list[ChargeResult]) -> dict[str, Any]:
    with SqlStorage.from_url(url) as storage, storage.transaction() as tx:
        accounts = tx.list_account_ids()
        invoices = [i for a in accounts for i in tx.list_invoices(a)]
        payments = [p for a in accounts for p in tx.list_payments(a)]
        receipts = [
            r
            for a in accounts
            for c in tx.list_customers(a)
            for r in tx.list_receipts(a, c.id)
        ]
    per_key: dict[str, int] = {}
    for charge in ledger:
        per_key[charge.idempotency_key] = per_key.get(charge.idempotency_key, 0) + 1
    numbers: dict[str, list[int]] = {}
    for invoice in invoices:
        numbers.setdefault(invoice.account_id, []).append(invoice.number)
    return {
        "invoices": sorted(
            (i.template_id, i.occurrence_index, i.status, i.total, i.paid)
            for i in invoices
        ),
        "numbers_gapless": all(
            sorted(n) == list(range(1, len(n) + 1)) for n in numbers.values()
        ),
        "payments": sorted((p.id, p.status, p.amount) for p in payments),
        "receipts": sorted((r.payment_id, r.amount) for r in receipts),
        "charges": sorted(per_key),
        "charged_once": set(per_key.values()) <= {1},
    }


def _prepare(url: str, gateway: Any) -> None:
    with SqlStorage.from_url(url) as storage:
        storage.migrate()
        _seed(Billing(storage=storage, gateway=gateway, ids=Counter()))


def _compare(url: str, reference_url: str) -> None:
    with GatewayManager(authkey=b"recurbill-test") as manager:
        shared = manager.the_gateway()  # type: ignore[attr-defined]
        _prepare(url, shared)
        context = multiprocessing.get_context("spawn")
        start = context.Barrier(PROCESSES)
        running = context.Array("i", [0, 0])
        workers = [
            context.Process(
                target=_worker,
                args=(
                    url,
                    manager.address,
                    b"recurbill-test",
                    AS_OF,
                    chunk_size,
                    start,
                    running,
                ),
            )
            for chunk_size in CHUNK_SIZES
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=240)
        assert [w.exitcode for w in workers] == [0] * PROCESSES
        assert running[1] >= 2, "the runs did not overlap: no race was tested"
        concurrent = _state(url, shared.ledger_list())
    alone = InMemoryGateway()
    _prepare(reference_url, alone)
    with SqlStorage.from_url(reference_url) as storage:
        Billing(storage=storage, gateway=alone).run(AS_OF)
    single = _state(reference_url, alone.ledger)
    assert single["invoices"], "the scenario must issue invoices"
    assert single["charges"], "the scenario must charge cards"
    assert concurrent["numbers_gapless"]
    assert concurrent["charged_once"]
    assert concurrent == single


def test_four_processes_on_one_sqlite_file_equal_one_run(tmp_path: Path) -> None:
    _compare(
        f"sqlite:///{tmp_path / 'shared.sqlite3'}",
        f"sqlite:///{tmp_path / 'alone.sqlite3'}",
    )


def test_four_processes_on_one_postgresql_database_equal_one_run(
    postgres_server: Any,
) -> None:
    postgres_server.execute("CREATE DATABASE billing_shared")
    postgres_server.execute("CREATE DATABASE billing_alone")
    try:
        _compare(
            postgres_server.url("billing_shared"), postgres_server.url("billing_alone")
        )
    finally:
        postgres_server.execute("DROP DATABASE billing_shared WITH (FORCE)")
        postgres_server.execute("DROP DATABASE billing_alone WITH (FORCE)")

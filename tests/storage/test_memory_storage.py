"""InMemoryStorage passes the storage contract, and stays exact under threads."""

from __future__ import annotations

import random
import threading
from datetime import date

import pytest

from recurbill.errors import ConflictError, StateError
from recurbill.records import OccurrenceOutcome, OccurrenceRecord
from recurbill.storage.memory import InMemoryStorage
from recurbill.storage.protocol import Storage
from recurbill.testing.storage import (
    StorageContract,
    make_account,
    make_customer,
    make_invoice,
    make_template,
)

THREADS = 8
INDICES = 40


class TestInMemoryStorage(StorageContract):
    @pytest.fixture
    def storage(self) -> Storage:
        return InMemoryStorage()


def _issue(storage: Storage, index: int) -> bool:
    """Issue occurrence *index* of tpl-1 the way the daily run does."""
    try:
        with storage.transaction() as tx:
            tx.get_template("acme", "tpl-1", for_update=True)
            number = tx.allocate_invoice_numbers("acme", "INV")
            invoice_id = f"inv-{index}-{threading.get_ident()}"
            tx.add_invoices(
                [
                    make_invoice(
                        invoice_id,
                        number=number,
                        template_id="tpl-1",
                        occurrence_index=index,
                    )
                ]
            )
            tx.add_occurrences(
                [
                    OccurrenceRecord(
                        account_id="acme",
                        template_id="tpl-1",
                        index=index,
                        on=date(2025, 2, 1),
                        outcome=OccurrenceOutcome.ISSUED,
                        invoice_id=invoice_id,
                    )
                ]
            )
            tx.commit()
    except ConflictError:
        return False
    return True


def test_concurrent_runs_issue_each_occurrence_once_with_gapless_numbers() -> None:
    storage = InMemoryStorage()
    with storage.transaction() as tx:
        tx.add_account(make_account("acme"))
        tx.add_customer(make_customer("cust-1"))
        tx.add_template(make_template("tpl-1"))
        tx.commit()
    start = threading.Barrier(THREADS)
    issued: list[int] = []
    errors: list[BaseException] = []

    def worker(seed: int) -> None:
        order = list(range(INDICES))
        random.Random(seed).shuffle(order)
        try:
            start.wait()
            issued.extend(i for i in order if _issue(storage, i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(issued) == list(range(INDICES))
    with storage.transaction() as tx:
        occurrences = tx.list_occurrences("acme", "tpl-1")
        invoices = tx.list_invoices("acme", template_id="tpl-1")
        next_number = tx.allocate_invoice_numbers("acme", "INV")
    assert [o.index for o in occurrences] == list(range(INDICES))
    assert sorted(i.occurrence_index or 0 for i in invoices) == list(range(INDICES))
    assert sorted(i.number for i in invoices) == list(range(1, INDICES + 1))
    assert next_number == INDICES + 1
    by_id = {i.id: i.occurrence_index for i in invoices}
    assert all(by_id[o.invoice_id or ""] == o.index for o in occurrences)


def test_a_transaction_waits_for_the_one_holding_the_lock() -> None:
    storage = InMemoryStorage()
    entered = threading.Event()
    order: list[str] = []

    def second() -> None:
        entered.wait()
        with storage.transaction() as tx:
            order.append(f"second sees {tx.list_account_ids()}")

    thread = threading.Thread(target=second)
    with storage.transaction() as tx:
        thread.start()
        entered.set()
        thread.join(timeout=0.2)
        assert thread.is_alive()  # blocked behind this transaction
        tx.add_account(make_account("acme"))
        tx.commit()
        order.append("first committed")
    thread.join()
    assert order == ["first committed", "second sees ['acme']"]


def test_a_nested_transaction_in_one_thread_is_refused() -> None:
    storage = InMemoryStorage()
    with storage.transaction(), pytest.raises(StateError, match="already open"):
        storage.transaction().__enter__()
    with storage.transaction() as tx:  # the lock was released
        assert tx.list_account_ids() == []


def test_a_closed_transaction_cannot_be_used() -> None:
    storage = InMemoryStorage()
    with storage.transaction() as tx:
        tx.add_account(make_account("acme"))
        tx.commit()
    with pytest.raises(StateError, match="closed"):
        tx.get_account("acme")
    with pytest.raises(StateError, match="closed"):
        tx.commit()


def test_due_templates_refuses_a_naive_instant() -> None:
    from datetime import datetime

    from recurbill.errors import InvalidInputError

    storage = InMemoryStorage()
    with storage.transaction() as tx, pytest.raises(InvalidInputError, match="aware"):
        tx.due_templates(datetime(2025, 1, 1))

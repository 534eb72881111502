"""Several processes issue the same occurrences at once: each is stored once.

Four processes (spawned, so nothing is shared but the database) race through
the same template occurrences in different orders, each occurrence in its own
transaction: allocate an invoice number, store the invoice and the occurrence
record, commit. Half the workers lock the template first (as the daily run
does); the other half rely on the database's uniqueness constraints alone.
A conflict rolls the transaction back, numbers included. At the end every
occurrence is stored exactly once and the invoice numbers are exactly 1..N.
"""

from __future__ import annotations

import multiprocessing
import random
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from recurbill.errors import ConflictError
from recurbill.records import OccurrenceOutcome, OccurrenceRecord
from recurbill.storage.sql import SqlStorage
from recurbill.testing.storage import (
    make_account,
    make_customer,
    make_invoice,
    make_template,
)

PROCESSES = 4
OCCURRENCES = 30


def _issue(storage: SqlStorage, worker: int, index: int, *, lock: bool) -> bool:
    """Issue occurrence *index* of tpl-1; False when another process had it."""
    try:
        with storage.transaction() as tx:
            if lock:
                tx.get_template("acme", "tpl-1", for_update=True)
            number = tx.allocate_invoice_numbers("acme", "INV")
            invoice_id = f"inv-{index}-w{worker}"
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


def _worker(url: str, worker: int, start: Any, results: Any) -> None:
    """One process: every occurrence, in an order of its own."""
    order = list(range(OCCURRENCES))
    random.Random(worker).shuffle(order)
    storage = SqlStorage.from_url(url)
    try:
        start.wait(timeout=60)
        issued = [i for i in order if _issue(storage, worker, i, lock=worker % 2 == 0)]
        results.put((worker, issued, None))
    except BaseException as exc:  # reported to the parent
        results.put((worker, [], repr(exc)))
    finally:
        storage.close()


def _race(url: str) -> None:
    with SqlStorage.from_url(url) as storage:
        storage.migrate()
        with storage.transaction() as tx:
            tx.add_account(make_account("acme"))
            tx.add_customer(make_customer("cust-1"))
            tx.add_template(make_template("tpl-1"))
            tx.commit()

    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(target=_worker, args=(url, n, start, results))
        for n in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=240) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    results.close()
    results.join_thread()

    assert [error for _, _, error in outcomes] == [None] * PROCESSES
    issued = sorted(i for _, indices, _ in outcomes for i in indices)
    assert issued == list(range(OCCURRENCES))  # each by exactly one process

    with SqlStorage.from_url(url) as storage, storage.transaction() as tx:
        occurrences = tx.list_occurrences("acme", "tpl-1")
        invoices = tx.list_invoices("acme", template_id="tpl-1")
        next_number = tx.allocate_invoice_numbers("acme", "INV")  # rolled back
    assert [o.index for o in occurrences] == list(range(OCCURRENCES))
    assert sorted(i.number for i in invoices) == list(range(1, OCCURRENCES + 1))
    assert next_number == OCCURRENCES + 1
    by_id = {i.id: i.occurrence_index for i in invoices}
    assert all(by_id[o.invoice_id or ""] == o.index for o in occurrences)


@pytest.mark.slow
def test_processes_on_one_sqlite_file_issue_each_occurrence_once(
    tmp_path: Path,
) -> None:
    _race(f"sqlite:///{tmp_path / 'billing.db'}")


@pytest.mark.slow
@pytest.mark.postgres
def test_processes_on_one_postgres_database_issue_each_occurrence_once(
    fresh_postgres_url: str,
) -> None:
    _race(fresh_postgres_url)

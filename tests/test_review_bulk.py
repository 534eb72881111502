"""The bulk daily run on PostgreSQL keeps what the per-template run promised.

Found in a review of the bulk rewrite, each failed before its fix: a locking
read never touches another account's row, a template held by an edit is still
issued by the run, and parallel runs take invoice-number counters in one
order (no deadlocks).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date

import attrs
import pytest
import sqlalchemy as sa

from billing_helpers import Counter, World, at, line, make_world
from recurbill.daily import DailyRun
from recurbill.errors import InvalidSelectionError, NotFoundError
from recurbill.records import CollectionMethod
from recurbill.storage.engine import create_engine
from recurbill.storage.sql import SqlStorage

LOCK_TIMEOUT = 2.0


@pytest.fixture
def pg_world(fresh_postgres_url: str) -> Iterator[World]:
    """A world on a PostgreSQL database of its own, with a short lock timeout."""
    with SqlStorage.from_url(fresh_postgres_url, lock_timeout=LOCK_TIMEOUT) as storage:
        storage.migrate()
        yield make_world(storage=storage)


def _other_account_invoice(world: World) -> str:
    """An open invoice of a second account, ``other``."""
    other = world.billing.create_account(
        account_id="other",
        name="Annen Klinikk AS",
        currency="NOK",
        locale="nb_NO",
        timezone="Europe/Oslo",
        summary_email="post@annen.no",
    )
    ola = world.billing.add_customer(
        other.id,
        name="Ola Nordmann",
        email="ola@example.no",
        collection_method=CollectionMethod.SEND_INVOICE,
    )
    outcome = world.billing.record_session(
        other.id, ola.id, lines=[line("500")], now=at(date(2027, 3, 1))
    )
    return outcome.invoice.id


def test_locking_read_of_another_accounts_invoice_is_not_found_at_once(
    pg_world: World,
) -> None:
    foreign = _other_account_invoice(pg_world)
    storage = pg_world.storage
    with storage.transaction() as holder:
        # the other account is applying a payment to its invoice right now
        holder.get_invoice("other", foreign, for_update=True)
        with storage.transaction() as tx:
            started = time.monotonic()
            with pytest.raises(NotFoundError):
                tx.get_invoice(pg_world.account.id, foreign, for_update=True)
            assert time.monotonic() - started < LOCK_TIMEOUT / 2


def test_not_found_locking_read_leaves_another_accounts_row_unlocked(
    pg_world: World,
) -> None:
    foreign = _other_account_invoice(pg_world)
    storage = pg_world.storage
    with storage.transaction() as tx:
        with pytest.raises(NotFoundError):
            tx.get_invoice(pg_world.account.id, foreign, for_update=True)
        # the transaction goes on, as MassPayment._plan does after NotFoundError
        with storage.transaction() as owner:
            locked = owner.get_invoice("other", foreign, for_update=True)
            assert locked.id == foreign


def test_mass_pay_with_another_accounts_invoice_id_is_refused_not_blocked(
    pg_world: World,
) -> None:
    foreign = _other_account_invoice(pg_world)
    kari = pg_world.customer()
    with pg_world.storage.transaction() as tx:
        (card,) = tx.list_payment_methods(pg_world.account.id, kari.id)
    with pg_world.storage.transaction() as holder:
        holder.get_invoice("other", foreign, for_update=True)
        with pytest.raises(InvalidSelectionError):
            pg_world.billing.mass_pay(
                pg_world.account.id,
                kari.id,
                [foreign],
                payment_method_id=card.id,
                now=at(date(2027, 3, 2)),
            )


def test_run_issues_a_due_template_that_an_edit_holds_locked_meanwhile(
    pg_world: World,
) -> None:
    kari = pg_world.customer()
    template_id = pg_world.template(kari, start=date(2027, 3, 1))
    account_id = pg_world.account.id
    locked, failed = threading.Event(), []

    def edit() -> None:
        # what change_template does, slowly: lock, change the memo, commit
        try:
            with pg_world.storage.transaction() as tx:
                template = tx.get_template(account_id, template_id, for_update=True)
                locked.set()
                time.sleep(LOCK_TIMEOUT / 2)
                tx.update_template(attrs.evolve(template, memo="March and on"))
                tx.commit()
        except BaseException as error:  # reported below
            failed.append(error)
            locked.set()

    editor = threading.Thread(target=edit)
    editor.start()
    try:
        assert locked.wait(10)
        (report,) = pg_world.billing.run(at(date(2027, 3, 1)), send_summaries=False)
    finally:
        editor.join(30)
    assert not failed
    assert [issued.issue_date for issued in report.issued] == [date(2027, 3, 1)]


def test_parallel_runs_on_postgresql_do_not_deadlock(fresh_postgres_url: str) -> None:
    with SqlStorage.from_url(fresh_postgres_url) as storage:
        storage.migrate()
        world = make_world(storage=storage)
        billing = world.billing
        customers = []
        for n in range(6):
            account = billing.create_account(
                account_id=f"acc{n}",
                name=f"Klinikk {n} AS",
                currency="NOK",
                timezone="Europe/Oslo",
                summary_email=f"post@klinikk{n}.no",
            )
            customers.append(
                billing.add_customer(
                    account.id,
                    name=f"Kari {n}",
                    email=f"kari{n}@example.no",
                    collection_method=CollectionMethod.SEND_INVOICE,
                )
            )
        for n in range(240):
            # accounts interleaved, so chunks name them in different orders
            customer = customers[(n * 7 + n // 6) % 6]
            billing.create_template(
                customer.account_id,
                customer.id,
                lines=[line()],
                start=date(2027, 3, 1),
                period="month",
                now=at(date(2027, 2, 1)),
            )
        errors: list[BaseException] = []
        start = threading.Barrier(4)

        def work() -> None:
            run = DailyRun(
                storage=storage,
                collector=billing._collector,
                ids=Counter(),
                chunk_size=3,
            )
            start.wait()
            try:
                run.run(at(date(2027, 3, 1)), send_summaries=False)
            except BaseException as error:  # reported below
                errors.append(error)

        workers = [threading.Thread(target=work) for _ in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(120)
        with storage.transaction() as tx:
            issued = sum(len(tx.list_invoices(c.account_id)) for c in customers)
    # the storage's connections are closed now, so their statistics are in
    deadlocks = 0
    engine = create_engine(fresh_postgres_url)
    try:
        for _ in range(20):
            with engine.connect() as conn:
                deadlocks = conn.execute(
                    sa.text(
                        "SELECT deadlocks FROM pg_stat_database "
                        "WHERE datname = current_database()"
                    )
                ).scalar_one()
            if deadlocks:
                break
            time.sleep(0.1)
    finally:
        engine.dispose()
    assert not errors
    assert issued == 240
    assert deadlocks == 0

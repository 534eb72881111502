"""A customer's screens read while the daily run holds SQLite's write lock.

The run takes the write lock for each chunk it issues. The overview, a
template's history and the mass-payment quote only read, so they open
read-only units of work: on SQLite (WAL) they read the last committed state
beside the writer instead of queueing behind it, and never time out on it.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from billing_helpers import at, line, make_world
from recurbill.errors import ConflictError
from recurbill.records import CollectionMethod
from recurbill.storage.sql import SqlStorage
from recurbill.testing.storage import make_customer


def test_customer_screens_read_beside_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "billing.db"
    with (
        SqlStorage.sqlite(path, lock_timeout=0.2) as storage,
        SqlStorage.sqlite(path, lock_timeout=0.2) as run_side,
    ):
        storage.migrate()
        world = make_world(storage=storage)
        customer = world.customer(card=None, method=CollectionMethod.SEND_INVOICE)
        template_id = world.template(customer, start=date(2027, 1, 10))
        world.billing.run(at(date(2027, 1, 10), 7))
        session = world.billing.record_session(
            world.account.id, customer.id, lines=[line()], now=at(date(2027, 1, 11))
        )
        invoice_ids = [i.id for i in world.storage_invoices()]
        assert len(invoice_ids) == 2

        with run_side.transaction() as chunk:  # a run's chunk: the write lock
            chunk.add_customer(make_customer("held", account_id=world.account.id))
            overview = world.billing.overview(
                world.account.id, customer.id, on=date(2027, 1, 12)
            )
            view = world.billing.template_view(world.account.id, template_id)
            plan = world.billing.plan_mass_payment(
                world.account.id, customer.id, invoice_ids
            )
            with pytest.raises(ConflictError):  # a write waits, then gives up
                world.billing.record_session(
                    world.account.id,
                    customer.id,
                    lines=[line()],
                    now=at(date(2027, 1, 12)),
                )

        assert sorted(i.id for i in overview.open) == sorted(invoice_ids)
        assert [i.id for i in view.invoices] == [invoice_ids[0]]
        assert view.upcoming[0].occurrence.on == date(2027, 2, 10)
        assert plan.total == sum(
            (i.outstanding for i in overview.open), start=plan.total * 0
        )
        assert session.invoices[0].id in invoice_ids

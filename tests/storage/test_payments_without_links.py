"""Payments stored by a process of a version before 12 (no rows in
``payment_invoices``) are still found by their invoice, so a payment
decision never misses one in flight; and the invoice filter holds whatever
an adapter makes of ``invoice_id``."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from recurbill.records import Payment, PaymentStatus
from recurbill.storage import schema
from recurbill.storage.protocol import invoice_payments
from recurbill.storage.sql import SqlStorage
from recurbill.testing.storage import (
    make_account,
    make_customer,
    make_invoice,
    make_payment,
    make_payment_method,
)


def _ids(payments: list[Payment]) -> list[str]:
    return [p.id for p in payments]


def test_a_payment_without_index_rows_is_found_by_its_invoice(
    sql_storage: SqlStorage,
) -> None:
    with sql_storage.transaction() as tx:
        tx.add_account(make_account())
        tx.add_customer(make_customer())
        tx.add_customer(make_customer("cust-2"))
        tx.add_payment_method(make_payment_method())
        tx.add_invoices([make_invoice(), make_invoice("inv-2", number=2)])
        tx.add_payments(
            [
                make_payment("pay-old", invoice_ids=("inv-1",)),
                make_payment("pay-other", invoice_ids=("inv-2",)),
                make_payment("pay-new", invoice_ids=("inv-1",)),
            ]
        )
        tx.commit()
    with sql_storage.engine.begin() as conn:  # as a version-11 process stores it
        links = schema.payment_invoices
        conn.execute(
            sa.delete(links).where(links.c.payment_id.in_(["pay-old", "pay-other"]))
        )
    with sql_storage.transaction(read_only=True) as tx:
        assert _ids(
            tx.list_payments("acme", customer_id="cust-1", invoice_id="inv-1")
        ) == ["pay-new", "pay-old"]  # oldest first, then by id
        assert _ids(
            tx.list_payments("acme", customer_id="cust-1", invoice_id="inv-2")
        ) == ["pay-other"]
        assert tx.list_payments("acme", customer_id="cust-2", invoice_id="inv-1") == []
        in_flight = invoice_payments(
            tx, "acme", "cust-1", "inv-1", statuses=[PaymentStatus.PENDING]
        )
        assert _ids(in_flight) == ["pay-new", "pay-old"]


class _FiltersTx:
    """An adapter's transaction whose read takes ``**filters`` and applies
    only the ones it knows (not ``invoice_id``)."""

    def __init__(self, payments: list[Payment]) -> None:
        self.payments = payments

    def list_payments(
        self, account_id: str | None = None, **filters: Any
    ) -> list[Payment]:
        customer = filters.get("customer_id")
        return [p for p in self.payments if customer in (None, p.customer_id)]


def test_an_adapter_that_ignores_invoice_id_gives_only_the_invoices_payments() -> None:
    tx = _FiltersTx(
        [
            make_payment("pay-a", invoice_ids=("inv-a",)),
            make_payment("pay-b", invoice_ids=("inv-b", "inv-a")),
        ]
    )
    found = invoice_payments(tx, "acme", "cust-1", "inv-b")  # type: ignore[arg-type]
    assert _ids(found) == ["pay-b"]

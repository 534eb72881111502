"""Credit used by two calls at once is used once.

Both calls lock the customer's open invoices before reading the balance, so
the second one, on its own database connection, sees what the first used.
"""

from __future__ import annotations

import threading
from datetime import date
from typing import Any

from billing_helpers import Counter, at, line
from recurbill.billing import Billing
from recurbill.money import Money
from recurbill.payments.memory import InMemoryGateway
from recurbill.records import CollectionMethod
from recurbill.storage.sql import SqlStorage


def test_credit_used_by_two_calls_at_once_is_used_once(sql_storage: SqlStorage) -> None:
    billing = Billing(storage=sql_storage, gateway=InMemoryGateway(), ids=Counter())
    account = billing.create_account(
        account_id="fjord",
        name="Fjord Fysio AS",
        currency="NOK",
        summary_email="post@fjordfysio.no",
    )
    kari = billing.add_customer(
        account.id,
        name="Kari",
        email="kari@example.no",
        collection_method=CollectionMethod.SEND_INVOICE,
    )
    now = at(date(2027, 3, 1))
    billing.record_bank_transfer(
        account.id, kari.id, amount=Money("1000", "NOK"), now=now, reference="b1"
    )
    for day in range(2, 6):  # four invoices of 1000 NOK, 1000 NOK of credit
        billing.record_session(
            account.id, kari.id, lines=[line("800")], now=at(date(2027, 3, day))
        )
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def use() -> None:
        barrier.wait()
        results.append(billing.apply_credit(account.id, kari.id, now=now))

    threads = [threading.Thread(target=use) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    used = sum((r.applied for r in results), Money.zero("NOK"))
    assert used == Money("1000", "NOK")
    overview = billing.overview(account.id, kari.id, on=date(2027, 3, 6))
    assert overview.credit_balance == Money.zero("NOK")
    assert overview.total_open == Money("3000", "NOK")

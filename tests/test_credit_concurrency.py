"""Credit used by two calls at once is used once.

Both calls lock the customer's open invoices before reading the balance, so
the second one, on its own database connection, sees what the first used.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import date
from typing import Any

from billing_helpers import Counter, at, line, together
from recurbill.billing import Billing
from recurbill.money import Money
from recurbill.payments.memory import InMemoryGateway
from recurbill.records import Account, CollectionMethod, Customer
from recurbill.storage.sql import SqlStorage


def _kari(billing: Billing) -> tuple[Account, Customer]:
    """Account fjord and its customer Kari, who pays by invoice."""
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
    return account, kari


def test_credit_used_by_two_calls_at_once_is_used_once(sql_storage: SqlStorage) -> None:
    billing = Billing(storage=sql_storage, gateway=InMemoryGateway(), ids=Counter())
    account, kari = _kari(billing)
    now = at(date(2027, 3, 1))
    billing.record_bank_transfer(
        account.id, kari.id, amount=Money("1000", "NOK"), now=now, reference="b1"
    )
    for day in range(2, 6):  # four invoices of 1000 NOK, 1000 NOK of credit
        billing.record_session(
            account.id, kari.id, lines=[line("800")], now=at(date(2027, 3, day))
        )
    barrier = threading.Barrier(2)

    def use() -> Any:
        barrier.wait()
        return billing.apply_credit(account.id, kari.id, now=now)

    results = together(use, use)
    assert not [r for r in results if isinstance(r, Exception)], results
    used = sum((r.applied for r in results), Money.zero("NOK"))
    assert used == Money("1000", "NOK")
    overview = billing.overview(account.id, kari.id, on=date(2027, 3, 6))
    assert overview.credit_balance == Money.zero("NOK")
    assert overview.total_open == Money("3000", "NOK")


class _Backwards:
    """Ids that sort against creation order: a later invoice has a smaller id."""

    def __init__(self) -> None:
        self.made = 0

    def __call__(self, prefix: str) -> str:
        self.made += 1
        return f"{prefix}_{10_000 - self.made:05d}"


class _SlowLocks:
    """A storage whose transactions pause after each single-invoice lock."""

    def __init__(self, inner: SqlStorage) -> None:
        self.inner = inner

    @contextlib.contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[Any]:
        with self.inner.transaction(read_only=read_only) as tx:
            yield _SlowLockTransaction(tx)


class _SlowLockTransaction:
    def __init__(self, tx: Any) -> None:
        self._tx = tx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    def get_invoice(self, account_id: str, invoice_id: str, **kw: Any) -> Any:
        found = self._tx.get_invoice(account_id, invoice_id, **kw)
        if kw.get("for_update"):
            time.sleep(0.3)  # holds this lock while the other caller takes its own
        return found


def test_credit_and_a_mass_payment_at_once_lock_in_one_order(
    sql_storage: SqlStorage,
) -> None:
    """Both lock the customer's invoices in id order, never waiting on each other
    in a circle (PostgreSQL would abort one of them as a deadlock)."""
    billing = Billing(storage=sql_storage, gateway=InMemoryGateway(), ids=_Backwards())
    account, kari = _kari(billing)
    card = billing.save_card(account.id, kari.id, token="pm_card_visa")
    now = at(date(2027, 3, 1))
    billing.record_bank_transfer(
        account.id, kari.id, amount=Money("100", "NOK"), now=now, reference="b1"
    )
    invoices = [
        billing.record_session(
            account.id, kari.id, lines=[line("800")], now=at(date(2027, 3, day))
        ).invoice.id
        for day in (2, 3)
    ]
    slow = Billing(
        storage=_SlowLocks(sql_storage),  # type: ignore[arg-type]
        gateway=billing.gateway,
        ids=billing.ids,
    )
    results = together(
        lambda: slow.mass_pay(
            account.id, kari.id, invoices, payment_method_id=card.id, now=now
        ),
        lambda: billing.apply_credit(account.id, kari.id, now=now),
        stagger=0.1,  # the mass payment holds its first lock
    )
    assert not [r for r in results if isinstance(r, Exception)], results

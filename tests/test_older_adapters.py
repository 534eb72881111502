"""A storage adapter written before ``list_payments`` took ``invoice_id`` and
``list_receipts`` took ``payment_id`` keeps working.

Paying an invoice, its outcome and receipt, its retries, voiding it, a mass
payment's confirmation and refunds read an invoice's payments and a
payment's receipt with those filters; with an adapter that lacks them,
recurbill reads the customer's payments and receipts and filters them
itself, as before. The same calls on the same adapter with the filters give
the same results.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Any

import pytest

from billing_helpers import World, at, line, make_world
from recurbill.collection import RetryPolicy
from recurbill.money import Money
from recurbill.records import InvoiceStatus, Payment, PaymentStatus, Receipt
from recurbill.storage.memory import InMemoryStorage

DAY = date(2027, 1, 4)
DECLINES = "pm_card_visa_chargeDeclinedInsufficientFunds"


class _Before12Transaction:
    """The reads of payments and receipts as they were before schema
    version 12 (no ``invoice_id``, no ``payment_id``); the rest as it is."""

    def __init__(self, inner: Any, asked: list[str]) -> None:
        self._inner, self._asked = inner, asked

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def list_payments(
        self,
        account_id: str | None = None,
        *,
        customer_id: str | None = None,
        statuses: Sequence[PaymentStatus] | None = None,
        skip_ids: Sequence[str] = (),
    ) -> list[Payment]:
        self._asked.append("list_payments")
        return self._inner.list_payments(  # type: ignore[no-any-return]
            account_id, customer_id=customer_id, statuses=statuses, skip_ids=skip_ids
        )

    def list_receipts(self, account_id: str, customer_id: str) -> list[Receipt]:
        self._asked.append("list_receipts")
        return self._inner.list_receipts(  # type: ignore[no-any-return]
            account_id, customer_id
        )


class _Before12Storage:
    def __init__(self) -> None:
        self.inner = InMemoryStorage()
        self.asked: list[str] = []

    @contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[_Before12Transaction]:
        with self.inner.transaction(read_only=read_only) as tx:
            yield _Before12Transaction(tx, self.asked)


def _world(*, older: bool) -> World:
    storage = _Before12Storage() if older else InMemoryStorage()
    return make_world(
        storage=storage,  # type: ignore[arg-type]
        retry_policy=RetryPolicy((3, 5, 7)),
    )


def _story(world: World) -> list[object]:
    """Pay, retry, void, mass-pay and refund; what each call returned."""
    account = world.account.id
    kari = world.customer("Kari")
    ola = world.customer("Ola", card=DECLINES)
    outcomes: list[object] = []
    for n in range(3):  # Kari's history: three sessions, each paid at once
        outcomes.append(
            world.billing.record_session(
                account, kari.id, lines=[line()], now=at(DAY - timedelta(days=n + 1))
            )
        )
    world.template(ola, start=DAY)
    outcomes += world.billing.run(at(DAY, 7))  # Ola declined
    world.billing.save_card(account, ola.id, token="pm_card_visa")
    outcomes += world.billing.run(at(DAY + timedelta(days=3), 7))  # the retry
    owed = world.billing.record_session(
        account, ola.id, lines=[line()], now=at(DAY + timedelta(days=3), 9)
    )
    outcomes.append(owed)
    world.billing.set_collection_method(account, kari.id, "send_invoice")
    open_ = [
        world.billing.record_session(
            account, kari.id, lines=[line()], now=at(DAY + timedelta(days=4), h)
        ).invoice.id
        for h in (8, 9, 10)
    ]
    (card,) = world.billing.overview(account, kari.id, on=DAY).payment_methods
    now = at(DAY + timedelta(days=5))
    paid = world.billing.pay(account, open_[0], payment_method_id=card.id, now=now)
    outcomes.append(paid)
    outcomes.append(world.billing.void_invoice(account, open_[1], now=now))
    mass = world.billing.mass_pay(
        account, kari.id, [open_[2]], payment_method_id=card.id, now=now
    )
    outcomes.append(world.billing.mass_payment(account, mass.settlement.id))
    assert paid.payment is not None
    outcomes.append(
        world.billing.refund(
            account, paid.payment.id, amount=Money("10", "NOK"), now=now
        )
    )
    outcomes.append(world.billing.overview(account, kari.id, on=now.date()))
    return outcomes


def test_pay_retry_void_mass_pay_and_refund_read_alike_on_an_older_adapter() -> None:
    older, current = _world(older=True), _world(older=False)
    assert _story(older) == _story(current)
    with older.storage.transaction() as tx:
        invoices = tx.list_invoices(older.account.id)
    statuses = sorted(i.status.value for i in invoices)
    assert statuses.count(InvoiceStatus.VOID.value) == 1
    assert len(older.gateway.ledger) == len(current.gateway.ledger) == 7
    asked = older.storage.asked  # type: ignore[attr-defined]
    assert {"list_payments", "list_receipts"} <= set(asked)


@pytest.mark.parametrize("older", [True, False], ids=["older", "current"])
def test_the_retry_is_made_once_on_either_adapter(older: bool) -> None:
    world = _world(older=older)
    ola = world.customer("Ola", card=DECLINES)
    world.template(ola, start=DAY)
    world.billing.run(at(DAY, 7))
    world.billing.save_card(world.account.id, ola.id, token="pm_card_visa")
    world.billing.run(at(DAY + timedelta(days=3), 7))
    world.billing.run(at(DAY + timedelta(days=4), 7))
    assert sorted((p.attempt, p.status) for p in world.payments()) == [
        (1, PaymentStatus.DECLINED),
        (2, PaymentStatus.SUCCEEDED),
    ]

"""Refunds of one payment made at the same time: each amount is taken back once.

Two threads on separate database connections refund the same payment while
the gateway holds both calls at a barrier, so both reach the point where the
answer is applied together. The payment's row lock makes them apply one after
the other: the invoices end owing exactly what went back to the card.
"""

from __future__ import annotations

import threading
from datetime import date
from functools import partial
from typing import Any

from billing_helpers import Counter, HeldRefunds, at, line, together
from recurbill.billing import Billing
from recurbill.money import Money
from recurbill.payments.memory import InMemoryGateway
from recurbill.records import CollectionMethod
from recurbill.storage.sql import SqlStorage

NOW = at(date(2027, 3, 1), 10)


def _paid(billing: Billing, prices: tuple[str, ...]) -> tuple[str, str]:
    """Invoices at *prices* paid by one mass payment: (account id, payment id)."""
    account = billing.create_account(
        account_id="fjord",
        name="Fjord Fysio AS",
        currency="NOK",
        summary_email="post@fjordfysio.no",
        timezone="Europe/Oslo",
    )
    customer = billing.add_customer(
        account.id,
        name="Kari",
        email="kari@example.no",
        collection_method=CollectionMethod.SEND_INVOICE,
    )
    card = billing.save_card(account.id, customer.id, token="pm_card_visa")
    invoices = [
        billing.record_session(
            account.id, customer.id, lines=[line(price)], now=NOW
        ).invoice.id
        for price in prices
    ]
    confirmation = billing.mass_pay(
        account.id, customer.id, invoices, payment_method_id=card.id, now=NOW
    )
    assert confirmation.payment is not None
    return account.id, confirmation.payment.id


def _assert_taken_back_once(
    sql_storage: SqlStorage, gateway: InMemoryGateway, account_id: str, payment_id: str
) -> Money:
    """What the invoices still hold equals the payment less what went back."""
    returned = sum(
        (r.amount for r in gateway.refunds if r.status == "succeeded"),
        Money.zero("NOK"),
    )
    with sql_storage.transaction() as tx:
        payment = tx.get_payment(account_id, payment_id)
        stored = sum(
            (r.amount for r in tx.list_refunds(account_id) if r.status == "succeeded"),
            Money.zero("NOK"),
        )
        invoices = tx.list_invoices(account_id)
    assert stored == returned
    for invoice in invoices:
        assert Money.zero("NOK") <= invoice.paid <= invoice.total, invoice
    held = sum((i.paid for i in invoices), Money.zero("NOK"))
    assert held == payment.amount - returned
    return returned


def test_a_refund_finished_by_two_calls_at_once_is_applied_once(
    sql_storage: SqlStorage,
) -> None:
    gateway = HeldRefunds()
    billing = Billing(storage=sql_storage, gateway=gateway, ids=Counter())
    account_id, payment_id = _paid(billing, ("800",))
    gateway.barrier = threading.Barrier(2)
    first_saved = threading.Event()

    def first() -> Any:
        return billing.refund(
            account_id, payment_id, amount=Money("300", "NOK"), now=NOW
        )

    def retry() -> Any:  # a double click: it finds the first refund unanswered
        while not first_saved.is_set():
            with sql_storage.transaction() as tx:
                if tx.list_refunds(account_id):
                    first_saved.set()
        return billing.refund(account_id, payment_id, now=NOW)

    results = together(first, retry)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert _assert_taken_back_once(
        sql_storage, gateway, account_id, payment_id
    ) == Money("300", "NOK")


def test_two_partial_refunds_at_once_take_different_slices(
    sql_storage: SqlStorage,
) -> None:
    gateway = HeldRefunds()
    billing = Billing(storage=sql_storage, gateway=gateway, ids=Counter())
    account_id, payment_id = _paid(billing, ("100", "200", "300"))
    gateway.barrier = threading.Barrier(2)
    for reopen in (True, False):
        refund = partial(
            billing.refund,
            account_id,
            payment_id,
            amount=Money("150", "NOK"),
            reopen=reopen,
            now=NOW,
        )
        results = together(refund, refund)
        assert not [r for r in results if isinstance(r, Exception)], results
        _assert_taken_back_once(sql_storage, gateway, account_id, payment_id)

"""Money received outside the card flow, and the customer credit it leaves.

A bank transfer is spread over the customer's open invoices, oldest due date
first, and what is left becomes credit; credit is later used on open invoices
the same way. Both lock the open invoices before reading the balance, so two
calls at once never use one amount twice. A transfer that settles an invoice
whose card payment waits for the customer's authentication cancels that
payment first (:meth:`~recurbill.collection.Collector.close_way`); credit is
never used on such an invoice. Either one that settles an invoice withdraws
its unsent "payment failed" notices
(:func:`~recurbill.notices.withdraw_failed_notices`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import attrs

from recurbill.arguments import aware, caller_key, positive_money, record_id
from recurbill.collection import Collector, paying, refuse_waiting
from recurbill.errors import StateError
from recurbill.ids import IdFactory, derived_id
from recurbill.money import Money
from recurbill.notices import withdraw_failed_notices
from recurbill.records import CreditEntry, Invoice, InvoiceStatus
from recurbill.settlement import AllocationResult, allocate_payment
from recurbill.storage.protocol import Storage, Transaction, stored_or_none

__all__ = ["Credits"]


@attrs.define
class Credits:
    """Bank transfers and customer credit; see the methods of ``Billing``."""

    storage: Storage
    ids: IdFactory
    collector: Collector

    def record_transfer(
        self,
        account_id: str,
        customer_id: str,
        *,
        amount: Money,
        now: datetime,
        reference: str,
    ) -> AllocationResult:
        """Spread *amount* over the open invoices; the rest becomes credit.

        A *reference* the account recorded already, for this customer or
        another, raises :class:`StateError` naming that customer, applying
        nothing. A payment of an invoice it settles that waits for the
        customer's authentication is canceled first (see
        :meth:`Collector.close_way`); one without an outcome is left alone.
        """
        aware(now, "now")
        entry_id = derived_id(
            "crd",
            record_id(account_id, "account_id"),
            "transfer",
            caller_key(reference, "reference", one_per="bank transfer"),
        )

        def settles(tx: Transaction, open_: list[Invoice]) -> AllocationResult:
            """The transfer spread over *open_*, unless its reference or
            amount is refused."""
            _refuse_recorded(tx, account_id, entry_id, reference)
            account = tx.get_account(account_id)
            money = positive_money(amount, account.currency, "transfer amount")
            return allocate_payment(money, open_)

        def closing() -> list[str]:
            with self.storage.transaction(read_only=True) as tx:
                open_ = _open_invoices(tx, account_id, customer_id, lock=False)
                return _settled(settles(tx, open_))

        self.collector.close_way(account_id, customer_id, closing, now=now)
        with self.storage.transaction() as tx:
            open_ = _open_invoices(tx, account_id, customer_id, lock=True)
            result = settles(tx, open_)
            by_id = {invoice.id: invoice for invoice in open_}
            refuse_waiting(
                tx, [by_id[i] for i in _settled(result)], "record the transfer"
            )
            _pay(tx, open_, result, now)
            tx.add_credit_entry(
                CreditEntry(
                    id=entry_id,
                    account_id=account_id,
                    customer_id=customer_id,
                    amount=result.credit,
                    reason=f"bank transfer {reference}",
                    source_id=reference,
                    created_at=now,
                )
            )
            tx.commit()
        return result

    def apply(
        self, account_id: str, customer_id: str, *, now: datetime
    ) -> AllocationResult:
        """Use the customer's credit on their open invoices, oldest due first.

        Invoices with a payment in progress are left out (its charge may still
        succeed). What is used is one negative credit entry. ``total`` in the
        result is the balance before the call and ``credit`` the balance after
        it, as the overview shows it. A balance below zero (a refund took back
        credit already used: the customer owes it) has nothing to use: both are
        that balance and nothing changes, as without credit or open invoices.
        """
        aware(now, "now")
        with self.storage.transaction() as tx:
            open_ = _open_invoices(tx, account_id, customer_id, lock=True)
            account = tx.get_account(account_id)
            zero = Money.zero(account.currency)
            balance = sum(
                (e.amount for e in tx.list_credit_entries(account_id, customer_id)),
                zero,
            )
            if balance < zero:  # owed, not credit: nothing to use
                return AllocationResult(allocations=(), credit=balance, total=balance)
            busy = paying(tx, account_id, customer_id)
            free = [invoice for invoice in open_ if invoice.id not in busy]
            result = allocate_payment(balance, free)
            if result.allocations:
                _pay(tx, open_, result, now)
                numbers = ", ".join(a.invoice_number for a in result.allocations)
                tx.add_credit_entry(
                    CreditEntry(
                        id=self.ids("crd"),
                        account_id=account_id,
                        customer_id=customer_id,
                        amount=-result.applied,
                        reason=f"credit used on {numbers}",
                        source_id=result.allocations[0].invoice_id,
                        created_at=now,
                    )
                )
                tx.commit()
        return result


def _refuse_recorded(
    tx: Transaction, account_id: str, entry_id: str, reference: str
) -> None:
    """Refuse a transfer whose reference the account recorded already, for
    this customer or another (StateError naming that customer)."""
    recorded = stored_or_none(tx.get_credit_entry, account_id, entry_id)
    if recorded is None:
        return
    raise StateError(
        problem=f"bank transfer {reference!r} was already recorded "
        f"(for customer {recorded.customer_id!r})",
        allowed="record each transfer once, under its own reference",
    )


def _open_invoices(
    tx: Transaction, account_id: str, customer_id: str, *, lock: bool
) -> list[Invoice]:
    """The customer's open invoices; with *lock*, locked until the
    transaction ends.

    Locked in id order, as every other locker of several invoices does, so
    two of them never deadlock. One that was paid before its lock came is
    left out.
    """
    tx.get_customer(account_id, customer_id)
    listed = tx.list_invoices(
        account_id, customer_id=customer_id, status=InvoiceStatus.OPEN
    )
    if not lock:
        return listed
    locked = tx.get_invoices(
        account_id, sorted(invoice.id for invoice in listed), for_update=True
    )
    return [invoice for invoice in locked if invoice.status is InvoiceStatus.OPEN]


def _settled(result: AllocationResult) -> list[str]:
    """The ids of the invoices *result* settles."""
    return [a.invoice_id for a in result.allocations if a.settles]


def _pay(
    tx: Transaction,
    invoices: Sequence[Invoice],
    result: AllocationResult,
    now: datetime,
) -> None:
    """Add each allocation of *result* to what its invoice has been paid,
    withdrawing the "payment failed" notices of those it settles."""
    by_id = {invoice.id: invoice for invoice in invoices}
    paid = []
    for allocation in result.allocations:
        invoice = by_id[allocation.invoice_id]
        settled = allocation.settles
        paid.append(
            attrs.evolve(
                invoice,
                paid=invoice.paid + allocation.amount,
                status=InvoiceStatus.PAID if settled else InvoiceStatus.OPEN,
                paid_at=now if settled else invoice.paid_at,
            )
        )
        tx.update_invoice(paid[-1])
    withdraw_failed_notices(tx, paid)

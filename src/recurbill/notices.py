"""The customer notices about a payment's status ("confirm your payment",
"payment failed"): their ids, derived from the payment, and their withdrawal
once what they say no longer holds, in the transaction that changes it."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

import attrs

from recurbill.errors import InvalidInputError, NotFoundError, UnreadableRecordError
from recurbill.ids import automatic_charge_id, derived_id
from recurbill.records import (
    UNSENT,
    Invoice,
    InvoiceStatus,
    Notification,
    NotificationStatus,
    Payment,
    PaymentStatus,
)
from recurbill.storage.protocol import Transaction

__all__ = [
    "NEEDS_ACTION",
    "NOTICE_WHILE",
    "PAYMENT_FAILED",
    "needs_action_notice_id",
    "payment_notice_id",
    "stored_notice",
    "withdraw",
    "withdraw_failed_notices",
]

NEEDS_ACTION = "payment_needs_action"
"""The kind of the notice asking the customer to confirm a payment (3-D Secure)."""
PAYMENT_FAILED = "payment_failed"
"""The kind of the notice that an automatic charge failed for good."""
NOTICE_WHILE = {
    PaymentStatus.REQUIRES_ACTION: NEEDS_ACTION,
    PaymentStatus.DECLINED: PAYMENT_FAILED,
}
"""The notice an off-session payment in each status may have queued: what it
says holds only while the payment stays in that status."""


def payment_notice_id(payment: Payment, kind: str) -> str:
    """The id of *payment*'s notice of *kind* (:data:`NEEDS_ACTION` or
    :data:`PAYMENT_FAILED`): one per payment and kind, so the notice is found
    again once the payment leaves the status it tells of."""
    if kind not in NOTICE_WHILE.values():
        raise InvalidInputError(
            problem=f"{kind!r} is not the kind of a notice about a payment's status",
            allowed=f"give {NEEDS_ACTION!r} or {PAYMENT_FAILED!r}",
        )
    return derived_id("ntf", payment.account_id, payment.id, kind)


def needs_action_notice_id(payment: Payment) -> str:
    """The id of *payment*'s "needs confirmation" notice:
    ``payment_notice_id(payment, NEEDS_ACTION)``."""
    return payment_notice_id(payment, NEEDS_ACTION)


def stored_notice(
    tx: Transaction, payment: Payment, kind: str
) -> Notification | str | None:
    """*payment*'s stored notice of *kind*, locked; None if there is none
    (or one an older version queued under another id), its id if its row
    cannot be read back (delivery sends no such row)."""
    key = payment_notice_id(payment, kind)
    try:
        return tx.get_notification(payment.account_id, key, for_update=True)
    except NotFoundError:
        return None
    except UnreadableRecordError:
        return key


def withdraw(tx: Transaction, payment: Payment, kind: str) -> None:
    """Withdraw *payment*'s notice of *kind* in *tx*, unless it was sent."""
    note = stored_notice(tx, payment, kind)
    if isinstance(note, Notification) and note.status in UNSENT:
        tx.update_notification(attrs.evolve(note, status=NotificationStatus.WITHDRAWN))


def withdraw_failed_notices(tx: Transaction, closed: Iterable[Invoice]) -> None:
    """Withdraw every unsent "payment failed" notice of a payment of the
    *closed* invoices, in *tx*, the transaction that closes them.

    Such a notice says its invoice stays open; once the invoice is paid
    (another payment, a bank transfer, credit), credited in full, voided or
    written off, that no longer holds, so every path that closes an invoice
    calls this. An invoice still open (a part payment, a partial credit
    note) is passed over: its notice holds. Only automatic charges (of one
    invoice each, never a mass payment) queue the notice, so each closed
    invoice's attempts are looked up by id
    (:func:`~recurbill.ids.automatic_charge_id`): what this reads grows
    with those attempts, not with the customer's other payments.
    """
    closing = {
        (invoice.account_id, invoice.id)
        for invoice in closed
        if invoice.status is not InvoiceStatus.OPEN
    }
    for account_id, invoice_id in sorted(closing):
        for payment in _attempts(tx, account_id, invoice_id):
            if (
                payment.status is PaymentStatus.DECLINED
                and payment.off_session
                and invoice_id in payment.invoice_ids
            ):
                withdraw(tx, payment, PAYMENT_FAILED)


def _attempts(tx: Transaction, account_id: str, invoice_id: str) -> Iterator[Payment]:
    """The invoice's automatic charges whose rows can be read, attempt by
    attempt (:func:`~recurbill.ids.automatic_charge_id`), up to the first
    attempt not stored: a retry is stored only after the attempt before it."""
    for attempt in itertools.count(1):
        payment_id = automatic_charge_id(account_id, invoice_id, attempt)
        try:
            payment = tx.get_payment(account_id, payment_id)
        except NotFoundError:
            return
        except UnreadableRecordError:
            continue  # left out, and its notice with it
        yield payment

"""Corrections after an invoice was issued: voids, credit notes and refunds.

A refund is saved before the gateway is called and finished with the same
idempotency key if its answer was lost. Taking back what a payment paid
follows one order, so nothing is given back twice: first the customer credit
the payment created, then its invoices, the last one it paid first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import attrs

from recurbill.arguments import (
    aware,
    caller_key,
    differ,
    positive_money,
    record_id,
)
from recurbill.collection import (
    NO_OUTCOME,
    Collector,
    local_date,
    paying_invoice,
    refuse_waiting,
)
from recurbill.errors import (
    ConflictError,
    CreditExceedsInvoiceError,
    GatewayAuthenticationError,
    GatewayError,
    GatewayUnavailableError,
    InvalidInputError,
    NotFoundError,
    RecurbillError,
    StateError,
    UnreadableRecordError,
)
from recurbill.ids import IdFactory, derived_id
from recurbill.money import Money
from recurbill.notices import withdraw_failed_notices
from recurbill.payments.protocol import (
    ACCOUNT_METADATA_KEY,
    PAYMENT_METADATA_KEY,
    REFUND_METADATA_KEY,
    PaymentGateway,
    RefundResult,
)
from recurbill.records import (
    Account,
    CreditEntry,
    CreditNoteRecord,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentStatus,
    Refund,
    invoice_totals,
)
from recurbill.set_aside import SetAside, listed
from recurbill.storage.protocol import Storage, Transaction, payment_receipts

__all__ = [
    "APPLIED",
    "CREDIT_NOTE_SERIES",
    "NOT_REFUNDED",
    "REFUND_CANCELED",
    "REFUND_FAILED",
    "REFUND_PENDING",
    "REFUND_REQUESTED",
    "REFUND_REQUESTED_CREDIT",
    "REFUND_SUCCEEDED",
    "REFUND_TO_CREDIT",
    "UNANSWERED",
    "Corrections",
    "refund_metadata",
    "refund_slices",
]

CREDIT_NOTE_SERIES = "CN"
"""The number series of credit notes (reserved: no invoice series may use it)."""
REFUND_REQUESTED = "requested"
"""A refund's status between saving it and the gateway's answer (reopening)."""
REFUND_REQUESTED_CREDIT = "requested_credit"
"""The same, for a refund that credits the invoices instead of reopening them."""
UNANSWERED = (REFUND_REQUESTED, REFUND_REQUESTED_CREDIT)
"""Statuses of refunds saved but not answered by the gateway yet."""
REFUND_FAILED = "failed"
"""A refund the gateway refused: final, and not counted as refunded."""
REFUND_CANCELED = "canceled"
"""A refund the gateway canceled before paying it out: final, not counted."""
NOT_REFUNDED = (REFUND_FAILED, REFUND_CANCELED)
"""Final statuses of refunds that gave nothing back."""
REFUND_PENDING = ("pending", "requires_action")
"""Gateway statuses of refunds applied but not paid out yet: looked up again."""
REFUND_SUCCEEDED = "succeeded"
"""A refund paid out. It can still fail later (Stripe: a closed card), which
the gateway reports by webhook: :meth:`Corrections.follow`."""
APPLIED = (*REFUND_PENDING, REFUND_SUCCEEDED)
"""Statuses of refunds applied to the invoices whose money may yet not go back."""
REFUND_TO_CREDIT = "failed_to_credit"
"""A refund applied to the invoices that then failed or was canceled at the
gateway: its amount became the customer's credit. It still counts as refunded
(its part of the payment was taken back), so no later refund takes it again."""


def _refuse_while_paying(tx: Transaction, invoice: Invoice, action: str) -> None:
    """StateError if a payment of *invoice* has no outcome yet."""
    busy = paying_invoice(tx, invoice, statuses=NO_OUTCOME)
    if busy is not None:
        raise StateError(
            problem=(
                f"invoice {invoice.display_number} has a payment in "
                f"progress ({busy.status.value})"
            ),
            allowed=f"{action} once that payment has an outcome "
            "(confirm_payment asks the gateway)",
        )


def _refuse_waiting(
    tx: Transaction, invoice: Invoice, action: str, now: datetime | None
) -> None:
    """StateError if a payment of *invoice* waits for the customer's
    authentication: one started meanwhile, or (without *now*) any."""
    if now is not None:
        refuse_waiting(tx, [invoice], action)
        return
    waiting = paying_invoice(tx, invoice, statuses=[PaymentStatus.REQUIRES_ACTION])
    if waiting is not None:
        raise StateError(
            problem=f"invoice {invoice.display_number} has a payment in progress "
            "(requires_action: it waits for the customer's authentication)",
            allowed=f"give now= to cancel that payment first, or {action} once "
            "it has an outcome (confirm_payment asks the gateway)",
        )


def _credit_reduces(invoice: Invoice, amount: Money) -> Money:
    """How much a credit note of *amount* lowers what *invoice* owes, once
    the invoice may be credited by that much (else the error saying why)."""
    if invoice.status not in (InvoiceStatus.OPEN, InvoiceStatus.PAID):
        raise StateError(
            problem=f"invoice {invoice.display_number} is {invoice.status.value}",
            allowed="credit an open or paid invoice",
        )
    amount = positive_money(amount, invoice.currency, "credit amount")
    remaining = invoice.total - invoice.credited
    if amount > remaining:
        raise CreditExceedsInvoiceError(
            credit=amount, remaining=remaining, invoice=invoice.display_number
        )
    if invoice.status is not InvoiceStatus.OPEN:
        return Money.zero(invoice.currency)
    return min(amount, invoice.outstanding)


def _whole(account: Account, invoice: Invoice, amount: Money) -> dict[str, Any]:
    """The invoice's lines, allowances and charges when *amount* credits all of
    it (nothing credited before) and they give its stored total; else none."""
    if amount != invoice.total or invoice.credited.amount != 0:
        return {}
    try:
        totals = invoice_totals(
            account,
            lines=invoice.lines,
            allowances=invoice.allowances,
            charges=invoice.charges,
        )
    except InvalidInputError:  # stored by hand, not by recurbill: amount only
        return {}
    if totals.amount_due != invoice.total:
        return {}
    return {
        "lines": invoice.lines,
        "allowances": invoice.allowances,
        "charges": invoice.charges,
    }


def _locked_refund(
    tx: Transaction, payment: Payment, refund_id: str
) -> tuple[Payment, Refund]:
    """The payment and refund as stored now, the payment locked until the
    transaction ends."""
    stored = tx.get_payment(payment.account_id, payment.id, for_update=True)
    refunds = tx.list_refunds(payment.account_id, payment.id)
    return stored, next(r for r in refunds if r.id == refund_id)


def _taken_back(payment: Payment, refund: Refund, now: datetime) -> Payment:
    """*payment* with *refund*, just applied to its invoices, counted in its
    ``refunded``."""
    before = payment.refunded or Money.zero(refund.amount.currency)
    return attrs.evolve(
        payment,
        refunded=before + refund.amount,
        updated_at=max(payment.updated_at, now),
    )


def _refundable(payment: Payment) -> None:
    """StateError unless *payment* succeeded (and has a charge to refund)."""
    if payment.status is not PaymentStatus.SUCCEEDED or not payment.charge_id:
        raise StateError(
            problem=f"payment {payment.id} is {payment.status.value}",
            allowed="refund only a succeeded payment",
        )


def _refund_amount(payment: Payment, amount: Money | None) -> Money | None:
    """*amount* checked as a refund of *payment*'s currency; None stays None."""
    if amount is None:
        return None
    return positive_money(amount, payment.amount.currency, "refund amount")


def _with_id(refunds: Sequence[Refund], refund_id: str) -> Refund | None:
    """The refund of *refunds* with this id, if any."""
    return next((r for r in refunds if r.id == refund_id), None)


def _refuse_another(
    key: str, stored: Refund, *, payment_id: str, amount: Money | None, reopen: bool
) -> None:
    """Refuse a refund under *key* other than *stored*, the refund made under
    it (ConflictError naming what differs); *amount* None asks for its own.
    A refund answered before schema version 11 has no ``reopen`` to compare
    (the migration gives one to those still waiting)."""
    was = stored.reopen
    differing = [
        name
        for name, differs in (
            ("payment", stored.payment_id != payment_id),
            ("amount", amount is not None and amount != stored.amount),
            ("reopen", was is not None and was != reopen),
        )
        if differs
    ]
    if not differing:
        return
    listed, _ = differ(differing)
    raise ConflictError(
        problem=f"refund_id {key!r} was used already, for refund {stored.id} of "
        f"{stored.amount} of payment {stored.payment_id} with reopen={was}: what "
        f"is given differs in the {listed}",
        allowed="to make another refund, give a new refund_id (or none); to "
        "repeat the call that made it, give the payment, amount and reopen it "
        "was made with (or no amount)",
    )


def refund_metadata(refund: Refund) -> dict[str, str]:
    """What a refund carries at the gateway, so its webhooks find it again."""
    return {
        REFUND_METADATA_KEY: refund.id,
        PAYMENT_METADATA_KEY: refund.payment_id,
        ACCOUNT_METADATA_KEY: refund.account_id,
    }


def refund_slices(
    buckets: Sequence[tuple[str, Money]], *, start: Money, amount: Money
) -> list[tuple[str, Money]]:
    """The parts of *buckets* from *start* (refunded before) for *amount*.

    *buckets* are what a payment paid, in the order refunds take it back.
    Pure: the same payment, earlier refunds and amount give the same parts.

    >>> paid = (("", Money(0, "NOK")), ("inv-2", Money(300, "NOK")),
    ...         ("inv-1", Money(700, "NOK")))
    >>> for key, part in refund_slices(
    ...         paid, start=Money(100, "NOK"), amount=Money(500, "NOK")):
    ...     print(key, part)
    inv-2 200 NOK
    inv-1 300 NOK
    """
    zero = Money.zero(amount.currency)
    skip, left = start, amount
    parts: list[tuple[str, Money]] = []
    for key, size in buckets:
        passed = min(skip, size)
        skip -= passed
        take = min(left, size - passed)
        if take > zero:
            parts.append((key, take))
            left -= take
    if left > zero:
        raise StateError(
            problem=f"a refund of {amount} after {start} exceeds what was paid",
            allowed="refund at most what the payment paid and was not refunded",
        )
    return parts


@attrs.define
class Corrections:
    """Voids, credit notes and refunds; see the methods of :class:`Billing`."""

    storage: Storage
    gateway: PaymentGateway
    collector: Collector
    ids: IdFactory

    def void_invoice(
        self, account_id: str, invoice_id: str, *, now: datetime | None = None
    ) -> Invoice:
        """Void an open invoice that nothing has been paid or credited on.

        Refused while a payment of it has no outcome yet (the gateway may
        still take the money): :meth:`Billing.confirm_payment` finishes it.
        A payment of it waiting for the customer's authentication is
        canceled first when *now* (the time recorded on it) is given
        (:meth:`Collector.close_way`), and refuses the void without it.
        An unsent "payment failed" notice of it is withdrawn
        (:func:`~recurbill.notices.withdraw_failed_notices`).
        """

        def voidable(tx: Transaction, *, lock: bool = False) -> Invoice:
            invoice = tx.get_invoice(account_id, invoice_id, for_update=lock)
            if invoice.status is not InvoiceStatus.OPEN or invoice.paid:
                raise StateError(
                    problem=(
                        f"invoice {invoice.display_number} is {invoice.status.value}"
                        f" with {invoice.paid} paid"
                    ),
                    allowed="void only an open invoice with nothing paid; "
                    "credit or refund a paid one",
                )
            if invoice.credited:
                raise StateError(
                    problem=(
                        f"invoice {invoice.display_number} has {invoice.credited} "
                        "credited by credit notes"
                    ),
                    allowed="void only an invoice without credit notes; credit "
                    "the rest of it instead",
                )
            _refuse_while_paying(tx, invoice, "void")
            return invoice

        return self._close(account_id, invoice_id, voidable, "void", now)

    def mark_uncollectible(
        self, account_id: str, invoice_id: str, *, now: datetime | None = None
    ) -> Invoice:
        """Write off an open invoice as a bad debt: it is no longer collected.

        What was paid on it stays paid; the daily run stops retrying it and it
        can no longer be paid, credited or selected for a mass payment. Refused
        while a payment of it has no outcome yet; one waiting for the
        customer's authentication is canceled first, and an unsent "payment
        failed" notice of it withdrawn, as :meth:`void_invoice` does.
        """

        def collectible(tx: Transaction, *, lock: bool = False) -> Invoice:
            invoice = tx.get_invoice(account_id, invoice_id, for_update=lock)
            if invoice.status is not InvoiceStatus.OPEN:
                raise StateError(
                    problem=(
                        f"invoice {invoice.display_number} is {invoice.status.value}"
                    ),
                    allowed="mark only an open invoice uncollectible",
                )
            _refuse_while_paying(tx, invoice, "mark it uncollectible")
            return invoice

        return self._close(
            account_id,
            invoice_id,
            collectible,
            "mark it uncollectible",
            now,
            status=InvoiceStatus.UNCOLLECTIBLE,
        )

    def _close(
        self,
        account_id: str,
        invoice_id: str,
        check: Callable[..., Invoice],
        action: str,
        now: datetime | None,
        *,
        status: InvoiceStatus = InvoiceStatus.VOID,
    ) -> Invoice:
        """Give the invoice *status* once *check* allows it (the invoice, read
        and locked), a payment of it waiting for authentication canceled
        first (given *now*)."""
        if now is not None:
            self._close_way(account_id, invoice_id, check, aware(now, "now"))
        with self.storage.transaction() as tx:
            invoice = check(tx, lock=True)
            _refuse_waiting(tx, invoice, action, now)
            invoice = attrs.evolve(invoice, status=status)
            tx.update_invoice(invoice)
            withdraw_failed_notices(tx, [invoice])
            tx.commit()
        return invoice

    def _close_way(
        self,
        account_id: str,
        invoice_id: str,
        closes: Callable[[Transaction], Invoice | None],
        now: datetime,
    ) -> None:
        """Cancel each payment of the invoice waiting for authentication if
        the action closes it: *closes* returns it then, None if the action
        leaves it open, or raises refusing it (:meth:`Collector.close_way`)."""
        with self.storage.transaction(read_only=True) as tx:
            customer_id = tx.get_invoice(account_id, invoice_id).customer_id

        def closing() -> list[str]:
            with self.storage.transaction(read_only=True) as tx:
                return [] if closes(tx) is None else [invoice_id]

        self.collector.close_way(account_id, customer_id, closing, now=now)

    def credit_invoice(
        self,
        account_id: str,
        invoice_id: str,
        *,
        amount: Money,
        reason: str,
        now: datetime,
    ) -> CreditNoteRecord:
        """Issue a credit note lowering what is owed (on a paid invoice: credit).

        The credit may not exceed the invoice total less earlier credit notes.
        One of the whole invoice (its total, nothing credited before) carries
        the invoice's lines and document allowances and charges, so its VAT
        per category and rate reverses the invoice's exactly; a partial one
        is an amount only.

        Allowed while a payment of the invoice has no outcome yet (unlike
        voiding): the credit lowers what is owed now, and if the payment then
        succeeds, what it paid beyond that becomes the customer's credit, as
        a credit note after payment does at Stripe. Nothing is lost or paid
        twice either way. A credit that settles the invoice first cancels a
        payment of it waiting for the customer's authentication
        (:meth:`Collector.close_way`) and withdraws an unsent "payment
        failed" notice of it; a partial one leaves both.
        """
        aware(now, "now")

        def settles(tx: Transaction) -> Invoice | None:
            invoice = tx.get_invoice(account_id, invoice_id)
            reduces = _credit_reduces(invoice, amount)
            left = invoice.outstanding - reduces
            closes = invoice.status is InvoiceStatus.OPEN and left.amount <= 0
            return invoice if closes else None

        self._close_way(account_id, invoice_id, settles, now)
        with self.storage.transaction() as tx:
            account = tx.get_account(account_id)
            invoice = tx.get_invoice(account_id, invoice_id, for_update=True)
            reduces = _credit_reduces(invoice, amount)
            amount = positive_money(amount, invoice.currency, "credit amount")
            settled = invoice.outstanding - reduces <= Money.zero(invoice.currency)
            if settled and invoice.status is InvoiceStatus.OPEN:
                refuse_waiting(tx, [invoice], "credit the invoice")
            number = tx.allocate_invoice_numbers(account_id, CREDIT_NOTE_SERIES)
            note = CreditNoteRecord(
                id=self.ids("cn"),
                account_id=account_id,
                customer_id=invoice.customer_id,
                invoice_id=invoice.id,
                number=number,
                series=CREDIT_NOTE_SERIES,
                amount=amount,
                reason=reason,
                issue_date=local_date(account, now),
                **_whole(account, invoice, amount),
            )
            tx.add_credit_note(note)
            credited = attrs.evolve(
                invoice,
                credited=invoice.credited + amount,
                status=InvoiceStatus.PAID if settled else invoice.status,
                paid_at=invoice.paid_at or (now if settled else None),
            )
            tx.update_invoice(credited)
            if invoice.status is InvoiceStatus.OPEN:  # closed by it if settled
                withdraw_failed_notices(tx, [credited])
            if amount - reduces:
                tx.add_credit_entry(
                    CreditEntry(
                        id=derived_id("crd", note.id),
                        account_id=account_id,
                        customer_id=invoice.customer_id,
                        amount=amount - reduces,
                        reason=f"credit note {note.series}-{note.number:06d}",
                        source_id=note.id,
                        created_at=now,
                    )
                )
            tx.commit()
        return note

    def refund(
        self,
        account_id: str,
        payment_id: str,
        *,
        now: datetime,
        amount: Money | None = None,
        reopen: bool = True,
        refund_id: str | None = None,
    ) -> Refund:
        """Refund all or part of a succeeded payment.

        With ``reopen`` (the default) the refunded amount is owed again: the
        invoices the payment settled are reopened, the last one it paid first.
        Without it, each is credited instead (a credit note) and stays settled.

        The refund record (with the ``reopen`` choice) is saved before the
        gateway is called. If the gateway's answer is lost (a timeout), the
        next daily run finishes that same refund with the same idempotency key,
        and so does calling ``refund`` again (``amount`` and ``reopen`` are then
        the first call's): it is never refunded twice. A refund the gateway
        answers as ``failed`` or ``canceled`` is kept with that status and
        changes no invoice: the amount may be refunded again. One answered
        ``pending`` or ``succeeded`` is applied at once; if it fails later
        (:meth:`follow_pending`, :meth:`follow`), its amount becomes the
        customer's credit.

        Give ``refund_id``, one per refund the merchant asks for, to make the
        call safe to repeat (a double click, a request retried): a call with
        a ``refund_id`` this account has used returns that refund and refunds
        nothing more (one whose answer was lost is finished first, with its
        own key), also when two calls race. Without it, a second call refunds
        again once the first is answered. The refund's id is derived from the
        account and ``refund_id``, its idempotency key from its id.
        """
        aware(now, "now")
        if refund_id is not None:
            key = caller_key(refund_id, "refund_id", one_per="refund")
            return self._chosen_refund(
                account_id, payment_id, key, now=now, amount=amount, reopen=reopen
            )
        with self.storage.transaction() as tx:
            # locked: refunds of one payment are made and applied one at a time
            payment = tx.get_payment(account_id, payment_id, for_update=True)
            _refundable(payment)
            unanswered = tx.list_refunds(account_id, payment_id, statuses=UNANSWERED)
            if unanswered:
                # an earlier refund's answer was lost: finish it, same key
                refund = unanswered[0]
                if amount is not None and amount.quantize() != refund.amount:
                    raise StateError(
                        problem=f"refund {refund.id} of {refund.amount} has no "
                        "answer yet",
                        allowed="call refund again without an amount (or with "
                        "the same one) to finish it first",
                    )
            else:
                refund = self._new_refund(tx, payment, amount, reopen, now)
                tx.commit()
        return self._finish(payment, refund, now=now, sent_before=bool(unanswered))

    def _chosen_refund(
        self,
        account_id: str,
        payment_id: str,
        key: str,
        *,
        now: datetime,
        amount: Money | None,
        reopen: bool,
    ) -> Refund:
        """The refund the caller calls *key*: made now, or the one made by an
        earlier call, which must have asked the same (ConflictError else).

        The same is the same payment, ``amount`` (None: the first call's)
        and ``reopen``. A repeat's refund is returned as stored, or finished
        first if it has no answer yet. Another refund of the payment waiting
        for its answer does not hold up a new one: it is counted as
        refunded, and finished by its own repeat or the daily run.
        """
        account = record_id(account_id, "account_id")  # a part of the id
        refund_id = derived_id("re", account, "refund", key)
        try:
            with self.storage.transaction() as tx:
                payment = tx.get_payment(account_id, payment_id, for_update=True)
                wanted = _refund_amount(payment, amount)
                stored = _with_id(tx.list_refunds(account_id, payment_id), refund_id)
                if stored is None:
                    made = self._new_chosen(
                        tx, payment, key, refund_id, wanted, reopen, now
                    )
                    tx.commit()
        except ConflictError:  # made meanwhile by another call, or of another payment
            with self.storage.transaction(read_only=True) as tx:
                stored = _with_id(tx.list_refunds(account_id), refund_id)
                if stored is None:
                    raise
                payment = tx.get_payment(account_id, payment_id)
                wanted = _refund_amount(payment, amount)
        if stored is None:
            return self._finish(payment, made, now=now, sent_before=False)
        _refuse_another(
            key, stored, payment_id=payment_id, amount=wanted, reopen=reopen
        )
        if stored.status in UNANSWERED:
            return self._finish(payment, stored, now=now, sent_before=True)
        return stored

    def _new_chosen(
        self,
        tx: Transaction,
        payment: Payment,
        key: str,
        refund_id: str,
        amount: Money | None,
        reopen: bool,
        now: datetime,
    ) -> Refund:
        """Save the refund *key* asks for, unless the payment refuses it: then
        a refund made under *key* of another payment is the reason given."""
        try:
            _refundable(payment)
            return self._new_refund(
                tx, payment, amount, reopen, now, refund_id=refund_id
            )
        except (StateError, InvalidInputError):
            used = _with_id(tx.list_refunds(payment.account_id), refund_id)
            if used is not None:
                _refuse_another(
                    key, used, payment_id=payment.id, amount=amount, reopen=reopen
                )
            raise

    def finish_unanswered(
        self,
        account_ids: Sequence[str],
        *,
        now: datetime,
        set_aside: SetAside | None = None,
    ) -> list[Refund]:
        """Finish every refund whose gateway answer was lost (the daily run's job).

        Each is first looked up at the gateway by its idempotency key and
        sent again (same key) only if the gateway never made it, so it is
        refunded at most once even after the gateway forgot the key; one that
        cannot be finished now is left for the next time. So is one that
        needs a stored row that cannot be read (the refund's, its payment's,
        or one its recording reads): that row is added to *set_aside*, the
        others are finished. A refused API key raises
        :class:`GatewayAuthenticationError`: no refund could be.
        """
        set_aside = SetAside() if set_aside is None else set_aside
        finished: list[Refund] = []
        for refund, payment in self._waiting(account_ids, UNANSWERED, set_aside):
            try:
                finished.append(
                    self._finish(payment, refund, now=now, sent_before=True)
                )
            except GatewayAuthenticationError:
                raise  # no refund can be finished: stop, as charges do
            except UnreadableRecordError as error:  # nothing was recorded
                set_aside.add(refund.account_id, error)
            except RecurbillError:
                continue
        return finished

    def _waiting(
        self, account_ids: Sequence[str], statuses: Sequence[str], set_aside: SetAside
    ) -> Iterator[tuple[Refund, Payment]]:
        """Refunds in *statuses* of these accounts, each with its payment; a
        refund or payment row that cannot be read is added to *set_aside*
        and its refund left out."""
        for account_id in account_ids:
            payments: dict[str, Payment] = {}
            with self.storage.transaction() as tx:
                waiting = set_aside.read(
                    account_id, "refund", listed(tx.list_refunds, account_id, statuses)
                )
                for refund in waiting:
                    try:
                        payments[refund.id] = tx.get_payment(
                            account_id, refund.payment_id
                        )
                    except UnreadableRecordError as error:
                        set_aside.add(account_id, error)
            for refund in waiting:
                if refund.id in payments:
                    yield refund, payments[refund.id]

    def follow_pending(
        self,
        account_ids: Sequence[str],
        *,
        now: datetime,
        set_aside: SetAside | None = None,
    ) -> list[Refund]:
        """Look up refunds the gateway answered ``pending``; record how they ended.

        Such a refund was applied to the invoices when it was answered. If it
        ends failed or canceled, no money went back: the amount becomes the
        customer's credit (held by the business, usable with
        ``Billing.apply_credit``), so nothing is created or lost. One the
        gateway cannot tell about now is looked up again next time, and so
        is one that needs a stored row that cannot be read (added to
        *set_aside*, as :meth:`finish_unanswered` does).
        """
        set_aside = SetAside() if set_aside is None else set_aside
        changed: list[Refund] = []
        for refund, payment in self._waiting(account_ids, REFUND_PENDING, set_aside):
            try:
                recorded = self._follow_pending(payment, refund, now=now)
            except UnreadableRecordError as error:  # nothing was recorded
                set_aside.add(refund.account_id, error)
                continue
            if recorded is not None:
                changed.append(recorded)
        return changed

    def _follow_pending(
        self, payment: Payment, refund: Refund, *, now: datetime
    ) -> Refund | None:
        """Look up one pending refund; it as recorded if that changed it."""
        assert payment.charge_id is not None
        try:
            result = self.gateway.retrieve_refund(
                payment.charge_id, idempotency_key=refund.idempotency_key
            )
        except GatewayAuthenticationError:
            raise
        except RecurbillError:
            return None  # looked up again next time
        if result is None or result.status == refund.status:
            return None
        recorded, news = self._record(payment, refund.id, result, now=now)
        return recorded if news else None

    def follow(
        self, account_id: str, payment_id: str, refund_id: str, *, now: datetime
    ) -> Refund:
        """Read a refund back from the gateway and record how it stands now.

        What a webhook about the refund does (the event only says which one):
        a pending refund that ended is recorded as :meth:`follow_pending`
        records it, and so is one answered ``succeeded`` that failed later
        (a closed card): its amount becomes the customer's credit, once, however
        many events, look-ups and daily runs report it. An unanswered refund
        gets its answer recorded; one the gateway does not know is left to
        the daily run. A failed look-up raises, so the event can be delivered
        again: nothing else follows a refund that succeeded.
        """
        with self.storage.transaction() as tx:
            payment = tx.get_payment(account_id, payment_id)
            refund = next(
                (
                    r
                    for r in tx.list_refunds(account_id, payment_id)
                    if r.id == refund_id
                ),
                None,
            )
        if refund is None:
            raise NotFoundError(kind="refund", key=refund_id, account=account_id)
        assert payment.charge_id is not None  # refunds are of succeeded payments
        result = self.gateway.retrieve_refund(
            payment.charge_id, idempotency_key=refund.idempotency_key
        )
        if result is None:
            return refund
        return self._record(payment, refund.id, result, now=now)[0]

    def _record(
        self, payment: Payment, refund_id: str, result: RefundResult, *, now: datetime
    ) -> tuple[Refund, bool]:
        """Record the gateway's *result* for a refund, once; True if it changed.

        The one place a refund's status changes after it was saved, under its
        payment's row lock (as :meth:`refund` takes it), moving only forward:

        - unanswered: the answer is recorded and, unless nothing went back,
          applied to the invoices (:meth:`_unsettle`) and counted in the
          payment's ``refunded``;
        - applied (pending or succeeded) and now failed or canceled: no money
          went back, so the amount becomes the customer's credit;
        - pending and now succeeded (or waiting otherwise): recorded;
        - anything else (final, or an older answer than the one stored):
          nothing changes.
        """
        with self.storage.transaction() as tx:
            stored, current = _locked_refund(tx, payment, refund_id)
            if current.status in UNANSWERED:
                reopen = current.status == REFUND_REQUESTED
                recorded = attrs.evolve(
                    current, status=result.status, refund_id=result.refund_id
                )
                tx.update_refund(recorded)
                if recorded.status not in NOT_REFUNDED:  # nothing went back else
                    self._unsettle(tx, payment, recorded, reopen=reopen, now=now)
                    tx.update_payment(_taken_back(stored, recorded, now))
            elif current.status in APPLIED and result.status in NOT_REFUNDED:
                recorded = attrs.evolve(current, status=REFUND_TO_CREDIT)
                tx.update_refund(recorded)
                why = result.status
                if result.failure_reason:
                    why = f"{why} ({result.failure_reason})"
                tx.add_credit_entry(
                    CreditEntry(
                        id=derived_id("crd", current.id, "failed"),
                        account_id=payment.account_id,
                        customer_id=payment.customer_id,
                        amount=current.amount,
                        reason=f"refund {current.id} of payment {payment.id} "
                        f"{why}: nothing went back",
                        source_id=current.id,
                        created_at=now,
                    )
                )
            elif (
                current.status in REFUND_PENDING
                and result.status in APPLIED
                and result.status != current.status
            ):
                recorded = attrs.evolve(current, status=result.status)
                tx.update_refund(recorded)
            else:
                return current, False
            tx.commit()
        return recorded, True

    def _finish(
        self, payment: Payment, refund: Refund, *, now: datetime, sent_before: bool
    ) -> Refund:
        """Send *refund* to the gateway and record the answer, once.

        One that may have been *sent_before* (its answer was lost) is looked up
        by its key first: Stripe forgets keys after 24 hours, and the same key
        sent again then would refund a second time.
        """
        assert payment.charge_id is not None
        result = None
        if sent_before:  # a failed look-up raises: it stays unanswered
            result = self.gateway.retrieve_refund(
                payment.charge_id, idempotency_key=refund.idempotency_key
            )
        try:
            if result is None:
                result = self.gateway.refund(
                    payment.charge_id,
                    amount=refund.amount,
                    idempotency_key=refund.idempotency_key,
                    metadata=refund_metadata(refund),
                )
        except (GatewayUnavailableError, GatewayAuthenticationError):
            # the answer is unknown, or the key was refused before anything
            # was done: it stays unanswered, the next call finishes it
            raise
        except (GatewayError, InvalidInputError):
            with self.storage.transaction() as tx:
                _, current = _locked_refund(tx, payment, refund.id)
                if current.status in UNANSWERED:
                    tx.update_refund(attrs.evolve(current, status=REFUND_FAILED))
                    tx.commit()
            raise
        # another call may have recorded it meanwhile: then this answer (the
        # same, or older) changes nothing
        return self._record(payment, refund.id, result, now=now)[0]

    def _new_refund(
        self,
        tx: Transaction,
        payment: Payment,
        amount: Money | None,
        reopen: bool,
        now: datetime,
        *,
        refund_id: str | None = None,
    ) -> Refund:
        """Save a refund of *amount* (None: what is left) of *payment*, under
        *refund_id* (None: a new id); its key is derived from its id."""
        already = sum(
            (
                r.amount
                for r in tx.list_refunds(payment.account_id, payment.id)
                if r.status not in NOT_REFUNDED
            ),
            Money.zero(payment.amount.currency),
        )
        left = payment.amount - already
        if left <= Money.zero(left.currency):
            raise StateError(
                problem=f"payment {payment.id} is refunded in full",
                allowed="refund a payment that has something left to refund",
            )
        asked = _refund_amount(payment, amount)
        wanted = left if asked is None else asked
        if not Money.zero(left.currency) < wanted <= left:
            raise InvalidInputError(
                problem=f"refund of {wanted} on payment {payment.id}",
                allowed=f"a positive amount up to the {left} not yet refunded",
            )
        refund_id = refund_id or self.ids("re")
        refund = Refund(
            id=refund_id,
            account_id=payment.account_id,
            payment_id=payment.id,
            amount=wanted,
            idempotency_key=f"recurbill-{refund_id}",
            status=REFUND_REQUESTED if reopen else REFUND_REQUESTED_CREDIT,
            created_at=now,
            reopen=reopen,
        )
        tx.add_refund(refund)
        return refund

    def _unsettle(
        self,
        tx: Transaction,
        payment: Payment,
        refund: Refund,
        *,
        reopen: bool,
        now: datetime,
    ) -> None:
        """Take back *refund*'s amount from what *payment* paid.

        What the payment paid is read from its receipt, in a fixed order: first
        the customer credit it created (a share whose invoice was settled
        another way), then each invoice it paid, the last one first, each no
        more than the payment applied to it. Successive refunds take successive
        slices of that order (:func:`refund_slices`), so a refund never takes
        back another payment's money. On each invoice the refunded part is owed
        again (``reopen``) or credited by a credit note; a part the customer
        already holds as credit (from a credit note on a paid invoice) is taken
        from that credit, which may go below zero (then they owe it). Nothing
        is created or lost: refund = credit taken back + owed again + credited.
        """
        account = tx.get_account(payment.account_id)
        zero = Money.zero(refund.amount.currency)
        receipt = payment_receipts(tx, account.id, payment.customer_id, payment.id)[0]
        earlier = sum(
            (
                r.amount
                for r in tx.list_refunds(account.id, payment.id)
                if r.id != refund.id and r.status not in (*UNANSWERED, *NOT_REFUNDED)
            ),
            zero,
        )
        # every invoice the payment paid locked at once, in id order (as other
        # lockers of several invoices do), before taking its slices
        tx.get_invoices(
            account.id,
            sorted({item.invoice_id for item in receipt.items}),
            for_update=True,
        )
        buckets = [("", receipt.credit)] + [
            (item.invoice_id, item.amount) for item in reversed(receipt.items)
        ]
        for invoice_id, part in refund_slices(
            buckets, start=earlier, amount=refund.amount
        ):
            if not invoice_id:  # the credit this payment created
                self._debit_credit(tx, payment, refund, part, "credit", now, payment.id)
                continue
            invoice = tx.get_invoice(account.id, invoice_id, for_update=True)
            paid = invoice.paid - part
            owed_again = max(zero, invoice.total - paid - invoice.credited) - max(
                zero, invoice.outstanding
            )
            from_credit = part - owed_again
            credited = invoice.credited
            # what a written-off invoice is owed again stays written off
            written_off = invoice.status is InvoiceStatus.UNCOLLECTIBLE
            if not reopen and owed_again > zero and not written_off:
                number = tx.allocate_invoice_numbers(account.id, CREDIT_NOTE_SERIES)
                tx.add_credit_note(
                    CreditNoteRecord(
                        id=derived_id("cn", refund.id, invoice.id),
                        account_id=account.id,
                        customer_id=invoice.customer_id,
                        invoice_id=invoice.id,
                        number=number,
                        series=CREDIT_NOTE_SERIES,
                        amount=owed_again,
                        reason=f"refund of payment {payment.id}",
                        issue_date=local_date(account, now),
                    )
                )
                credited += owed_again
            if from_credit > zero:
                self._debit_credit(
                    tx, payment, refund, from_credit, invoice.id, now, refund.id
                )
            still_owed = invoice.total - paid - credited > zero and not written_off
            tx.update_invoice(
                attrs.evolve(
                    invoice,
                    paid=paid,
                    credited=credited,
                    status=InvoiceStatus.OPEN if still_owed else invoice.status,
                    paid_at=None if still_owed else invoice.paid_at,
                )
            )

    def _debit_credit(
        self,
        tx: Transaction,
        payment: Payment,
        refund: Refund,
        amount: Money,
        part: str,
        now: datetime,
        source_id: str,
    ) -> None:
        # source: the payment when taking back credit it created, else the refund
        tx.add_credit_entry(
            CreditEntry(
                id=derived_id("crd", refund.id, part),
                account_id=payment.account_id,
                customer_id=payment.customer_id,
                amount=-amount,
                reason=f"refund {refund.id} of payment {payment.id}",
                source_id=source_id,
                created_at=now,
            )
        )

"""Collecting money: charge a saved payment record, then apply what the gateway said.

The order never changes: a :class:`~recurbill.records.Payment` is committed
(``pending``) before the gateway is called, the gateway call carries that
record's idempotency key, and the outcome is applied in a second transaction
that first checks whether it was applied already. A crash between any two steps
leaves a payment that :meth:`Collector.reconcile` finishes with the same key,
so nothing is charged twice and nothing is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import TypeAlias
from zoneinfo import ZoneInfo

import attrs

from recurbill.chargeable import (
    CARD_LIMITS,
    ONE_INVOICE_ADVICE,
    check_chargeable,
    no_automatic_charge,
)
from recurbill.errors import (
    ConflictError,
    GatewayAuthenticationError,
    GatewayError,
    GatewayUnavailableError,
    InvalidInputError,
    RecurbillError,
    StateError,
    StorageUnavailableError,
    UnreadableRecordError,
)
from recurbill.ids import IdFactory, automatic_charge_id, derived_id
from recurbill.money import Money
from recurbill.notices import (
    NEEDS_ACTION,
    NOTICE_WHILE,
    PAYMENT_FAILED,
    needs_action_notice_id,
    payment_notice_id,
    stored_notice,
    withdraw,
    withdraw_failed_notices,
)
from recurbill.notify.message import Message
from recurbill.notify.render import (
    notification_for,
    render_payment_failed,
    render_payment_needs_action,
    render_receipt,
)
from recurbill.payments.protocol import (
    ACCOUNT_METADATA_KEY,
    PAYMENT_METADATA_KEY,
    ChargeResult,
    ChargeStatus,
    PaymentGateway,
)
from recurbill.records import (
    INVOICE_CLOSED,
    Account,
    CollectionMethod,
    CreditEntry,
    Customer,
    Invoice,
    InvoiceStatus,
    Notification,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Receipt,
    ReceiptItem,
    SettlementStatus,
)
from recurbill.schedule import due_at
from recurbill.set_aside import UNKNOWN_IN_A_ROW, SetAside, Unanswered, listed
from recurbill.storage.protocol import Storage, Transaction, invoice_payments

# Also exported: the names of chargeable, notices and set_aside that were
# defined here before those modules split off (earlier docs import them so).
__all__ = [
    "CARD_LIMITS",
    "GATEWAY_ERROR",
    "HARD_DECLINES",
    "IN_FLIGHT",
    "NEEDS_ACTION",
    "NO_OUTCOME",
    "ONE_INVOICE_ADVICE",
    "PAYMENT_FAILED",
    "RECEIPT_SERIES",
    "UNKNOWN_IN_A_ROW",
    "Collector",
    "Finished",
    "RetryPolicy",
    "SetAside",
    "Unanswered",
    "check_chargeable",
    "listed",
    "local_date",
    "needs_action_notice_id",
    "no_automatic_charge",
    "of_invoices",
    "outbox_message",
    "paying",
    "paying_invoice",
    "payment_notice_id",
    "refuse_waiting",
]

RECEIPT_SERIES = "RCPT"
"""The number series of receipts (reserved: no invoice series may use it)."""
GATEWAY_ERROR = "gateway_error"
"""The error code of a payment the gateway refused as a request (not a decline)."""

HARD_DECLINES = frozenset(
    {
        "lost_card",
        "stolen_card",
        "expired_card",
        "incorrect_cvc",
        "incorrect_number",
        "invalid_account",
        "fraudulent",
        "pickup_card",
        "restricted_card",
        "authentication_required",
        # the issuer asks never to retry: card networks penalise merchants who do
        "do_not_try_again",
        "revocation_of_authorization",
        "revocation_of_all_authorizations",
        "stop_payment_order",
        GATEWAY_ERROR,
    }
)
"""Decline codes a retry cannot fix: the customer must act, so no automatic retry."""

_FINAL = (PaymentStatus.SUCCEEDED, PaymentStatus.DECLINED, PaymentStatus.CANCELED)
NO_OUTCOME = (
    PaymentStatus.PENDING,
    PaymentStatus.FAILED_UNKNOWN,
    PaymentStatus.PROCESSING,
)
"""Payment statuses without an outcome yet: the gateway may still take money."""
IN_FLIGHT = (*NO_OUTCOME, PaymentStatus.REQUIRES_ACTION)
"""Those, and payments waiting for the customer's authentication."""
_SETTLEMENT_STATUS = {
    PaymentStatus.SUCCEEDED: SettlementStatus.SUCCEEDED,
    PaymentStatus.DECLINED: SettlementStatus.DECLINED,
    PaymentStatus.REQUIRES_ACTION: SettlementStatus.REQUIRES_ACTION,
    PaymentStatus.CANCELED: SettlementStatus.ABANDONED,
}


_Parties: TypeAlias = tuple[Account, Customer, PaymentMethod]
"""Who a payment is between: the account, the customer, and the card used."""


@attrs.frozen
class RetryPolicy:
    """When declined automatic charges are retried: days after the first attempt.

    The default ``(3, 5, 7)`` retries 3, 5 and 7 days after the first attempt;
    after the last one the invoice stays open for the customer to pay and a
    "payment failed" notice is sent. Hard declines (:data:`HARD_DECLINES`) are
    never retried. ``RetryPolicy(())`` turns retries off.
    """

    days: tuple[int, ...] = (3, 5, 7)

    def __attrs_post_init__(self) -> None:
        if isinstance(self.days, (str, bytes)) or not isinstance(self.days, Iterable):
            raise InvalidInputError(
                problem=f"retry days {self.days!r} are not a sequence",
                allowed="give the days as a tuple, e.g. RetryPolicy((3, 5, 7)), "
                "or () for no retries",
            )
        days = list(self.days)
        if any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in days):
            raise InvalidInputError(
                problem=f"retry days {days} are invalid",
                allowed="give whole numbers of days, each 1 or more",
            )
        if days != sorted(set(days)):
            raise InvalidInputError(
                problem=f"retry days {days} are not strictly increasing",
                allowed="list the days after the first attempt in increasing order",
            )

    def retry_on(self, *, first_attempt: date, attempt: int) -> date | None:
        """The day attempt number ``attempt + 1`` is due, or None if there is none."""
        if attempt > len(self.days):
            return None
        return first_attempt + timedelta(days=self.days[attempt - 1])


_MESSAGE = ("problem", "allowed")
"""The fields of every error's message (the others are its details)."""


def _invoices(
    tx: Transaction, account_id: str, invoice_ids: Iterable[str]
) -> Callable[[list[str]], list[Invoice]]:
    """The read of *account_id*'s *invoice_ids* but the ids it is given."""
    wanted = set(invoice_ids)
    return lambda skip: tx.get_invoices(account_id, sorted(wanted - set(skip)))


def paying(
    tx: Transaction,
    account_id: str,
    customer_id: str,
    *,
    statuses: Sequence[PaymentStatus] = IN_FLIGHT,
) -> dict[str, Payment]:
    """The customer's invoices with a payment in flight, read in *tx*: each
    invoice id with such a payment (whose charge may still take money).

    The one rule for whether an invoice may join a new payment: not while
    it is in one of these. A new payment first cancels those waiting for
    authentication (:meth:`Collector.make_way`), so what a new payment must
    wait for is a payment without an outcome: ``statuses=NO_OUTCOME`` asks
    for those alone (a plan shown before paying).
    """
    return {
        invoice_id: payment
        for payment in tx.list_payments(
            account_id, customer_id=customer_id, statuses=statuses
        )
        for invoice_id in payment.invoice_ids
    }


def of_invoices(
    tx: Transaction,
    account_id: str,
    customer_id: str,
    invoice_ids: Iterable[str],
    *,
    statuses: Sequence[PaymentStatus] | None = None,
) -> list[Payment]:
    """The customer's payments (in *statuses*) that include any of
    *invoice_ids*, read in *tx* invoice by invoice, not among every payment
    of the customer: each once, oldest first (``created_at``, then id)."""
    found = {
        payment.id: payment
        for invoice_id in dict.fromkeys(invoice_ids)
        for payment in invoice_payments(
            tx, account_id, customer_id, invoice_id, statuses=statuses
        )
    }
    return sorted(found.values(), key=lambda p: (p.created_at, p.id))


def paying_invoice(
    tx: Transaction,
    invoice: Invoice,
    *,
    statuses: Sequence[PaymentStatus] = IN_FLIGHT,
) -> Payment | None:
    """The payment of *invoice* in flight (the latest, if several), read in
    *tx*: what :func:`paying` gives for it, without reading the customer's
    other payments."""
    found = of_invoices(
        tx, invoice.account_id, invoice.customer_id, [invoice.id], statuses=statuses
    )
    return found[-1] if found else None


def refuse_waiting(tx: Transaction, invoices: Iterable[Invoice], action: str) -> None:
    """StateError if a payment of one of *invoices* waits for the customer's
    authentication, read in *tx*: a closing *action* cancels those first
    (:meth:`Collector.close_way`), so this one was started meanwhile."""
    read: dict[tuple[str, str], dict[str, Payment]] = {}
    for invoice in invoices:
        key = (invoice.account_id, invoice.customer_id)
        if key not in read:
            read[key] = paying(tx, *key, statuses=[PaymentStatus.REQUIRES_ACTION])
        waiting = read[key].get(invoice.id)
        if waiting is not None:
            raise StateError(
                problem=f"invoice {invoice.display_number} has a payment waiting "
                f"for the customer's authentication ({waiting.id}), started "
                "meanwhile",
                allowed=f"{action} again: it cancels such a payment first",
            )


def local_date(account: Account, instant: datetime) -> date:
    """The calendar day *instant* falls on in the account's time zone."""
    return instant.astimezone(ZoneInfo(account.timezone)).date()


def run_day(account: Account, instant: datetime) -> date:
    """The latest day whose run (the account's ``run_time`` in its zone) is
    at or before *instant*: the day a run at *instant* makes retries for.

    Retries come out with the day's invoices, not at local midnight.
    """
    day = local_date(account, instant)
    if due_at(day, run_time=account.run_time, zone=account.timezone) > instant:
        return day - timedelta(days=1)
    return day


def outbox_message(
    ids: IdFactory,
    *,
    account_id: str,
    kind: str,
    message: Message,
    now: datetime,
) -> Notification:
    """An outbox row with a new id for a rendered message."""
    return notification_for(
        message, id=ids("ntf"), account_id=account_id, kind=kind, created_at=now
    )


_UNANSWERED = (PaymentStatus.PENDING, PaymentStatus.FAILED_UNKNOWN)
"""A payment in these statuses never had an answer (and so no notice)."""


def _decline_of(result: ChargeResult) -> ChargeResult:
    """*result*, or its decline when the gateway canceled the charge after
    declining it (the cancel's answer and later look-ups keep the decline's
    codes, see :meth:`PaymentGateway.cancel_charge`).

    recurbill cancels a charge declined after authentication before it
    records the decline (``Collector._closed``): if that record is lost (a
    crash, a cancel whose answer was lost), the charge is found canceled,
    and its outcome is still the decline.
    """
    if result.status is not ChargeStatus.CANCELED or not (
        result.decline_code or result.error_code
    ):
        return result
    return attrs.evolve(result, status=ChargeStatus.DECLINED)


def _charged_at(payment: Payment, *, now: datetime, sent: bool) -> datetime:
    """When the card was charged, for a success learned *now* of *payment*
    (as stored before it): the receipt's ``paid_at``.

    The answer to a charge sent just now (*sent*), to a customer's
    authentication, or to a decline turned success: *now*. A success found
    later of a charge sent without an answer (``pending``, ``failed_unknown``)
    or still processing: when its record last changed (saved just before the
    charge was sent, marked unanswered or processing as its answer came),
    never after *now*. The gateway's own time of the charge is not known.
    """
    if sent or payment.status not in NO_OUTCOME:
        return now
    return min(payment.updated_at, now)


@attrs.frozen(kw_only=True)
class Finished:
    """What :meth:`Collector.finish` did with a payment that had no outcome."""

    payment: Payment
    news: bool
    """This call changed what is known of the charge: it made it and the status
    moved, or it recorded the outcome it found. A run reports it."""
    answered: bool
    """The gateway answered (False: it timed out or was unavailable)."""


@attrs.define
class _Applying:
    """Gateway answers being applied in one transaction: what was read, what changed.

    Later payments of a batch see the invoices as earlier ones left them;
    the changes are written together at the end (``Collector._write``).
    """

    tx: Transaction
    invoices: dict[str, Invoice] = attrs.Factory(dict)
    payments: dict[str, Payment] = attrs.Factory(dict)
    changed_invoices: dict[str, Invoice] = attrs.Factory(dict)
    changed_payments: dict[str, Payment] = attrs.Factory(dict)
    receipts: list[tuple[Receipt, _Parties]] = attrs.Factory(list)
    """Each receipt and who it is between."""
    notes: list[Notification] = attrs.Factory(list)
    closed: list[Invoice] = attrs.Factory(list)
    """Invoices paid whose "payment failed" notices are withdrawn (see
    :func:`~recurbill.notices.withdraw_failed_notices`)."""

    def changed(self, payment: Payment) -> None:
        self.payments[payment.id] = self.changed_payments[payment.id] = payment

    def changed_invoice(self, invoice: Invoice) -> None:
        self.invoices[invoice.id] = self.changed_invoices[invoice.id] = invoice

    def still_open(self, payment: Payment) -> bool:
        """Whether every invoice *payment* pays is still open: a "payment
        failed" or "confirm your payment" notice says so, and is not queued
        for one closed meanwhile (see
        :func:`~recurbill.notices.withdraw_failed_notices`)."""
        return all(
            self.invoices[i].status is InvoiceStatus.OPEN for i in payment.invoice_ids
        )

    def stranded(self, payment: Payment) -> bool:
        """Whether *payment* waits for the customer's authentication though
        its invoices are no longer all open: its charge must be canceled
        (:meth:`Collector._cancel_stranded`)."""
        return payment.status is PaymentStatus.REQUIRES_ACTION and not (
            self.still_open(payment)
        )

    def queue(
        self,
        ids: IdFactory,
        account: Account,
        kind: str,
        message: Message,
        now: datetime,
    ) -> None:
        """Put *message* in the outbox, in the transaction of what it announces."""
        self.notes.append(
            outbox_message(
                ids, account_id=account.id, kind=kind, message=message, now=now
            )
        )

    def notify(
        self,
        payment: Payment,
        kind: str,
        message: Message,
        now: datetime,
        *,
        first_answer: bool,
    ) -> None:
        """Queue *payment*'s notice of *kind* under its own id
        (:func:`~recurbill.notices.payment_notice_id`). Should the payment
        have been in that status before (and left it: no gateway of
        recurbill's does that), its earlier notice is replaced by this one,
        pending again. A payment at
        its *first_answer* has no notice yet: nothing is read (the daily
        run's charges are these)."""
        note = notification_for(
            message,
            id=payment_notice_id(payment, kind),
            account_id=payment.account_id,
            kind=kind,
            created_at=now,
        )
        if first_answer or stored_notice(self.tx, payment, kind) is None:
            self.notes.append(note)
        else:
            self.tx.update_notification(note)

    def withdraw(self, payment: Payment, kind: str) -> None:
        """Withdraw *payment*'s notice of *kind* unless it was sent: the
        payment left the status it tells of, so it is never sent."""
        withdraw(self.tx, payment, kind)


def _alone(payment: Payment) -> bool:
    """Whether *payment*, as stored before its success, is its invoice's first
    automatic attempt, still in flight: then no payment of that invoice can
    have a "payment failed" notice (a retry follows a decline, and a payment
    by hand cancels or waits for this one), so closing it reads nothing.
    The daily run's charges are these."""
    return payment.off_session and payment.attempt == 1 and payment.status in IN_FLIGHT


@attrs.define
class Collector:
    """Charges payment records through the gateway and applies the outcomes."""

    storage: Storage
    gateway: PaymentGateway
    ids: IdFactory
    retry_policy: RetryPolicy = attrs.field(factory=RetryPolicy)

    # creating ----------------------------------------------------------
    def new_payment(
        self,
        *,
        account: Account,
        customer: Customer,
        method: PaymentMethod,
        invoices: Sequence[Invoice],
        amount: Money,
        now: datetime,
        off_session: bool,
        attempt: int = 1,
        settlement_id: str | None = None,
        payment_id: str | None = None,
    ) -> Payment:
        """A pending payment, its key derived from its id.

        *payment_id* is derived from the attempt it makes, so a call made
        again finds it: an automatic charge's is
        :func:`~recurbill.ids.automatic_charge_id` (by which the "payment
        failed" notices of a closed invoice are found), a mass payment's
        derives from its settlement. None gives a fresh id.
        """
        payment_id = payment_id or self.ids("pay")
        return Payment(
            id=payment_id,
            account_id=account.id,
            customer_id=customer.id,
            idempotency_key=f"recurbill-{payment_id}",
            amount=amount,
            payment_method_id=method.id,
            invoice_ids=tuple(invoice.id for invoice in invoices),
            status=PaymentStatus.PENDING,
            off_session=off_session,
            attempt=attempt,
            settlement_id=settlement_id,
            created_at=now,
            updated_at=now,
        )

    # charging ----------------------------------------------------------
    def execute(self, account_id: str, payment_id: str, *, now: datetime) -> Payment:
        """Charge a committed payment with its own key and apply the outcome.

        A payment that already has a final outcome is returned unchanged. A
        gateway timeout leaves it ``failed_unknown`` for :meth:`reconcile`.
        """
        return self.execute_sent(account_id, payment_id, now=now)[0]

    def execute_sent(
        self, account_id: str, payment_id: str, *, now: datetime
    ) -> tuple[Payment, bool]:
        """:meth:`execute`, and whether this call sent the charge to the gateway."""
        with self.storage.transaction() as tx:
            payment = tx.get_payment(account_id, payment_id)
            customer = tx.get_customer(account_id, payment.customer_id)
            method = tx.get_payment_method(account_id, payment.payment_method_id)
        if payment.status not in (PaymentStatus.PENDING, PaymentStatus.FAILED_UNKNOWN):
            return payment, False
        try:
            result = self._ask(payment, customer, method)
        except GatewayAuthenticationError as error:
            raise GatewayAuthenticationError(
                problem=f"{error.fields.get('problem', error)}; payment "
                f"{payment.id} of {payment.amount} for "
                f"{', '.join(payment.invoice_ids)} was saved but not sent",
                allowed="fix the API key: the next daily run (or confirm_payment) "
                "then makes this charge, once; do not record or pay it again",
                **{k: v for k, v in error.fields.items() if k not in _MESSAGE},
            ) from None
        return self._record(payment, result, now=now, sent=True), True

    def charge_batch(
        self,
        batch: Sequence[tuple[Payment, Customer, PaymentMethod]],
        *,
        now: datetime,
        unanswered: Unanswered | None = None,
    ) -> tuple[list[Payment], GatewayError | None]:
        """Charge payments just committed, then record every outcome at once.

        One transaction records the whole batch (one commit instead of one per
        payment). If it fails, each outcome is recorded on its own; a crash
        before recording leaves the payments pending for :meth:`reconcile`,
        which asks the gateway with the same keys.

        A refused API key, or :data:`~recurbill.set_aside.UNKNOWN_IN_A_ROW`
        calls in a row without an answer (*unanswered* counts them across
        batches), stops the batch: the answers so far are recorded, and the
        payments sent are returned (as stored: a webhook may have recorded the
        outcome first) with that error; the payments not yet sent stay
        pending for the next run.
        """
        count = unanswered if unanswered is not None else Unanswered()
        answered: list[tuple[Payment, ChargeResult | None]] = []
        stop: GatewayError | None = None
        for payment, customer, method in batch:
            try:
                result = self._ask(payment, customer, method)
            except GatewayAuthenticationError as error:
                stop = error
                break
            answered.append((payment, result))
            stop = count.after(result is not None)
            if stop is not None:
                break
        stranded: set[str] = set()
        try:
            with self.storage.transaction() as tx:
                accounts = {
                    account_id: tx.get_account(account_id)
                    for account_id in {payment.account_id for payment, _, _ in batch}
                }
                parties = {
                    payment.id: (accounts[payment.account_id], customer, method)
                    for payment, customer, method in batch
                }
                outcomes = self._record_in(
                    tx, answered, now=now, parties=parties, stranded=stranded, sent=True
                )
                tx.commit()
        except RecurbillError:
            outcomes = [
                self._record(payment, result, now=now, sent=True)
                for payment, result in answered
            ]
            return outcomes, stop
        if stranded:  # an invoice closed before its charge's answer came
            outcomes = [
                self._cancel_stranded(p, now=now)[0] if p.id in stranded else p
                for p in outcomes
            ]
        return outcomes, stop

    def _ask(
        self, payment: Payment, customer: Customer, method: PaymentMethod
    ) -> ChargeResult | None:
        """The gateway's answer to the charge, or None when it is unknown."""
        try:
            return self.gateway.charge(
                customer.gateway_customer_id or "",
                payment_method=method.token,
                amount=payment.amount,
                idempotency_key=payment.idempotency_key,
                off_session=payment.off_session,
                description=f"recurbill payment {payment.id}",
                metadata={
                    PAYMENT_METADATA_KEY: payment.id,
                    ACCOUNT_METADATA_KEY: payment.account_id,
                },
            )
        except GatewayUnavailableError:
            return None
        except GatewayAuthenticationError:
            raise  # every charge would fail alike: stop, the payment stays pending
        except (GatewayError, InvalidInputError):
            # the gateway refused the request itself (a customer or card it does
            # not know, a bad key, an amount it cannot move): a final failure of
            # this attempt, recorded, never an exception that stops the run
            return ChargeResult(
                status=ChargeStatus.DECLINED,
                charge_id=None,
                amount=payment.amount,
                idempotency_key=payment.idempotency_key,
                error_code=GATEWAY_ERROR,
            )

    def _record(
        self,
        payment: Payment,
        result: ChargeResult | None,
        *,
        now: datetime,
        sent: bool = False,
    ) -> Payment:
        return self._recorded(payment, result, now=now, sent=sent)[0]

    def _recorded(
        self,
        payment: Payment,
        result: ChargeResult | None,
        *,
        now: datetime,
        sent: bool = False,
    ) -> tuple[Payment, bool]:
        """Record *result*; the payment, and whether this call changed it.

        A payment left waiting for the customer's authentication though its
        invoices are no longer all open is then canceled
        (:meth:`_cancel_stranded`). Should that not get through now, the
        payment is returned waiting without a ``client_secret`` (its wait is
        stored without one): nothing can complete it, and the next look-up
        cancels it.
        """
        changed: set[str] = set()
        stranded: set[str] = set()
        with self.storage.transaction() as tx:
            (outcome,) = self._record_in(
                tx,
                [(payment, result)],
                now=now,
                changed=changed,
                stranded=stranded,
                sent=sent,
            )
            tx.commit()
        canceled = False
        if stranded:
            outcome, canceled = self._cancel_stranded(outcome, now=now)
        return outcome, canceled or outcome.id in changed

    def _cancel_stranded(
        self, payment: Payment, *, now: datetime
    ) -> tuple[Payment, bool]:
        """Cancel *payment*, recorded waiting for the customer's authentication
        (and so without a "confirm your payment" notice) though its invoices
        are no longer all open: the customer must not complete it. The
        payment and whether its status changed.

        The wait is recorded first, in its own transaction; that record is
        what marks it for canceling. The cancel is sent outside any
        transaction, and its answer recorded as :meth:`cancel` records it
        (canceled; or succeeded, should the customer have completed it just
        before, its amount then the customer's credit). A crash or a
        gateway error at any step leaves the payment waiting or its charge
        canceled: the next look-up of it (the daily run, ``confirm_payment``,
        a webhook) finds it waiting and cancels it, or finds it canceled and
        records that. The cancel of a canceled charge changes nothing.
        """
        if not payment.charge_id:
            return payment, False
        changed: set[str] = set()
        try:
            result = self.gateway.cancel_charge(payment.charge_id)
            with self.storage.transaction() as tx:
                (outcome,) = self._record_in(
                    tx, [(payment, result)], now=now, changed=changed
                )
                tx.commit()
        except (GatewayError, ConflictError, StorageUnavailableError):
            return payment, False  # still waiting, with no notice: done later
        return outcome, outcome.id in changed

    def _record_in(
        self,
        tx: Transaction,
        answered: Sequence[tuple[Payment, ChargeResult | None]],
        *,
        now: datetime,
        parties: Mapping[str, _Parties] | None = None,
        changed: set[str] | None = None,
        stranded: set[str] | None = None,
        sent: bool = False,
    ) -> list[Payment]:
        """Apply each gateway answer to its payment in *tx*, each exactly once.

        An answer of None (unknown) marks a pending payment ``failed_unknown``.
        The invoices are locked and the payments read once for the whole
        batch, and every change is written with one call per kind of record;
        *parties* (account, customer, card by payment id) spare the reads of
        who each payment is between. The ids of the payments this call
        changed are added to *changed*, and to *stranded* those of the
        payments that wait for the customer's authentication though their
        invoices are no longer all open (the caller cancels them after the
        commit, see :meth:`_cancel_stranded`; read from the locked invoices:
        no extra read). *sent*: the answers are the gateway's replies to
        charges sent just now (not found by a look-up).
        """
        work = _Applying(tx)
        grouped: dict[str, list[Payment]] = {}
        for payment, _ in answered:
            grouped.setdefault(payment.account_id, []).append(payment)
        for account_id, payments in grouped.items():
            # the invoices' locks first: whoever applies an outcome holds them
            invoice_ids = sorted({i for p in payments for i in p.invoice_ids})
            locked = tx.get_invoices(account_id, invoice_ids, for_update=True)
            work.invoices.update((invoice.id, invoice) for invoice in locked)
            found = tx.get_payments(account_id, sorted({p.id for p in payments}))
            work.payments.update((p.id, p) for p in found)
        outcomes = []
        for payment, result in answered:
            who = None if parties is None else parties.get(payment.id)
            outcome = self._apply_in(
                work, payment.id, result, now=now, parties=who, sent=sent
            )
            outcomes.append(outcome)
        self._write(work, now)
        if changed is not None:
            changed.update(work.changed_payments)
        if stranded is not None:
            stranded.update(p.id for p in outcomes if work.stranded(p))
        return outcomes

    def reconcile(self, account_id: str, payment_id: str, *, now: datetime) -> Payment:
        """Finish a payment whose outcome is not final, asking the gateway first.

        The gateway is asked for the payment's charge, by its id when an
        answer gave one, else by the payment's key; only if it never saw one
        is the charge made, with that same key. It is made
        even if its invoices were paid another way meanwhile: the gateway may
        yet carry out the first request (or another process is about to send
        it), and the same key makes both one charge. Its amount then becomes
        the customer's credit, never lost (see ``Billing.apply_credit``). A
        charge found waiting for the customer's authentication when its
        invoices are no longer all open is canceled (:meth:`_cancel_stranded`).
        """
        return self.finish(account_id, payment_id, now=now).payment

    def finish(self, account_id: str, payment_id: str, *, now: datetime) -> Finished:
        """:meth:`reconcile`, saying whether this call recorded a new status and
        whether the gateway answered (the daily run reports and counts these).

        A payment recorded as declined or canceled is asked too: should the
        gateway report it succeeded after all, the money arrived, and it is
        recorded (see :meth:`_apply_in`). One that succeeded is not asked
        again. The charge is looked up by its id whenever the payment has
        one (waiting for the customer, processing): a look-up by key may not
        see a charge made moments ago (Stripe's search lags), so only a
        payment whose charge was never answered is asked by its key.
        """
        with self.storage.transaction() as tx:
            payment = tx.get_payment(account_id, payment_id)
        over = payment.status not in IN_FLIGHT
        if over and (
            payment.status is PaymentStatus.SUCCEEDED or not payment.charge_id
        ):
            return Finished(payment=payment, news=False, answered=True)
        try:
            result = self._closed(payment, self._look_up(payment))
        except GatewayUnavailableError:
            return Finished(payment=payment, news=False, answered=False)
        was = payment.status
        if result is None:
            if over or was is PaymentStatus.REQUIRES_ACTION:
                return Finished(payment=payment, news=False, answered=True)
            payment, sent = self.execute_sent(account_id, payment_id, now=now)
            answered = payment.status is not PaymentStatus.FAILED_UNKNOWN
            news = sent and payment.status is not was
            return Finished(payment=payment, news=news, answered=answered)
        payment, changed = self._recorded(payment, result, now=now)
        return Finished(payment=payment, news=changed, answered=True)

    def _look_up(self, payment: Payment) -> ChargeResult | None:
        """The gateway's charge for *payment*: by its id if known, else by key."""
        if payment.charge_id:
            return self.gateway.retrieve_charge(charge_id=payment.charge_id)
        return self.gateway.retrieve_charge(idempotency_key=payment.idempotency_key)

    def _closed(
        self, payment: Payment, result: ChargeResult | None
    ) -> ChargeResult | None:
        """*result*, once a decline it reports can no longer become a charge.

        A payment waiting for authentication handed its client secret to the
        customer's browser. Declined then (the authentication failed), the
        gateway keeps the charge open for another try (Stripe: a
        PaymentIntent in ``requires_payment_method``), which that secret can
        still confirm, even after a new payment of the invoice has been made.
        So the charge is canceled before the decline is recorded; if it
        succeeded first, the gateway says so and that is recorded instead.
        A cancel without an answer leaves the payment waiting, to be asked
        again (the cancel of a canceled charge changes nothing). Should the
        decline not be recorded after the cancel (a crash, the cancel's
        answer lost), the next look-up finds the charge canceled with the
        decline's codes, and the decline is recorded then (``_decline_of``).
        """
        if (
            result is None
            or result.status is not ChargeStatus.DECLINED
            or payment.status is not PaymentStatus.REQUIRES_ACTION
            or not result.charge_id
        ):
            return result
        after = self.gateway.cancel_charge(result.charge_id)
        return result if after.status is ChargeStatus.CANCELED else after

    def cancel(self, account_id: str, payment_id: str, *, now: datetime) -> Payment:
        """Cancel a payment that waits for the customer's authentication.

        The gateway cancels the charge, or answers that it finished first (the
        customer just authenticated): either way its answer is recorded, so
        a charge is never left live beside a new one. One the gateway had
        declined (the authentication failed) is recorded as declined, as
        :meth:`finish` records it. A gateway that does not
        answer raises :class:`~recurbill.errors.GatewayUnavailableError`;
        nothing changed, try again.
        """
        with self.storage.transaction() as tx:
            payment = tx.get_payment(account_id, payment_id)
        if payment.status is not PaymentStatus.REQUIRES_ACTION or not payment.charge_id:
            return payment
        result = self.gateway.cancel_charge(payment.charge_id)
        return self._record(payment, result, now=now)

    def make_way(
        self,
        account_id: str,
        customer_id: str,
        invoice_ids: Sequence[str],
        *,
        keep: Callable[[Payment], bool],
        check: Callable[[], object],
        now: datetime,
    ) -> None:
        """Before a new payment of *invoice_ids*: settle what stands in its way.

        Each payment in flight that touches them is asked of the gateway first
        (an earlier charge may have gone through meanwhile). Then *check*
        runs: the caller's refusal of the new payment, against what is known
        now; if it raises, nothing is canceled. So is nothing while a payment
        without an outcome remains (it blocks, see :func:`paying`: the new
        payment is not made). Only then is each one still waiting for the
        customer's authentication canceled at the gateway, unless *keep* says
        it is the very attempt being made again (the customer completes that
        one instead): canceled, it can no longer take money, so a new payment
        never stands beside it. If the customer completed it just before, the
        gateway says so and its outcome is recorded instead. A gateway that
        does not answer a cancel raises
        :class:`~recurbill.errors.GatewayUnavailableError`; try again.
        """
        outcomes = [
            self.reconcile(account_id, earlier.id, now=now)
            for earlier in self.in_flight(account_id, customer_id, invoice_ids)
        ]
        check()
        if any(outcome.status in NO_OUTCOME for outcome in outcomes):
            return
        for outcome in outcomes:
            if outcome.status is PaymentStatus.REQUIRES_ACTION and not keep(outcome):
                self.cancel(account_id, outcome.id, now=now)

    def close_way(
        self,
        account_id: str,
        customer_id: str,
        closing: Callable[[], Iterable[str]],
        *,
        now: datetime,
    ) -> None:
        """Before invoices close another way (paid, credited, voided, written
        off): cancel each payment of them that waits for the customer's
        authentication.

        *closing* is the caller's plan, against what is stored now: the ids
        of the invoices it would close, or an error refusing the action (on
        its first call: then nothing is canceled). Each waiting payment that
        touches one of them is canceled at the gateway (:meth:`cancel`), one
        that pays other invoices as well (a mass payment) too: its amount no
        longer holds. Canceled first, closed after in the caller's
        transaction (a gateway call is never made inside one), which refuses
        a waiting payment started meanwhile (:func:`refuse_waiting`): a crash
        between the two leaves the invoice open and its payment canceled,
        and the action done again closes it. If the customer completed the
        payment just before, the gateway says so and it is recorded, so the
        plan is asked again until it closes no invoice of a waiting payment.
        A payment without an outcome is left alone: its charge may still
        take money, which then becomes the customer's credit. A gateway that
        does not answer a cancel raises
        :class:`~recurbill.errors.GatewayUnavailableError`; nothing was closed.
        """
        canceled: set[str] = set()
        while True:
            closes = set(closing())
            with self.storage.transaction(read_only=True) as tx:
                waiting = of_invoices(
                    tx,
                    account_id,
                    customer_id,
                    sorted(closes),
                    statuses=[PaymentStatus.REQUIRES_ACTION],
                )
            due = {p.id for p in waiting} - canceled
            if not due:
                return
            for payment_id in sorted(due):
                self.cancel(account_id, payment_id, now=now)
            canceled |= due

    def in_flight(
        self, account_id: str, customer_id: str, invoice_ids: Sequence[str]
    ) -> list[Payment]:
        """The customer's payments in flight that touch any of *invoice_ids*,
        oldest first."""
        with self.storage.transaction() as tx:
            return of_invoices(
                tx, account_id, customer_id, invoice_ids, statuses=IN_FLIGHT
            )

    def unfinished(
        self, account_ids: Sequence[str], *, set_aside: SetAside
    ) -> list[Payment]:
        """Payments of *account_ids* whose outcome is still open: pending,
        unknown, processing, or waiting for the customer's authentication
        (which may have happened). A payment row that cannot be read is set
        aside (in *set_aside*) and the others are returned."""
        with self.storage.transaction() as tx:
            return [  # only the run's accounts' rows are read
                payment
                for account_id in dict.fromkeys(account_ids)
                for payment in set_aside.read(
                    account_id,
                    "payment",
                    listed(tx.list_payments, account_id, IN_FLIGHT),
                )
            ]

    # applying ----------------------------------------------------------
    def apply(
        self, payment: Payment, result: ChargeResult, *, now: datetime
    ) -> Payment:
        """Record the gateway's outcome for *payment*, exactly once."""
        return self._record(payment, result, now=now)

    def _apply_in(
        self,
        work: _Applying,
        payment_id: str,
        result: ChargeResult | None,
        *,
        now: datetime,
        parties: _Parties | None = None,
        sent: bool = False,
    ) -> Payment:
        """Apply *result* to the payment, unless it was applied already.

        A final outcome stays, but for a success reported after the payment
        was recorded declined or canceled: that is applied, once. *sent*: the
        result answers a charge sent just now (see :func:`_charged_at`).
        """
        tx = work.tx
        fresh = work.payments[payment_id]
        if result is None:
            if fresh.status is PaymentStatus.PENDING:
                fresh = attrs.evolve(
                    fresh, status=PaymentStatus.FAILED_UNKNOWN, updated_at=now
                )
                work.changed(fresh)
            return fresh
        result = _decline_of(result)
        if fresh.status in _FINAL and not (
            result.status is ChargeStatus.SUCCEEDED
            and fresh.status is not PaymentStatus.SUCCEEDED
        ):
            # a success reported for a payment recorded as declined or
            # canceled goes on: the money arrived, so it is applied (what
            # its invoices no longer owe becomes credit, see _settle)
            return fresh
        if fresh.status.value == result.status.value:
            return fresh  # nothing new (still waiting): no second notice
        if parties is None:
            parties = (
                tx.get_account(fresh.account_id),
                tx.get_customer(fresh.account_id, fresh.customer_id),
                tx.get_payment_method(fresh.account_id, fresh.payment_method_id),
            )
        account, customer, _ = parties
        paid_at = _charged_at(fresh, now=now, sent=sent)
        status = PaymentStatus(result.status.value)
        first_answer = fresh.status in _UNANSWERED
        alone = _alone(fresh)
        stale = NOTICE_WHILE.get(fresh.status)
        if stale is not None and fresh.off_session:
            work.withdraw(fresh, stale)  # it no longer holds: never send it
        closing = result.status is ChargeStatus.REQUIRES_ACTION and not (
            work.still_open(fresh)
        )
        closed = closing or (  # its cancel keeps the reason it was made
            fresh.error_code == INVOICE_CLOSED and status is PaymentStatus.CANCELED
        )
        fresh = attrs.evolve(
            fresh,
            status=status,
            charge_id=result.charge_id,
            decline_code=result.decline_code,
            # a charge waiting on invoices closed meanwhile is canceled
            # (_cancel_stranded): nothing may complete it
            error_code=INVOICE_CLOSED if closed else result.error_code,
            client_secret=None if closing else result.client_secret,
            updated_at=now,
        )
        numbers = [work.invoices[i].display_number for i in sorted(fresh.invoice_ids)]
        if result.status is ChargeStatus.SUCCEEDED:
            self._settle(work, parties, fresh, now=now, paid_at=paid_at, alone=alone)
        elif (
            result.status is ChargeStatus.REQUIRES_ACTION
            and fresh.off_session
            and not closing
        ):
            # (on session the customer completes it on the page they are on;
            # one whose invoice closed meanwhile is canceled, _cancel_stranded)
            message = render_payment_needs_action(
                account, customer, numbers, fresh.amount, result.action_url
            )
            work.notify(fresh, NEEDS_ACTION, message, now, first_answer=first_answer)
        elif (
            result.status is ChargeStatus.DECLINED
            and work.still_open(fresh)
            and self._is_final(tx, fresh, account)
        ):
            message = render_payment_failed(
                account,
                customer,
                numbers,
                fresh.amount,
                fresh.decline_code or fresh.error_code,
            )
            work.notify(fresh, PAYMENT_FAILED, message, now, first_answer=first_answer)
        work.changed(fresh)
        if fresh.settlement_id is not None and status in _SETTLEMENT_STATUS:
            settlement = tx.get_settlement(fresh.account_id, fresh.settlement_id)
            tx.update_settlement(
                attrs.evolve(settlement, status=_SETTLEMENT_STATUS[status])
            )
        return fresh

    def _write(self, work: _Applying, now: datetime) -> None:
        """Store what applying changed: invoices, payments, then the receipts;
        last, withdraw the "payment failed" notices of the invoices paid.

        Receipt numbers are allocated here, one block per account, in the
        order the payments were applied, and each receipt e-mail is rendered
        with its number.
        """
        tx = work.tx
        if work.changed_invoices:
            tx.update_invoices(list(work.changed_invoices.values()))
        if work.changed_payments:
            tx.update_payments(list(work.changed_payments.values()))
        counts: dict[str, int] = {}
        for receipt, *_ in work.receipts:
            counts[receipt.account_id] = counts.get(receipt.account_id, 0) + 1
        first = {  # counters in account order: two writers never deadlock
            account_id: tx.allocate_invoice_numbers(
                account_id, RECEIPT_SERIES, count=count
            )
            for account_id, count in sorted(counts.items())
        }
        receipts = []
        for receipt, (account, customer, _) in work.receipts:
            number = first[account.id]
            first[account.id] = number + 1
            numbered = attrs.evolve(receipt, number=f"{RECEIPT_SERIES}-{number:06d}")
            receipts.append(numbered)
            message = render_receipt(account, customer, numbered)
            work.queue(self.ids, account, "receipt", message, now)
        if receipts:
            tx.add_receipts(receipts)
        if work.notes:
            tx.add_notifications(work.notes)
        withdraw_failed_notices(tx, work.closed)

    def shares(self, tx: Transaction, payment: Payment) -> list[tuple[str, Money]]:
        """How much of *payment* belongs to each invoice it pays."""
        if payment.settlement_id is not None:
            settlement = tx.get_settlement(payment.account_id, payment.settlement_id)
            return [(item.invoice_id, item.amount) for item in settlement.items]
        (invoice_id,) = payment.invoice_ids
        return [(invoice_id, payment.amount)]

    def _settle(
        self,
        work: _Applying,
        parties: _Parties,
        payment: Payment,
        *,
        now: datetime,
        paid_at: datetime,
        alone: bool,
    ) -> None:
        """Apply succeeded *payment* to its invoices (what they no longer owe
        becomes credit) and queue its receipt, issued *now* and paid at
        *paid_at*. The "payment failed" notices of the invoices it settles
        are withdrawn, unless it pays one *alone* (:func:`_alone`)."""
        account, customer, method = parties
        currency = payment.amount.currency
        items: list[ReceiptItem] = []
        credit = Money.zero(currency)
        for invoice_id, share in self.shares(work.tx, payment):
            invoice = work.invoices[invoice_id]
            applied = Money.zero(currency)
            if invoice.status is InvoiceStatus.OPEN:
                applied = min(share, invoice.outstanding)
                paid = invoice.paid + applied
                settled = invoice.total - paid - invoice.credited <= Money.zero(
                    currency
                )
                changed = attrs.evolve(
                    invoice,
                    paid=paid,
                    status=InvoiceStatus.PAID if settled else InvoiceStatus.OPEN,
                    paid_at=paid_at if settled else invoice.paid_at,
                )
                work.changed_invoice(changed)
                if settled and not alone:
                    work.closed.append(changed)
            credit += share - applied
            items.append(
                ReceiptItem(
                    invoice_id=invoice.id,
                    invoice_number=invoice.display_number,
                    amount=applied,
                )
            )
        if credit:
            work.tx.add_credit_entry(
                CreditEntry(
                    id=derived_id("crd", payment.id),
                    account_id=account.id,
                    customer_id=customer.id,
                    amount=credit,
                    reason="paid after the invoice was settled another way",
                    source_id=payment.id,
                    created_at=now,
                )
            )
        receipt = Receipt(
            id=derived_id("rct", payment.id),
            account_id=account.id,
            customer_id=customer.id,
            number="",  # numbered when the batch is written (see _write)
            payment_id=payment.id,
            items=tuple(items),
            amount=payment.amount,
            credit=credit,
            card_brand=method.brand,
            card_last4=method.last4,
            issued_at=now,
            paid_at=paid_at,
        )
        work.receipts.append((receipt, parties))
        if payment.settlement_id is not None:
            settlement = work.tx.get_settlement(account.id, payment.settlement_id)
            work.tx.update_settlement(attrs.evolve(settlement, receipt_id=receipt.id))

    def _is_final(self, tx: Transaction, payment: Payment, account: Account) -> bool:
        """Whether a declined payment ends its invoice's automatic collection."""
        if not payment.off_session or payment.settlement_id is not None:
            return False  # the customer is present and sees the decline
        if (payment.decline_code or payment.error_code) in HARD_DECLINES:
            return True
        first = self._first_attempt_day(tx, payment, account)
        return (
            self.retry_policy.retry_on(first_attempt=first, attempt=payment.attempt)
            is None
        )

    def _first_attempt_day(
        self, tx: Transaction, payment: Payment, account: Account
    ) -> date:
        if payment.attempt == 1:
            return local_date(account, payment.created_at)
        first = tx.get_payment(
            payment.account_id,
            automatic_charge_id(payment.account_id, payment.invoice_ids[0], 1),
        )
        return local_date(account, first.created_at)

    def due_retries(
        self, *, on: Mapping[str, date], set_aside: SetAside
    ) -> list[tuple[Payment, int]]:
        """Declined automatic charges whose next attempt is due, with its number.

        *on* gives each account to look at and its local day. Only when the
        declined attempt is the invoice's latest payment, nothing else is in
        flight for the invoice, the invoice is still open and owes something,
        and the customer is still charged automatically. The declines are read
        once per account (only the accounts in *on*: another's rows are never
        read), and their invoices once per account, so the invoices paid since
        (most of the history) cost one batched read.

        A declined payment or an invoice whose row cannot be read is set aside
        (in *set_aside*); so is any row the check of one retry cannot read
        (another payment of its invoice, say), and that retry waits: an
        attempt is never made without knowing every attempt before it.
        """
        with self.storage.transaction() as tx:
            declined = [
                payment
                for account_id in on
                for payment in set_aside.read(
                    account_id,
                    "payment",
                    listed(tx.list_payments, account_id, [PaymentStatus.DECLINED]),
                )
            ]
            candidates: dict[str, dict[str, Payment]] = {}
            for payment in declined:
                if not payment.off_session or payment.settlement_id is not None:
                    continue
                if (payment.decline_code or payment.error_code) in HARD_DECLINES:
                    continue
                latest = candidates.setdefault(payment.account_id, {})
                key = payment.invoice_ids[0]
                if key not in latest or latest[key].attempt < payment.attempt:
                    latest[key] = payment
            due: list[tuple[Payment, int]] = []
            for account_id, latest in candidates.items():
                invoices = set_aside.read(
                    account_id, "invoice", _invoices(tx, account_id, latest)
                )
                owing = {
                    invoice.id
                    for invoice in invoices
                    if invoice.status is InvoiceStatus.OPEN
                    and invoice.outstanding.amount > 0
                }
                due.extend(
                    (payment, payment.attempt + 1)
                    for invoice_id, payment in latest.items()
                    if invoice_id in owing
                    and self._checked(tx, payment, on[account_id], set_aside)
                )
        return sorted(due, key=lambda pair: pair[0].id)

    def _checked(
        self, tx: Transaction, declined: Payment, on: date, set_aside: SetAside
    ) -> bool:
        """:meth:`retry_due`; False, with the row set aside, if a row it reads
        cannot be read."""
        try:
            return self.retry_due(tx, declined, on=on)
        except UnreadableRecordError as error:
            set_aside.add(declined.account_id, error)
            return False

    def retry_due(self, tx: Transaction, declined: Payment, *, on: date) -> bool:
        """Whether the attempt after *declined* is due on *on* (read in *tx*).

        Only when *declined* is the invoice's latest automatic attempt, nothing
        is in flight for the invoice (a customer's own payment included), the
        invoice is open and owes something, and the customer is still charged
        automatically. A declined on-session try does not stop the policy.
        """
        invoice_id = declined.invoice_ids[0]
        invoice = tx.get_invoice(declined.account_id, invoice_id)
        customer = tx.get_customer(declined.account_id, declined.customer_id)
        if (
            invoice.status is not InvoiceStatus.OPEN
            or invoice.outstanding.amount <= 0
            or customer.collection_method is not CollectionMethod.CHARGE_AUTOMATICALLY
        ):
            return False
        others = [
            p
            for p in of_invoices(tx, declined.account_id, customer.id, [invoice_id])
            if p.id != declined.id
        ]
        if any(p.status in IN_FLIGHT for p in others) or any(
            p.off_session and p.settlement_id is None and p.attempt > declined.attempt
            for p in others
        ):
            return False  # in flight, or a later automatic attempt exists
        account = tx.get_account(declined.account_id)
        first = self._first_attempt_day(tx, declined, account)
        retry_on = self.retry_policy.retry_on(
            first_attempt=first, attempt=declined.attempt
        )
        return retry_on is not None and retry_on <= on

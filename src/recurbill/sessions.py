"""Sessions and single payments: invoicing a session, paying one invoice.

A session is invoiced and, for a customer charged automatically, charged at
once; with a ``session_id`` a repeat returns the first result. An invoice is
paid with a saved card while the customer waits, and a payment's outcome is
asked of the gateway after authentication or a timeout.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial

import attrs

from recurbill.arguments import (
    allowance_charges,
    aware,
    caller_key,
    differ,
    invoice_lines,
)
from recurbill.chargeable import ONE_INVOICE_ADVICE, check_chargeable
from recurbill.collection import Collector, local_date, of_invoices, paying_invoice
from recurbill.errors import ConflictError, NotFoundError, StateError
from recurbill.ids import IdFactory, derived_id
from recurbill.invoice import AllowanceCharge, InvoiceLine
from recurbill.issuing import build_invoice, check_lines, collect_or_send
from recurbill.payments.protocol import PaymentGateway
from recurbill.records import (
    Invoice,
    InvoiceStatus,
    NoChargeReason,
    Payment,
    PaymentMethod,
    PaymentStatus,
)
from recurbill.storage.protocol import (
    Storage,
    Transaction,
    payment_receipts,
    stored_or_none,
)
from recurbill.views import PaymentOutcome

__all__ = ["Sessions"]


class _StoredMeanwhileError(Exception):
    """Another call stored the session's invoice after this one looked."""

    def __init__(self, conflict: ConflictError) -> None:
        super().__init__(str(conflict))
        self.conflict = conflict


@attrs.define
class Sessions:
    """Sessions and single payments; see the methods of :class:`Billing`."""

    storage: Storage
    gateway: PaymentGateway
    collector: Collector
    ids: IdFactory

    def record_session(
        self,
        account_id: str,
        customer_id: str,
        *,
        lines: Sequence[InvoiceLine],
        now: datetime,
        memo: str = "",
        session_id: str | None = None,
        allowances: Sequence[AllowanceCharge] = (),
        charges: Sequence[AllowanceCharge] = (),
    ) -> PaymentOutcome:
        """Invoice a session; charge the default card at once if so chosen.

        ``allowances`` and ``charges`` are document-level (EN 16931 BG-20,
        BG-21): a discount or a fee on the whole invoice, each an
        :class:`~recurbill.invoice.AllowanceCharge` with a reason, its own VAT
        category and rate, and a positive amount, or a percentage (above 0, at
        most 100) of a positive base amount, in the account's currency
        decimals. Bad ones raise :class:`~recurbill.errors.InvalidInvoiceError`
        (:class:`~recurbill.errors.VatCategoryError` for VAT), and so does an
        invoice that would total less than zero; nothing is written then.
        The allowances and charges of each line (``InvoiceLine(...,
        allowances=..., charges=...)``) keep the same rules, but take the
        line's VAT category; the error names the line by its position (from
        1) and description. A line may still come to less than zero through a
        negative quantity (a return).

        With ``session_id`` the call is idempotent: recording the same session
        again returns the first result and never invoices or charges twice.
        The same session is the same customer, lines, ``allowances``,
        ``charges`` and ``memo``, compared as values (``quantity=1`` and
        ``Decimal("1.0")`` are one quantity); ``now`` may differ (a retry
        comes later), and the invoice keeps the first call's dates. Other
        content under a ``session_id`` already recorded raises
        :class:`~recurbill.errors.ConflictError`, which names what differs;
        nothing is written (a new session needs a new ``session_id``). Two
        calls for one session at the same moment (a double click) behave the
        same: one stores the invoice, the other is its repeat. Without
        ``session_id`` every call is a new session: a request retried after a
        timeout invoices and charges again, so pass one wherever a call can
        be repeated.

        When nothing is charged, the outcome's ``reason`` says why (a
        :class:`~recurbill.records.NoChargeReason`: not charged automatically,
        no card, nothing due, or an amount the card cannot take); the invoice
        e-mail then asks for payment by the due date with the reference (and,
        for an amount the card cannot take, first says so).
        """
        aware(now, "now")
        items = invoice_lines(lines)
        discounts = allowance_charges(allowances, is_charge=False)
        fees = allowance_charges(charges, is_charge=True)
        invoice_id = (
            derived_id(
                "inv",
                account_id,
                "session",
                caller_key(session_id, "session_id", one_per="session"),
            )
            if session_id is not None
            else self.ids("inv")
        )
        issue = partial(
            self._issue,
            account_id,
            customer_id,
            invoice_id,
            session_id,
            items,
            discounts,
            fees,
            memo,
            now,
        )
        try:
            payment, reason = issue()
        except _StoredMeanwhileError:  # this call is now a repeat of the other one
            try:
                payment, reason = issue()
            except _StoredMeanwhileError as again:
                raise again.conflict from None
        if payment is not None:
            self.collector.execute(account_id, payment.id, now=now)
        else:  # a repeated session: finish a charge an earlier call left open
            for unfinished in self._open_payments(account_id, invoice_id):
                self.collector.reconcile(account_id, unfinished.id, now=now)
        return attrs.evolve(self._outcome(account_id, invoice_id), reason=reason)

    def _issue(
        self,
        account_id: str,
        customer_id: str,
        invoice_id: str,
        session_id: str | None,
        items: tuple[InvoiceLine, ...],
        discounts: tuple[AllowanceCharge, ...],
        fees: tuple[AllowanceCharge, ...],
        memo: str,
        now: datetime,
    ) -> tuple[Payment | None, NoChargeReason | None]:
        """Store the session's invoice and its payment, if any, in one
        transaction; a repeat of a stored session (checked to be one) stores
        nothing. The payment to send, and why none is charged."""
        payment: Payment | None = None
        reason: NoChargeReason | None = None
        with self.storage.transaction() as tx:
            account = tx.get_account(account_id)
            customer = tx.get_customer(account_id, customer_id)
            existing = stored_or_none(tx.get_invoice, account_id, invoice_id)
            # a repeat is checked against what it repeats, not against today's
            # rules: a session an earlier release took is still returned
            if existing is not None:
                _refuse_another(
                    existing,
                    session_id,
                    customer_id=customer_id,
                    lines=items,
                    allowances=discounts,
                    charges=fees,
                    memo=memo,
                )
            else:
                check_lines(items, account, allowances=discounts, charges=fees)
                number = tx.allocate_invoice_numbers(account_id, account.invoice_series)
                # read again under the counter's lock: a change_account of the
                # reference scheme, payment terms or name is in, or waits
                account = tx.get_account(account_id)
                invoice = build_invoice(
                    invoice_id=invoice_id,
                    account=account,
                    customer=customer,
                    lines=items,
                    allowances=discounts,
                    charges=fees,
                    number=number,
                    issue_date=local_date(account, now),
                    now=now,
                    memo=memo,
                )
                try:
                    tx.add_invoices([invoice])
                except ConflictError as conflict:
                    if session_id is None:
                        raise
                    # another call stored this session since the look-up
                    # (PostgreSQL: both looked before either stored it)
                    raise _StoredMeanwhileError(conflict) from None
                plan = collect_or_send(
                    tx,
                    self.collector,
                    account=account,
                    customer=customer,
                    invoices=[invoice],
                    now=now,
                )
                payment = plan.payments[0] if plan.payments else None
                reason = plan.reasons.get(invoice.id)
                tx.commit()
        return payment, reason

    def pay(
        self,
        account_id: str,
        invoice_id: str,
        *,
        payment_method_id: str,
        now: datetime,
    ) -> PaymentOutcome:
        """The customer pays one open invoice with a saved card (on-session).

        An invoice that is not open, or whose amount the gateway cannot charge
        (:class:`~recurbill.errors.ChargeAmountError`: below its minimum or
        above its maximum for one payment), is refused before anything else.
        Earlier payments of the invoice whose outcome is open are then asked of
        the gateway. A second submit while one is unfinished returns that
        payment's outcome instead of charging again; so does paying with the
        card of a payment of this invoice alone that waits for authentication
        (complete it with its ``client_secret``). Any other payment of it
        waiting for authentication (another card, or a mass payment) is
        canceled at the gateway first (unless it finished meanwhile), then
        this one pays; not while another payment of it has no outcome (that
        one is returned), nor if the invoice turns out paid meanwhile. A
        payment whose outcome the gateway could not tell is never sent again
        here: it is returned as it stands (``failed_unknown``, say) until a
        look-up answers.
        """
        aware(now, "now")
        with self.storage.transaction() as tx:
            invoice, _ = self._payable(tx, account_id, invoice_id, payment_method_id)

        def same_attempt(payment: Payment) -> bool:
            return (
                payment.settlement_id is None
                and payment.invoice_ids == (invoice_id,)
                and payment.payment_method_id == payment_method_id
            )

        def refuse() -> None:
            with self.storage.transaction() as tx:
                self._payable(tx, account_id, invoice_id, payment_method_id)

        self.collector.make_way(
            account_id,
            invoice.customer_id,
            [invoice_id],
            keep=same_attempt,
            check=refuse,
            now=now,
        )
        with self.storage.transaction() as tx:
            invoice, method = self._payable(
                tx, account_id, invoice_id, payment_method_id, lock=True
            )
            # after make_way, what is still in flight is this attempt, or a
            # payment without an outcome: returned, never charged beside
            busy = paying_invoice(tx, invoice)
            if busy is not None:
                payment = busy
            else:
                earlier = of_invoices(tx, account_id, invoice.customer_id, [invoice_id])
                account = tx.get_account(account_id)
                customer = tx.get_customer(account_id, invoice.customer_id)
                payment = self.collector.new_payment(
                    account=account,
                    customer=customer,
                    method=method,
                    invoices=[invoice],
                    amount=invoice.outstanding,
                    now=now,
                    off_session=False,
                    payment_id=derived_id(
                        "pay", account.id, invoice.id, "pay", str(len(earlier) + 1)
                    ),
                )
                tx.add_payment(payment)
                tx.commit()
        if busy is None:
            # (one still without an outcome is not sent again: the look-up
            # above got no answer, and sending it again could charge twice)
            self.collector.execute(account_id, payment.id, now=now)
        return self._outcome(account_id, invoice_id, payment_id=payment.id)

    def _payable(
        self,
        tx: Transaction,
        account_id: str,
        invoice_id: str,
        method_id: str,
        *,
        lock: bool = False,
    ) -> tuple[Invoice, PaymentMethod]:
        """The invoice and the customer's card, if the card can pay the invoice."""
        invoice = tx.get_invoice(account_id, invoice_id, for_update=lock)
        if invoice.status is not InvoiceStatus.OPEN or invoice.outstanding.amount <= 0:
            raise StateError(
                problem=(
                    f"invoice {invoice.display_number} is {invoice.status.value}"
                    f" and owes {invoice.outstanding}"
                ),
                allowed="only an open invoice with something to pay can be paid",
            )
        method = tx.get_payment_method(account_id, method_id)
        if method.customer_id != invoice.customer_id:
            raise NotFoundError(
                kind="payment method", key=method_id, account=account_id
            )
        check_chargeable(
            self.gateway,
            invoice.outstanding,
            what=f"invoice {invoice.display_number}",
            advice=ONE_INVOICE_ADVICE,
        )
        return invoice, method

    def _open_payments(self, account_id: str, invoice_id: str) -> list[Payment]:
        with self.storage.transaction(read_only=True) as tx:
            customer_id = tx.get_invoice(account_id, invoice_id).customer_id
        return self.collector.in_flight(account_id, customer_id, [invoice_id])

    def confirm_payment(
        self, account_id: str, payment_id: str, *, now: datetime
    ) -> PaymentOutcome:
        """Ask the gateway how a payment ended (after 3-D Secure, a timeout, …)."""
        payment = self.collector.reconcile(
            account_id, payment_id, now=aware(now, "now")
        )
        return self._outcome(account_id, payment.invoice_ids[0], payment_id=payment.id)

    def _outcome(
        self, account_id: str, invoice_id: str, *, payment_id: str | None = None
    ) -> PaymentOutcome:
        with self.storage.transaction(read_only=True) as tx:
            invoice = tx.get_invoice(account_id, invoice_id)
            payments = [
                p
                for p in of_invoices(tx, account_id, invoice.customer_id, [invoice_id])
                if payment_id is None or p.id == payment_id
            ]
            payment = max(payments, key=lambda p: p.created_at) if payments else None
            receipt = None
            if payment is not None and payment.status is PaymentStatus.SUCCEEDED:
                receipt = payment_receipts(
                    tx, account_id, invoice.customer_id, payment.id
                )[0]
        return PaymentOutcome(invoices=(invoice,), payment=payment, receipt=receipt)


_CONTENT = ("lines", "allowances", "charges", "memo")
"""What ``record_session`` puts on the invoice, by the names of its arguments."""


def _refuse_another(
    existing: Invoice, session_id: str | None, *, customer_id: str, **asked: object
) -> None:
    """Refuse recording *session_id* again with other content than *existing*,
    its invoice, was issued with (ConflictError naming what differs)."""
    if existing.customer_id != customer_id:
        raise ConflictError(
            problem=f"session {session_id!r} was recorded for another customer",
            allowed="give each session its own session_id",
        )
    differing = [f for f in _CONTENT if asked[f] != getattr(existing, f)]
    if not differing:
        return
    listed, _ = differ(differing)
    raise ConflictError(
        problem=f"session {session_id!r} was recorded already with other content: "
        f"what is given differs from its invoice {existing.display_number} in "
        f"the {listed}",
        allowed="to record another session, give a new session_id (or none); to "
        "repeat the call that recorded it, give the lines, allowances, charges "
        "and memo it was recorded with; to correct its invoice, credit it "
        "(credit_invoice) and record the session under a new session_id",
    )

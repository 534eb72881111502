"""What a screen shows: a customer's overview, a template's history and
upcoming invoices, the outcome of a payment. Values, and the reads that build
them.
"""

from __future__ import annotations

from datetime import date

import attrs

from recurbill.errors import InvalidInputError
from recurbill.money import Money
from recurbill.records import (
    Customer,
    Invoice,
    InvoiceStatus,
    NoChargeReason,
    OccurrenceRecord,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Receipt,
    RecurringTemplate,
    TemplateStatus,
    invoice_totals,
    past_calendar,
)
from recurbill.schedule import Occurrence, OccurrenceStatus
from recurbill.storage.protocol import Storage

__all__ = [
    "CustomerOverview",
    "PaymentOutcome",
    "TemplateView",
    "UpcomingInvoice",
    "customer_overview",
    "template_view",
]


@attrs.frozen(kw_only=True)
class PaymentOutcome:
    """What a charge did: the payment, the invoice(s) after it, and the receipt.

    ``payment`` is None when nothing was charged (a ``send_invoice`` customer,
    no saved card, or an amount the gateway cannot charge to a card: the
    invoice e-mail then asks for payment by the due date); ``reason`` then
    says which, when the call that returned it recorded the session. For
    ``requires_action``, ``payment.client_secret`` is what the customer's
    browser needs to complete the payment; it is None for a charge found
    waiting after its invoices were closed another way, which recurbill
    cancels (nothing may complete it).
    """

    invoices: tuple[Invoice, ...]
    payment: Payment | None = None
    receipt: Receipt | None = None
    reason: NoChargeReason | None = None
    """Why nothing was charged (``payment`` is None); None otherwise, and on a
    repeated ``record_session`` of the same session."""

    @property
    def status(self) -> PaymentStatus | None:
        """The payment's status, or None when nothing was charged."""
        return None if self.payment is None else self.payment.status

    @property
    def invoice(self) -> Invoice:
        """The (first) invoice this outcome is about."""
        return self.invoices[0]


@attrs.frozen(kw_only=True)
class CustomerOverview:
    """What a customer sees: invoices by state with totals, receipts, cards, credit."""

    customer: Customer
    open: tuple[Invoice, ...]
    overdue: tuple[Invoice, ...]
    paid: tuple[Invoice, ...]
    uncollectible: tuple[Invoice, ...]
    """Open invoices the business wrote off (no longer collected)."""
    total_open: Money
    total_overdue: Money
    receipts: tuple[Receipt, ...]
    payment_methods: tuple[PaymentMethod, ...]
    credit_balance: Money


@attrs.frozen(kw_only=True)
class UpcomingInvoice:
    """An occurrence the daily run will handle, with its date, status and amount.

    ``on``, ``index`` and ``status`` are the occurrence's, named as on the
    :class:`~recurbill.records.OccurrenceRecord` values of a template's history.
    """

    occurrence: Occurrence
    amount: Money

    @property
    def on(self) -> date:
        """The occurrence's date: the invoice's issue date."""
        return self.occurrence.on

    @property
    def index(self) -> int:
        """The occurrence's number in its schedule (0 is the start)."""
        return self.occurrence.index

    @property
    def status(self) -> OccurrenceStatus:
        """Whether it will be issued, or skipped by a pause."""
        return self.occurrence.status


@attrs.frozen(kw_only=True)
class TemplateView:
    """A template's history (what the runs did) and what comes next."""

    template: RecurringTemplate
    history: tuple[OccurrenceRecord, ...]
    invoices: tuple[Invoice, ...]
    upcoming: tuple[UpcomingInvoice, ...]


def template_view(
    storage: Storage, account_id: str, template_id: str, *, upcoming: int = 5
) -> TemplateView:
    """The invoices a template produced, its skipped dates, and the next ones.

    The upcoming list starts at the first occurrence the daily run has not
    handled, with the same schedule code and the same totals (lines and
    document allowances and charges) the run uses, so the preview and the run
    never disagree.
    """
    if isinstance(upcoming, bool) or not isinstance(upcoming, int) or upcoming < 0:
        raise InvalidInputError(
            problem=f"upcoming={upcoming!r}", allowed="give a count of 0 or more"
        )
    with storage.transaction(read_only=True) as tx:
        account = tx.get_account(account_id)
        template = tx.get_template(account_id, template_id)
        history = tx.list_occurrences(account_id, template_id)
        invoices = tx.list_invoices(account_id, template_id=template_id)
    schedule = template.schedule
    coming: list[UpcomingInvoice] = []
    if (
        template.status is TemplateStatus.ACTIVE
        and upcoming
        # none left: an active template only waits for its end date's run
        and schedule.status(template.next_index) is not OccurrenceStatus.AFTER_END
    ):
        amount = invoice_totals(  # as the run's build_invoice computes it
            account,
            lines=template.lines,
            allowances=template.allowances,
            charges=template.charges,
        ).amount_due
        first = schedule.occurrence(template.next_index)
        coming = [
            UpcomingInvoice(occurrence=occurrence, amount=amount)
            for occurrence in schedule.upcoming(after=first, count=upcoming)
            if not past_calendar(occurrence.on, account)  # where the run stops
        ]
    return TemplateView(
        template=template,
        history=tuple(history),
        invoices=tuple(invoices),
        upcoming=tuple(coming),
    )


def customer_overview(
    storage: Storage, account_id: str, customer_id: str, *, on: date
) -> CustomerOverview:
    """Paid, open and overdue invoices with totals, receipts, cards and credit."""
    with storage.transaction(read_only=True) as tx:
        account = tx.get_account(account_id)
        customer = tx.get_customer(account_id, customer_id)
        invoices = tx.list_invoices(account_id, customer_id=customer_id)
        receipts = tx.list_receipts(account_id, customer_id)
        methods = tx.list_payment_methods(account_id, customer_id)
        credit = tx.list_credit_entries(account_id, customer_id)
    zero = Money.zero(account.currency)
    open_ = tuple(i for i in invoices if i.status is InvoiceStatus.OPEN)
    overdue = tuple(i for i in open_ if i.is_overdue(on=on))
    return CustomerOverview(
        customer=customer,
        open=open_,
        overdue=overdue,
        paid=tuple(i for i in invoices if i.status is InvoiceStatus.PAID),
        uncollectible=tuple(
            i for i in invoices if i.status is InvoiceStatus.UNCOLLECTIBLE
        ),
        total_open=sum((i.outstanding for i in open_), zero),
        total_overdue=sum((i.outstanding for i in overdue), zero),
        receipts=tuple(receipts),
        payment_methods=tuple(methods),
        credit_balance=sum((c.amount for c in credit), zero),
    )

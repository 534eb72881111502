"""The persisted entities of recurbill: what storage keeps and the service hands around.

Every record belongs to exactly one account (``account_id``). Records are frozen
values; the service changes one by building a new value (``attrs.evolve``) and
handing it to storage. Ids are opaque strings chosen by the service.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timezone
from decimal import ROUND_HALF_UP
from typing import Any

import attrs

from recurbill.addresses import EMAIL_ALLOWED, is_email_address
from recurbill.errors import InvalidPayeeError, InvalidRecordError
from recurbill.invoice import AllowanceCharge, InvoiceLine, Totals, compute_totals
from recurbill.money import ROUNDING_MODES, Currency, Money, as_currency
from recurbill.payee import PayeeAccount, check_vat_number
from recurbill.references import ReferenceScheme, reference_methods
from recurbill.schedule import DEFAULT_RUN_TIME, Schedule, due_at

__all__ = [
    "FIRST_YEAR",
    "INVOICE_CLOSED",
    "LAST_YEAR",
    "MAX_PAYMENT_TERMS_DAYS",
    "UNSENT",
    "Account",
    "ChargeLine",
    "CollectionMethod",
    "CreditEntry",
    "CreditNoteRecord",
    "Customer",
    "EndedLine",
    "FailedLine",
    "Invoice",
    "InvoiceStatus",
    "IssuedLine",
    "NoChargeReason",
    "Notification",
    "NotificationStatus",
    "OccurrenceOutcome",
    "OccurrenceRecord",
    "Payment",
    "PaymentMethod",
    "PaymentStatus",
    "Receipt",
    "ReceiptItem",
    "RecurringTemplate",
    "Refund",
    "RunReport",
    "Settlement",
    "SettlementItem",
    "SettlementStatus",
    "SkippedLine",
    "SummaryLines",
    "TemplateStatus",
    "UnchargedLine",
    "UnreadableLine",
    "due_instant",
    "in_range",
    "invoice_totals",
    "past_calendar",
]


FIRST_YEAR, LAST_YEAR = 2, 9998
"""The years an instant may have in UTC: any UTC offset then stays within
Python's dates.

Recurring invoices end with the year LAST_YEAR too (a schedule's later
occurrences are after its end), so an invoice's due date always exists.
"""


def in_range(instant: datetime) -> bool:
    """Whether the aware *instant* falls in the years FIRST_YEAR to LAST_YEAR in UTC.

    Checked in UTC, the form storage keeps: 0002-01-01T00:30+05:00 is still
    the year 1 there.
    """
    if FIRST_YEAR < instant.year < LAST_YEAR:
        return True  # no offset moves it out: the common case costs no conversion
    try:
        year = instant.astimezone(timezone.utc).year
    except OverflowError:
        return False
    return FIRST_YEAR <= year <= LAST_YEAR


def due_instant(on: date, account: Account) -> datetime | None:
    """When an occurrence dated *on* is due for *account*, in UTC; None when that
    instant is past the end of recurbill's calendar (see :func:`in_range`).

    The daily run and the preview both use it, so they stop on the same date.
    """
    if on.year > LAST_YEAR:
        return None
    due = due_at(on, run_time=account.run_time, zone=account.timezone)
    return due if in_range(due) else None


def past_calendar(on: date, account: Account) -> bool:
    """Whether an occurrence dated *on* is due past the end of the calendar
    (:func:`due_instant` is None); free of time-zone work until its last year."""
    return on.year >= LAST_YEAR and due_instant(on, account) is None


MAX_PAYMENT_TERMS_DAYS = 365
"""The longest payment terms an account may give."""


def _aware(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, datetime) and value.utcoffset() is None:
        raise InvalidRecordError(
            problem=f"{attribute.name} is a naive datetime ({value.isoformat()})",
            allowed="give an aware datetime, e.g. datetime(..., tzinfo=timezone.utc)",
        )
    if isinstance(value, datetime) and not in_range(value):
        raise InvalidRecordError(
            problem=f"{attribute.name} {value.isoformat()} is outside the calendar",
            allowed=f"an instant in the years {FIRST_YEAR} to {LAST_YEAR} (in UTC)",
        )


def _instant(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, datetime):
        raise InvalidRecordError(
            problem=f"{attribute.name} {value!r} is not a datetime",
            allowed="give an aware datetime, e.g. datetime(..., tzinfo=timezone.utc)",
        )
    _aware(instance, attribute, value)


def _non_empty(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidRecordError(
            problem=f"{attribute.name} is empty or not text ({value!r})",
            allowed=f"{attribute.name} must be a non-empty string",
        )
    _text(instance, attribute, value)


def _digest(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not (
        isinstance(value, str)
        and len(value) == 64
        and all(c in "0123456789abcdef" for c in value)
    ):
        raise InvalidRecordError(
            problem=f"{attribute.name}={value!r} is not a SHA-256 digest",
            allowed=f"{attribute.name} is None or 64 lowercase hex digits",
        )


def _text(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str):
        raise InvalidRecordError(
            problem=f"{attribute.name} is not text ({value!r})",
            allowed=f"{attribute.name} must be a string ('' for none)",
        )
    if "\x00" in value:  # no database text column holds one
        raise InvalidRecordError(
            problem=f"{attribute.name} contains a NUL character ({value!r})",
            allowed=f"{attribute.name} must be text without NUL characters",
        )


def _payee_account(
    instance: object, attribute: attrs.Attribute[Any], value: Any
) -> None:
    if not isinstance(value, PayeeAccount):
        raise InvalidPayeeError(
            problem=f"payee_account {value!r} is not a PayeeAccount",
            allowed="give a PayeeAccount, e.g. PayeeAccount(kind='no_account', "
            "number='1234 56 78903'), or leave it out (None)",
        )


def _email(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    _non_empty(instance, attribute, value)
    if not is_email_address(value):
        raise InvalidRecordError(
            problem=f"{attribute.name} {value!r} is not a single e-mail address",
            allowed=f"give {EMAIL_ALLOWED}",
        )


class CollectionMethod(str, enum.Enum):
    """How a customer's invoices are collected; the account decides per customer."""

    CHARGE_AUTOMATICALLY = "charge_automatically"
    SEND_INVOICE = "send_invoice"


class InvoiceStatus(str, enum.Enum):
    """The state of an invoice. *Overdue* is derived: open and past its due date."""

    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


class TemplateStatus(str, enum.Enum):
    """Whether a template still produces invoices (pauses live in its schedule)."""

    ACTIVE = "active"
    FINISHED = "finished"


class OccurrenceOutcome(str, enum.Enum):
    """What the daily run did with one occurrence of a template."""

    ISSUED = "issued"
    SKIPPED = "skipped"


class PaymentStatus(str, enum.Enum):
    """A payment attempt's state; ``pending`` is saved before the gateway is called.

    ``canceled``: it waited for the customer's authentication and was
    canceled at the gateway (the customer chose another card or removed it);
    or, with ``error_code`` set to a :class:`NoChargeReason` value, a retry
    that was never sent because the gateway cannot take the amount left to
    pay (it ends the invoice's automatic retries).
    """

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    FAILED_UNKNOWN = "failed_unknown"
    CANCELED = "canceled"


INVOICE_CLOSED = "invoice_closed"
"""The ``error_code`` of a payment found waiting for the customer's
authentication after its invoices were settled another way: recurbill cancels
it (stored without a ``client_secret``, so nothing can complete it; if the
gateway does not answer the cancel, the next look-up makes it), and the
canceled payment keeps the code. A run's report lists it canceled, with this
code as its reason."""


class NoChargeReason(str, enum.Enum):
    """Why an invoice was not charged to the customer's card automatically.

    ``send_invoice``: the customer pays invoices themselves; ``no_card``: the
    customer is charged automatically but has no default card;
    ``nothing_due``: the invoice owes nothing. The others say that the gateway
    cannot take the amount in one card payment
    (:meth:`~recurbill.payments.protocol.PaymentGateway.charge_limits`):
    ``below_minimum``, ``above_maximum``, or ``not_increment`` (not a whole
    multiple of the smallest unit it charges). In every case the customer is
    e-mailed the invoice, to pay by its due date with its payment reference;
    for these last three, the e-mail says why the card was not charged.
    """

    SEND_INVOICE = "send_invoice"
    NO_CARD = "no_card"
    NOTHING_DUE = "nothing_due"
    BELOW_MINIMUM = "below_minimum"
    ABOVE_MAXIMUM = "above_maximum"
    NOT_INCREMENT = "not_increment"


class SettlementStatus(str, enum.Enum):
    """The state of a mass payment.

    ``abandoned``: it waited for authentication and was canceled at the
    gateway because the customer chose another card instead.
    """

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    REQUIRES_ACTION = "requires_action"
    ABANDONED = "abandoned"


class NotificationStatus(str, enum.Enum):
    """Delivery state of an outbox message.

    ``WITHDRAWN``: taken back before it was sent, because what it says no
    longer holds (a "payment needs confirmation" notice whose payment no
    longer waits for the customer, a "payment failed" one whose payment
    succeeded after all or whose invoice was closed another way); it is
    never sent.
    """

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    WITHDRAWN = "withdrawn"


UNSENT = (NotificationStatus.PENDING, NotificationStatus.FAILED)
"""The statuses of an outbox message still to be sent (delivery's queue)."""


@attrs.frozen(kw_only=True)
class Account:
    """The business that bills: currency, locale, time zone, run time, terms,
    series, how its payment references are made, and where it is paid."""

    id: str = attrs.field(validator=_non_empty)
    name: str = attrs.field(validator=_non_empty)
    currency: Currency = attrs.field(converter=as_currency)
    locale: str = "en_GB"
    timezone: str = "UTC"
    run_time: time = DEFAULT_RUN_TIME
    payment_terms_days: int = 14
    invoice_series: str = "INV"
    summary_email: str = attrs.field(validator=_email)
    rounding: str = ROUND_HALF_UP
    """A :mod:`decimal` rounding mode such as ``ROUND_HALF_UP`` (the default)."""
    reference_scheme: ReferenceScheme = attrs.field(
        default=attrs.Factory(
            lambda account: ReferenceScheme.default_for(account.currency.code),
            takes_self=True,
        )
    )
    """How invoice numbers become payment references; by default the
    currency's (:meth:`~recurbill.references.ReferenceScheme.default_for`)."""
    payee_account: PayeeAccount | None = attrs.field(
        default=None, validator=attrs.validators.optional(_payee_account)
    )
    """Where customers who pay by invoice pay to, shown on its invoices; None
    (the default) shows none."""
    vat_number: str | None = attrs.field(
        default=None, converter=attrs.converters.optional(check_vat_number)
    )
    """The seller's VAT or organisation number shown on its invoices
    (EN 16931 BT-31 or BT-30), e.g. ``NO 999 999 999 MVA``; None shows none."""

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.rounding, str) or self.rounding not in ROUNDING_MODES:
            raise InvalidRecordError(
                problem=f"rounding {self.rounding!r} is not a decimal rounding mode",
                allowed="one of "
                + ", ".join(sorted(ROUNDING_MODES))
                + " (decimal.ROUND_HALF_UP is the default)",
            )
        if isinstance(self.payment_terms_days, bool) or not (
            isinstance(self.payment_terms_days, int)
            and 0 <= self.payment_terms_days <= MAX_PAYMENT_TERMS_DAYS
        ):
            raise InvalidRecordError(
                problem=f"payment_terms_days {self.payment_terms_days!r} is invalid",
                allowed="use a whole number of days from 0 to "
                f"{MAX_PAYMENT_TERMS_DAYS}",
            )
        self._check_reference_scheme()

    def _check_reference_scheme(self) -> None:
        scheme, code = self.reference_scheme, self.currency.code
        if not isinstance(scheme, ReferenceScheme):
            raise InvalidRecordError(
                problem=f"reference_scheme {scheme!r} is not a ReferenceScheme",
                allowed="give a ReferenceScheme, e.g. "
                "ReferenceScheme(method='kid_mod11', length=10), or leave it out",
            )
        methods = reference_methods(code)
        if scheme.method not in methods:
            choices = " or ".join(repr(m.value) for m in methods)
            raise InvalidRecordError(
                problem=f"a {scheme.method.label} reference is not used in {code}",
                allowed=f"an account billing in {code} may use {choices} "
                "(KID is for NOK accounts, OCR for SEK, the invoice number for "
                "the other currencies)",
            )


def invoice_totals(
    account: Account,
    *,
    lines: Sequence[InvoiceLine],
    allowances: Sequence[AllowanceCharge] = (),
    charges: Sequence[AllowanceCharge] = (),
) -> Totals:
    """The EN 16931 totals of an invoice of *account*: these lines and
    document-level allowances and charges, in its currency and rounding.

    The one calculation behind an issued invoice, a template's preview and
    the check that refuses a negative total, so they never disagree.
    """
    return compute_totals(
        lines,
        currency=account.currency,
        allowances=allowances,
        charges=charges,
        rounding=account.rounding,
    )


@attrs.frozen(kw_only=True)
class Customer:
    """Whom an account bills, and how their invoices are collected.

    ``added_with`` is a digest of the arguments
    :meth:`~recurbill.billing.Billing.add_customer` added it with, so that a
    repeat of that call is known after later changes without keeping the
    details they replaced; None for a customer stored otherwise (or before
    schema version 6).
    """

    id: str = attrs.field(validator=_non_empty)
    account_id: str = attrs.field(validator=_non_empty)
    name: str = attrs.field(validator=_non_empty)
    email: str = attrs.field(validator=_email)
    locale: str = "en_GB"
    collection_method: CollectionMethod = attrs.field(
        default=CollectionMethod.CHARGE_AUTOMATICALLY, converter=CollectionMethod
    )
    default_payment_method_id: str | None = None
    gateway_customer_id: str | None = None
    added_with: str | None = attrs.field(default=None, validator=_digest)


@attrs.frozen(kw_only=True)
class PaymentMethod:
    """A saved card: the gateway's token and display facts, never a card number."""

    id: str = attrs.field(validator=_non_empty)
    account_id: str
    customer_id: str
    token: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@attrs.frozen(kw_only=True)
class RecurringTemplate:
    """An invoice draft plus a schedule; produces one invoice per occurrence.

    ``allowances`` and ``charges`` are document-level (EN 16931 BG-20, BG-21),
    each with its own VAT category and rate; every invoice it produces carries
    them. ``next_index`` is the first occurrence the daily run has not handled
    yet and ``next_due_at`` the instant it is due (``None`` once the schedule
    is exhausted). ``created_with`` is a digest of the arguments
    :meth:`~recurbill.billing.Billing.create_template` created it with, so
    that a repeat of that call is known after later changes; None for a
    template stored otherwise (or before schema version 7).
    """

    id: str = attrs.field(validator=_non_empty)
    account_id: str
    customer_id: str
    currency: Currency = attrs.field(converter=as_currency)
    lines: tuple[InvoiceLine, ...]
    allowances: tuple[AllowanceCharge, ...] = ()
    charges: tuple[AllowanceCharge, ...] = ()
    schedule: Schedule
    memo: str = attrs.field(default="", validator=_text)
    status: TemplateStatus = attrs.field(
        default=TemplateStatus.ACTIVE, converter=TemplateStatus
    )
    next_index: int = 0
    next_due_at: datetime | None = attrs.field(default=None, validator=_aware)
    created_at: datetime = attrs.field(validator=_aware)
    created_with: str | None = attrs.field(default=None, validator=_digest)


@attrs.frozen(kw_only=True)
class OccurrenceRecord:
    """What happened to occurrence ``index`` of a template: issued or skipped."""

    account_id: str
    template_id: str
    index: int
    on: date
    outcome: OccurrenceOutcome = attrs.field(converter=OccurrenceOutcome)
    invoice_id: str | None = None


@attrs.frozen(kw_only=True)
class Invoice:
    """An issued invoice: lines, totals, number, dates and what has been paid.

    ``allowances`` and ``charges`` are document-level (BG-20, BG-21), counted
    in ``net_total`` (BT-109) and ``vat_total``. ``total`` is the amount due
    when issued (BT-115); ``paid`` and ``credited`` grow as payments and
    credit notes settle it. ``outstanding`` is what is left.
    """

    id: str = attrs.field(validator=_non_empty)
    account_id: str
    customer_id: str
    series: str
    number: int
    status: InvoiceStatus = attrs.field(converter=InvoiceStatus)
    currency: Currency = attrs.field(converter=as_currency)
    issue_date: date
    due_date: date
    lines: tuple[InvoiceLine, ...]
    allowances: tuple[AllowanceCharge, ...] = ()
    charges: tuple[AllowanceCharge, ...] = ()
    net_total: Money
    vat_total: Money
    total: Money
    paid: Money
    credited: Money
    payment_reference: str = ""
    template_id: str | None = None
    occurrence_index: int | None = None
    memo: str = attrs.field(default="", validator=_text)
    created_at: datetime = attrs.field(validator=_aware)
    paid_at: datetime | None = attrs.field(default=None, validator=_aware)

    @property
    def display_number(self) -> str:
        """The invoice number as printed: series and zero-padded number."""
        return f"{self.series}-{self.number:06d}"

    @property
    def outstanding(self) -> Money:
        """What is still owed on this invoice."""
        return self.total - self.paid - self.credited

    def is_overdue(self, *, on: date) -> bool:
        """Open and past its due date on day *on*."""
        return self.status is InvoiceStatus.OPEN and on > self.due_date


@attrs.frozen(kw_only=True)
class Payment:
    """One attempt to collect money; saved (pending) before the gateway is called.

    ``idempotency_key`` is derived from this record, so a retry after a timeout
    reuses it and can never charge twice.
    """

    id: str = attrs.field(validator=_non_empty)
    account_id: str
    customer_id: str
    idempotency_key: str
    amount: Money
    payment_method_id: str
    invoice_ids: tuple[str, ...]
    status: PaymentStatus = attrs.field(converter=PaymentStatus)
    off_session: bool = True
    attempt: int = 1
    settlement_id: str | None = None
    charge_id: str | None = None
    decline_code: str | None = None
    error_code: str | None = None
    client_secret: str | None = None
    refunded: Money | None = None
    """What refunds took back of this payment: the sum of those the gateway
    accepted (``pending`` or ``succeeded``; one that failed after that still
    counts, its amount became the customer's credit). None until the first;
    a refund waiting for its answer, or refused, is not in it. Each refund is
    a :class:`Refund`."""
    created_at: datetime = attrs.field(validator=_aware)
    updated_at: datetime = attrs.field(validator=_aware)


@attrs.frozen(kw_only=True)
class SettlementItem:
    """One invoice inside a mass payment, with the amount it was selected for."""

    invoice_id: str
    invoice_number: str
    amount: Money


@attrs.frozen(kw_only=True)
class Settlement:
    """A mass payment: a snapshot of the selected invoices and the total charged."""

    id: str = attrs.field(validator=_non_empty)
    account_id: str
    customer_id: str
    selection_key: str
    items: tuple[SettlementItem, ...]
    total: Money
    payment_method_id: str
    status: SettlementStatus = attrs.field(converter=SettlementStatus)
    payment_id: str | None = None
    receipt_id: str | None = None
    created_at: datetime = attrs.field(validator=_aware)


@attrs.frozen(kw_only=True)
class ReceiptItem:
    """One invoice a receipt settled and the amount applied to it."""

    invoice_id: str
    invoice_number: str
    amount: Money


@attrs.frozen(kw_only=True)
class Receipt:
    """The customer-facing record of a succeeded payment."""

    id: str = attrs.field(validator=_non_empty)
    account_id: str
    customer_id: str
    number: str
    payment_id: str
    items: tuple[ReceiptItem, ...]
    amount: Money
    credit: Money
    card_brand: str
    card_last4: str
    issued_at: datetime = attrs.field(validator=_aware)
    """When recurbill learned of the success and issued this receipt."""
    paid_at: datetime = attrs.field(validator=_instant)
    """When the card was charged (aware): the payment date the receipt's
    e-mail gives, and the ``paid_at`` of the invoices it settles. At or before
    ``issued_at``: earlier for a charge whose answer was lost or that was
    still processing, whose success a later run or look-up found. Receipts
    stored before schema version 10 have the best value known then (see
    :mod:`recurbill.storage.migrations`)."""

    def __attrs_post_init__(self) -> None:
        if isinstance(self.issued_at, datetime) and self.paid_at > self.issued_at:
            raise InvalidRecordError(
                problem=f"paid_at {self.paid_at.isoformat()} is after receipt "
                f"{self.id!r} was issued ({self.issued_at.isoformat()})",
                allowed="when the card was charged, at or before the receipt's "
                "issued_at",
            )


@attrs.frozen(kw_only=True)
class CreditNoteRecord:
    """An issued credit note: lowers what is owed on an invoice or creates credit.

    A credit note of a whole invoice carries that invoice's ``lines``,
    ``allowances`` and ``charges``, which give its VAT per rate; one of part
    of an invoice is an ``amount`` only.
    """

    id: str = attrs.field(validator=_non_empty)
    account_id: str
    customer_id: str
    invoice_id: str
    number: int
    series: str
    amount: Money
    reason: str = attrs.field(validator=_non_empty)
    issue_date: date
    lines: tuple[InvoiceLine, ...] = ()
    allowances: tuple[AllowanceCharge, ...] = ()
    charges: tuple[AllowanceCharge, ...] = ()


@attrs.frozen(kw_only=True)
class Refund:
    """A refund of a succeeded payment, full or partial.

    ``reopen`` is the choice it was asked with (the invoices owe it again, or
    are credited); None for a refund stored before schema version 11, whose
    choice only its status tells while it waits for the gateway's answer.
    """

    id: str = attrs.field(validator=_non_empty)
    account_id: str
    payment_id: str
    amount: Money
    idempotency_key: str
    status: str
    refund_id: str | None = None
    created_at: datetime = attrs.field(validator=_aware)
    reopen: bool | None = None


@attrs.frozen(kw_only=True)
class CreditEntry:
    """A movement of a customer's credit balance (positive adds credit)."""

    id: str = attrs.field(validator=_non_empty)
    account_id: str
    customer_id: str
    amount: Money
    reason: str = attrs.field(validator=_text)
    source_id: str
    created_at: datetime = attrs.field(validator=_aware)


@attrs.frozen(kw_only=True)
class Notification:
    """An outbox message: written with the event it announces, sent after commit."""

    id: str = attrs.field(validator=_non_empty)
    account_id: str
    kind: str
    recipient: str
    subject: str
    text: str
    html: str
    status: NotificationStatus = attrs.field(
        default=NotificationStatus.PENDING, converter=NotificationStatus
    )
    attempts: int = 0
    last_error: str | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    created_at: datetime = attrs.field(validator=_aware)
    sent_at: datetime | None = attrs.field(default=None, validator=_aware)


@attrs.frozen(kw_only=True)
class SummaryLines:
    """Lines of an account's daily summary not queued yet.

    The daily run stores them in the transaction of the work they report (a
    chunk of invoices, a retry, the payments it is about to finish) and
    removes them in the one that queues the summary, so a summary lists
    every line once, whatever crashes and reruns happen in between.
    """

    id: str
    account_id: str
    lines: str
    """The lines, as JSON the daily run writes and reads (opaque to storage)."""
    created_at: datetime = attrs.field(validator=_aware)


@attrs.frozen(kw_only=True)
class IssuedLine:
    """An invoice one daily run issued, as the summary lists it."""

    invoice_id: str
    invoice_number: str
    customer_name: str
    issue_date: date
    total: Money


@attrs.frozen(kw_only=True)
class ChargeLine:
    """The outcome of one charge a daily run made.

    ``pending``: the payment was saved but not sent, because the gateway
    stopped the run (a refused API key, an outage); the next run makes it.
    ``canceled`` with ``decline_code`` :data:`INVOICE_CLOSED`: its invoices
    were settled another way while it was sent, so recurbill cancels it.
    """

    invoice_number: str
    customer_name: str
    amount: Money
    status: PaymentStatus = attrs.field(converter=PaymentStatus)
    decline_code: str | None = None

    @classmethod
    def of(
        cls, payment: Payment, *, invoice_number: str, customer_name: str
    ) -> ChargeLine:
        """The line of *payment* as it is stored; one waiting to be canceled
        because its invoices closed (:data:`INVOICE_CLOSED`) reads canceled."""
        closed = payment.error_code == INVOICE_CLOSED and payment.status in (
            PaymentStatus.REQUIRES_ACTION,
            PaymentStatus.CANCELED,
        )
        return cls(
            invoice_number=invoice_number,
            customer_name=customer_name,
            amount=payment.amount,
            status=PaymentStatus.CANCELED if closed else payment.status,
            decline_code=INVOICE_CLOSED if closed else payment.decline_code,
        )


@attrs.frozen(kw_only=True)
class UnchargedLine:
    """An invoice of a customer charged automatically that a daily run did not
    charge: the gateway cannot take its amount in one card payment.

    The customer was e-mailed the invoice instead, saying why the card was not
    charged, to pay by its due date with its payment reference. ``retry``
    marks a retry of a declined charge whose amount left to pay (after a part
    payment) the card cannot take: no charge was made, and the invoice's
    automatic retries end there (the e-mail asks for payment now if the due
    date has passed).
    """

    invoice_number: str
    customer_name: str
    amount: Money
    reason: NoChargeReason = attrs.field(converter=NoChargeReason)
    retry: bool = False


@attrs.frozen(kw_only=True)
class SkippedLine:
    """An occurrence skipped because its template was paused."""

    template_id: str
    customer_name: str
    on: date
    description: str = ""
    """What the template bills (its memo, or its first line): for people to read."""


@attrs.frozen(kw_only=True)
class EndedLine:
    """A template that produced its last invoice (or passed its end) in this run."""

    template_id: str
    customer_name: str
    description: str = ""
    """What the template bills (its memo, or its first line): for people to read."""


@attrs.frozen(kw_only=True)
class FailedLine:
    """A template the run could not issue; it stays due and is tried again.

    The rest of the run went on: one template's bad data never stops the
    others. Correct the template (or end it) and the next run issues it. A
    template whose stored row could not be read (``error`` is
    ``"UnreadableRecordError"``) has no ``description``; correct its row.
    """

    template_id: str
    customer_name: str
    problem: str
    """The error that stopped it: what was wrong and what is allowed (English)."""
    description: str = ""
    """What the template bills (its memo, or its first line): for people to read."""
    error: str = "InvalidInputError"
    """The name of the error's class in :mod:`recurbill.errors` (e.g.
    ``"VatCategoryError"``): the summary names the problem by it in the
    reader's language."""


@attrs.frozen(kw_only=True)
class UnreadableLine:
    """A stored row the run needed but could not read, so it set it aside.

    A payment in flight that the run would have finished (or a row that
    finishing it needs: its invoice's, its customer's), a declined payment
    (or its invoice) it would have retried, or a refund it would have
    finished or followed (or its payment, or an earlier refund of that
    payment): the row is left as it is, nothing of it is charged, refunded
    or changed, and the rest of the run went on.
    Correct the row to what recurbill writes (or restore it from a backup)
    and the next run handles it. A template that cannot be read is a
    :class:`FailedLine` instead.
    """

    kind: str
    """The kind of record, as :class:`~recurbill.errors.UnreadableRecordError`
    names it (``"payment"``, ``"invoice"``, ``"refund"``, ``"customer"``)."""
    key: str
    """The record's id, as stored."""
    problem: str
    """The error's message: the record, the column and why (English)."""


@attrs.frozen(kw_only=True)
class RunReport:
    """What one daily run did for one account: the daily summary."""

    account_id: str
    as_of: datetime = attrs.field(validator=_aware)
    issued: tuple[IssuedLine, ...] = ()
    charges: tuple[ChargeLine, ...] = ()
    skipped: tuple[SkippedLine, ...] = ()
    ended: tuple[EndedLine, ...] = ()
    failed: tuple[FailedLine, ...] = ()
    uncharged: tuple[UnchargedLine, ...] = ()
    """Invoices of customers charged automatically that were sent as invoices
    (or whose retries ended) because a card cannot take their amount."""
    unreadable: tuple[UnreadableLine, ...] = ()
    """Stored records the run set aside because their rows could not be read
    (payments, invoices, refunds, customers: :attr:`UnreadableLine.kind`);
    each is tried again by the next run."""

    @property
    def is_empty(self) -> bool:
        """Whether the run did nothing worth reporting for this account."""
        return not (
            self.issued
            or self.charges
            or self.skipped
            or self.ended
            or self.failed
            or self.uncharged
            or self.unreadable
        )

    def count(self, status: PaymentStatus) -> int:
        """How many charges of this run ended in *status*."""
        return sum(1 for charge in self.charges if charge.status is status)

"""Issuing: building an invoice of a template's occurrence or a session, and
planning how newly issued invoices get paid.

Shared by the daily run (:mod:`recurbill.daily`), templates and sessions:
which accounts a run covers, the payment reference and totals of a new
invoice, the checks its lines must pass, when a template is next due, and
whether each new invoice is charged to a card or e-mailed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime, timedelta

import attrs

from recurbill.arguments import check_allowance_charges, check_line_items
from recurbill.chargeable import no_automatic_charge
from recurbill.collection import Collector, local_date, outbox_message
from recurbill.errors import InvalidInputError, InvalidInvoiceError
from recurbill.ids import automatic_charge_id
from recurbill.invoice import AllowanceCharge, InvoiceLine
from recurbill.money import Money
from recurbill.notify.render import render_invoice
from recurbill.records import (
    Account,
    Customer,
    Invoice,
    InvoiceStatus,
    NoChargeReason,
    Notification,
    Payment,
    PaymentMethod,
    RecurringTemplate,
    due_instant,
    invoice_totals,
)
from recurbill.schedule import OccurrenceStatus, Schedule
from recurbill.storage.protocol import Transaction

__all__ = [
    "CollectionPlan",
    "build_invoice",
    "check_lines",
    "collect_or_send",
    "due_from",
    "next_due",
    "payment_reference",
    "plan_collection",
    "run_accounts",
]


def run_accounts(account_ids: object) -> list[str] | None:
    """The accounts a run is limited to: None (every account) or distinct ids.

    Raises:
        InvalidInputError: one string (not a sequence of ids), an id that is
            not a non-empty string, or an id given twice.
    """
    if account_ids is None:
        return None
    allowed = "give a list or tuple of distinct account ids, e.g. ['fjord'], or None"
    if isinstance(account_ids, (str, bytes)) or not isinstance(account_ids, Sequence):
        raise InvalidInputError(
            problem=f"account_ids={account_ids!r} is not a sequence of ids",
            allowed=allowed + " for every account",
        )
    seen: set[str] = set()
    for account_id in account_ids:
        if not isinstance(account_id, str) or not account_id:
            raise InvalidInputError(
                problem=f"account id {account_id!r} is not a non-empty string",
                allowed=allowed,
            )
        if account_id in seen:
            raise InvalidInputError(
                problem=f"account {account_id!r} is given twice in account_ids",
                allowed=allowed + " (each account is run once)",
            )
        seen.add(account_id)
    return list(account_ids)


def payment_reference(account: Account, number: int) -> str:
    """The payment reference printed on invoice *number*, by the account's
    :class:`~recurbill.references.ReferenceScheme` (a KID for NOK and an OCR
    number for SEK unless it says otherwise).

    Raises:
        ReferenceLengthError: the number no longer fits the scheme's fixed
            length (nothing is issued).
    """
    return account.reference_scheme.reference(number, series=account.invoice_series)


def build_invoice(
    *,
    invoice_id: str,
    account: Account,
    customer: Customer,
    lines: Sequence[InvoiceLine],
    number: int,
    issue_date: date,
    now: datetime,
    memo: str = "",
    template_id: str | None = None,
    occurrence_index: int | None = None,
    allowances: Sequence[AllowanceCharge] = (),
    charges: Sequence[AllowanceCharge] = (),
) -> Invoice:
    """An issued invoice, totals by the EN 16931 calculator
    (:func:`~recurbill.records.invoice_totals`).

    *allowances* and *charges* are document-level, checked before this point
    (:func:`check_lines`). Open, or paid at once when it totals zero (nothing
    to collect). A negative total is refused before this point too.
    """
    lines = lines if isinstance(lines, tuple) else tuple(lines)  # shared as is
    if type(allowances) is not tuple:
        allowances = tuple(allowances)
    if type(charges) is not tuple:
        charges = tuple(charges)
    totals = invoice_totals(
        account, lines=lines, allowances=allowances, charges=charges
    )
    zero = Money.zero(account.currency)
    nothing_due = totals.amount_due.amount == 0
    return Invoice(
        id=invoice_id,
        account_id=account.id,
        customer_id=customer.id,
        series=account.invoice_series,
        number=number,
        status=InvoiceStatus.PAID if nothing_due else InvoiceStatus.OPEN,
        paid_at=now if nothing_due else None,
        currency=account.currency,
        issue_date=issue_date,
        due_date=issue_date + timedelta(days=account.payment_terms_days),
        lines=lines,
        allowances=allowances,
        charges=charges,
        net_total=totals.tax_exclusive,
        vat_total=totals.vat_total,
        total=totals.amount_due,
        paid=zero,
        credited=zero,
        payment_reference=payment_reference(account, number),
        template_id=template_id,
        occurrence_index=occurrence_index,
        memo=memo,
        created_at=now,
    )


def check_lines(
    lines: Sequence[InvoiceLine],
    account: Account,
    *,
    allowances: Sequence[AllowanceCharge] = (),
    charges: Sequence[AllowanceCharge] = (),
) -> None:
    """Refuse an invoice of these lines and document allowances and charges
    that does not fit *account* or would total less than zero.

    Each line's allowances and charges keep the rules of document-level ones
    (:func:`~recurbill.arguments.check_line_items`), allowance and charge
    amounts must fit the account's currency, and the VAT rules hold across
    lines, allowances and charges (one exemption reason per category and
    rate, no O or B mixed with others). A correction that gives money back is
    a credit note on the invoice it corrects (``Billing.credit_invoice``), not
    an invoice of its own.
    """
    check_line_items(lines, currency=account.currency, rounding=account.rounding)
    if allowances or charges:
        check_allowance_charges(
            (*allowances, *charges),
            currency=account.currency,
            rounding=account.rounding,
        )
    total = invoice_totals(
        account, lines=tuple(lines), allowances=allowances, charges=charges
    ).amount_due
    if total.amount < 0:
        what = "these lines"
        if allowances or charges:
            what += ", allowances and charges"
        raise InvalidInvoiceError(
            problem=f"{what} total {total}, less than zero",
            allowed="an invoice totals zero or more (allowances at most what "
            "the lines and charges come to); give money back with a credit "
            "note on the invoice it corrects (credit_invoice)",
        )


def next_due(template: RecurringTemplate, account: Account) -> datetime | None:
    """When the daily run next has work for the template; None when it has none.

    That is when its next unhandled occurrence is due. Once none is left, a
    template whose end date stops it is due at its end date's run time: that
    run finishes it and reports it ended, and until then the end can still be
    moved. One whose count ran out, or that reached the end of recurbill's
    calendar (:func:`~recurbill.records.due_instant`), ends with the run of
    its last occurrence: None.
    """
    return due_from(template.schedule, template.next_index, account)


def due_from(schedule: Schedule, n: int, account: Account) -> datetime | None:
    """:func:`next_due` of a template with *schedule* whose next index is *n*."""
    if schedule.status(n) is not OccurrenceStatus.AFTER_END:
        return due_instant(schedule.occurrence(n), account)
    if schedule.end is None:
        return None
    if schedule.max_count is not None:
        by_count = attrs.evolve(schedule, end=None).last_index()
        if by_count is not None and by_count < n:
            return None  # the count ran out: that ends it, even before its end date
    return due_instant(schedule.end, account)


@attrs.frozen(kw_only=True)
class CollectionPlan:
    """How :func:`plan_collection` collects newly issued invoices."""

    payments: tuple[Payment, ...]
    """Pending first-attempt payments, one per invoice charged."""
    notes: tuple[Notification, ...]
    """Invoice e-mails, one per invoice not charged."""
    reasons: Mapping[str, NoChargeReason]
    """Why each invoice e-mailed was not charged, by invoice id."""


def plan_collection(
    collector: Collector,
    *,
    account: Account,
    customer: Customer,
    invoices: Sequence[Invoice],
    now: datetime,
    method: Callable[[str], PaymentMethod],
) -> CollectionPlan:
    """How newly issued invoices get paid: pending payments, or invoice e-mails.

    An invoice is charged when :func:`~recurbill.chargeable.no_automatic_charge`
    allows it: a ``charge_automatically`` customer with a default card gets a
    pending first-attempt payment (charged after commit). Anyone else gets the
    invoice e-mail, which asks for payment by the due date with the reference
    (or now, if a catch-up issues it after its due date);
    so does an invoice of nothing to pay, and one whose amount the gateway
    cannot charge to a card (below its minimum, above its maximum), whose
    e-mail says that is why the card was not charged. Nothing
    is written: the caller stores both in the transaction that stores the
    invoices. *method* looks a card up by id.
    """
    payments: list[Payment] = []
    notes: list[Notification] = []
    reasons: dict[str, NoChargeReason] = {}
    gateway = collector.gateway
    today = local_date(account, now)  # a catch-up's invoice may be past due
    for invoice in invoices:
        reason = no_automatic_charge(gateway, customer, invoice.total)
        if reason is None:
            assert customer.default_payment_method_id is not None  # the rule
            payments.append(
                collector.new_payment(
                    account=account,
                    customer=customer,
                    method=method(customer.default_payment_method_id),
                    invoices=[invoice],
                    amount=invoice.total,
                    now=now,
                    off_session=True,
                    payment_id=automatic_charge_id(account.id, invoice.id, 1),
                )
            )
        else:
            reasons[invoice.id] = reason
            notes.append(
                outbox_message(
                    collector.ids,
                    account_id=account.id,
                    kind="invoice",
                    message=render_invoice(
                        account, customer, invoice, on=today, not_charged=reason
                    ),
                    now=now,
                )
            )
    return CollectionPlan(payments=tuple(payments), notes=tuple(notes), reasons=reasons)


def collect_or_send(
    tx: Transaction,
    collector: Collector,
    *,
    account: Account,
    customer: Customer,
    invoices: Sequence[Invoice],
    now: datetime,
) -> CollectionPlan:
    """:func:`plan_collection`, stored in *tx*; returns the plan."""
    plan = plan_collection(
        collector,
        account=account,
        customer=customer,
        invoices=invoices,
        now=now,
        method=lambda method_id: tx.get_payment_method(account.id, method_id),
    )
    for payment in plan.payments:
        tx.add_payment(payment)
    if plan.notes:
        tx.add_notifications(list(plan.notes))
    return plan

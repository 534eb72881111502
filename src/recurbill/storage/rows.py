"""Records to SQL rows and back, for :class:`~recurbill.storage.sql.SqlStorage`.

``encode_*`` turns a record into the column values of its table (see
``schema``); ``decode_*`` rebuilds the record from a row mapping. Amounts are
stored as exact decimals beside the record's currency code; a record whose
amounts are in another currency than that code is refused rather than stored
wrongly. Invoice lines, document allowances and charges, schedules, id
lists, settlement and receipt items and headers are compact JSON. A row
without ``allowance_charges`` (as schema version 4 wrote it) reads as none.

A row recurbill did not write (changed by hand or by another program) makes a
decoder raise whatever it meets (:data:`UNREADABLE`); :func:`unreadable` turns
that into :class:`~recurbill.errors.UnreadableRecordError` naming the record,
the column and why (``decode_template`` raises it itself).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, time
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import attrs

from recurbill.errors import InvalidRecordError, RecurbillError, UnreadableRecordError
from recurbill.invoice import AllowanceCharge, InvoiceLine
from recurbill.money import Currency, Money
from recurbill.payee import PayeeAccount
from recurbill.records import (
    Account,
    CreditEntry,
    CreditNoteRecord,
    Customer,
    Invoice,
    Notification,
    OccurrenceRecord,
    Payment,
    PaymentMethod,
    Receipt,
    ReceiptItem,
    RecurringTemplate,
    Refund,
    Settlement,
    SettlementItem,
)
from recurbill.references import ReferenceScheme
from recurbill.schedule import Schedule
from recurbill.storage.checks import is_id
from recurbill.storage.schema import utc_text

__all__ = [
    "INVOICE_COLUMNS",
    "UNREADABLE",
    "decode_account",
    "decode_credit_entry",
    "decode_credit_note",
    "decode_customer",
    "decode_invoice",
    "decode_notification",
    "decode_occurrence",
    "decode_payment",
    "decode_payment_method",
    "decode_receipt",
    "decode_refund",
    "decode_settlement",
    "decode_template",
    "encode_account",
    "encode_credit_entry",
    "encode_credit_note",
    "encode_customer",
    "encode_invoice",
    "encode_notification",
    "encode_occurrence",
    "encode_payment",
    "encode_payment_invoices",
    "encode_payment_method",
    "encode_receipt",
    "encode_refund",
    "encode_settlement",
    "encode_template",
    "invoice_values",
    "unreadable",
    "unreadable_template",
]

Row = Mapping[Any, Any]
"""A row as a mapping of column name to value (``RowMapping`` or a dict)."""

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _amount(money: Money, currency: Currency, field: str) -> Decimal:
    if money.currency != currency:
        raise InvalidRecordError(
            problem=f"{field} is in {money.currency}, the record in {currency}",
            allowed="every amount of a record must be in the record's currency",
        )
    return money.amount


def _optional_amount(money: Money | None, currency: Currency, field: str) -> Any:
    return None if money is None else _amount(money, currency, field)


class _StoredLines(tuple[InvoiceLine, ...]):
    """Lines decoded from a row, with the text they were decoded from.

    Writing them back (a template's next due date, an invoice's payment)
    reuses that text instead of encoding the same lines again.
    """

    text: str


def _lines_json(lines: Sequence[InvoiceLine]) -> str:
    if type(lines) is _StoredLines:
        return lines.text
    return _dumps([line.to_dict() for line in lines])


@functools.lru_cache(maxsize=1024)
def _lines(text: str) -> tuple[InvoiceLine, ...]:
    """Stored lines as frozen records, decoded once per distinct text.

    The invoices of one template (and the templates of one price plan) store
    the same lines, so a run decodes each set once instead of per invoice.
    """
    lines = _StoredLines(InvoiceLine.from_dict(item) for item in json.loads(text))
    lines.text = text
    return lines


_NO_ITEMS = "[]"


def _allowance_charges_json(
    allowances: Sequence[AllowanceCharge], charges: Sequence[AllowanceCharge]
) -> str:
    """Document allowances then charges as one JSON list; ``[]`` when none."""
    if not allowances and not charges:
        return _NO_ITEMS  # the common case: no JSON work
    return _dumps([item.to_dict() for item in (*allowances, *charges)])


def _allowance_charges(fields: dict[str, Any]) -> None:
    """Replace the row's ``allowance_charges`` text by ``allowances`` and
    ``charges`` (none when the row has no such column: schema version 4)."""
    text = fields.pop("allowance_charges", _NO_ITEMS)
    if text != _NO_ITEMS:  # else the records' defaults: none
        fields["allowances"], fields["charges"] = _decoded_items(text)


@functools.lru_cache(maxsize=256)
def _decoded_items(
    text: str,
) -> tuple[tuple[AllowanceCharge, ...], tuple[AllowanceCharge, ...]]:
    """Stored allowances and charges, decoded once per distinct text."""
    items = [AllowanceCharge.from_dict(item) for item in json.loads(text)]
    return (
        tuple(item for item in items if not item.is_charge),
        tuple(item for item in items if item.is_charge),
    )


def _items_json(items: Sequence[SettlementItem | ReceiptItem]) -> str:
    return _dumps(
        [
            {
                "invoice_id": item.invoice_id,
                "invoice_number": item.invoice_number,
                "amount": str(item.amount.amount),
                "currency": item.amount.currency.code,
            }
            for item in items
        ]
    )


def _item_fields(item: Mapping[str, str]) -> dict[str, Any]:
    return {
        "invoice_id": item["invoice_id"],
        "invoice_number": item["invoice_number"],
        "amount": Money(Decimal(item["amount"]), item["currency"]),
    }


def _items(text: str) -> list[dict[str, Any]]:
    """The fields of each settlement or receipt item stored as *text*."""
    return [_item_fields(item) for item in json.loads(text)]


def _schedule(text: str) -> Schedule:
    return Schedule.from_dict(json.loads(text))


def _invoice_ids(text: str) -> tuple[str, ...]:
    return tuple(json.loads(text))


def _headers(text: str) -> Mapping[str, str]:
    return MappingProxyType(json.loads(text))


# accounts, customers, payment methods --------------------------------------


def encode_account(account: Account) -> dict[str, Any]:
    """The ``accounts`` row of *account*."""
    return {
        "id": account.id,
        "name": account.name,
        "currency": account.currency.code,
        "locale": account.locale,
        "timezone": account.timezone,
        "run_time": account.run_time.isoformat(),
        "payment_terms_days": account.payment_terms_days,
        "invoice_series": account.invoice_series,
        "summary_email": account.summary_email,
        "rounding": account.rounding,
        "reference_method": account.reference_scheme.method.value,
        "reference_length": account.reference_scheme.length,
        **_encode_payee(account.payee_account),
        "vat_number": account.vat_number,
    }


def _encode_payee(payee: PayeeAccount | None) -> dict[str, str | None]:
    if payee is None:
        return {"payee_kind": None, "payee_number": None, "payee_bic": None}
    return {
        "payee_kind": payee.kind.value,
        "payee_number": payee.number,
        "payee_bic": payee.bic,
    }


def decode_account(row: Row) -> Account:
    """The account stored in an ``accounts`` row."""
    fields = dict(row)
    fields["run_time"] = time.fromisoformat(fields["run_time"])
    fields["reference_scheme"] = ReferenceScheme(
        method=fields.pop("reference_method"), length=fields.pop("reference_length")
    )
    kind, number, bic = (fields.pop(f"payee_{part}") for part in _PAYEE_PARTS)
    fields["payee_account"] = (
        None if kind is None else PayeeAccount(kind=kind, number=number, bic=bic)
    )
    return Account(**fields)


_PAYEE_PARTS = ("kind", "number", "bic")


def encode_customer(customer: Customer) -> dict[str, Any]:
    """The ``customers`` row of *customer*."""
    return {
        "id": customer.id,
        "account_id": customer.account_id,
        "name": customer.name,
        "email": customer.email,
        "locale": customer.locale,
        "collection_method": customer.collection_method.value,
        "default_payment_method_id": customer.default_payment_method_id,
        "gateway_customer_id": customer.gateway_customer_id,
        "added_with": customer.added_with,
    }


def decode_customer(row: Row) -> Customer:
    """The customer stored in a ``customers`` row."""
    return Customer(**row)


def encode_payment_method(method: PaymentMethod) -> dict[str, Any]:
    """The ``payment_methods`` row of *method*."""
    return {
        "id": method.id,
        "account_id": method.account_id,
        "customer_id": method.customer_id,
        "token": method.token,
        "brand": method.brand,
        "last4": method.last4,
        "exp_month": method.exp_month,
        "exp_year": method.exp_year,
    }


def decode_payment_method(row: Row) -> PaymentMethod:
    """The saved card stored in a ``payment_methods`` row."""
    return PaymentMethod(**row)


# templates and occurrences --------------------------------------------------


def encode_template(template: RecurringTemplate) -> dict[str, Any]:
    """The ``templates`` row of *template*."""
    return {
        "id": template.id,
        "account_id": template.account_id,
        "customer_id": template.customer_id,
        "currency": template.currency.code,
        "lines": _lines_json(template.lines),
        "schedule": _dumps(template.schedule.to_dict()),
        "memo": template.memo,
        "status": template.status.value,
        "next_index": template.next_index,
        "next_due_at": template.next_due_at,
        "created_at": template.created_at,
        "allowance_charges": _allowance_charges_json(
            template.allowances, template.charges
        ),
        "created_with": template.created_with,
    }


UNREADABLE = (
    RecurbillError,
    ValueError,
    TypeError,
    LookupError,
    AttributeError,
    ArithmeticError,
)
"""What reading a row that recurbill did not write can raise (bad JSON, a
missing key, an unknown code, text that is no instant or no amount)."""


def decode_template(row: Row) -> RecurringTemplate:
    """The template stored in a ``templates`` row.

    Raises:
        UnreadableRecordError: the row holds what no template can (names
            the template, the column when known and why).
    """
    fields = dict(row)
    column = "lines"
    try:
        fields["lines"] = lines = _lines(fields["lines"])
        if not lines:
            raise ValueError("no invoice line (a template has at least one)")
        column = "allowance_charges"
        _allowance_charges(fields)
        column = "schedule"
        fields["schedule"] = _schedule(fields["schedule"])
        column = ""
        return RecurringTemplate(**fields)
    except UNREADABLE as error:
        reason = f"{column}: {error}" if column else str(error)
        raise unreadable_template(row, reason) from error


def unreadable_template(
    row: Row, reason: str, read: Sequence[RecurringTemplate] = ()
) -> UnreadableRecordError:
    """The error of a ``templates`` row that cannot be read, for *reason*;
    *read* are the templates a due walk read before it."""
    due = row.get("next_due_at")
    return UnreadableRecordError(
        kind="template",
        key=row.get("id"),
        account=row.get("account_id"),
        reason=reason,
        customer=row.get("customer_id"),
        next_due_at=due if isinstance(due, datetime) else None,
        read=tuple(read),
    )


def encode_occurrence(occurrence: OccurrenceRecord) -> dict[str, Any]:
    """The ``occurrences`` row of *occurrence*."""
    return {
        "template_id": occurrence.template_id,
        "occurrence_index": occurrence.index,
        "account_id": occurrence.account_id,
        "on_date": occurrence.on,
        "outcome": occurrence.outcome.value,
        "invoice_id": occurrence.invoice_id,
    }


def decode_occurrence(row: Row) -> OccurrenceRecord:
    """The occurrence record stored in an ``occurrences`` row."""
    return OccurrenceRecord(
        account_id=row["account_id"],
        template_id=row["template_id"],
        index=row["occurrence_index"],
        on=row["on_date"],
        outcome=row["outcome"],
        invoice_id=row["invoice_id"],
    )


# invoices ---------------------------------------------------------------------

_INVOICE_MONEY = ("net_total", "vat_total", "total", "paid", "credited")

INVOICE_COLUMNS = (
    "id",
    "account_id",
    "customer_id",
    "series",
    "number",
    "status",
    "currency",
    "issue_date",
    "due_date",
    "lines",
    "net_total",
    "vat_total",
    "total",
    "paid",
    "credited",
    "payment_reference",
    "template_id",
    "occurrence_index",
    "memo",
    "created_at",
    "paid_at",
    "allowance_charges",
)
"""The columns of the ``invoices`` table in order (the order of ``invoice_values``)."""


def invoice_values(invoice: Invoice, *, text: bool) -> tuple[Any, ...]:
    """The ``invoices`` column values of *invoice*, in :data:`INVOICE_COLUMNS` order.

    The hot path of the daily run, so it builds the driver's values at once:
    with *text* (SQLite) amounts, dates and instants are already the exact
    text the schema stores; without it they stay Decimal, date and datetime.
    """
    code = invoice.currency.code
    net, vat, total, paid, credited = (
        invoice.net_total,
        invoice.vat_total,
        invoice.total,
        invoice.paid,
        invoice.credited,
    )
    if not (
        net.currency.code
        == vat.currency.code
        == total.currency.code
        == paid.currency.code
        == credited.currency.code
        == code
    ):
        for field in _INVOICE_MONEY:
            _amount(getattr(invoice, field), invoice.currency, field)
    amounts: tuple[Any, ...] = (
        net.amount,
        vat.amount,
        total.amount,
        paid.amount,
        credited.amount,
    )
    issue: Any = invoice.issue_date
    due: Any = invoice.due_date
    created: Any = invoice.created_at
    paid_at: Any = invoice.paid_at
    if text:
        amounts = tuple(map(str, amounts))
        issue, due = issue.isoformat(), due.isoformat()
        created = utc_text(created)
        paid_at = None if paid_at is None else utc_text(paid_at)
    return (
        invoice.id,
        invoice.account_id,
        invoice.customer_id,
        invoice.series,
        invoice.number,
        invoice.status.value,
        code,
        issue,
        due,
        _lines_json(invoice.lines),
        *amounts,
        invoice.payment_reference,
        invoice.template_id,
        invoice.occurrence_index,
        invoice.memo,
        created,
        paid_at,
        _allowance_charges_json(invoice.allowances, invoice.charges),
    )


def encode_invoice(invoice: Invoice) -> dict[str, Any]:
    """The ``invoices`` row of *invoice*."""
    return dict(zip(INVOICE_COLUMNS, invoice_values(invoice, text=False), strict=True))


def decode_invoice(row: Row) -> Invoice:
    """The invoice stored in an ``invoices`` row."""
    fields = dict(row)
    currency = Currency(fields["currency"])
    fields["lines"] = _lines(fields["lines"])
    _allowance_charges(fields)
    for name in _INVOICE_MONEY:
        fields[name] = Money(fields[name], currency)
    return Invoice(**fields)


# payments, settlements, receipts, credit notes, refunds, credit ---------------


def encode_payment(payment: Payment) -> dict[str, Any]:
    """The ``payments`` row of *payment*."""
    currency = payment.amount.currency
    return {
        "id": payment.id,
        "account_id": payment.account_id,
        "customer_id": payment.customer_id,
        "idempotency_key": payment.idempotency_key,
        "currency": currency.code,
        "amount": payment.amount.amount,
        "payment_method_id": payment.payment_method_id,
        "invoice_ids": _dumps(list(payment.invoice_ids)),
        "status": payment.status.value,
        "off_session": payment.off_session,
        "attempt": payment.attempt,
        "settlement_id": payment.settlement_id,
        "charge_id": payment.charge_id,
        "decline_code": payment.decline_code,
        "error_code": payment.error_code,
        "client_secret": payment.client_secret,
        "refunded": _optional_amount(payment.refunded, currency, "refunded"),
        "created_at": payment.created_at,
        "updated_at": payment.updated_at,
    }


def encode_payment_invoices(payment: Payment) -> list[dict[str, str]]:
    """The ``payment_invoices`` rows of *payment*: one for each invoice it
    includes (an id no invoice can have is left out: none is read by it)."""
    return [
        {
            "account_id": payment.account_id,
            "payment_id": payment.id,
            "invoice_id": invoice_id,
        }
        for invoice_id in dict.fromkeys(payment.invoice_ids)
        if is_id(invoice_id)
    ]


def decode_payment(row: Row) -> Payment:
    """The payment stored in a ``payments`` row."""
    fields = dict(row)
    currency = Currency(fields.pop("currency"))
    fields["amount"] = Money(fields["amount"], currency)
    refunded = fields["refunded"]
    fields["refunded"] = None if refunded is None else Money(refunded, currency)
    fields["invoice_ids"] = _invoice_ids(fields["invoice_ids"])
    fields["off_session"] = bool(fields["off_session"])
    return Payment(**fields)


def encode_settlement(settlement: Settlement) -> dict[str, Any]:
    """The ``settlements`` row of *settlement*."""
    return {
        "id": settlement.id,
        "account_id": settlement.account_id,
        "customer_id": settlement.customer_id,
        "selection_key": settlement.selection_key,
        "items": _items_json(settlement.items),
        "currency": settlement.total.currency.code,
        "total": settlement.total.amount,
        "payment_method_id": settlement.payment_method_id,
        "status": settlement.status.value,
        "payment_id": settlement.payment_id,
        "receipt_id": settlement.receipt_id,
        "created_at": settlement.created_at,
    }


def decode_settlement(row: Row) -> Settlement:
    """The settlement stored in a ``settlements`` row."""
    fields = dict(row)
    currency = Currency(fields.pop("currency"))
    fields["total"] = Money(fields["total"], currency)
    fields["items"] = tuple(SettlementItem(**item) for item in _items(fields["items"]))
    return Settlement(**fields)


def encode_receipt(receipt: Receipt) -> dict[str, Any]:
    """The ``receipts`` row of *receipt*."""
    currency = receipt.amount.currency
    return {
        "id": receipt.id,
        "account_id": receipt.account_id,
        "customer_id": receipt.customer_id,
        "number": receipt.number,
        "payment_id": receipt.payment_id,
        "items": _items_json(receipt.items),
        "currency": currency.code,
        "amount": receipt.amount.amount,
        "credit": _amount(receipt.credit, currency, "credit"),
        "card_brand": receipt.card_brand,
        "card_last4": receipt.card_last4,
        "issued_at": receipt.issued_at,
        "paid_at": receipt.paid_at,
    }


def decode_receipt(row: Row) -> Receipt:
    """The receipt stored in a ``receipts`` row."""
    fields = dict(row)
    currency = Currency(fields.pop("currency"))
    fields["amount"] = Money(fields["amount"], currency)
    fields["credit"] = Money(fields["credit"], currency)
    fields["items"] = tuple(ReceiptItem(**item) for item in _items(fields["items"]))
    return Receipt(**fields)


def encode_credit_note(note: CreditNoteRecord) -> dict[str, Any]:
    """The ``credit_notes`` row of *note*."""
    return {
        "id": note.id,
        "account_id": note.account_id,
        "customer_id": note.customer_id,
        "invoice_id": note.invoice_id,
        "number": note.number,
        "series": note.series,
        "currency": note.amount.currency.code,
        "amount": note.amount.amount,
        "reason": note.reason,
        "issue_date": note.issue_date,
        "lines": _lines_json(note.lines),
        "allowance_charges": _allowance_charges_json(note.allowances, note.charges),
    }


def decode_credit_note(row: Row) -> CreditNoteRecord:
    """The credit note stored in a ``credit_notes`` row."""
    fields = dict(row)
    fields["amount"] = Money(fields["amount"], fields.pop("currency"))
    fields["lines"] = _lines(fields["lines"])
    _allowance_charges(fields)
    return CreditNoteRecord(**fields)


def encode_refund(refund: Refund) -> dict[str, Any]:
    """The ``refunds`` row of *refund*."""
    return {
        "id": refund.id,
        "account_id": refund.account_id,
        "payment_id": refund.payment_id,
        "currency": refund.amount.currency.code,
        "amount": refund.amount.amount,
        "idempotency_key": refund.idempotency_key,
        "status": refund.status,
        "refund_id": refund.refund_id,
        "created_at": refund.created_at,
        "reopen": refund.reopen,
    }


def decode_refund(row: Row) -> Refund:
    """The refund stored in a ``refunds`` row."""
    fields = dict(row)
    fields["amount"] = Money(fields["amount"], fields.pop("currency"))
    return Refund(**fields)


def encode_credit_entry(entry: CreditEntry) -> dict[str, Any]:
    """The ``credit_entries`` row of *entry*."""
    return {
        "id": entry.id,
        "account_id": entry.account_id,
        "customer_id": entry.customer_id,
        "currency": entry.amount.currency.code,
        "amount": entry.amount.amount,
        "reason": entry.reason,
        "source_id": entry.source_id,
        "created_at": entry.created_at,
    }


def decode_credit_entry(row: Row) -> CreditEntry:
    """The credit movement stored in a ``credit_entries`` row."""
    fields = dict(row)
    fields["amount"] = Money(fields["amount"], fields.pop("currency"))
    return CreditEntry(**fields)


# notifications -----------------------------------------------------------------


def encode_notification(notification: Notification) -> dict[str, Any]:
    """The ``notifications`` row of *notification*."""
    return {
        "id": notification.id,
        "account_id": notification.account_id,
        "kind": notification.kind,
        "recipient": notification.recipient,
        "subject": notification.subject,
        "text": notification.text,
        "html": notification.html,
        "status": notification.status.value,
        "attempts": notification.attempts,
        "last_error": notification.last_error,
        "headers": _dumps(dict(notification.headers)),
        "created_at": notification.created_at,
        "sent_at": notification.sent_at,
    }


def decode_notification(row: Row) -> Notification:
    """The outbox message stored in a ``notifications`` row."""
    fields = dict(row)
    fields["headers"] = _headers(fields["headers"])
    return Notification(**fields)


# rows that cannot be read --------------------------------------------------------

_RECORDS: dict[str, type[Any]] = {
    "account": Account,
    "customer": Customer,
    "payment method": PaymentMethod,
    "template": RecurringTemplate,
    "occurrence": OccurrenceRecord,
    "invoice": Invoice,
    "payment": Payment,
    "settlement": Settlement,
    "receipt": Receipt,
    "credit note": CreditNoteRecord,
    "refund": Refund,
    "credit entry": CreditEntry,
    "notification": Notification,
}
"""The record a row of each kind holds (the kind as errors name it)."""

_COLUMNS: dict[str, Callable[[Any], object]] = {
    "currency": Currency,
    "lines": _lines,
    "allowance_charges": _decoded_items,
    "schedule": _schedule,
    "invoice_ids": _invoice_ids,
    "items": _items,
    "headers": _headers,
    "run_time": time.fromisoformat,
}
"""How the columns that are no record field as they are stored are read."""

_MONEY = frozenset({*_INVOICE_MONEY, "amount", "refunded", "total", "credit"})


def unreadable(kind: str, row: Row, error: Exception) -> UnreadableRecordError:
    """The error of a row of *kind* that its decoder failed on with *error*
    (one of :data:`UNREADABLE`): it names the record, the first column found
    that cannot be read (when one is) and why. Only for a failure: it reads
    the row's columns one by one."""
    if isinstance(error, UnreadableRecordError):
        return error
    found = _bad_column(kind, row)
    reason = str(error) if found is None else f"{found[0]}: {found[1]}"
    return unreadable_key(kind, row, reason)


def unreadable_key(kind: str, row: Row, reason: str) -> UnreadableRecordError:
    """The error of a row of *kind*, for *reason*; *row* holds at least the
    row's keys (an occurrence's key is ``template_id/index``)."""
    key: object
    if kind == "occurrence":
        key = f"{row.get('template_id')}/{row.get('occurrence_index')}"
    else:
        key = row.get("id")
    account = row.get("id") if kind == "account" else row.get("account_id")
    return UnreadableRecordError(kind=kind, key=key, account=account, reason=reason)


def _bad_column(kind: str, row: Row) -> tuple[str, Exception] | None:
    """The first column of *row* that cannot be read, and the error it raises."""
    for column, value in row.items():
        read = _COLUMNS.get(column)
        try:
            if read is not None:
                read(value)
            elif column in _MONEY and value is not None:
                Money(value, row["currency"])
        except UNREADABLE as error:
            return column, error
    for field in attrs.fields(_RECORDS[kind]):
        name = field.name
        if name not in row or name in _COLUMNS or name in _MONEY:
            continue
        try:
            value = field.converter(row[name]) if field.converter else row[name]
            if field.validator is not None:
                field.validator(None, field, value)
        except UNREADABLE as error:
            return name, error
    return None

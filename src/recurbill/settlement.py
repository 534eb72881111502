"""Mass payment, pure: what a selection of invoices costs, and where money goes.

Three calculators over plain values, no clock and no I/O:

- :func:`plan_settlement` turns a customer's selection of invoices into the
  amount due per invoice and in total, or refuses it with an
  :class:`~recurbill.errors.InvalidSelectionError` that names the invoices at
  fault and what is allowed.
- :func:`allocate_payment` spreads an incoming amount (a bank transfer) over
  open invoices, oldest due date first or in a given order; the excess is
  customer credit.
- :func:`reconcile_settlement` applies a charged plan to the invoices as they
  are now: the share of an invoice that was paid another way in the meantime
  becomes customer credit.

Money is never created or lost: the parts and the credit always add up to the
amount exactly. This module sits below :mod:`recurbill.records`; it accepts any
object shaped like an invoice (:class:`SettleableInvoice`), so a
``records.Invoice`` can be passed as it is.

Every ``InvalidSelectionError`` raised here carries, besides its message, the
fields ``reason`` (``"empty"``, ``"not_a_list"``, ``"duplicate"``,
``"not_found"``, ``"not_open"``, ``"nothing_due"``, ``"currency"`` or
``"pending"``) and
``invoice_ids`` (the ids at fault) in ``error.fields``, for a user interface to
point at the right rows.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import date
from typing import NoReturn, Protocol

import attrs

from recurbill.errors import (
    CurrencyMismatchError,
    InvalidInputError,
    InvalidSelectionError,
)
from recurbill.inputs import has_attributes, text
from recurbill.money import Currency, Money

__all__ = [
    "Allocation",
    "AllocationResult",
    "Due",
    "Reconciliation",
    "SettleableInvoice",
    "SettlementLine",
    "SettlementPlan",
    "allocate_payment",
    "plan_settlement",
    "reconcile_settlement",
]

OPEN = "open"


class SettleableInvoice(Protocol):
    """What the calculators read from an invoice; ``records.Invoice`` fits as is.

    ``status`` is compared with the text ``"open"``; a ``str`` enum such as
    ``InvoiceStatus`` compares equal to its value, so it fits too.
    """

    @property
    def id(self) -> str:
        """The invoice's id."""
        ...

    @property
    def display_number(self) -> str:
        """The invoice number as printed (``INV-000042``)."""
        ...

    @property
    def account_id(self) -> str:
        """The account the invoice belongs to."""
        ...

    @property
    def customer_id(self) -> str:
        """The customer the invoice bills."""
        ...

    @property
    def status(self) -> str:
        """``"open"``, ``"paid"``, ``"void"``, … (a ``str`` enum is fine)."""
        ...

    @property
    def currency(self) -> Currency:
        """The invoice's currency."""
        ...

    @property
    def outstanding(self) -> Money:
        """What is still owed on the invoice."""
        ...

    @property
    def due_date(self) -> date:
        """When the invoice falls due."""
        ...


def _status_text(status: object) -> str:
    value = status.value if isinstance(status, enum.Enum) else status
    if not isinstance(value, str):
        raise InvalidInputError(
            problem=f"invoice status {status!r} is not text",
            allowed="status must be a string such as 'open' or a str enum",
        )
    return value


def _text(what: str, value: object) -> str:
    return text(value, what, allowed=f"{what} must be a non-empty string")


_FIELDS = (
    "id",
    "display_number",
    "account_id",
    "customer_id",
    "status",
    "currency",
    "outstanding",
    "due_date",
)
"""The fields of a :class:`SettleableInvoice`."""


@attrs.frozen(kw_only=True)
class Due:
    """A normalized snapshot of one invoice: what the calculators work on.

    Build one from any :class:`SettleableInvoice` with :meth:`of`; a ``Due``
    fits :class:`SettleableInvoice` itself (``id`` and ``display_number`` are
    aliases), so callers without invoice records can pass ``Due`` values.

    >>> due = Due(invoice_id="inv_1", invoice_number="INV-000001",
    ...           account_id="acc_1", customer_id="cus_1", status="open",
    ...           currency=Currency("NOK"), outstanding=Money("125.00", "NOK"),
    ...           due_date=date(2026, 1, 31))
    >>> Due.of(due) == due
    True
    """

    invoice_id: str
    invoice_number: str
    account_id: str
    customer_id: str
    status: str
    currency: Currency
    outstanding: Money
    due_date: date

    @property
    def id(self) -> str:
        """Alias of ``invoice_id``, so a ``Due`` is a :class:`SettleableInvoice`."""
        return self.invoice_id

    @property
    def display_number(self) -> str:
        """Alias of ``invoice_number``."""
        return self.invoice_number

    @property
    def is_open(self) -> bool:
        """Whether the invoice is open (may be paid)."""
        return self.status == OPEN

    @classmethod
    def of(cls, invoice: SettleableInvoice) -> Due:
        """Snapshot *invoice*: check its fields and take its status as text.

        An outstanding amount with more decimals than its currency is refused
        (:class:`~recurbill.errors.InvalidInputError`), not rounded; so is an
        object without the fields of a :class:`SettleableInvoice`.
        """
        has_attributes(
            invoice,
            "invoice",
            _FIELDS,
            allowed="give invoices (records.Invoice or Due values) with the "
            "fields " + ", ".join(_FIELDS),
        )
        currency = invoice.currency
        outstanding = invoice.outstanding
        if not isinstance(currency, Currency) or not isinstance(outstanding, Money):
            raise InvalidInputError(
                problem=(
                    f"invoice {invoice.id!r} has currency {currency!r} and "
                    f"outstanding {outstanding!r}"
                ),
                allowed="currency must be a Currency and outstanding a Money",
            )
        if outstanding.currency != currency:
            raise CurrencyMismatchError(left=currency, right=outstanding.currency)
        if not outstanding.is_quantized:
            raise InvalidInputError(
                problem=(
                    f"invoice {invoice.id!r} has outstanding {outstanding}, with "
                    f"more decimals than {currency.code} has"
                ),
                allowed=(
                    f"an outstanding amount in whole {currency.code} minor units "
                    f"({currency.decimals} decimals); it is never rounded, so "
                    "nothing beyond it is charged"
                ),
            )
        if not isinstance(invoice.due_date, date):
            raise InvalidInputError(
                problem=f"invoice {invoice.id!r} has due date {invoice.due_date!r}",
                allowed="due_date must be a datetime.date",
            )
        return cls(
            invoice_id=_text("invoice id", invoice.id),
            invoice_number=_text("invoice number", invoice.display_number),
            account_id=_text("account id", invoice.account_id),
            customer_id=_text("customer id", invoice.customer_id),
            status=_status_text(invoice.status),
            currency=currency,
            outstanding=outstanding.quantize(),  # the currency's decimals exactly
            due_date=invoice.due_date,
        )


@attrs.frozen(kw_only=True)
class SettlementLine:
    """One selected invoice and the amount the settlement pays on it."""

    invoice_id: str
    invoice_number: str
    amount: Money


@attrs.frozen(kw_only=True)
class SettlementPlan:
    """What a selection costs: one line per invoice in selection order, and the total.

    ``selection_key`` is the same for the same set of invoices with the same
    amounts, whatever the order they were clicked in, and differs otherwise:
    the service derives the settlement's idempotency key from it, so a double
    click or a second tab charges once. It is the SHA-256 (hex) of the compact
    JSON ``{"account", "currency", "customer", "invoices"}`` with keys sorted,
    where ``invoices`` is the sorted list of ``[invoice id, amount]`` pairs.
    """

    account_id: str
    customer_id: str
    currency: Currency
    lines: tuple[SettlementLine, ...]
    total: Money
    selection_key: str

    @property
    def invoice_ids(self) -> tuple[str, ...]:
        """The selected invoice ids, in selection order."""
        return tuple(line.invoice_id for line in self.lines)


@attrs.frozen(kw_only=True)
class Allocation:
    """The part of an incoming amount applied to one invoice.

    ``settles`` is true when the part pays what was outstanding in full.
    """

    invoice_id: str
    invoice_number: str
    amount: Money
    settles: bool


@attrs.frozen(kw_only=True)
class AllocationResult:
    """Where an incoming amount went: parts per invoice, and the rest as credit.

    ``total`` is the incoming amount (for ``Billing.apply_credit`` the credit
    balance, below zero when the customer owes it); ``applied + credit ==
    total`` exactly.
    """

    allocations: tuple[Allocation, ...]
    credit: Money
    total: Money

    @property
    def applied(self) -> Money:
        """The sum of the parts applied to invoices."""
        return _sum((a.amount for a in self.allocations), self.total.currency)


@attrs.frozen(kw_only=True)
class Reconciliation:
    """A charged plan applied to the invoices as they are now.

    ``applied`` holds the amount each invoice can still take (lines with
    nothing left to apply are omitted); ``unapplied`` holds, per invoice, the
    share that could not be applied because the invoice was paid, voided or
    lowered another way. That share is customer credit:
    ``sum(applied) + credit == plan.total`` exactly.
    """

    applied: tuple[SettlementLine, ...]
    unapplied: tuple[SettlementLine, ...]
    credit: Money
    total: Money


def _sum(amounts: Iterable[Money], currency: Currency) -> Money:
    total = Money.zero(currency)
    for amount in amounts:
        total = total + amount
    return total


def _quoted(ids: Iterable[str]) -> str:
    return ", ".join(repr(i) for i in ids)


def _plural(ids: Sequence[str], one: str, many: str) -> str:
    return f"{one} {_quoted(ids)}" if len(ids) == 1 else f"{many} {_quoted(ids)}"


def _refuse(reason: str, ids: Sequence[str], problem: str, allowed: str) -> NoReturn:
    raise InvalidSelectionError(
        problem=problem, allowed=allowed, reason=reason, invoice_ids=tuple(ids)
    )


def _ids(what: str, ids: object) -> list[str]:
    """*ids* as a list of ids; refuse a bare string and non-text ids."""
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
        _refuse(
            "not_a_list",
            (),
            f"{what} {ids!r} is not a list of invoice ids",
            "give a list or tuple of invoice ids, e.g. ['inv_1', 'inv_2']",
        )
    result = list(ids)
    bad = [i for i in result if not isinstance(i, str) or not i.strip()]
    if bad:
        _refuse(
            "not_a_list",
            (),
            f"{what} holds ids that are empty or not text: {bad!r}",
            "every invoice id must be a non-empty string",
        )
    return result


def _index(
    invoices: Mapping[str, SettleableInvoice] | Sequence[SettleableInvoice],
) -> dict[str, Due]:
    """Snapshot *invoices* by id; refuse two different invoices with one id."""
    if isinstance(invoices, Mapping):
        items: Iterable[tuple[str | None, SettleableInvoice]] = invoices.items()
    elif isinstance(invoices, (str, bytes)) or not isinstance(invoices, Sequence):
        raise InvalidInputError(
            problem=f"invoices {type(invoices).__name__} is not a collection",
            allowed="give a sequence of invoices or a mapping of id to invoice",
        )
    else:
        items = ((None, invoice) for invoice in invoices)
    index: dict[str, Due] = {}
    for key, invoice in items:
        due = Due.of(invoice)
        if key is not None and key != due.invoice_id:
            raise InvalidInputError(
                problem=f"mapping key {key!r} holds invoice {due.invoice_id!r}",
                allowed="key a mapping of invoices by each invoice's own id",
            )
        if index.setdefault(due.invoice_id, due) != due:
            raise InvalidInputError(
                problem=f"two different invoices share the id {due.invoice_id!r}",
                allowed="give each invoice once",
            )
    return index


def _describe(dues: Iterable[Due]) -> str:
    return ", ".join(f"{d.invoice_id!r} ({d.invoice_number})" for d in dues)


def _check_payable(found: Sequence[Due]) -> None:
    """Refuse invoices that are not open, owe nothing, or mix currencies."""
    not_open = [d for d in found if not d.is_open]
    if not_open:
        states = ", ".join(
            f"{d.invoice_id!r} ({d.invoice_number}) is {d.status}" for d in not_open
        )
        _refuse(
            "not_open",
            [d.invoice_id for d in not_open],
            f"invoice {states}" if len(not_open) == 1 else f"invoices {states}",
            "only open invoices can be paid; remove those that are not open "
            "from the selection",
        )
    empty = [d for d in found if d.outstanding.amount <= 0]
    if empty:
        owed = ", ".join(
            f"{d.invoice_id!r} ({d.invoice_number}) owes {d.outstanding}" for d in empty
        )
        _refuse(
            "nothing_due",
            [d.invoice_id for d in empty],
            f"nothing is outstanding: {owed}",
            "select invoices with an amount left to pay",
        )
    by_currency: dict[str, list[str]] = {}
    for due in found:
        by_currency.setdefault(due.currency.code, []).append(due.invoice_id)
    if len(by_currency) > 1:
        parts = "; ".join(
            f"{code}: {_quoted(ids)}" for code, ids in sorted(by_currency.items())
        )
        _refuse(
            "currency",
            [d.invoice_id for d in found],
            f"the selection mixes currencies ({parts})",
            "one payment settles invoices in one currency; select invoices "
            "that share a currency",
        )


def _check_distinct(what: str, selection: Sequence[str]) -> None:
    counts: dict[str, int] = {}
    for invoice_id in selection:
        counts[invoice_id] = counts.get(invoice_id, 0) + 1
    twice = [invoice_id for invoice_id, n in counts.items() if n > 1]
    if twice:
        _refuse(
            "duplicate",
            twice,
            f"{_plural(twice, 'invoice', 'invoices')} "
            f"{'is' if len(twice) == 1 else 'are'} in the {what} more than once",
            "name each invoice once",
        )


def _selection_key(
    account_id: str, customer_id: str, currency: Currency, lines: Sequence[Due]
) -> str:
    canonical = json.dumps(
        {
            "account": account_id,
            "customer": customer_id,
            "currency": currency.code,
            "invoices": sorted(
                [d.invoice_id, str(d.outstanding.amount)] for d in lines
            ),
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def plan_settlement(
    selection: Sequence[str],
    invoices: Mapping[str, SettleableInvoice] | Sequence[SettleableInvoice],
    *,
    account_id: str,
    customer_id: str,
    pending: Collection[str] = (),
) -> SettlementPlan:
    """The amount due per selected invoice and in total, or a clear refusal.

    *invoices* are the candidates (usually the customer's open invoices, read
    by the service); the selected ids are looked up among them. An id that is
    missing, or belongs to another account or customer, is "not found" alike,
    so nothing is revealed about invoices elsewhere. Each line is the
    invoice's outstanding amount, in selection order; one with more decimals
    than its currency is refused (:class:`~recurbill.errors.InvalidInputError`).

    *pending* are the ids of invoices already inside a settlement that is
    still pending; selecting one of them is refused, so one invoice is never
    in two payments at once.

    Raises :class:`~recurbill.errors.InvalidSelectionError` for an empty
    selection, a duplicate id, an id not found, an invoice that is not open,
    an invoice with nothing outstanding, invoices in several currencies, or
    an invoice in a pending settlement; the checks run in that order.
    Arguments of the wrong kind raise
    :class:`~recurbill.errors.InvalidInputError`: *pending* that is not
    a collection (a set) of non-empty text ids, and an invoice without the
    fields of a :class:`SettleableInvoice` (also in :func:`allocate_payment`
    and :func:`reconcile_settlement`).

    >>> due = Due(invoice_id="inv_1", invoice_number="INV-000001",
    ...           account_id="acc_1", customer_id="cus_1", status="open",
    ...           currency=Currency("NOK"), outstanding=Money("125.00", "NOK"),
    ...           due_date=date(2026, 1, 31))
    >>> plan = plan_settlement(["inv_1"], [due], account_id="acc_1",
    ...                        customer_id="cus_1")
    >>> str(plan.total)
    '125.00 NOK'
    """
    _text("account_id", account_id)
    _text("customer_id", customer_id)
    _pending_ids(pending)
    chosen = _ids("the selection", selection)
    if not chosen:
        _refuse(
            "empty",
            (),
            "the selection is empty",
            "select at least one open invoice to pay",
        )
    _check_distinct("selection", chosen)
    index = _index(invoices)
    found: list[Due] = []
    missing: list[str] = []
    for invoice_id in chosen:
        due = index.get(invoice_id)
        if due is None or (due.account_id, due.customer_id) != (
            account_id,
            customer_id,
        ):
            missing.append(invoice_id)
        else:
            found.append(due)
    if missing:
        _refuse(
            "not_found",
            missing,
            f"{_plural(missing, 'invoice', 'invoices')} not found for customer "
            f"{customer_id!r}",
            "select invoices of this customer from the list of open invoices",
        )
    _check_payable(found)
    busy = [d for d in found if d.invoice_id in pending]
    if busy:
        _refuse(
            "pending",
            [d.invoice_id for d in busy],
            f"{'invoice' if len(busy) == 1 else 'invoices'} {_describe(busy)} "
            f"{'is' if len(busy) == 1 else 'are'} already in a payment in progress",
            "wait until that payment has finished, or select other invoices",
        )
    currency = found[0].currency
    lines = tuple(
        SettlementLine(
            invoice_id=d.invoice_id,
            invoice_number=d.invoice_number,
            amount=d.outstanding,
        )
        for d in found
    )
    return SettlementPlan(
        account_id=account_id,
        customer_id=customer_id,
        currency=currency,
        lines=lines,
        total=_sum((line.amount for line in lines), currency),
        selection_key=_selection_key(account_id, customer_id, currency, found),
    )


def _pending_ids(pending: object) -> None:
    """Refuse *pending* unless it is a collection (a set) of invoice ids."""
    allowed = "give the ids of invoices in pending settlements as a set of text"
    if isinstance(pending, (str, bytes, bytearray)) or not isinstance(
        pending, Collection
    ):
        raise InvalidInputError(
            problem=f"pending {pending!r} is not a collection of invoice ids",
            allowed=allowed,
        )
    for invoice_id in pending:
        text(invoice_id, "pending invoice id", allowed=allowed)


_DIGITS = re.compile(r"(\d+)")


def _natural(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders ``INV-9`` before ``INV-10``."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part)
        for part in _DIGITS.split(text)
        if part
    )


def _payment_order(index: Mapping[str, Due], order: Sequence[str] | None) -> list[Due]:
    if order is None:
        payable = [d for d in index.values() if d.is_open and d.outstanding.amount > 0]
        return sorted(
            payable,
            key=lambda d: (d.due_date, _natural(d.invoice_number), d.invoice_id),
        )
    chosen = _ids("the order", order)
    _check_distinct("order", chosen)
    missing = [i for i in chosen if i not in index]
    if missing:
        _refuse(
            "not_found",
            missing,
            f"{_plural(missing, 'invoice', 'invoices')} in the order not found "
            "among the invoices given",
            "name only invoices passed in invoices",
        )
    found = [index[i] for i in chosen]
    _check_payable(found)
    return found


def allocate_payment(
    amount: Money,
    invoices: Sequence[SettleableInvoice],
    *,
    order: Sequence[str] | None = None,
) -> AllocationResult:
    """Spread an incoming *amount* over open invoices; the excess is credit.

    Without *order*, the open invoices with something outstanding are paid
    oldest due date first (ties: invoice number, then id); invoices that are
    not open are ignored. With *order*, exactly the invoices it names are paid,
    in that order; naming one that is unknown, not open or owes nothing is
    refused with :class:`~recurbill.errors.InvalidSelectionError`, and
    invoices not named receive nothing.

    Each invoice is paid in full before the next gets anything, never beyond
    its outstanding amount; the parts plus the credit equal *amount* exactly.
    All invoices must belong to one account and customer (the credit is
    theirs). *amount* must be zero or positive and carry no more decimals than
    its currency; open invoices in another currency raise
    :class:`~recurbill.errors.CurrencyMismatchError`.

    >>> due = Due(invoice_id="inv_1", invoice_number="INV-000001",
    ...           account_id="acc_1", customer_id="cus_1", status="open",
    ...           currency=Currency("NOK"), outstanding=Money("125.00", "NOK"),
    ...           due_date=date(2026, 1, 31))
    >>> result = allocate_payment(Money("200.00", "NOK"), [due])
    >>> [str(a.amount) for a in result.allocations], str(result.credit)
    (['125.00 NOK'], '75.00 NOK')
    """
    if not isinstance(amount, Money):
        raise InvalidInputError(
            problem=f"amount {amount!r} is not Money",
            allowed="give the incoming amount as Money, e.g. Money('500.00', 'NOK')",
        )
    if amount.amount < 0:
        raise InvalidInputError(
            problem=f"amount {amount} is negative",
            allowed="an incoming payment is zero or more; refunds are not allocated",
        )
    if not amount.is_quantized:
        raise InvalidInputError(
            problem=(
                f"amount {amount} has more decimals than {amount.currency} "
                f"allows ({amount.currency.decimals})"
            ),
            allowed="give the amount exactly as received, in whole minor units",
        )
    if isinstance(invoices, Mapping):
        raise InvalidInputError(
            problem="invoices is a mapping",
            allowed="give a sequence of invoices; the order is set by order=",
        )
    index = _index(invoices)
    owners = sorted({(d.account_id, d.customer_id) for d in index.values()})
    if len(owners) > 1:
        raise InvalidInputError(
            problem=(
                "the invoices belong to several accounts or customers: "
                + ", ".join(f"{a!r}/{c!r}" for a, c in owners)
            ),
            allowed="allocate a payment over one customer's invoices at a time",
        )
    for due in index.values():
        if due.is_open and due.currency != amount.currency:
            raise CurrencyMismatchError(left=amount.currency, right=due.currency)
    remaining = amount
    allocations: list[Allocation] = []
    for due in _payment_order(index, order):
        if not remaining:
            break
        part = min(remaining, due.outstanding)
        allocations.append(
            Allocation(
                invoice_id=due.invoice_id,
                invoice_number=due.invoice_number,
                amount=part,
                settles=part == due.outstanding,
            )
        )
        remaining = remaining - part
    return AllocationResult(
        allocations=tuple(allocations), credit=remaining, total=amount
    )


def reconcile_settlement(
    plan: SettlementPlan,
    current: Mapping[str, SettleableInvoice] | Sequence[SettleableInvoice],
) -> Reconciliation:
    """Apply a charged *plan* to the invoices as they are now; the rest is credit.

    For each line: an invoice still open takes the planned amount, or less if
    its outstanding amount has fallen since (never more than planned); an
    invoice no longer open, missing from *current*, or of another account or
    customer takes nothing. Whatever a line cannot take is listed in
    ``unapplied`` and becomes customer credit, so the applied amounts plus the
    credit equal ``plan.total`` exactly: nothing is lost or silently kept.
    """
    if not isinstance(plan, SettlementPlan):
        raise InvalidInputError(
            problem=f"plan {type(plan).__name__} is not a SettlementPlan",
            allowed="give the plan returned by plan_settlement()",
        )
    index = _index(current)
    zero = Money.zero(plan.currency)
    applied: list[SettlementLine] = []
    unapplied: list[SettlementLine] = []
    for line in plan.lines:
        due = index.get(line.invoice_id)
        take = zero
        if (
            due is not None
            and (due.account_id, due.customer_id) == (plan.account_id, plan.customer_id)
            and due.is_open
        ):
            if due.currency != plan.currency:
                raise CurrencyMismatchError(left=plan.currency, right=due.currency)
            take = max(zero, min(line.amount, due.outstanding))
        if take:
            applied.append(attrs.evolve(line, amount=take))
        if take != line.amount:
            unapplied.append(attrs.evolve(line, amount=line.amount - take))
    credit = _sum((line.amount for line in unapplied), plan.currency)
    return Reconciliation(
        applied=tuple(applied),
        unapplied=tuple(unapplied),
        credit=credit,
        total=plan.total,
    )

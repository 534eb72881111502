"""Argument checks shared by the service modules.

Each returns the checked value or raises an
:class:`~recurbill.errors.InvalidInputError` (for a setting a record keeps,
:class:`~recurbill.errors.InvalidRecordError`) that names what was wrong and
what is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import TypeGuard

import attrs
from babel import Locale, UnknownLocaleError

from recurbill.errors import (
    CurrencyMismatchError,
    InvalidInputError,
    InvalidInvoiceError,
    InvalidRecordError,
    VatCategoryError,
)
from recurbill.inputs import flag
from recurbill.invoice import AllowanceCharge, InvoiceLine, allowance_charge_amount
from recurbill.money import Currency, Money, decimals_of
from recurbill.records import FIRST_YEAR, LAST_YEAR, CollectionMethod, in_range

__all__ = [
    "allowance_charges",
    "aware",
    "caller_key",
    "check_allowance_charges",
    "check_line_items",
    "check_locale",
    "chosen_id",
    "day",
    "differ",
    "flag",
    "invoice_lines",
    "positive_money",
    "record_id",
    "to_collection_method",
]


def differ(names: Sequence[str]) -> tuple[str, str]:
    """*names* (at least one) as "a, b and c", and the verb that agrees with it
    ("is" for one, "are" for more): for the messages of refused repeats."""
    *rest, last = names
    return (f"{', '.join(rest)} and {last}" if rest else last), (
        "are" if rest else "is"
    )


def aware(value: object, name: str) -> datetime:
    """*value* if it is an aware datetime (the service never reads a clock)."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidInputError(
            problem=f"{name} {value!r} is not an aware datetime",
            allowed=f"give {name} with a time zone, e.g. datetime(..., tzinfo=UTC)",
        )
    if not in_range(value):
        raise InvalidInputError(
            problem=f"{name} {value.isoformat()} is outside the calendar",
            allowed=f"an instant in the years {FIRST_YEAR} to {LAST_YEAR} (in UTC)",
        )
    return value


def to_collection_method(value: object) -> CollectionMethod:
    """*value* as a :class:`CollectionMethod`, or a clear error."""
    try:
        return CollectionMethod(value)
    except ValueError:
        raise InvalidInputError(
            problem=f"collection method {value!r}",
            allowed="'charge_automatically' or 'send_invoice'",
        ) from None


def check_locale(locale: str) -> None:
    """Refuse an unknown locale (InvalidRecordError)."""
    try:
        Locale.parse(locale)
    except (UnknownLocaleError, ValueError, TypeError):
        raise InvalidRecordError(
            problem=f"locale {locale!r} is unknown",
            allowed="give a locale such as 'nb_NO', 'sv_SE', 'is_IS' or 'en_GB'",
        ) from None


def positive_money(amount: object, currency: Currency, what: str) -> Money:
    """*amount* as Money in *currency* with at most its decimals, above zero.

    Money in another currency raises :class:`CurrencyMismatchError`.
    """
    if not isinstance(amount, Money):
        raise InvalidInputError(
            problem=f"{what} {amount!r} is not Money",
            allowed=f"give Money in {currency}, e.g. Money('100', '{currency}')",
        )
    if amount.currency != currency:
        raise CurrencyMismatchError(
            left=currency, right=amount.currency, what=what, amount=amount
        )
    if not amount.is_quantized:
        raise InvalidInputError(
            problem=f"{what} {amount} has more decimals than {currency} allows",
            allowed=f"an amount in whole {currency} minor units (round it first)",
        )
    if amount.amount <= 0:
        raise InvalidInputError(
            problem=f"{what} {amount} is zero or less",
            allowed=f"a positive amount in {currency}",
        )
    return amount.quantize()


def invoice_lines(lines: object) -> tuple[InvoiceLine, ...]:
    """*lines* as a tuple of at least one :class:`InvoiceLine`."""
    if isinstance(lines, (str, bytes, InvoiceLine)) or not isinstance(lines, Iterable):
        raise InvalidInputError(
            problem=f"lines {lines!r} is not a sequence of InvoiceLine values",
            allowed="give a list of at least one recurbill.invoice.InvoiceLine",
        )
    items = tuple(lines)
    if not items or not all(isinstance(line, InvoiceLine) for line in items):
        raise InvalidInputError(
            problem=f"lines {items!r} are empty or not InvoiceLine values",
            allowed="give at least one recurbill.invoice.InvoiceLine",
        )
    return items


def _is_key(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value.strip())


def caller_key(value: object, name: str, *, one_per: str) -> str:
    """*value* if it is non-empty text: an id the caller makes idempotency keys of.

    *one_per* names what the id stands for ("session"), for the error message.
    """
    if not _is_key(value):
        raise InvalidInputError(
            problem=f"{name} {value!r} is empty or not text",
            allowed=(
                f"give {name} as a non-empty string, one per {one_per}"
                " and the same when the call is repeated"
            ),
        )
    return value


def record_id(value: object, name: str) -> str:
    """*value* if it is non-empty text: the id of a stored record (for a call
    that makes keys of it before it reads the record)."""
    if not _is_key(value):
        raise InvalidInputError(
            problem=f"{name} {value!r} is empty or not text",
            allowed=f"give {name} as the non-empty string id of a stored record",
        )
    return value


def chosen_id(value: object, name: str, *, one_per: str) -> str | None:
    """The id a caller chose for a new record: non-empty text, as
    :func:`caller_key` wants it; None (left out: one is generated) stays None.
    """
    if value is None or _is_key(value):
        return value
    raise InvalidInputError(
        problem=f"{name} {value!r} is empty or not text",
        allowed=f"give {name} as a non-empty string, one per {one_per}, or "
        "leave it out (None) to get a generated one",
    )


def day(value: object, name: str) -> date:
    """*value* if it is a calendar date (a datetime is not one)."""
    if not isinstance(value, date) or isinstance(value, datetime):
        raise InvalidInputError(
            problem=f"{name} {value!r} is not a date",
            allowed=f"give {name} as a datetime.date, e.g. date(2027, 1, 31)",
        )
    return value


_NONE: tuple[AllowanceCharge, ...] = ()


def allowance_charges(value: object, *, is_charge: bool) -> tuple[AllowanceCharge, ...]:
    """*value* as document-level allowances (or, with *is_charge*, charges).

    Each is an :class:`~recurbill.invoice.AllowanceCharge` of that kind with
    a reason (EN 16931 BR-33, BR-38), a VAT category (and rate), and either a
    positive ``amount`` or a ``percentage`` above 0 and at most 100 of a
    positive ``base_amount``: stricter than EN 16931 and the calculators of
    :mod:`recurbill.invoice`, which take any sign (see
    :class:`~recurbill.invoice.AllowanceCharge`). Raises
    :class:`~recurbill.errors.InvalidInvoiceError`, or its
    :class:`~recurbill.errors.VatCategoryError` for a missing category.
    """
    name, kind = ("charges", "charge") if is_charge else ("allowances", "allowance")
    if type(value) is tuple and not value:
        return _NONE  # the common case: none
    if isinstance(value, (str, bytes, Mapping, AllowanceCharge)) or not isinstance(
        value, Iterable
    ):
        raise InvalidInvoiceError(
            problem=f"{name} {value!r} is not a sequence of AllowanceCharge values",
            allowed=f"give {name} as a list of recurbill.invoice.AllowanceCharge "
            "(or leave it out for none)",
        )
    items = tuple(value)
    for item in items:
        if not isinstance(item, AllowanceCharge):
            raise InvalidInvoiceError(
                problem=f"{name} contain {item!r}, not an AllowanceCharge",
                allowed=f"give each document-level {kind} as a "
                "recurbill.invoice.AllowanceCharge",
            )
        _check_item(item, is_charge=is_charge)
    return items if items else _NONE


def _check_item(
    item: AllowanceCharge, *, is_charge: bool, line: str | None = None
) -> None:
    """The service's rules for one allowance or charge: on the document, or
    (*line* names it, e.g. "line 2 ('Session')") on that line, which gives
    the item its VAT category."""
    name, kind = ("charges", "charge") if is_charge else ("allowances", "allowance")
    if item.is_charge is not is_charge:
        other = "allowances" if is_charge else "charges"
        raise InvalidInvoiceError(
            problem=f"{name} contain {'a charge' if item.is_charge else 'an allowance'}"
            f" ({item.reason!r})",
            allowed=f"put is_charge={item.is_charge} items in {other}, "
            f"is_charge={is_charge} ones in {name}",
        )
    if not item.reason.strip():
        raise _no_reason(kind, line)
    where = _where(item, line)
    if line is None and item.vat_category is None:
        raise VatCategoryError(
            problem=f"{where} has no VAT category",
            allowed="a document-level allowance or charge has its own VAT: give "
            "vat_category and vat_rate, e.g. vat_category='S', vat_rate=25",
        )
    _check_values(item, where)


def _no_reason(kind: str, line: str | None) -> InvalidInvoiceError:
    if line is None:
        return InvalidInvoiceError(
            problem=f"a document-level {kind} has no reason",
            allowed=f"give every {kind} on the whole invoice a reason the customer "
            "reads, e.g. reason='Loyalty discount' (EN 16931 BR-33, BR-38)",
        )
    return InvalidInvoiceError(
        problem=f"{'a charge' if kind == 'charge' else 'an allowance'} on {line} "
        "has no reason",
        allowed=f"give every {kind} on a line a reason the customer reads, "
        "e.g. reason='Loyalty discount' (EN 16931 BR-42, BR-44)",
    )


def _where(item: AllowanceCharge, line: str | None) -> str:
    """How a message names *item*: "allowance 'Rabatt'" (on *line*)."""
    kind = "charge" if item.is_charge else "allowance"
    where = f"{kind} {item.reason!r}"
    return where if line is None else f"{where} on {line}"


def _check_values(item: AllowanceCharge, where: str) -> None:
    """A positive amount, or a percentage in (0, 100] of a positive base."""
    if item.amount is not None and item.amount <= 0:
        raise InvalidInvoiceError(
            problem=f"{where} has the amount {item.amount}",
            allowed="the amount is above zero (an allowance lowers the total, "
            "a charge raises it)",
        )
    if (item.percentage is None) != (item.base_amount is None):
        raise InvalidInvoiceError(
            problem=f"{where} has a percentage or a base amount without the other",
            allowed="give amount, or percentage together with base_amount",
        )
    if item.percentage is not None and not 0 < item.percentage <= 100:
        raise InvalidInvoiceError(
            problem=f"{where} has the percentage {item.percentage}",
            allowed="a percentage above 0 and at most 100",
        )
    if item.base_amount is not None and item.base_amount <= 0:
        raise InvalidInvoiceError(
            problem=f"{where} has the base amount {item.base_amount}",
            allowed="a base amount above zero",
        )


def check_line_items(
    lines: Iterable[InvoiceLine], *, currency: Currency, rounding: str
) -> None:
    """Refuse line allowances and charges that break the rules the service
    applies to document-level ones (:func:`allowance_charges`,
    :func:`check_allowance_charges`), but for the VAT category, which a line
    item takes from its line.

    A line's net may still be below zero through a negative quantity (a
    return); only the items themselves are checked. The message names the
    line by its position (from 1) and description. Raises
    :class:`~recurbill.errors.InvalidInvoiceError`.
    """
    for number, item_line in enumerate(lines, start=1):
        if not (item_line.allowances or item_line.charges):
            continue  # the common case
        line = f"line {number} ({item_line.description!r})"
        for item in item_line.allowances:
            _check_item(item, is_charge=False, line=line)
        for item in item_line.charges:
            _check_item(item, is_charge=True, line=line)
        check_allowance_charges(
            (*item_line.allowances, *item_line.charges),
            currency=currency,
            rounding=rounding,
            line=line,
        )


def check_allowance_charges(
    items: Iterable[AllowanceCharge],
    *,
    currency: Currency,
    rounding: str,
    line: str | None = None,
) -> None:
    """Refuse allowances or charges (checked by :func:`allowance_charges`)
    whose amounts do not fit *currency*.

    Amounts and base amounts have at most the currency's decimals, and an
    amount given with a percentage and base amount is the one they make.
    *line* names the line the items are on (None: the document). Raises
    :class:`~recurbill.errors.InvalidInvoiceError`.
    """
    decimals = currency.decimals
    for item in items:
        where = _where(item, line)
        for field in ("amount", "base_amount"):
            value = getattr(item, field)
            if value is not None and decimals_of(value) > decimals:
                raise InvalidInvoiceError(
                    problem=f"{where} has the {field} {value}, with more decimals "
                    f"than {currency.code} has",
                    allowed=f"{currency.code} amounts have at most {decimals} decimals",
                )
        if item.amount is not None and item.percentage is not None:
            made = allowance_charge_amount(
                attrs.evolve(item, amount=None), currency, rounding=rounding
            )
            if made.amount != item.amount:
                raise InvalidInvoiceError(
                    problem=f"{where} has the amount {item.amount}, but "
                    f"{item.percentage} % of {item.base_amount} is {made.amount}",
                    allowed="give amount alone, percentage with base_amount, "
                    "or all three agreeing",
                )

"""Argument checks shared by the service modules.

Each returns the checked value or raises an
:class:`~recurbill.errors.InvalidInputError` that names what was wrong and
what is allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from recurbill.errors import InvalidInputError
from recurbill.invoice import InvoiceLine
from recurbill.money import Currency, Money
from recurbill.records import FIRST_YEAR, LAST_YEAR, CollectionMethod

__all__ = ["aware", "invoice_lines", "positive_money", "to_collection_method"]


def aware(value: object, name: str) -> datetime:
    """*value* if it is an aware datetime (the service never reads a clock)."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidInputError(
            problem=f"{name} {value!r} is not an aware datetime",
            allowed=f"give {name} with a time zone, e.g. datetime(..., tzinfo=UTC)",
        )
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise InvalidInputError(
            problem=f"{name} {value.isoformat()} is in the year {value.year}",
            allowed=f"an instant in the years {FIRST_YEAR} to {LAST_YEAR}",
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


def positive_money(amount: object, currency: Currency, what: str) -> Money:
    """*amount* as Money in *currency*, rounded to its decimals, above zero."""
    if not isinstance(amount, Money) or amount.currency != currency:
        raise InvalidInputError(
            problem=f"{what} {amount!r}",
            allowed=f"give Money in {currency}, e.g. Money('100', '{currency}')",
        )
    rounded = amount.quantize()
    if rounded.amount <= 0:
        raise InvalidInputError(
            problem=f"{what} {amount} is zero or less once rounded to {currency}",
            allowed=f"a positive amount in {currency}",
        )
    return rounded


def invoice_lines(lines: Sequence[InvoiceLine]) -> tuple[InvoiceLine, ...]:
    """*lines* as a tuple of at least one :class:`InvoiceLine`."""
    items = tuple(lines)
    if not items or not all(isinstance(line, InvoiceLine) for line in items):
        raise InvalidInputError(
            problem=f"lines {items!r} are empty or not InvoiceLine values",
            allowed="give at least one recurbill.invoice.InvoiceLine",
        )
    return items

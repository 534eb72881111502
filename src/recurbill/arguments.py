"""Argument checks shared by the service modules.

Each returns the checked value or raises an
:class:`~recurbill.errors.InvalidInputError` that names what was wrong and
what is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime

from recurbill.errors import CurrencyMismatchError, InvalidInputError
from recurbill.invoice import InvoiceLine
from recurbill.money import Currency, Money
from recurbill.records import FIRST_YEAR, LAST_YEAR, CollectionMethod, in_range

__all__ = [
    "aware",
    "caller_key",
    "day",
    "invoice_lines",
    "positive_money",
    "to_collection_method",
]


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


def caller_key(value: object, name: str, *, one_per: str) -> str:
    """*value* if it is non-empty text: an id the caller makes idempotency keys of.

    *one_per* names what the id stands for ("session"), for the error message.
    """
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(
            problem=f"{name} {value!r} is empty or not text",
            allowed=(
                f"give {name} as a non-empty string, one per {one_per}"
                " and the same when the call is repeated"
            ),
        )
    return value


def day(value: object, name: str) -> date:
    """*value* if it is a calendar date (a datetime is not one)."""
    if not isinstance(value, date) or isinstance(value, datetime):
        raise InvalidInputError(
            problem=f"{name} {value!r} is not a date",
            allowed=f"give {name} as a datetime.date, e.g. date(2027, 1, 31)",
        )
    return value

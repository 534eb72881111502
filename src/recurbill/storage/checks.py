"""Argument checks shared by the storage adapters, so both refuse alike."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

from recurbill.errors import InvalidInputError
from recurbill.records import FIRST_YEAR, LAST_YEAR, in_range

__all__ = [
    "account_ids",
    "aware",
    "due_after",
    "ids",
    "positive",
    "record",
    "records",
    "text",
]

_R = TypeVar("_R")


def text(name: str, value: object) -> str:
    """*value* if it is a non-empty string without NUL characters (an id)."""
    if not isinstance(value, str) or not value or "\x00" in value:
        raise InvalidInputError(
            problem=f"{name}={value!r}",
            allowed=f"{name} must be a non-empty string without NUL characters",
        )
    return value


def ids(name: str, values: object) -> list[str]:
    """*values* as a list, if they are a sequence of ids (see :func:`text`)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise InvalidInputError(
            problem=f"{name} is a {type(values).__name__}",
            allowed=f"give a sequence (list or tuple) of {name}",
        )
    return [text(name, value) for value in values]


def positive(name: str, value: object) -> int:
    """*value* if it is an integer of 1 or more (a count or a limit)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(
            problem=f"{name}={value!r}", allowed=f"{name} must be an integer >= 1"
        )
    return value


def record(name: str, value: object, kind: type[_R]) -> _R:
    """*value* if it is a *kind* record."""
    if not isinstance(value, kind):
        raise InvalidInputError(
            problem=f"{name} is a {type(value).__name__}",
            allowed=f"give a {kind.__name__}",
        )
    return value


def records(name: str, values: object, kind: type[_R]) -> list[_R]:
    """*values* as a list, if they are a sequence of *kind* records."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise InvalidInputError(
            problem=f"{name} is a {type(values).__name__}",
            allowed=f"give a sequence (list or tuple) of {kind.__name__}",
        )
    return [record(name, value, kind) for value in values]


def aware(name: str, value: object) -> datetime:
    """*value* if it is an aware datetime (an instant)."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise InvalidInputError(
            problem=f"{name}={value!r}",
            allowed=f"{name} must be an aware datetime",
        )
    if not in_range(value):
        raise InvalidInputError(
            problem=f"{name}={value.isoformat()} is outside the calendar",
            allowed=f"{name} must be an instant in the years {FIRST_YEAR} to "
            f"{LAST_YEAR} (in UTC)",
        )
    return value


def account_ids(values: object) -> frozenset[str] | None:
    """The accounts a query is limited to: None (every account) or a sequence."""
    if values is None:
        return None
    if isinstance(values, str):
        raise InvalidInputError(
            problem=f"account_ids={values!r} is one string",
            allowed="give a sequence of account ids, e.g. ['acme']",
        )
    return frozenset(ids("account_ids", values))


def due_after(value: object) -> tuple[datetime, str] | None:
    """Where a chunk of due templates starts: None or ``(next_due_at, id)``."""
    if value is None:
        return None
    if not isinstance(value, tuple) or len(value) != 2:
        raise InvalidInputError(
            problem=f"after={value!r}",
            allowed="after must be None or the (next_due_at, id) of the last "
            "template of the previous chunk",
        )
    return aware("after's next_due_at", value[0]), text("after's id", value[1])

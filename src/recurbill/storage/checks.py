"""Argument checks shared by the storage adapters, so both refuse alike."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Concatenate, ParamSpec, Protocol, TypeGuard, TypeVar

from recurbill.errors import ConflictError, InvalidInputError, StateError
from recurbill.records import (
    FIRST_YEAR,
    LAST_YEAR,
    InvoiceStatus,
    PaymentStatus,
    in_range,
)

__all__ = [
    "MAX_COUNT",
    "MAX_ID_LENGTH",
    "ReadOnly",
    "account_ids",
    "aware",
    "due_after",
    "flag",
    "id_in_use",
    "ids",
    "invoice_of_account",
    "invoice_status",
    "is_id",
    "optional_text",
    "payment_statuses",
    "positive",
    "record",
    "records",
    "stored_ids",
    "text",
    "unlocked",
    "writes",
]

_R = TypeVar("_R")
_P = ParamSpec("_P")


class ReadOnly(Protocol):
    """A unit of work that knows whether it was opened ``read_only``."""

    @property
    def read_only(self) -> bool: ...


_T = TypeVar("_T", bound=ReadOnly)


def _refuse(doing: str) -> StateError:
    return StateError(
        problem=f"{doing} in a read-only transaction",
        allowed="open the transaction with storage.transaction() (not "
        "read_only=True) to write or lock",
    )


def id_in_use(kind: str, key: str) -> ConflictError:
    """The error of a new account, customer or template whose id is taken.

    Ids are unique across the database, not per account; the message never
    says which account holds the id.
    """
    argument = f"{kind}_id"
    namespaced = (
        ""
        if kind == "account"
        else (f", e.g. prefixed with your own key for the account ('<key>-{key}')")
    )
    return ConflictError(
        problem=f"{kind} id {key!r} is already in use in this database (the "
        "ids of accounts, customers and templates are unique across all "
        "accounts, not per account)",
        allowed=f"choose another {argument}{namespaced}, or leave {argument} "
        "out to get a generated one; nothing was written",
    )


def writes(
    method: Callable[Concatenate[_T, _P], _R],
) -> Callable[Concatenate[_T, _P], _R]:
    """Mark a transaction's write call: refused first thing when read-only."""

    @functools.wraps(method)
    def guarded(self: _T, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        if self.read_only:
            raise _refuse(f"{method.__name__}()")
        return method(self, *args, **kwargs)

    return guarded


def flag(name: str, value: object) -> bool:
    """*value* if it is ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise InvalidInputError(problem=f"{name}={value!r}", allowed="True or False")
    return value


def unlocked(tx: ReadOnly, for_update: bool) -> None:
    """Refuse ``for_update`` in a read-only transaction: it would lock nothing."""
    if for_update and tx.read_only:
        raise _refuse("a locking read (for_update=True)")


MAX_ID_LENGTH = 200
"""The longest id any backend keeps (the SQL schema's id columns)."""
MAX_COUNT = 2**31 - 1
"""The largest count or limit (and invoice number) every backend can take."""


def is_id(value: object) -> TypeGuard[str]:
    """Whether *value* is an id: non-empty text of at most
    :data:`MAX_ID_LENGTH` characters, without NUL and encodable as UTF-8."""
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_ID_LENGTH
        and "\x00" not in value
        and (value.isprintable() or _encodable(value))
    )


def text(name: str, value: object) -> str:
    """*value* if it is an id (:func:`is_id`)."""
    if not is_id(value):
        raise InvalidInputError(
            problem=f"{name}={value!r}",
            allowed=f"{name} must be a non-empty string of at most {MAX_ID_LENGTH} "
            "characters, without NUL characters or lone surrogates",
        )
    return value


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def optional_text(name: str, value: object) -> str | None:
    """None, or an id (:func:`text`): a filter that may be left out."""
    return None if value is None else text(name, value)


def invoice_of_account(account_id: str | None, invoice_id: object) -> str | None:
    """None, or the id of the invoice whose payments are read: only with the
    account it belongs to (*account_id*)."""
    invoice_id = optional_text("invoice_id", invoice_id)
    if invoice_id is not None and account_id is None:
        raise InvalidInputError(
            problem=f"invoice_id={invoice_id!r} is given without account_id",
            allowed="give the invoice's account_id with invoice_id: an "
            "invoice's payments are read within its account",
        )
    return invoice_id


def invoice_status(value: object) -> InvoiceStatus | None:
    """None, or *value* as an :class:`InvoiceStatus` (a filter)."""
    if value is None:
        return None
    try:
        return InvoiceStatus(value)
    except ValueError:
        raise InvalidInputError(
            problem=f"status={value!r}",
            allowed="an InvoiceStatus: " + ", ".join(s.value for s in InvoiceStatus),
        ) from None


def payment_statuses(values: object) -> frozenset[PaymentStatus] | None:
    """None, or *values* as a set of :class:`PaymentStatus` (a filter)."""
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise InvalidInputError(
            problem=f"statuses={values!r}",
            allowed="a sequence (list or tuple) of PaymentStatus",
        )
    try:
        return frozenset(PaymentStatus(value) for value in values)
    except ValueError:
        raise InvalidInputError(
            problem=f"statuses={values!r}",
            allowed="PaymentStatus values: "
            + ", ".join(s.value for s in PaymentStatus),
        ) from None


def ids(name: str, values: object) -> list[str]:
    """*values* as a list, if they are a sequence of ids (see :func:`text`)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise InvalidInputError(
            problem=f"{name} is a {type(values).__name__}",
            allowed=f"give a sequence (list or tuple) of {name}",
        )
    return [text(name, value) for value in values]


def stored_ids(name: str, values: object) -> list[str]:
    """*values* as a list, if they are a sequence of strings: ids as stored,
    which a row recurbill did not write may hold even when :func:`ids` would
    refuse them (empty, too long)."""
    if (
        isinstance(values, (str, bytes))
        or not isinstance(values, Sequence)
        or not all(isinstance(value, str) for value in values)
    ):
        raise InvalidInputError(
            problem=f"{name}={values!r}",
            allowed=f"give a sequence (list or tuple) of strings as {name}",
        )
    return list(values)


def positive(name: str, value: object) -> int:
    """*value* if it is an integer from 1 to :data:`MAX_COUNT` (a count or a limit)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not 1 <= value <= MAX_COUNT
    ):
        raise InvalidInputError(
            problem=f"{name}={value!r}",
            allowed=f"{name} must be an integer from 1 to {MAX_COUNT}",
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

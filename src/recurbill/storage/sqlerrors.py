"""Driver errors translated into recurbill's storage errors, at the edge.

- A broken uniqueness rule (``IntegrityError``) is :class:`ConflictError`.
- A concurrency conflict is :class:`ConflictError` too, since retrying the unit
  of work is the answer: SQLite's ``database is locked`` after the busy
  timeout, PostgreSQL's serialization failure, deadlock and lock timeout.
- A database that cannot be reached (refused connection, unreachable host, a
  file that cannot be opened, a server shutting down, an exhausted pool) is
  :class:`StorageUnavailableError`.
- Anything else from the driver is :class:`StorageError`.

The original exception is always chained (``raise ... from exc``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy.exc as sa_exc

from recurbill.errors import (
    ConflictError,
    StorageError,
    StorageUnavailableError,
)

__all__ = ["translate_errors", "translated"]

_PG_CONFLICT = {"40001", "40P01", "55P03"}  # serialization, deadlock, lock timeout
_PG_UNAVAILABLE_CLASSES = ("08", "53", "57P")  # connection, resources, shutdown
_SQLITE_BUSY = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
_SQLITE_UNAVAILABLE = {10, 14, 26}  # SQLITE_IOERR, SQLITE_CANTOPEN, SQLITE_NOTADB


def _detail(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return " ".join(str(orig).split())[:300]


def translated(exc: Exception, *, doing: str) -> StorageError:
    """The storage error that stands for driver error *exc* raised while *doing*."""
    detail = _detail(exc)
    if isinstance(exc, sa_exc.IntegrityError):
        return ConflictError(
            problem=f"{doing} broke a uniqueness rule ({detail})",
            allowed="ids, invoice numbers, occurrences, idempotency keys and "
            "pending selections must be unique; nothing of this call was written",
        )
    if isinstance(exc, sa_exc.TimeoutError):
        return StorageUnavailableError(
            problem=f"{doing}: no database connection became free ({detail})",
            allowed="retry later, or give the engine a larger pool",
        )
    orig = getattr(exc, "orig", None)
    sqlstate = getattr(orig, "sqlstate", None)
    sqlite_code = getattr(orig, "sqlite_errorcode", None)
    if (
        sqlstate in _PG_CONFLICT
        or sqlite_code in _SQLITE_BUSY
        or (sqlite_code is None and "database is locked" in detail)
    ):
        return ConflictError(
            problem=f"{doing} met a concurrent transaction ({detail})",
            allowed="leave this unit of work (it rolls back) and retry it in a new one",
        )
    if (
        sqlite_code in _SQLITE_UNAVAILABLE
        or (  # "not a database" is no OperationalError
            isinstance(exc, sa_exc.OperationalError)
            and (
                getattr(exc, "connection_invalidated", False)
                or (sqlstate is None and sqlite_code is None)
                or (
                    sqlstate is not None
                    and sqlstate.startswith(_PG_UNAVAILABLE_CLASSES)
                )
            )
        )
    ):
        return StorageUnavailableError(
            problem=f"{doing}: the database cannot be reached ({detail})",
            allowed="check that the database is running and the URL is right, "
            "then retry",
        )
    return StorageError(
        problem=f"{doing} failed in the database ({detail})",
        allowed="the database's own error is chained to this one (its __cause__)",
    )


@contextmanager
def translate_errors(doing: str) -> Iterator[None]:
    """Re-raise SQLAlchemy/driver errors inside the block as storage errors."""
    try:
        yield
    except (sa_exc.DBAPIError, sa_exc.TimeoutError) as exc:
        raise translated(exc, doing=doing) from exc

"""Finding and naming a SQL row that cannot be read back (``UnreadableRecordError``).

A read decodes its rows in one go and looks for the row that failed only
after a failure, so reading costs nothing per row (:func:`decoded`). On
SQLite a column's stored text can fail in its type's own conversion while the
rows are fetched: :func:`converting` then reads the rows again with those
columns unconverted and converts them one by one (:func:`unconverted`) to name
the row, the column and why. :func:`due_read` does the same for the due walk
and keeps the templates read before the bad row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import sqlalchemy as sa

from recurbill.errors import UnreadableRecordError
from recurbill.records import RecurringTemplate
from recurbill.storage import rows, schema

__all__ = [
    "KEYS",
    "KINDS",
    "Unconverted",
    "converting",
    "decoded",
    "due_read",
    "table_of",
    "unconverted",
]

_R = TypeVar("_R")
Unconverted = tuple[dict[str, Any], str]
"""A row whose column could not be converted: its keys and the columns that
could, and the reason (``column: error``)."""


KINDS = {
    schema.accounts.name: "account",
    schema.customers.name: "customer",
    schema.payment_methods.name: "payment method",
    schema.templates.name: "template",
    schema.occurrences.name: "occurrence",
    schema.invoices.name: "invoice",
    schema.payments.name: "payment",
    schema.settlements.name: "settlement",
    schema.receipts.name: "receipt",
    schema.credit_notes.name: "credit note",
    schema.refunds.name: "refund",
    schema.credit_entries.name: "credit entry",
    schema.notifications.name: "notification",
}
"""The kind of record each table's rows hold, as errors name it."""

KEYS = ("id", "template_id", "occurrence_index", "account_id", "customer_id")
"""The columns that name a row (and its owners) in UnreadableRecordError."""


def table_of(query: sa.Select[Any]) -> sa.Table:
    """The table *query* reads."""
    table = query.columns_clause_froms[0]
    assert isinstance(table, sa.Table)
    return table


def decoded(
    found: Sequence[rows.Row], decode: Callable[[rows.Row], _R], query: sa.Select[Any]
) -> list[_R]:
    """*decode* of every row *query* found; a row it cannot decode raises
    UnreadableRecordError (looked for only then: no cost per row)."""
    try:
        return [decode(row) for row in found]
    except UnreadableRecordError:
        raise
    except rows.UNREADABLE:
        kind = KINDS[table_of(query).name]
        for row in found:
            try:
                decode(row)
            except rows.UNREADABLE as error:
                raise rows.unreadable(kind, row, error) from error
        raise


def due_read(
    found: Iterable[rows.Row], unconverted: Callable[[], Unconverted | None]
) -> list[RecurringTemplate]:
    """The templates of a due walk's rows, up to the first that cannot be
    read: that one raises, with the templates before it. *unconverted* finds
    the row whose columns could not be converted (and why) when that failed."""
    read: list[RecurringTemplate] = []
    rows_left = iter(found)
    while True:
        try:
            row = next(rows_left, None)
        except schema.UNCONVERTIBLE as error:  # converting row len(read) failed
            bad = unconverted()
            if bad is None:
                raise
            raise rows.unreadable_template(bad[0], bad[1], read) from error
        if row is None:
            return read
        try:
            read.append(rows.decode_template(row))
        except UnreadableRecordError as error:
            reason = str(error.fields["reason"])
            raise rows.unreadable_template(row, reason, read) from error


@contextmanager
def converting(conn: sa.Connection, query: sa.Select[Any]) -> Iterator[None]:
    """Fetching the rows of *query* on *conn*: a column whose stored text its type
    cannot convert (SQLite) raises UnreadableRecordError naming the row."""
    try:
        yield
    except schema.UNCONVERTIBLE as error:
        found = unconverted(conn, query)
        if found is None:
            raise  # no row of it fails on its own: not the rows' content
        kind = KINDS[table_of(query).name]
        raise rows.unreadable_key(kind, *found) from error


def unconverted(conn: sa.Connection, query: sa.Select[Any]) -> Unconverted | None:
    """The first row of *query* with a column its type cannot convert:
    its keys and the columns that convert, and why (None if none fails).

    Reads the row's stored values unconverted and converts them here, so
    only after a fetch failed.
    """
    table, dialect = table_of(query), conn.dialect
    selected = {column.name for column in query.selected_columns}
    keys = [column for column in table.columns if column.name in KEYS]
    converted = [
        (column, convert)
        for column in table.columns
        if column.name in selected
        and column.name not in KEYS
        and (
            convert := column.type.dialect_impl(dialect).result_processor(dialect, None)
        )
    ]
    raw = query.with_only_columns(
        *keys,
        *(
            sa.type_coerce(column, sa.String).label(column.name)
            for column, _ in converted
        ),
    )
    for stored in conn.execute(raw).mappings():
        found, reason = dict(stored), ""
        for column, convert in converted:
            try:
                found[column.name] = convert(stored[column.name])
            except schema.UNCONVERTIBLE as error:
                del found[column.name]
                reason = reason or f"{column.name}: {error}"
        if reason:
            return found, reason
    return None

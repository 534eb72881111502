"""Multi-row writes of :class:`~recurbill.storage.sql.SqlStorage`: one executemany each.

The daily run stores thousands of invoices, payments (and the invoices each
includes) and receipts at once; :class:`Bulk` hands those rows to the
driver's ``executemany`` with the columns' own conversions. An update
leaves out the indexed columns no row changes (:func:`indexed_columns`,
:func:`update_statement`). The checks before those writes that the ids
exist, and the reads of records by id, go to the driver the same way
(:class:`ByIds`).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from recurbill.storage import schema

__all__ = [
    "INSERTED",
    "Bulk",
    "ByIds",
    "Updates",
    "indexed_columns",
    "inserts",
    "update_statement",
]

INSERTED = (
    schema.invoices,
    schema.occurrences,
    schema.notifications,
    schema.payments,
    schema.payment_invoices,
    schema.receipts,
)
"""The tables whose rows are added with one executemany."""


class Bulk:
    """A multi-row INSERT or UPDATE of one table handed to the driver's executemany.

    Rows become positional tuples with the columns' own conversions (those
    SQLAlchemy's bind processors apply), which skips the per-row parameter
    compilation of ``Connection.execute(statement, rows)``: the daily run
    stores thousands of invoices, payments and receipts at once and this is
    its hot path. An update sets every column of the row with its
    ``(id, account_id)`` except those named in *leave*.
    """

    def __init__(
        self,
        table: sa.Table,
        dialect: sa.Dialect,
        *,
        update: bool,
        leave: tuple[str, ...] = (),
    ) -> None:
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        quote = dialect.identifier_preparer.quote
        name = dialect.identifier_preparer.format_table(table)
        columns = list(table.columns)
        if update:
            keys = ("id", "account_id", *leave)
            columns = [c for c in columns if c.name not in keys]
            columns += [table.c.id, table.c.account_id]
            assignments = ", ".join(f"{quote(c.name)} = {mark}" for c in columns[:-2])
            self.sql = (
                f"UPDATE {name} SET {assignments} "
                f"WHERE {quote('id')} = {mark} AND {quote('account_id')} = {mark}"
            )
        else:
            self.sql = (
                f"INSERT INTO {name} ({', '.join(quote(c.name) for c in columns)}) "
                f"VALUES ({', '.join([mark] * len(columns))})"
            )
        self.get = operator.itemgetter(*(c.name for c in columns))
        self.converters: list[tuple[int, Callable[[Any], Any]]] = []
        for position, column in enumerate(columns):
            kind = column.type
            if isinstance(kind, schema.Converted):
                convert = kind.bind_converter(dialect)
            else:
                convert = kind.dialect_impl(dialect).bind_processor(dialect)
            if convert is not None:
                self.converters.append((position, convert))

    def run_values(self, conn: sa.Connection, values: list[tuple[Any, ...]]) -> None:
        """Insert rows already converted for the driver, in column order."""
        conn.exec_driver_sql(self.sql, values)

    def run(self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Write *rows* (column name -> value) with one executemany."""
        get, converters = self.get, self.converters
        params: list[Any]
        if not converters:
            params = [get(row) for row in rows]
        else:
            params = []
            for row in rows:
                values = list(get(row))
                for position, convert in converters:
                    value = values[position]
                    if value is not None:
                        values[position] = convert(value)
                params.append(tuple(values))
        conn.exec_driver_sql(self.sql, params)


class ByIds:
    """A SELECT of some columns of a table's rows by id, handed to the driver.

    ``Connection.execute`` of ``column.in_(ids)`` renders a bound parameter
    per id on every call (about 1 µs each); the daily run checks and reads
    thousands of ids a transaction. The values come back with the columns' own
    conversions, which raise :data:`~recurbill.storage.schema.UNCONVERTIBLE`
    for a value they cannot convert (the caller reads again to name the row).
    """

    def __init__(
        self, table: sa.Table, names: tuple[str, ...], dialect: sa.Dialect
    ) -> None:
        self._mark = "?" if dialect.paramstyle == "qmark" else "%s"
        quote = dialect.identifier_preparer.quote
        name = dialect.identifier_preparer.format_table(table)
        selected = ", ".join(quote(column) for column in names)
        self._head = f"SELECT {selected} FROM {name} WHERE {quote('id')} IN ("
        self.converters: list[tuple[int, Callable[[Any], Any]]] = []
        for position, column in enumerate(table.c[n] for n in names):
            impl = column.type.dialect_impl(dialect)
            convert = impl.result_processor(dialect, None)
            if convert is not None:
                self.converters.append((position, convert))

    def run(self, conn: sa.Connection, ids: Sequence[str]) -> list[tuple[Any, ...]]:
        """The rows of *ids* that exist, converted, in no particular order."""
        if not ids:
            return []  # "IN ()" is no SQL on PostgreSQL
        marks = ", ".join([self._mark] * len(ids))
        found = conn.exec_driver_sql(f"{self._head}{marks})", tuple(ids)).all()
        if not self.converters:
            return [tuple(row) for row in found]
        converted = []
        for row in found:
            values = list(row)
            for position, convert in self.converters:
                values[position] = convert(values[position])
            converted.append(tuple(values))
        return converted


@functools.cache
def indexed_columns(table: sa.Table) -> tuple[str, ...]:
    """The columns of *table* in an index or unique constraint, but the keys."""
    names = {column.name for index in table.indexes for column in index.columns}
    names.update(
        column.name
        for constraint in table.constraints
        if isinstance(constraint, sa.UniqueConstraint)
        for column in constraint.columns
    )
    return tuple(sorted(names - {"id", "account_id"}))


def inserts(dialect: sa.Dialect) -> dict[str, Bulk]:
    """The INSERT of each table of :data:`INSERTED`, by table name."""
    return {table.name: Bulk(table, dialect, update=False) for table in INSERTED}


Updates = dict[tuple[str, frozenset[str]], Bulk]
"""UPDATE statements built so far, by table name and the columns left as they are."""


def update_statement(
    built: Updates, table: sa.Table, dialect: sa.Dialect, leave: frozenset[str]
) -> Bulk:
    """The UPDATE of *table* that leaves the columns *leave* as they are.

    Setting an indexed column rewrites its index entries even when the
    value stays the same (SQLite); leaving out those that no row changes
    halves what the daily run writes for each template. Built once, kept in
    *built*.
    """
    key = (table.name, leave)
    statement = built.get(key)
    if statement is None:
        statement = Bulk(table, dialect, update=True, leave=tuple(sorted(leave)))
        built[key] = statement
    return statement

"""The machinery under :class:`~recurbill.storage.sql.SqlTransaction`.

:class:`SqlUnit` holds a unit of work's connection and what its calls share:
a write call inside a SAVEPOINT with driver errors translated, reads that
raise ``UnreadableRecordError`` for a row they cannot read (see
``unreadable``), reads of records by id, the checks that the rows a write
refers to exist (by primary key, in chunks of ids), and replacing rows with
one executemany (see ``bulk``). :func:`begin_read_only` and :func:`aborted`
are the transaction's own plumbing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from recurbill.errors import NotFoundError, StateError, UnreadableRecordError
from recurbill.records import Invoice, Payment, Receipt, RecurringTemplate
from recurbill.storage import rows, schema
from recurbill.storage.bulk import ByIds, indexed_columns, update_statement
from recurbill.storage.checks import id_in_use as _id_in_use
from recurbill.storage.checks import ids as _ids
from recurbill.storage.checks import text as _text
from recurbill.storage.checks import unlocked as _unlocked
from recurbill.storage.engine import READ_ONLY_OPTION
from recurbill.storage.sqlerrors import translate_errors
from recurbill.storage.unreadable import converting, decoded, table_of

if TYPE_CHECKING:
    from recurbill.storage.sql import SqlStorage

__all__ = ["Followed", "SqlUnit", "aborted", "begin_read_only", "by_account", "chunks"]

_R = TypeVar("_R")
_CHUNK = 500  # ids per IN (...) list

Followed = tuple[
    tuple[str, ...],
    Callable[[sa.Connection, Mapping[str, tuple[Any, ...]]], None],
]
"""What follows from replacing rows (:meth:`SqlUnit._replace_all`): the
columns whose stored values it needs, and the write given them by id."""


def by_account(pairs: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    """(account id, id) pairs grouped: account id -> ids."""
    grouped: dict[str, set[str]] = {}
    for account_id, key in pairs:
        grouped.setdefault(account_id, set()).add(key)
    return grouped


def chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    """*values* in slices short enough for one ``IN (...)`` list."""
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def aborted(conn: sa.Connection) -> bool:
    """Whether *conn*'s PostgreSQL transaction failed (psycopg's INERROR)."""
    raw = conn.connection.dbapi_connection
    status = getattr(getattr(raw, "info", None), "transaction_status", None)
    return getattr(status, "name", "") == "INERROR"


def begin_read_only(conn: sa.Connection, *, sqlite: bool) -> None:
    """Begin *conn*'s transaction as one that only reads a snapshot."""
    if sqlite:  # the begin hook emits a deferred BEGIN for this option
        conn.execution_options(**{READ_ONLY_OPTION: True})
    else:
        conn.exec_driver_sql(
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
        )


class SqlUnit:
    """The machinery under :class:`~recurbill.storage.sql.SqlTransaction`.

    Its connection, atomic write calls, reads that name a row they cannot
    read, the checks that rows exist, and replacing rows in bulk.
    """

    def __init__(
        self, storage: SqlStorage, conn: sa.Connection, *, read_only: bool = False
    ) -> None:
        self._storage = storage
        self._conn: sa.Connection | None = conn
        self._read_only = read_only
        self._insert = storage._insert
        self._bulk = storage._bulk
        self._bulk_update = storage._bulk_update
        self._lookups = storage._lookups

    @property
    def read_only(self) -> bool:
        """Whether this unit of work was opened ``read_only``."""
        return self._read_only

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            with translate_errors("rolling back"):
                if conn.in_transaction():
                    conn.rollback()
        finally:
            conn.close()

    @property
    def _c(self) -> sa.Connection:
        if self._conn is None:
            raise StateError(
                problem="the transaction is closed",
                allowed="use a transaction only inside its with block",
            )
        return self._conn

    @contextmanager
    def _write(self, doing: str) -> Iterator[sa.Connection]:
        """One atomic write call inside a SAVEPOINT, driver errors translated."""
        conn = self._c
        with translate_errors(doing), conn.begin_nested():
            yield conn

    def _all(self, query: sa.Select[Any], decode: Callable[[rows.Row], _R]) -> list[_R]:
        return decoded(self._fetch(query, "reading"), decode, query)

    def _fetch(self, query: sa.Select[Any], doing: str) -> Sequence[sa.RowMapping]:
        """Every row of *query*, driver errors translated; a row whose column
        cannot be converted raises UnreadableRecordError."""
        with translate_errors(doing):
            result = self._c.execute(query).mappings()
            with converting(self._c, query):
                return result.all()

    def _owned(
        self,
        query: sa.Select[Any],
        account_id: str,
        read: Callable[[sa.Select[Any]], Sequence[Any]],
    ) -> Sequence[Any]:
        """*read* of *query* (rows by id, of any account); if a row of another
        account cannot be read, *read* again with the account in the SQL: a
        row of another account is never named here, nor read."""
        try:
            return read(query)
        except UnreadableRecordError as error:
            if error.fields["account"] == account_id:
                raise
            return read(query.where(table_of(query).c.account_id == account_id))

    def _rows(self, query: sa.Select[Any]) -> Sequence[Any]:
        """Every row of *query* in one fetch (not a fetchone per row); a
        column that cannot be converted raises UnreadableRecordError."""
        result = self._c.execute(query)
        with converting(self._c, query):
            return result.all()

    def _one(
        self,
        query: sa.Select[Any],
        decode: Callable[[rows.Row], _R],
        *,
        kind: str,
        key: str,
        account: str,
    ) -> _R:
        found = self._fetch(query, f"reading {kind} {key!r}")
        if not found:
            raise NotFoundError(kind=kind, key=key, account=account)
        return decoded(found[:1], decode, query)[0]

    def _insert_chosen(
        self, conn: sa.Connection, table: sa.Table, kind: str, row: dict[str, Any]
    ) -> None:
        """Insert the row of an account, customer or template; an id in use in
        any account raises ConflictError (waiting for a concurrent insert)."""
        statement = (
            self._insert(table)
            .values(row)
            .on_conflict_do_nothing(index_elements=[table.c.id])
            .returning(table.c.id)
        )
        if conn.execute(statement).first() is None:
            raise _id_in_use(kind, row["id"])

    def _exists(self, table: sa.Table, account_id: str, key: str, kind: str) -> None:
        query = sa.select(table.c.id).where(
            table.c.id == key, table.c.account_id == account_id
        )
        if self._c.execute(query).first() is None:
            raise NotFoundError(kind=kind, key=key, account=account_id)

    def _need_account(self, account_id: str) -> None:
        accounts = schema.accounts
        query = sa.select(accounts.c.id).where(accounts.c.id == account_id)
        if self._c.execute(query).first() is None:
            raise NotFoundError(kind="account", key=account_id, account=account_id)

    def _need_accounts(self, account_ids: set[str]) -> None:
        for account_id in sorted(account_ids):
            self._need_account(account_id)

    def _need_parents(
        self,
        records: Sequence[RecurringTemplate | Invoice | Payment | Receipt],
    ) -> None:
        """The accounts and customers *records* belong to exist."""
        self._need_accounts({record.account_id for record in records})
        self._need_all(
            schema.customers,
            "customer",
            by_account((r.account_id, r.customer_id) for r in records),
        )

    def _replace_all(
        self,
        table: sa.Table,
        kind: str,
        records: Sequence[RecurringTemplate | Invoice | Payment],
        encoded: list[dict[str, Any]],
        *,
        doing: str,
        parents: Callable[[], None],
        then: Followed | None = None,
    ) -> None:
        """Replace stored rows with one executemany, all or none.

        Each record's id must exist in its account (checked first), then
        *parents* checks what the records refer to. *then* (columns, write)
        is given the stored values of those columns by id, read with that
        check, and writes what follows from the change, in the same call.
        """
        if not records:
            return
        indexed = indexed_columns(table)
        followed, follow = then or ((), None)
        with self._write(doing) as conn:
            stored = self._need_all(
                table,
                kind,
                by_account((r.account_id, r.id) for r in records),
                also=(*indexed, *followed),
            )
            parents()
            unchanged = frozenset(
                name
                for position, name in enumerate(indexed)
                if all(stored[row["id"]][position] == row[name] for row in encoded)
            )
            statement = update_statement(
                self._bulk_update, table, conn.dialect, unchanged
            )
            statement.run(conn, encoded)
            if follow is not None:
                start = len(indexed)
                follow(conn, {key: values[start:] for key, values in stored.items()})

    def _by_ids(self, table: sa.Table, names: tuple[str, ...]) -> ByIds:
        """The lookup of *names* by id in *table* (built once per storage)."""
        key = (table.name, names)
        lookup = self._lookups.get(key)
        if lookup is None:
            lookup = ByIds(table, names, self._c.dialect)
            self._lookups[key] = lookup
        return lookup

    def _by_id(
        self,
        query: sa.Select[Any],
        chunk: Sequence[str],
        account_id: str,
        doing: str,
        *,
        locks: bool,
    ) -> Sequence[rows.Row]:
        """The rows *query* reads (whole rows of *chunk*, by id), as column
        name -> value. Read on the driver (:class:`ByIds`) unless the read
        locks rows (PostgreSQL) or a value cannot be converted: then by
        *query*, which names that row (:meth:`_owned`)."""
        if not locks or self._storage._is_sqlite:  # SQLite locks no rows
            table = table_of(query)
            names = tuple(column.name for column in table.columns)
            try:
                with translate_errors(doing):
                    found = self._by_ids(table, names).run(self._c, chunk)
                return [dict(zip(names, values, strict=True)) for values in found]
            except schema.UNCONVERTIBLE:
                pass  # read again below, to name the row
        read = functools.partial(self._fetch, doing=doing)
        return self._owned(query, account_id, read)

    def _need_customer(self, account_id: str, customer_id: str) -> None:
        self._need_account(account_id)
        self._exists(schema.customers, account_id, customer_id, "customer")

    def _need_all(
        self,
        table: sa.Table,
        kind: str,
        wanted: Mapping[str, set[str]],
        *,
        also: tuple[str, ...] = (),
    ) -> dict[str, tuple[Any, ...]]:
        """Every id of *wanted* (account id -> ids) exists in that account.

        Returns each id's stored values of the columns *also*.
        """
        stored: dict[str, tuple[Any, ...]] = {}
        names = ("id", "account_id", *also)
        query = sa.select(*(table.c[name] for name in names))
        for account_id, ids in wanted.items():
            keys = sorted(ids)
            found: dict[str, tuple[Any, ...]] = {}
            for chunk in chunks(keys):
                # by primary key alone (the planner may otherwise pick an
                # account index and scan the account), the account checked here
                got: Sequence[Any]
                try:
                    got = self._by_ids(table, names).run(self._c, chunk)
                except schema.UNCONVERTIBLE:  # read again to name the row
                    by_id = query.where(table.c.id.in_(chunk))
                    got = self._owned(by_id, account_id, self._rows)
                found.update(
                    (key, tuple(values))
                    for key, owner, *values in got
                    if owner == account_id
                )
            missing = [key for key in keys if key not in found]
            if missing:
                raise NotFoundError(kind=kind, key=missing[0], account=account_id)
            stored.update(found)
        return stored

    def _replace(
        self, table: sa.Table, row: dict[str, Any], *, kind: str, doing: str
    ) -> None:
        with self._write(doing) as conn:
            self._update_row(conn, table, row, kind=kind)

    def _update_row(
        self, conn: sa.Connection, table: sa.Table, row: dict[str, Any], *, kind: str
    ) -> None:
        statement = (
            sa.update(table)
            .where(table.c.id == row["id"], table.c.account_id == row["account_id"])
            .values(row)
        )
        if conn.execute(statement).rowcount == 0:
            raise NotFoundError(kind=kind, key=row["id"], account=row["account_id"])

    def _get(
        self,
        table: sa.Table,
        decode: Callable[[rows.Row], _R],
        kind: str,
        account_id: str,
        key: str,
        *,
        for_update: bool = False,
        key_share: bool = False,
    ) -> _R:
        _text(f"{kind} id", key)
        return self._get_many(
            table,
            decode,
            kind,
            account_id,
            [key],
            for_update=for_update,
            key_share=key_share,
        )[0]

    def _get_many(
        self,
        table: sa.Table,
        decode: Callable[[rows.Row], _R],
        kind: str,
        account_id: str,
        keys: object,
        *,
        for_update: bool = False,
        key_share: bool = False,
    ) -> list[_R]:
        """Records by id in the order asked; NotFoundError for the first missing.

        ``key_share`` makes the lock ``FOR NO KEY UPDATE`` on PostgreSQL.
        """
        _unlocked(self, for_update)
        _text("account_id", account_id)
        wanted = _ids(f"{kind} ids", keys)
        found: dict[str, _R] = {}
        for chunk in chunks(sorted(set(wanted))):
            # by primary key alone, the account checked here (as in _need_all);
            # a locking read names the account in SQL too, so it never locks
            # (or waits for) a row of another account (SQLite locks no rows)
            query = sa.select(table).where(table.c.id.in_(chunk))
            if for_update and not self._storage._is_sqlite:
                query = query.where(table.c.account_id == account_id)
            if for_update:  # in id order, so two lockers never deadlock
                query = query.order_by(table.c.id).with_for_update(key_share=key_share)
            doing = f"reading {kind} {chunk[0]!r}"
            result = self._by_id(query, chunk, account_id, doing, locks=for_update)
            owned = [row for row in result if row["account_id"] == account_id]
            found.update(
                zip(
                    (row["id"] for row in owned),
                    decoded(owned, decode, query),
                    strict=True,
                )
            )
        for key in wanted:
            if key not in found:
                raise NotFoundError(kind=kind, key=key, account=account_id)
        return [found[key] for key in wanted]

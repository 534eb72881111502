"""``SqlStorage``: the storage port on SQLAlchemy Core, SQLite or PostgreSQL.

SQLite (a file, through the standard library) is the embedded default;
PostgreSQL goes through psycopg 3. One ``transaction()`` is one database
transaction on one connection: ``commit()`` makes its writes durable, leaving
the block without it rolls back. Each write call runs inside a SAVEPOINT, so
a call that raises (``ConflictError``, ``NotFoundError``) leaves nothing
behind and the unit of work stays usable, on PostgreSQL too.

Uniqueness is enforced by the database (see ``schema``), so it holds between
processes. Invoice numbers come from a counter row updated in the same
transaction as the invoice (``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``):
the row stays locked until the transaction ends, so numbers are gapless.
On SQLite every transaction takes the write lock at ``BEGIN IMMEDIATE``, so
units of work of several processes run one after another.

Every read raises :class:`~recurbill.errors.UnreadableRecordError` for a row
it cannot read back, whether its JSON or text fails to decode or (SQLite) a
column's text is no instant, date or amount; driver errors are translated by
``sqlerrors`` as before.

The schema is versioned: :meth:`SqlStorage.migrate` (or the ``recurbill
migrate`` command, :func:`migrate`) creates or upgrades it, and the first
transaction refuses a database whose schema is older or newer than this
recurbill.
"""

from __future__ import annotations

import functools
import operator
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from recurbill.errors import (
    InvalidInputError,
    NotFoundError,
    SchemaVersionError,
    StateError,
    StorageError,
    UnreadableRecordError,
)
from recurbill.records import (
    Account,
    CreditEntry,
    CreditNoteRecord,
    Customer,
    Invoice,
    InvoiceStatus,
    Notification,
    NotificationStatus,
    OccurrenceRecord,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Receipt,
    RecurringTemplate,
    Refund,
    Settlement,
    TemplateStatus,
)
from recurbill.storage import migrations, rows, schema
from recurbill.storage.checks import account_ids as _account_ids
from recurbill.storage.checks import aware as _aware
from recurbill.storage.checks import due_after as _due_after
from recurbill.storage.checks import flag as _flag
from recurbill.storage.checks import ids as _ids
from recurbill.storage.checks import invoice_status as _invoice_status
from recurbill.storage.checks import optional_text as _optional_text
from recurbill.storage.checks import payment_statuses as _payment_statuses
from recurbill.storage.checks import positive as _positive
from recurbill.storage.checks import record as _record
from recurbill.storage.checks import records as _records
from recurbill.storage.checks import stored_ids as _stored_ids
from recurbill.storage.checks import text as _text
from recurbill.storage.checks import unlocked as _unlocked
from recurbill.storage.checks import writes
from recurbill.storage.engine import (
    LOCK_TIMEOUT_SECONDS,
    READ_ONLY_OPTION,
    create_engine,
    prepare_sqlite,
    sqlite_url,
)
from recurbill.storage.sqlerrors import translate_errors

if TYPE_CHECKING:
    from recurbill.storage.protocol import Storage, Transaction

__all__ = ["SqlStorage", "SqlTransaction", "migrate"]

_R = TypeVar("_R")
_Unconverted = tuple[dict[str, Any], str]
"""A row whose column could not be converted: its keys and the columns that
could, and the reason (``column: error``)."""
_CHUNK = 500  # ids per IN (...) list


def migrate(url: str) -> int:
    """Create or upgrade the recurbill schema of the database at *url*.

    Returns the schema version the database has afterwards. Safe to run again
    and from several processes at once. This is what ``recurbill migrate`` runs.
    """
    storage = SqlStorage.from_url(url)
    try:
        return storage.migrate()
    finally:
        storage.close()


class _Bulk:
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


@functools.cache
def _indexed(table: sa.Table) -> tuple[str, ...]:
    """The columns of *table* in an index or unique constraint, but the keys."""
    names = {column.name for index in table.indexes for column in index.columns}
    names.update(
        column.name
        for constraint in table.constraints
        if isinstance(constraint, sa.UniqueConstraint)
        for column in constraint.columns
    )
    return tuple(sorted(names - {"id", "account_id"}))


def _by_account(pairs: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    """(account id, id) pairs grouped: account id -> ids."""
    grouped: dict[str, set[str]] = {}
    for account_id, key in pairs:
        grouped.setdefault(account_id, set()).add(key)
    return grouped


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


_KINDS = {
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

_KEYS = ("id", "template_id", "occurrence_index", "account_id", "customer_id")
"""The columns that name a row (and its owners) in UnreadableRecordError."""


def _table(query: sa.Select[Any]) -> sa.Table:
    """The table *query* reads."""
    table = query.columns_clause_froms[0]
    assert isinstance(table, sa.Table)
    return table


def _decoded(
    found: Sequence[rows.Row], decode: Callable[[rows.Row], _R], query: sa.Select[Any]
) -> list[_R]:
    """*decode* of every row *query* found; a row it cannot decode raises
    UnreadableRecordError (looked for only then: no cost per row)."""
    try:
        return [decode(row) for row in found]
    except UnreadableRecordError:
        raise
    except rows.UNREADABLE:
        kind = _KINDS[_table(query).name]
        for row in found:
            try:
                decode(row)
            except rows.UNREADABLE as error:
                raise rows.unreadable(kind, row, error) from error
        raise


def _due_read(
    found: Iterable[rows.Row], unconverted: Callable[[], _Unconverted | None]
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


class SqlStorage:
    """The storage port on a SQL database (SQLite file or PostgreSQL).

    Build it from an engine you own (``SqlStorage(engine)``), from a URL
    (:meth:`from_url`) or from a SQLite file path (:meth:`sqlite`); the last two
    own their engine and release it in :meth:`close`. Run :meth:`migrate` once
    to create the schema. A SQLite engine you hand in gets the same connection
    setup as the one :meth:`sqlite` builds (WAL, foreign keys, busy timeout,
    ``BEGIN IMMEDIATE``).
    """

    def __init__(self, engine: sa.Engine) -> None:
        if not isinstance(engine, sa.Engine):
            raise InvalidInputError(
                problem=f"engine is a {type(engine).__name__}",
                allowed="give a sqlalchemy.Engine, or use SqlStorage.from_url()",
            )
        name = engine.dialect.name
        if name not in ("sqlite", "postgresql"):
            raise InvalidInputError(
                problem=f"database {name!r} is not supported",
                allowed="a SQLite or PostgreSQL (psycopg 3) engine",
            )
        self._engine = prepare_sqlite(engine)
        self._owns_engine = False
        self._checked = False
        self._is_sqlite = name == "sqlite"
        self._insert: Callable[[sa.Table], Any] = (
            sqlite.insert if self._is_sqlite else postgresql.insert
        )
        self._owner = threading.local()
        dialect = engine.dialect
        self._bulk = {
            table.name: _Bulk(table, dialect, update=False)
            for table in (
                schema.invoices,
                schema.occurrences,
                schema.notifications,
                schema.payments,
                schema.receipts,
            )
        }
        self._bulk_update: dict[tuple[str, frozenset[str]], _Bulk] = {}

    @classmethod
    def from_url(
        cls, url: str, *, lock_timeout: float = LOCK_TIMEOUT_SECONDS
    ) -> SqlStorage:
        """Storage on the database at *url* (``sqlite:///path`` or PostgreSQL).

        PostgreSQL URLs use psycopg 3: ``postgresql+psycopg://user@host/db``
        (``postgresql://`` is taken to mean the same). A transaction that waits
        longer than *lock_timeout* seconds for another's lock raises
        ``ConflictError``.
        """
        storage = cls(create_engine(url, lock_timeout=lock_timeout))
        storage._owns_engine = True
        return storage

    @classmethod
    def sqlite(
        cls,
        path: str | os.PathLike[str],
        *,
        lock_timeout: float = LOCK_TIMEOUT_SECONDS,
    ) -> SqlStorage:
        """Storage in the SQLite database file at *path* (created if missing)."""
        return cls.from_url(sqlite_url(path), lock_timeout=lock_timeout)

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine this storage runs on."""
        return self._engine

    def close(self) -> None:
        """Release the connections of an engine this storage created."""
        if self._owns_engine:
            self._engine.dispose()

    def __enter__(self) -> SqlStorage:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- schema -------------------------------------------------------------

    def schema_version(self) -> int:
        """The schema version of the database (0 when it has no schema yet)."""
        with (
            translate_errors("reading the schema version"),
            self._engine.connect() as conn,
        ):
            return migrations.current_version(conn)

    def migrate(self, *, target: int = schema.LATEST_VERSION) -> int:
        """Create or upgrade the schema to *target* (default: the latest).

        Idempotent; returns the version the database has afterwards. Refuses a
        database newer than this recurbill with ``SchemaVersionError``.
        """
        with (
            translate_errors("migrating the schema"),
            self._engine.connect() as conn,
            conn.begin(),
        ):
            if not self._is_sqlite:
                # One migrator at a time; SQLite has BEGIN IMMEDIATE.
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(0x72656362)))
            version = migrations.upgrade(conn, target=target)
        self._checked = False
        return version

    def _check_schema(self, conn: sa.Connection) -> None:
        found = migrations.current_version(conn)
        if found > schema.LATEST_VERSION:
            raise SchemaVersionError(found=found, supported=schema.LATEST_VERSION)
        if found < schema.LATEST_VERSION:
            raise StorageError(
                problem=f"the database schema is at version {found}, this "
                f"recurbill needs version {schema.LATEST_VERSION}",
                allowed="run `recurbill migrate --db <database-url>` (or "
                "SqlStorage.migrate()) to create or upgrade it",
            )
        self._checked = True

    # -- units of work ------------------------------------------------------

    @contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[SqlTransaction]:
        """Open a unit of work; leaving it without ``commit()`` rolls back.

        ``read_only=True`` reads one snapshot and takes no lock: on SQLite a
        deferred ``BEGIN`` (in WAL mode it reads while another connection
        writes), on PostgreSQL ``REPEATABLE READ, READ ONLY``. Write calls and
        locking reads in it raise ``StateError``.
        """
        read_only = _flag("read_only", read_only)
        if self._is_sqlite and getattr(self._owner, "busy", False):
            raise StateError(
                problem="a transaction of this storage is already open in this thread",
                allowed="finish it before opening another (on SQLite the second "
                "would wait for the first's write lock forever)",
            )
        with translate_errors("opening a transaction"):
            conn = self._engine.connect()
        self._owner.busy = True
        tx = SqlTransaction(self, conn, read_only=read_only)
        try:
            if read_only:
                with translate_errors("opening a read-only transaction"):
                    _read_only(conn, sqlite=self._is_sqlite)
            if not self._checked:
                with translate_errors("checking the schema version"):
                    self._check_schema(conn)
            yield tx
        finally:
            tx._close()
            self._owner.busy = False


def _aborted(conn: sa.Connection) -> bool:
    """Whether *conn*'s PostgreSQL transaction failed (psycopg's INERROR)."""
    raw = conn.connection.dbapi_connection
    status = getattr(getattr(raw, "info", None), "transaction_status", None)
    return getattr(status, "name", "") == "INERROR"


def _read_only(conn: sa.Connection, *, sqlite: bool) -> None:
    """Begin *conn*'s transaction as one that only reads a snapshot."""
    if sqlite:  # the begin hook emits a deferred BEGIN for this option
        conn.execution_options(**{READ_ONLY_OPTION: True})
    else:
        conn.exec_driver_sql(
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
        )


class SqlTransaction:
    """One unit of work of a :class:`SqlStorage`: one database transaction."""

    def __init__(
        self, storage: SqlStorage, conn: sa.Connection, *, read_only: bool = False
    ) -> None:
        self._storage = storage
        self._conn: sa.Connection | None = conn
        self._read_only = read_only
        self._insert = storage._insert
        self._bulk = storage._bulk
        self._bulk_update = storage._bulk_update

    @property
    def read_only(self) -> bool:
        """Whether this unit of work was opened ``read_only``."""
        return self._read_only

    # -- machinery ------------------------------------------------------------

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
        return _decoded(self._fetch(query, "reading"), decode, query)

    def _fetch(self, query: sa.Select[Any], doing: str) -> Sequence[sa.RowMapping]:
        """Every row of *query*, driver errors translated; a row whose column
        cannot be converted raises UnreadableRecordError."""
        with translate_errors(doing):
            result = self._c.execute(query).mappings()
            with self._converting(query):
                return result.all()

    def _rows(self, query: sa.Select[Any]) -> Sequence[Any]:
        """Every row of *query* in one fetch (not a fetchone per row); a
        column that cannot be converted raises UnreadableRecordError."""
        result = self._c.execute(query)
        with self._converting(query):
            return result.all()

    @contextmanager
    def _converting(self, query: sa.Select[Any]) -> Iterator[None]:
        """Fetching the rows of *query*: a column whose stored text its type
        cannot convert (SQLite) raises UnreadableRecordError naming the row."""
        try:
            yield
        except schema.UNCONVERTIBLE as error:
            found = self._unconverted(query)
            if found is None:
                raise  # no row of it fails on its own: not the rows' content
            kind = _KINDS[_table(query).name]
            raise rows.unreadable_key(kind, *found) from error

    def _unconverted(self, query: sa.Select[Any]) -> _Unconverted | None:
        """The first row of *query* with a column its type cannot convert:
        its keys and the columns that convert, and why (None if none fails).

        Reads the row's stored values unconverted and converts them here, so
        only after a fetch failed.
        """
        table, dialect = _table(query), self._c.dialect
        selected = {column.name for column in query.selected_columns}
        keys = [column for column in table.columns if column.name in _KEYS]
        converted = [
            (column, convert)
            for column in table.columns
            if column.name in selected
            and column.name not in _KEYS
            and (
                convert := column.type.dialect_impl(dialect).result_processor(
                    dialect, None
                )
            )
        ]
        raw = query.with_only_columns(
            *keys,
            *(
                sa.type_coerce(column, sa.String).label(column.name)
                for column, _ in converted
            ),
        )
        for stored in self._c.execute(raw).mappings():
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
        return _decoded(found[:1], decode, query)[0]

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
            _by_account((r.account_id, r.customer_id) for r in records),
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
    ) -> None:
        """Replace stored rows with one executemany, all or none.

        Each record's id must exist in its account (checked first), then
        *parents* checks what the records refer to.
        """
        if not records:
            return
        indexed = _indexed(table)
        with self._write(doing) as conn:
            stored = self._need_all(
                table,
                kind,
                _by_account((r.account_id, r.id) for r in records),
                also=indexed,
            )
            parents()
            unchanged = frozenset(
                name
                for position, name in enumerate(indexed)
                if all(stored[row["id"]][position] == row[name] for row in encoded)
            )
            self._update_statement(table, unchanged).run(conn, encoded)

    def _update_statement(self, table: sa.Table, leave: frozenset[str]) -> _Bulk:
        """The UPDATE of *table* that leaves the columns *leave* as they are.

        Setting an indexed column rewrites its index entries even when the
        value stays the same (SQLite); leaving out those that no row changes
        halves what the daily run writes for each template.
        """
        key = (table.name, leave)
        statement = self._bulk_update.get(key)
        if statement is None:
            dialect = self._c.dialect
            statement = _Bulk(table, dialect, update=True, leave=tuple(sorted(leave)))
            self._bulk_update[key] = statement
        return statement

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
        query = sa.select(
            table.c.id, table.c.account_id, *(table.c[name] for name in also)
        )
        for account_id, ids in wanted.items():
            keys = sorted(ids)
            found: dict[str, tuple[Any, ...]] = {}
            for chunk in _chunks(keys):
                # by primary key alone (the planner may otherwise pick an
                # account index and scan the account), the account checked here
                by_id = query.where(table.c.id.in_(chunk))
                try:
                    got = self._rows(by_id)
                except UnreadableRecordError as error:
                    if error.fields["account"] == account_id:
                        raise
                    # another account's row: never named here, nor read
                    got = self._rows(by_id.where(table.c.account_id == account_id))
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

    def commit(self) -> None:
        """Make every write so far durable; later writes need another commit.

        On PostgreSQL a statement that failed outside a write call (a read
        that timed out, say) aborts the transaction, and a COMMIT then rolls
        it back without a word: that raises StorageError here instead.
        """
        conn = self._c
        if _aborted(conn):
            raise StorageError(
                problem="a statement of this transaction failed, so PostgreSQL "
                "rolled it back: nothing was committed",
                allowed="do the work again in a new transaction",
            )
        with translate_errors("committing"):
            conn.commit()

    # -- accounts ----------------------------------------------------------------

    @writes
    def add_account(self, account: Account) -> None:
        """Store a new account (ConflictError if the id exists)."""
        row = rows.encode_account(_record("account", account, Account))
        with self._write(f"adding account {account.id!r}") as conn:
            conn.execute(sa.insert(schema.accounts), row)

    def get_account(self, account_id: str, *, for_update: bool = False) -> Account:
        """The account with this id; ``for_update`` locks it until the end of
        the transaction.

        On PostgreSQL the lock is ``FOR NO KEY UPDATE``: it waits for another
        change of the account, not for the rows that refer to it (invoices,
        customers being added go on).
        """
        _unlocked(self, for_update)
        _text("account_id", account_id)
        accounts = schema.accounts
        query = sa.select(accounts).where(accounts.c.id == account_id)
        if for_update:
            query = query.with_for_update(key_share=True)
        return self._one(
            query,
            rows.decode_account,
            kind="account",
            key=account_id,
            account=account_id,
        )

    @writes
    def update_account(self, account: Account) -> None:
        """Replace a stored account."""
        row = rows.encode_account(_record("account", account, Account))
        accounts = schema.accounts
        with self._write(f"updating account {account.id!r}") as conn:
            statement = sa.update(accounts).where(accounts.c.id == account.id)
            if conn.execute(statement.values(row)).rowcount == 0:
                raise NotFoundError(kind="account", key=account.id, account=account.id)

    def list_account_ids(self) -> list[str]:
        """Ids of every account, sorted."""
        accounts = schema.accounts
        with translate_errors("listing accounts"):
            result = self._c.execute(sa.select(accounts.c.id).order_by(accounts.c.id))
            return list(result.scalars())

    # -- customers ----------------------------------------------------------------

    @writes
    def add_customer(self, customer: Customer) -> None:
        """Store a new customer of ``customer.account_id``."""
        row = rows.encode_customer(_record("customer", customer, Customer))
        with self._write(f"adding customer {customer.id!r}") as conn:
            self._need_account(customer.account_id)
            conn.execute(sa.insert(schema.customers), row)

    def get_customer(
        self, account_id: str, customer_id: str, *, for_update: bool = False
    ) -> Customer:
        """A customer of this account; ``for_update`` locks it as
        :meth:`get_account` does (``FOR NO KEY UPDATE``)."""
        return self._get(
            schema.customers,
            rows.decode_customer,
            "customer",
            account_id,
            customer_id,
            for_update=for_update,
            key_share=True,
        )

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
        _unlocked(self, for_update)
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
        for chunk in _chunks(sorted(set(wanted))):
            # by primary key alone, the account checked here (as in _need_all);
            # a locking read names the account in SQL too, so it never locks
            # (or waits for) a row of another account (SQLite locks no rows)
            query = sa.select(table).where(table.c.id.in_(chunk))
            if for_update and not self._storage._is_sqlite:
                query = query.where(table.c.account_id == account_id)
            if for_update:  # in id order, so two lockers never deadlock
                query = query.order_by(table.c.id).with_for_update(key_share=key_share)
            doing = f"reading {kind} {chunk[0]!r}"
            try:
                result = self._fetch(query, doing)
            except UnreadableRecordError as error:
                if error.fields["account"] == account_id:
                    raise
                # another account's row: never named here, nor read
                mine = query.where(table.c.account_id == account_id)
                result = self._fetch(mine, doing)
            owned = [row for row in result if row["account_id"] == account_id]
            found.update(
                zip(
                    (row["id"] for row in owned),
                    _decoded(owned, decode, query),
                    strict=True,
                )
            )
        for key in wanted:
            if key not in found:
                raise NotFoundError(kind=kind, key=key, account=account_id)
        return [found[key] for key in wanted]

    def get_customers(
        self, account_id: str, customer_ids: Sequence[str]
    ) -> list[Customer]:
        """Customers of this account, in the order of *customer_ids*."""
        return self._get_many(
            schema.customers, rows.decode_customer, "customer", account_id, customer_ids
        )

    @writes
    def update_customer(self, customer: Customer) -> None:
        """Replace a stored customer."""
        row = rows.encode_customer(_record("customer", customer, Customer))
        self._replace(
            schema.customers,
            row,
            kind="customer",
            doing=f"updating customer {customer.id!r}",
        )

    def list_customers(self, account_id: str) -> list[Customer]:
        """Every customer of this account, sorted by id."""
        _text("account_id", account_id)
        customers = schema.customers
        query = sa.select(customers).where(customers.c.account_id == account_id)
        return self._all(query.order_by(customers.c.id), rows.decode_customer)

    # -- payment methods ----------------------------------------------------------

    @writes
    def add_payment_method(self, method: PaymentMethod) -> None:
        """Store a saved card (token and display facts only)."""
        row = rows.encode_payment_method(_record("method", method, PaymentMethod))
        with self._write(f"adding payment method {method.id!r}") as conn:
            self._need_customer(method.account_id, method.customer_id)
            conn.execute(sa.insert(schema.payment_methods), row)

    def get_payment_method(self, account_id: str, method_id: str) -> PaymentMethod:
        """A saved card of this account."""
        return self._get(
            schema.payment_methods,
            rows.decode_payment_method,
            "payment method",
            account_id,
            method_id,
        )

    def get_payment_methods(
        self, account_id: str, method_ids: Sequence[str]
    ) -> list[PaymentMethod]:
        """Saved cards of this account, in the order of *method_ids*."""
        return self._get_many(
            schema.payment_methods,
            rows.decode_payment_method,
            "payment method",
            account_id,
            method_ids,
        )

    def list_payment_methods(
        self, account_id: str, customer_id: str
    ) -> list[PaymentMethod]:
        """The customer's saved cards, sorted by id."""
        _text("account_id", account_id)
        _text("customer_id", customer_id)
        methods = schema.payment_methods
        query = sa.select(methods).where(
            methods.c.account_id == account_id, methods.c.customer_id == customer_id
        )
        return self._all(query.order_by(methods.c.id), rows.decode_payment_method)

    @writes
    def remove_payment_method(self, account_id: str, method_id: str) -> None:
        """Forget a saved card."""
        _text("account_id", account_id)
        _text("payment method id", method_id)
        methods = schema.payment_methods
        with self._write(f"removing payment method {method_id!r}") as conn:
            statement = sa.delete(methods).where(
                methods.c.id == method_id, methods.c.account_id == account_id
            )
            if conn.execute(statement).rowcount == 0:
                raise NotFoundError(
                    kind="payment method", key=method_id, account=account_id
                )

    # -- recurring templates --------------------------------------------------------

    @writes
    def add_template(self, template: RecurringTemplate) -> None:
        """Store a new recurring template."""
        row = rows.encode_template(_record("template", template, RecurringTemplate))
        with self._write(f"adding template {template.id!r}") as conn:
            self._need_customer(template.account_id, template.customer_id)
            conn.execute(sa.insert(schema.templates), row)

    def get_template(
        self, account_id: str, template_id: str, *, for_update: bool = False
    ) -> RecurringTemplate:
        """A template; ``for_update`` locks it until the end of the transaction.

        PostgreSQL locks the row (``SELECT ... FOR UPDATE``); on SQLite the
        transaction holds the database's write lock already.
        """
        return self._get(
            schema.templates,
            rows.decode_template,
            "template",
            account_id,
            template_id,
            for_update=for_update,
        )

    @writes
    def update_template(self, template: RecurringTemplate) -> None:
        """Replace a stored template."""
        record = _record("template", template, RecurringTemplate)
        self._update_templates([record], f"updating template {record.id!r}")

    @writes
    def update_templates(self, templates: Sequence[RecurringTemplate]) -> None:
        """Replace stored templates, all or none (one executemany)."""
        records = _records("templates", templates, RecurringTemplate)
        self._update_templates(records, "updating templates")

    def _update_templates(self, records: list[RecurringTemplate], doing: str) -> None:
        self._replace_all(
            schema.templates,
            "template",
            records,
            [rows.encode_template(template) for template in records],
            doing=doing,
            parents=lambda: self._need_parents(records),
        )

    def list_templates(
        self, account_id: str, *, customer_id: str | None = None
    ) -> list[RecurringTemplate]:
        """Templates of an account (optionally of one customer), sorted by id."""
        _text("account_id", account_id)
        customer_id = _optional_text("customer_id", customer_id)
        templates = schema.templates
        query = sa.select(templates).where(templates.c.account_id == account_id)
        if customer_id is not None:
            query = query.where(templates.c.customer_id == customer_id)
        return self._all(query.order_by(templates.c.id), rows.decode_template)

    def due_templates(
        self,
        as_of: datetime,
        *,
        account_ids: Sequence[str] | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 500,
        for_update: bool = False,
        skip_locked: bool = False,
        skip_ids: Sequence[str] = (),
    ) -> list[RecurringTemplate]:
        """One chunk of active templates with ``next_due_at <= as_of``.

        Sorted by ``(next_due_at, id)`` and starting after ``after`` (that
        pair of the previous chunk's last template), at most ``limit`` of
        them, none of ``skip_ids``: keyset pagination along the ``(status,
        next_due_at, id)`` index, so a chunk reads only its own rows however
        many are due. With ``for_update``, PostgreSQL locks the chunk (``FOR
        UPDATE``, or ``FOR UPDATE SKIP LOCKED`` with ``skip_locked``); on
        SQLite the transaction holds the database's write lock already.

        A row that cannot be read raises :class:`UnreadableRecordError` with
        the templates before it (``read``), so the walk can go on with them
        and then past it (its id in ``skip_ids``); rows after it are not read.
        """
        _unlocked(self, for_update)
        _aware("as_of", as_of)
        _positive("limit", limit)
        accounts = _account_ids(account_ids)
        start = _due_after(after)
        skipped = _stored_ids("skip_ids", skip_ids)
        templates = schema.templates
        due, key = templates.c.next_due_at, templates.c.id
        query = sa.select(templates).where(
            templates.c.status == TemplateStatus.ACTIVE.value,
            due.is_not(None),
            due <= as_of,
        )
        if accounts is not None:
            query = query.where(templates.c.account_id.in_(sorted(accounts)))
        if skipped:
            query = query.where(key.not_in(sorted(set(skipped))))
        if start is not None:
            # bound with the columns' own types (a bare tuple binds plain ones)
            cursor = sa.tuple_(sa.literal(start[0], due.type), sa.literal(start[1]))
            query = query.where(sa.tuple_(due, key) > cursor)
        query = query.order_by(due, key).limit(limit)
        if for_update:
            query = query.with_for_update(skip_locked=skip_locked)
        with translate_errors("reading"):
            try:
                found: Iterable[rows.Row] = self._c.execute(query).mappings().all()
            except schema.UNCONVERTIBLE:  # a column's own conversion (SQLite text)
                found = self._c.execute(query).mappings()  # again, row by row
            return _due_read(found, lambda: self._unconverted(query))

    # -- occurrences ----------------------------------------------------------------

    @writes
    def add_occurrences(self, occurrences: Sequence[OccurrenceRecord]) -> None:
        """Store handled occurrences; ConflictError if (template, index) exists."""
        records = _records("occurrences", occurrences, OccurrenceRecord)
        if not records:
            return
        wanted: dict[str, set[str]] = {}
        for record in records:
            wanted.setdefault(record.account_id, set()).add(record.template_id)
        encoded = [rows.encode_occurrence(record) for record in records]
        with self._write("adding occurrences") as conn:
            self._need_all(schema.templates, "template", wanted)
            self._bulk["occurrences"].run(conn, encoded)

    def list_occurrences(
        self, account_id: str, template_id: str
    ) -> list[OccurrenceRecord]:
        """What the runs did with a template's occurrences, by index."""
        _text("account_id", account_id)
        _text("template_id", template_id)
        occurrences = schema.occurrences
        query = sa.select(occurrences).where(
            occurrences.c.account_id == account_id,
            occurrences.c.template_id == template_id,
        )
        query = query.order_by(occurrences.c.occurrence_index)
        return self._all(query, rows.decode_occurrence)

    # -- invoices ---------------------------------------------------------------------

    @writes
    def allocate_invoice_numbers(
        self, account_id: str, series: str, *, count: int = 1
    ) -> int:
        """Reserve ``count`` consecutive numbers of a series; return the first.

        Numbers start at 1. The counter row stays locked until the transaction
        ends, so a rolled-back transaction gives its numbers back.
        """
        _text("account_id", account_id)
        _text("series", series)
        _positive("count", count)
        counters = schema.counters
        statement = (
            self._insert(counters)
            .values(account_id=account_id, series=series, next_number=count + 1)
            .on_conflict_do_update(
                index_elements=[counters.c.account_id, counters.c.series],
                set_={"next_number": counters.c.next_number + count},
            )
            .returning(counters.c.next_number)
        )
        with self._write(f"allocating numbers of series {series!r}") as conn:
            self._need_account(account_id)
            next_number = conn.execute(statement).scalar_one()
        return int(next_number) - count

    @writes
    def lock_invoice_numbers(self, account_id: str, series: str) -> int:
        """The number the series' next allocation returns, reserving none.

        The counter row is written unchanged (created at 1 if missing), so it
        stays locked until the transaction ends as an allocation's does.
        """
        _text("account_id", account_id)
        _text("series", series)
        counters = schema.counters
        statement = (
            self._insert(counters)
            .values(account_id=account_id, series=series, next_number=1)
            .on_conflict_do_update(
                index_elements=[counters.c.account_id, counters.c.series],
                set_={"next_number": counters.c.next_number},
            )
            .returning(counters.c.next_number)
        )
        with self._write(f"locking the numbers of series {series!r}") as conn:
            self._need_account(account_id)
            next_number = conn.execute(statement).scalar_one()
        return int(next_number)

    def _check_invoices(self, invoices: Sequence[Invoice]) -> None:
        self._need_parents(invoices)
        self._need_all(
            schema.templates,
            "template",
            _by_account(
                (i.account_id, i.template_id)
                for i in invoices
                if i.template_id is not None
            ),
        )

    @writes
    def add_invoices(self, invoices: Sequence[Invoice]) -> None:
        """Store new invoices; ConflictError on a duplicate id, (series, number)
        or (template, occurrence index). One multi-row insert (executemany)."""
        records = _records("invoices", invoices, Invoice)
        if not records:
            return
        text = self._storage._is_sqlite
        values = [rows.invoice_values(invoice, text=text) for invoice in records]
        with self._write("adding invoices") as conn:
            self._check_invoices(records)
            self._bulk["invoices"].run_values(conn, values)

    def get_invoice(
        self, account_id: str, invoice_id: str, *, for_update: bool = False
    ) -> Invoice:
        """An invoice; ``for_update`` locks it until the end of the transaction."""
        return self._get(
            schema.invoices,
            rows.decode_invoice,
            "invoice",
            account_id,
            invoice_id,
            for_update=for_update,
        )

    def get_invoices(
        self,
        account_id: str,
        invoice_ids: Sequence[str],
        *,
        for_update: bool = False,
    ) -> list[Invoice]:
        """Invoices of this account, in the order of *invoice_ids*.

        ``for_update`` locks them (in id order) until the transaction ends.
        """
        return self._get_many(
            schema.invoices,
            rows.decode_invoice,
            "invoice",
            account_id,
            invoice_ids,
            for_update=for_update,
        )

    @writes
    def update_invoice(self, invoice: Invoice) -> None:
        """Replace a stored invoice (the same uniqueness rules as adding)."""
        record = _record("invoice", invoice, Invoice)
        self._update_invoices([record], f"updating invoice {record.id!r}")

    @writes
    def update_invoices(self, invoices: Sequence[Invoice]) -> None:
        """Replace stored invoices, all or none (one executemany)."""
        records = _records("invoices", invoices, Invoice)
        self._update_invoices(records, "updating invoices")

    def _update_invoices(self, records: list[Invoice], doing: str) -> None:
        self._replace_all(
            schema.invoices,
            "invoice",
            records,
            [rows.encode_invoice(invoice) for invoice in records],
            doing=doing,
            parents=lambda: self._check_invoices(records),
        )

    def list_invoices(
        self,
        account_id: str,
        *,
        customer_id: str | None = None,
        status: InvoiceStatus | None = None,
        template_id: str | None = None,
    ) -> list[Invoice]:
        """Invoices of an account, filtered, sorted by (issue date, number, id)."""
        _text("account_id", account_id)
        customer_id = _optional_text("customer_id", customer_id)
        template_id = _optional_text("template_id", template_id)
        status = _invoice_status(status)
        invoices = schema.invoices
        query = sa.select(invoices).where(invoices.c.account_id == account_id)
        if customer_id is not None:
            query = query.where(invoices.c.customer_id == customer_id)
        if status is not None:
            query = query.where(invoices.c.status == status.value)
        if template_id is not None:
            query = query.where(invoices.c.template_id == template_id)
        query = query.order_by(invoices.c.issue_date, invoices.c.number, invoices.c.id)
        return self._all(query, rows.decode_invoice)

    # -- payments ---------------------------------------------------------------

    @writes
    def add_payment(self, payment: Payment) -> None:
        """Store a payment attempt; ConflictError if its idempotency key exists."""
        record = _record("payment", payment, Payment)
        self._add_payments([record], f"adding payment {record.id!r}")

    @writes
    def add_payments(self, payments: Sequence[Payment]) -> None:
        """Store payment attempts, all or none (one executemany)."""
        self._add_payments(_records("payments", payments, Payment), "adding payments")

    def get_payment(
        self, account_id: str, payment_id: str, *, for_update: bool = False
    ) -> Payment:
        """A payment; ``for_update`` locks it until the end of the transaction."""
        return self._get(
            schema.payments,
            rows.decode_payment,
            "payment",
            account_id,
            payment_id,
            for_update=for_update,
        )

    def get_payments(
        self, account_id: str, payment_ids: Sequence[str]
    ) -> list[Payment]:
        """Payments of this account, in the order of *payment_ids*."""
        return self._get_many(
            schema.payments, rows.decode_payment, "payment", account_id, payment_ids
        )

    @writes
    def update_payment(self, payment: Payment) -> None:
        """Replace a stored payment."""
        record = _record("payment", payment, Payment)
        self._update_payments([record], f"updating payment {record.id!r}")

    @writes
    def update_payments(self, payments: Sequence[Payment]) -> None:
        """Replace stored payments, all or none (one executemany)."""
        records = _records("payments", payments, Payment)
        self._update_payments(records, "updating payments")

    def _add_payments(self, records: list[Payment], doing: str) -> None:
        if not records:
            return
        encoded = [rows.encode_payment(payment) for payment in records]
        with self._write(doing) as conn:
            self._need_parents(records)
            self._bulk["payments"].run(conn, encoded)

    def _update_payments(self, records: list[Payment], doing: str) -> None:
        self._replace_all(
            schema.payments,
            "payment",
            records,
            [rows.encode_payment(payment) for payment in records],
            doing=doing,
            parents=lambda: self._need_parents(records),
        )

    def list_payments(
        self,
        account_id: str | None = None,
        *,
        customer_id: str | None = None,
        statuses: Sequence[PaymentStatus] | None = None,
    ) -> list[Payment]:
        """Payments, optionally of one account / customer / in some states.

        Oldest first (``created_at``, then id).
        """
        account_id = _optional_text("account_id", account_id)
        customer_id = _optional_text("customer_id", customer_id)
        wanted = _payment_statuses(statuses)
        payments = schema.payments
        query = sa.select(payments)
        if account_id is not None:
            query = query.where(payments.c.account_id == account_id)
        if customer_id is not None:
            query = query.where(payments.c.customer_id == customer_id)
        if wanted is not None:
            query = query.where(payments.c.status.in_(sorted(s.value for s in wanted)))
        query = query.order_by(payments.c.created_at, payments.c.id)
        return self._all(query, rows.decode_payment)

    # -- settlements, receipts, credit notes, refunds, credit --------------------

    @writes
    def add_settlement(self, settlement: Settlement) -> None:
        """Store a mass payment; ConflictError if a pending one has its key."""
        row = rows.encode_settlement(_record("settlement", settlement, Settlement))
        with self._write(f"adding settlement {settlement.id!r}") as conn:
            self._need_customer(settlement.account_id, settlement.customer_id)
            conn.execute(sa.insert(schema.settlements), row)

    def get_settlement(self, account_id: str, settlement_id: str) -> Settlement:
        """A settlement of this account."""
        return self._get(
            schema.settlements,
            rows.decode_settlement,
            "settlement",
            account_id,
            settlement_id,
        )

    @writes
    def update_settlement(self, settlement: Settlement) -> None:
        """Replace a stored settlement (its key is free again once not pending)."""
        row = rows.encode_settlement(_record("settlement", settlement, Settlement))
        with self._write(f"updating settlement {settlement.id!r}") as conn:
            self._exists(
                schema.settlements, settlement.account_id, settlement.id, "settlement"
            )
            self._need_customer(settlement.account_id, settlement.customer_id)
            self._update_row(conn, schema.settlements, row, kind="settlement")

    def list_settlements(
        self, account_id: str, *, customer_id: str | None = None
    ) -> list[Settlement]:
        """Settlements of an account (optionally one customer), oldest first."""
        _text("account_id", account_id)
        customer_id = _optional_text("customer_id", customer_id)
        settlements = schema.settlements
        query = sa.select(settlements).where(settlements.c.account_id == account_id)
        if customer_id is not None:
            query = query.where(settlements.c.customer_id == customer_id)
        query = query.order_by(settlements.c.created_at, settlements.c.id)
        return self._all(query, rows.decode_settlement)

    @writes
    def add_receipt(self, receipt: Receipt) -> None:
        """Store a receipt of a payment of this account."""
        record = _record("receipt", receipt, Receipt)
        self._add_receipts([record], f"adding receipt {record.id!r}")

    @writes
    def add_receipts(self, receipts: Sequence[Receipt]) -> None:
        """Store receipts of payments of this account, all or none."""
        self._add_receipts(_records("receipts", receipts, Receipt), "adding receipts")

    def _add_receipts(self, records: list[Receipt], doing: str) -> None:
        if not records:
            return
        encoded = [rows.encode_receipt(receipt) for receipt in records]
        with self._write(doing) as conn:
            self._need_parents(records)
            self._need_all(
                schema.payments,
                "payment",
                _by_account((r.account_id, r.payment_id) for r in records),
            )
            self._bulk["receipts"].run(conn, encoded)

    def list_receipts(self, account_id: str, customer_id: str) -> list[Receipt]:
        """A customer's receipts, oldest first."""
        _text("account_id", account_id)
        _text("customer_id", customer_id)
        receipts = schema.receipts
        query = sa.select(receipts).where(
            receipts.c.account_id == account_id, receipts.c.customer_id == customer_id
        )
        query = query.order_by(receipts.c.issued_at, receipts.c.id)
        return self._all(query, rows.decode_receipt)

    @writes
    def add_credit_note(self, note: CreditNoteRecord) -> None:
        """Store a credit note of an invoice of this account."""
        row = rows.encode_credit_note(_record("note", note, CreditNoteRecord))
        with self._write(f"adding credit note {note.id!r}") as conn:
            self._need_customer(note.account_id, note.customer_id)
            self._exists(schema.invoices, note.account_id, note.invoice_id, "invoice")
            conn.execute(sa.insert(schema.credit_notes), row)

    def list_credit_notes(
        self, account_id: str, *, invoice_id: str | None = None
    ) -> list[CreditNoteRecord]:
        """Credit notes of an account (optionally of one invoice).

        Sorted by (issue date, number, id).
        """
        _text("account_id", account_id)
        notes = schema.credit_notes
        query = sa.select(notes).where(notes.c.account_id == account_id)
        if invoice_id is not None:
            query = query.where(notes.c.invoice_id == invoice_id)
        query = query.order_by(notes.c.issue_date, notes.c.number, notes.c.id)
        return self._all(query, rows.decode_credit_note)

    @writes
    def add_refund(self, refund: Refund) -> None:
        """Store a refund; ConflictError if its idempotency key exists."""
        row = rows.encode_refund(_record("refund", refund, Refund))
        with self._write(f"adding refund {refund.id!r}") as conn:
            self._exists(
                schema.payments, refund.account_id, refund.payment_id, "payment"
            )
            conn.execute(sa.insert(schema.refunds), row)

    @writes
    def update_refund(self, refund: Refund) -> None:
        """Replace a stored refund (its outcome, once the gateway answered)."""
        row = rows.encode_refund(_record("refund", refund, Refund))
        with self._write(f"updating refund {refund.id!r}") as conn:
            self._exists(schema.refunds, refund.account_id, refund.id, "refund")
            self._exists(
                schema.payments, refund.account_id, refund.payment_id, "payment"
            )
            self._update_row(conn, schema.refunds, row, kind="refund")

    def list_refunds(
        self,
        account_id: str,
        payment_id: str | None = None,
        *,
        statuses: Sequence[str] | None = None,
    ) -> list[Refund]:
        """Refunds of an account (of one payment, in some states), oldest first."""
        _text("account_id", account_id)
        refunds = schema.refunds
        query = sa.select(refunds).where(refunds.c.account_id == account_id)
        if payment_id is not None:
            _text("payment_id", payment_id)
            query = query.where(refunds.c.payment_id == payment_id)
        if statuses is not None:
            query = query.where(refunds.c.status.in_(list(statuses)))
        query = query.order_by(refunds.c.created_at, refunds.c.id)
        return self._all(query, rows.decode_refund)

    @writes
    def add_credit_entry(self, entry: CreditEntry) -> None:
        """Store a movement of a customer's credit balance."""
        row = rows.encode_credit_entry(_record("entry", entry, CreditEntry))
        with self._write(f"adding credit entry {entry.id!r}") as conn:
            self._need_customer(entry.account_id, entry.customer_id)
            conn.execute(sa.insert(schema.credit_entries), row)

    def list_credit_entries(
        self, account_id: str, customer_id: str
    ) -> list[CreditEntry]:
        """A customer's credit movements, oldest first."""
        _text("account_id", account_id)
        _text("customer_id", customer_id)
        entries = schema.credit_entries
        query = sa.select(entries).where(
            entries.c.account_id == account_id, entries.c.customer_id == customer_id
        )
        query = query.order_by(entries.c.created_at, entries.c.id)
        return self._all(query, rows.decode_credit_entry)

    # -- outbox and webhooks ------------------------------------------------------

    @writes
    def add_notifications(self, notifications: Sequence[Notification]) -> None:
        """Queue outbox messages (sent after commit). One executemany."""
        records = _records("notifications", notifications, Notification)
        if not records:
            return
        accounts = {n.account_id for n in records}
        encoded = [rows.encode_notification(n) for n in records]
        with self._write("adding notifications") as conn:
            self._need_accounts(accounts)
            self._bulk["notifications"].run(conn, encoded)

    def pending_notifications(
        self, *, limit: int = 100, skip_ids: Sequence[str] = ()
    ) -> list[Notification]:
        """Messages not sent yet (pending or failed), oldest first, none of
        ``skip_ids``.

        A row that cannot be read raises :class:`UnreadableRecordError`
        (``key`` is its id); asked again with that id in ``skip_ids``, the
        read returns the others in the same order.
        """
        _positive("limit", limit)
        skipped = _stored_ids("skip_ids", skip_ids)
        notes = schema.notifications
        unsent = [NotificationStatus.PENDING.value, NotificationStatus.FAILED.value]
        query = sa.select(notes).where(notes.c.status.in_(unsent))
        if skipped:
            query = query.where(notes.c.id.not_in(sorted(set(skipped))))
        query = query.order_by(notes.c.created_at, notes.c.id).limit(limit)
        return self._all(query, rows.decode_notification)

    def get_notification(
        self, account_id: str, notification_id: str, *, for_update: bool = False
    ) -> Notification:
        """An outbox message of this account; ``for_update`` locks it."""
        return self._get(
            schema.notifications,
            rows.decode_notification,
            "notification",
            account_id,
            notification_id,
            for_update=for_update,
        )

    @writes
    def update_notification(self, notification: Notification) -> None:
        """Replace a stored outbox message."""
        row = rows.encode_notification(
            _record("notification", notification, Notification)
        )
        self._replace(
            schema.notifications,
            row,
            kind="notification",
            doing=f"updating notification {notification.id!r}",
        )

    @writes
    def record_webhook_event(self, event_id: str) -> bool:
        """Remember a processed webhook event; False if it was seen before."""
        _text("event_id", event_id)
        statement = (
            self._insert(schema.webhook_events)
            .values(event_id=event_id)
            .on_conflict_do_nothing(index_elements=[schema.webhook_events.c.event_id])
            .returning(schema.webhook_events.c.event_id)
        )
        with self._write(f"recording webhook event {event_id!r}") as conn:
            return conn.execute(statement).first() is not None


if TYPE_CHECKING:

    def _conforms(
        storage: SqlStorage, tx: SqlTransaction
    ) -> tuple[Storage, Transaction]:
        return storage, tx

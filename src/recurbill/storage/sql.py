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

What the transaction's calls share lives beside this module: ``sqlunit``
(the connection, write calls, reads by id, existence checks), ``unreadable``
(finding and naming a row that cannot be read) and ``bulk`` (the multi-row
writes, one executemany each, and the reads by id on the driver).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from recurbill.errors import (
    InvalidInputError,
    NotFoundError,
    SchemaVersionError,
    StateError,
    StorageError,
)
from recurbill.records import (
    UNSENT,
    Account,
    CreditEntry,
    CreditNoteRecord,
    Customer,
    Invoice,
    InvoiceStatus,
    Notification,
    OccurrenceRecord,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Receipt,
    RecurringTemplate,
    Refund,
    Settlement,
    SummaryLines,
    TemplateStatus,
)
from recurbill.storage import migrations, rows, schema
from recurbill.storage.bulk import ByIds, Updates, inserts
from recurbill.storage.checks import account_ids as _account_ids
from recurbill.storage.checks import aware as _aware
from recurbill.storage.checks import due_after as _due_after
from recurbill.storage.checks import flag as _flag
from recurbill.storage.checks import invoice_of_account as _invoice_of_account
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
    create_engine,
    prepare_sqlite,
    sqlite_url,
)
from recurbill.storage.sqlerrors import translate_errors
from recurbill.storage.sqlunit import (
    SqlUnit,
    aborted,
    begin_read_only,
    by_account,
    chunks,
)
from recurbill.storage.unreadable import due_read, unconverted

if TYPE_CHECKING:
    from recurbill.storage.protocol import Storage, Transaction

__all__ = ["SqlStorage", "SqlTransaction", "migrate"]


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
        self._bulk = inserts(engine.dialect)
        self._bulk_update: Updates = {}
        self._lookups: dict[tuple[str, tuple[str, ...]], ByIds] = {}

    @classmethod
    def from_url(
        cls, url: str, *, lock_timeout: float = LOCK_TIMEOUT_SECONDS
    ) -> SqlStorage:
        """Storage on the database at *url* (``sqlite:///path`` or PostgreSQL).

        PostgreSQL URLs use psycopg 3: ``postgresql+psycopg://user@host/db``
        (``postgresql://`` and ``postgres://`` are taken to mean the same).
        A transaction that waits longer than *lock_timeout* seconds for
        another's lock raises ``ConflictError``.
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
                    begin_read_only(conn, sqlite=self._is_sqlite)
            if not self._checked:
                with translate_errors("checking the schema version"):
                    self._check_schema(conn)
            yield tx
        finally:
            tx._close()
            self._owner.busy = False


class SqlTransaction(SqlUnit):
    """One unit of work of a :class:`SqlStorage`: one database transaction."""

    def commit(self) -> None:
        """Make every write so far durable; later writes need another commit.

        On PostgreSQL a statement that failed outside a write call (a read
        that timed out, say) aborts the transaction, and a COMMIT then rolls
        it back without a word: that raises StorageError here instead.
        """
        conn = self._c
        if aborted(conn):
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
            self._insert_chosen(conn, schema.accounts, "account", row)

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
            self._insert_chosen(conn, schema.customers, "customer", row)

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
            self._insert_chosen(conn, schema.templates, "template", row)

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
        self,
        account_id: str,
        *,
        customer_id: str | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> list[RecurringTemplate]:
        """Templates of an account (optionally of one customer), sorted by id;
        with ``after`` only those whose id sorts after it, at most ``limit``:
        keyset pagination along the ``(account_id, id)`` index."""
        _text("account_id", account_id)
        customer_id = _optional_text("customer_id", customer_id)
        after = _optional_text("after", after)
        limit = None if limit is None else _positive("limit", limit)
        templates = schema.templates
        query = sa.select(templates).where(templates.c.account_id == account_id)
        if customer_id is not None:
            query = query.where(templates.c.customer_id == customer_id)
        if after is not None:
            query = query.where(templates.c.id > after)
        query = query.order_by(templates.c.id).limit(limit)
        return self._all(query, rows.decode_template)

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
            return due_read(found, lambda: unconverted(self._c, query))

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
            by_account(
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
            self._link(conn, records)

    def _link(self, conn: sa.Connection, records: Iterable[Payment]) -> None:
        """Store the invoices each of *records* includes (one executemany)."""
        links = [link for p in records for link in rows.encode_payment_invoices(p)]
        if links:
            self._bulk["payment_invoices"].run(conn, links)

    def _update_payments(self, records: list[Payment], doing: str) -> None:
        encoded = [rows.encode_payment(payment) for payment in records]
        self._replace_all(
            schema.payments,
            "payment",
            records,
            encoded,
            doing=doing,
            parents=lambda: self._need_parents(records),
            then=(
                ("invoice_ids",),
                lambda conn, stored: self._relink(conn, records, encoded, stored),
            ),
        )

    def _relink(
        self,
        conn: sa.Connection,
        records: list[Payment],
        encoded: list[dict[str, Any]],
        stored: Mapping[str, tuple[Any, ...]],
    ) -> None:
        """Store again the invoices of the payments whose ``invoice_ids``
        changed (*stored*: each one's stored ``invoice_ids``, by id)."""
        latest = {p.id: (p, row) for p, row in zip(records, encoded, strict=True)}
        moved = [
            payment
            for payment, row in latest.values()
            if stored[payment.id] != (row["invoice_ids"],)
        ]
        if not moved:
            return
        links = schema.payment_invoices
        for chunk in chunks(sorted(payment.id for payment in moved)):
            conn.execute(sa.delete(links).where(links.c.payment_id.in_(chunk)))
        self._link(conn, moved)

    def list_payments(
        self,
        account_id: str | None = None,
        *,
        customer_id: str | None = None,
        invoice_id: str | None = None,
        statuses: Sequence[PaymentStatus] | None = None,
        skip_ids: Sequence[str] = (),
    ) -> list[Payment]:
        """Payments, optionally of one account / customer / invoice / in some
        states, none of ``skip_ids``.

        Oldest first (``created_at``, then id). The payments of an invoice
        are found by its rows of ``payment_invoices`` (written with each
        payment): only their rows are read, and those whose stored
        ``invoice_ids`` include it are returned. A row that cannot be read
        raises :class:`UnreadableRecordError` (``key`` is its id); asked
        again with that id in ``skip_ids``, the read returns the others.
        """
        account_id = _optional_text("account_id", account_id)
        customer_id = _optional_text("customer_id", customer_id)
        invoice_id = _invoice_of_account(account_id, invoice_id)
        wanted = _payment_statuses(statuses)
        skipped = _stored_ids("skip_ids", skip_ids)
        payments = schema.payments
        if invoice_id is not None and account_id is not None:
            query = _of_invoice(account_id, invoice_id, customer_id)
        else:
            query = sa.select(payments)
            if account_id is not None:
                query = query.where(payments.c.account_id == account_id)
        if customer_id is not None:
            query = query.where(payments.c.customer_id == customer_id)
        if wanted is not None:
            query = query.where(payments.c.status.in_(sorted(s.value for s in wanted)))
        if skipped:
            query = query.where(payments.c.id.not_in(sorted(set(skipped))))
        query = query.order_by(payments.c.created_at, payments.c.id)
        found = self._all(query, rows.decode_payment)
        if invoice_id is None:
            return found
        return [  # as stored: the index is written with each payment
            p
            for p in found
            if p.account_id == account_id and invoice_id in p.invoice_ids
        ]

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
                by_account((r.account_id, r.payment_id) for r in records),
            )
            self._bulk["receipts"].run(conn, encoded)

    def list_receipts(
        self,
        account_id: str,
        customer_id: str | None = None,
        *,
        payment_id: str | None = None,
    ) -> list[Receipt]:
        """Receipts of an account (of one customer, of one payment), oldest
        first (``issued_at``, then id)."""
        _text("account_id", account_id)
        customer_id = _optional_text("customer_id", customer_id)
        payment_id = _optional_text("payment_id", payment_id)
        receipts = schema.receipts
        query = sa.select(receipts).where(receipts.c.account_id == account_id)
        if customer_id is not None:
            query = query.where(receipts.c.customer_id == customer_id)
        if payment_id is not None:
            query = query.where(receipts.c.payment_id == payment_id)
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
        skip_ids: Sequence[str] = (),
    ) -> list[Refund]:
        """Refunds of an account (of one payment, in some states), oldest
        first, none of ``skip_ids``.

        A row that cannot be read raises :class:`UnreadableRecordError`
        (``key`` is its id); asked again with that id in ``skip_ids``, the
        read returns the others.
        """
        _text("account_id", account_id)
        skipped = _stored_ids("skip_ids", skip_ids)
        refunds = schema.refunds
        query = sa.select(refunds).where(refunds.c.account_id == account_id)
        if payment_id is not None:
            _text("payment_id", payment_id)
            query = query.where(refunds.c.payment_id == payment_id)
        if statuses is not None:
            query = query.where(refunds.c.status.in_(list(statuses)))
        if skipped:
            query = query.where(refunds.c.id.not_in(sorted(set(skipped))))
        query = query.order_by(refunds.c.created_at, refunds.c.id)
        return self._all(query, rows.decode_refund)

    @writes
    def add_credit_entry(self, entry: CreditEntry) -> None:
        """Store a movement of a customer's credit balance."""
        row = rows.encode_credit_entry(_record("entry", entry, CreditEntry))
        with self._write(f"adding credit entry {entry.id!r}") as conn:
            self._need_customer(entry.account_id, entry.customer_id)
            conn.execute(sa.insert(schema.credit_entries), row)

    def get_credit_entry(self, account_id: str, entry_id: str) -> CreditEntry:
        """A credit movement of this account, of any of its customers."""
        return self._get(
            schema.credit_entries,
            rows.decode_credit_entry,
            "credit entry",
            account_id,
            entry_id,
        )

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
        query = sa.select(notes).where(notes.c.status.in_([s.value for s in UNSENT]))
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

    # -- daily summaries --------------------------------------------------------

    @writes
    def add_summary_lines(self, lines: Sequence[SummaryLines]) -> None:
        """Store lines of daily summaries to come. One executemany."""
        records = _records("summary lines", lines, SummaryLines)
        if not records:
            return
        encoded = [
            {"id": r.id, "account_id": r.account_id, "lines": r.lines}
            | {"created_at": r.created_at}
            for r in records
        ]
        with self._write("adding summary lines") as conn:
            self._need_accounts({r.account_id for r in records})
            conn.execute(sa.insert(schema.summary_lines), encoded)

    @writes
    def take_summary_lines(self, account_ids: Sequence[str]) -> list[SummaryLines]:
        """Remove and return these accounts' summary lines, oldest first. They
        are locked in id order first (two takers never deadlock); a row another
        transaction took meanwhile is gone when its lock is granted."""
        wanted = sorted(set(_stored_ids("account_ids", account_ids)))
        if not wanted:
            return []
        table = schema.summary_lines
        query = (
            sa.select(table)
            .where(table.c.account_id.in_(wanted))
            .order_by(table.c.id)
            .with_for_update()
        )
        with self._write("taking summary lines") as conn:
            found = [SummaryLines(**row._asdict()) for row in conn.execute(query)]
            for chunk in chunks([record.id for record in found]):
                conn.execute(sa.delete(table).where(table.c.id.in_(chunk)))
        return sorted(found, key=lambda r: (r.created_at, r.id))


def _of_invoice(
    account_id: str, invoice_id: str, customer_id: str | None
) -> sa.Select[Any]:
    """The payments of *account_id* that include *invoice_id*, read from its
    rows of ``payment_invoices`` (that index drives the query: the payments
    are then read by id, never the account's or customer's others).

    With *customer_id*, the customer's payments without any row there are
    read too: ones a process of a version before 12 stored after the
    upgrade, which a payment decision must still see (the caller keeps those
    that include the invoice). SQLite and PostgreSQL find them along the
    customer's index and the link table's key, without decoding a row.
    """
    links, payments = schema.payment_invoices, schema.payments
    if customer_id is None:
        return (
            sa.select(payments)
            .join_from(links, payments, links.c.payment_id == payments.c.id)
            .where(links.c.account_id == account_id, links.c.invoice_id == invoice_id)
        )
    linked = sa.select(links.c.payment_id).where(links.c.payment_id == payments.c.id)
    of_invoice = linked.where(
        links.c.account_id == account_id, links.c.invoice_id == invoice_id
    )
    return sa.select(payments).where(
        payments.c.account_id == account_id,
        payments.c.customer_id == customer_id,
        sa.or_(of_invoice.exists(), ~linked.exists()),
    )


if TYPE_CHECKING:

    def _conforms(
        storage: SqlStorage, tx: SqlTransaction
    ) -> tuple[Storage, Transaction]:
        return storage, tx

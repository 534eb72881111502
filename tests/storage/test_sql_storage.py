"""SqlStorage passes the storage contract on SQLite and PostgreSQL, and more.

Beyond the contract: schema versions (a newer database is refused, an older one
asks for ``recurbill migrate``, version 1 upgrades to the latest keeping its
data; more in ``test_migrations``), a
user's own engine, exact amounts and aware instants in the database, and
driver errors translated into storage errors.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from schema_at import insert_at, set_version

from recurbill.cli import main
from recurbill.errors import (
    ConflictError,
    InvalidInputError,
    SchemaVersionError,
    StateError,
    StorageError,
    StorageUnavailableError,
)
from recurbill.money import Money
from recurbill.records import OccurrenceOutcome, OccurrenceRecord
from recurbill.storage import migrations, rows, schema
from recurbill.storage.bulk import indexed_columns
from recurbill.storage.engine import prepare_sqlite
from recurbill.storage.sql import SqlStorage, migrate
from recurbill.testing.storage import (
    StorageContract,
    make_account,
    make_customer,
    make_invoice,
    make_payment,
    make_template,
)

_OSLO_SUMMER = timezone(timedelta(hours=2))


@pytest.fixture(scope="session")
def _migrated_postgres_engine(postgres_server: object) -> Iterator[sa.Engine]:
    """An engine on a PostgreSQL database at the latest schema, for the session."""
    from postgres_server import PostgresServer

    assert isinstance(postgres_server, PostgresServer)
    postgres_server.execute("CREATE DATABASE recurbill_migrated")
    engine = sa.create_engine(postgres_server.url("recurbill_migrated"))
    SqlStorage(engine).migrate()
    yield engine
    engine.dispose()


@pytest.fixture
def migrated_postgres_engine(_migrated_postgres_engine: sa.Engine) -> sa.Engine:
    """That database emptied for this test (much faster than a new database)."""
    with _migrated_postgres_engine.begin() as conn:
        for table in reversed(schema.metadata.sorted_tables):
            if table is not schema.schema_version:
                conn.execute(sa.delete(table))
    return _migrated_postgres_engine


@pytest.fixture
def migrated_postgres_url(migrated_postgres_engine: sa.Engine) -> str:
    """URL of that emptied database."""
    return migrated_postgres_engine.url.render_as_string(hide_password=False)


@pytest.fixture
def two_postgres(migrated_postgres_url: str) -> Iterator[tuple[SqlStorage, SqlStorage]]:
    """Two storages on that database, as two processes would have them."""
    with (
        SqlStorage.from_url(migrated_postgres_url, lock_timeout=0.2) as first,
        SqlStorage.from_url(migrated_postgres_url, lock_timeout=0.2) as second,
    ):
        yield first, second


class TestSqliteStorage(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[SqlStorage]:
        storage = SqlStorage.sqlite(tmp_path / "billing.db")
        storage.migrate()
        yield storage
        storage.close()


@pytest.mark.postgres
class TestPostgresStorage(StorageContract):
    @pytest.fixture
    def storage(self, migrated_postgres_engine: sa.Engine) -> SqlStorage:
        return SqlStorage(migrated_postgres_engine)


# -- helpers -------------------------------------------------------------------


def _seed(storage: SqlStorage, *, version: int = schema.LATEST_VERSION) -> None:
    """Write a small world; at an older *version*, as that version stored it."""
    template = make_template("tpl-1")
    invoice = make_invoice("inv-1", number=1, template_id="tpl-1", occurrence_index=0)
    occurrence = OccurrenceRecord(
        account_id="acme",
        template_id="tpl-1",
        index=0,
        on=template.schedule.start,
        outcome=OccurrenceOutcome.ISSUED,
        invoice_id="inv-1",
    )
    if version < schema.LATEST_VERSION:  # the rows, without later columns
        counter = {"account_id": "acme", "series": "INV", "next_number": 2}
        with storage.engine.begin() as conn:
            for table, row in (
                (schema.accounts, rows.encode_account(make_account("acme"))),
                (schema.customers, rows.encode_customer(make_customer("cust-1"))),
                (schema.templates, rows.encode_template(template)),
                (schema.invoices, rows.encode_invoice(invoice)),
                (schema.counters, counter),
                (schema.occurrences, rows.encode_occurrence(occurrence)),
            ):
                insert_at(conn, version, table, row)
        return
    with storage.transaction() as tx:
        tx.add_account(make_account("acme"))
        tx.add_customer(make_customer("cust-1"))
        tx.add_template(template)
        assert tx.allocate_invoice_numbers("acme", "INV") == invoice.number
        tx.add_invoices([invoice])
        tx.add_occurrences([occurrence])
        tx.commit()


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "billing.db"


# -- schema versions -------------------------------------------------------------


def test_migrate_is_idempotent(sqlite_path: Path) -> None:
    url = f"sqlite:///{sqlite_path}"
    assert migrate(url) == schema.LATEST_VERSION
    assert migrate(url) == schema.LATEST_VERSION
    with SqlStorage.from_url(url) as storage:
        assert storage.schema_version() == schema.LATEST_VERSION


def test_a_database_without_schema_asks_for_migrate(sqlite_path: Path) -> None:
    with SqlStorage.sqlite(sqlite_path) as storage:
        assert storage.schema_version() == 0
        with (
            pytest.raises(StorageError, match="recurbill migrate") as info,
            storage.transaction(),
        ):
            pass  # pragma: no cover - refused on entry
        assert not isinstance(info.value, SchemaVersionError)


def test_an_older_schema_asks_for_migrate(sqlite_path: Path) -> None:
    with SqlStorage.sqlite(sqlite_path) as storage:
        storage.migrate(target=1)
        with (
            pytest.raises(StorageError, match=r"version 1.*recurbill migrate"),
            storage.transaction(),
        ):
            pass  # pragma: no cover - refused on entry


def test_a_newer_schema_is_refused(sqlite_path: Path) -> None:
    with SqlStorage.sqlite(sqlite_path) as storage:
        storage.migrate()
        set_version(storage.engine, schema.LATEST_VERSION + 1)
        with (
            pytest.raises(SchemaVersionError) as info,
            storage.transaction(),
        ):
            pass  # pragma: no cover - refused on entry
        assert info.value.fields == {
            "found": schema.LATEST_VERSION + 1,
            "supported": schema.LATEST_VERSION,
        }
        with pytest.raises(SchemaVersionError):
            storage.migrate()


def test_an_unknown_target_version_is_refused(sqlite_path: Path) -> None:
    with SqlStorage.sqlite(sqlite_path) as storage, pytest.raises(InvalidInputError):
        storage.migrate(target=schema.LATEST_VERSION + 1)


def _index_names(engine: sa.Engine) -> set[str]:
    return {str(i["name"]) for i in sa.inspect(engine).get_indexes("templates")}


def _upgrade_keeps_data(
    storage: SqlStorage, upgrade: Callable[[SqlStorage], int] | None = None
) -> None:
    with storage.engine.begin() as conn:
        assert migrations.upgrade(conn, target=1) == 1
    assert "ix_templates_due" not in _index_names(storage.engine)
    # Write at version 1 with the version check out of the way.
    set_version(storage.engine, schema.LATEST_VERSION)
    _seed(storage, version=1)
    set_version(storage.engine, 1)
    storage._checked = False

    assert (
        storage.migrate() if upgrade is None else upgrade(storage)
    ) == schema.LATEST_VERSION
    assert "ix_templates_due" in _index_names(storage.engine)
    with storage.transaction() as tx:
        assert tx.get_account("acme") == make_account("acme")
        assert tx.get_template("acme", "tpl-1") == make_template("tpl-1")
        [invoice] = tx.list_invoices("acme")
        assert invoice.id == "inv-1"
        assert invoice.total == Money("125.00", "NOK")
        assert [o.index for o in tx.list_occurrences("acme", "tpl-1")] == [0]
        assert tx.allocate_invoice_numbers("acme", "INV") == 2


def test_version_1_upgrades_to_latest_keeping_data_sqlite(sqlite_path: Path) -> None:
    with SqlStorage.sqlite(sqlite_path) as storage:
        _upgrade_keeps_data(storage)


def test_recurbill_migrate_upgrades_version_1_keeping_data(
    sqlite_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def command(storage: SqlStorage) -> int:
        assert main(["migrate", "--db", f"sqlite:///{sqlite_path}"]) == 0
        return int(capsys.readouterr().out.split()[-1])

    with SqlStorage.sqlite(sqlite_path) as storage:
        _upgrade_keeps_data(storage, command)


@pytest.mark.postgres
def test_version_1_upgrades_to_latest_keeping_data_postgres(
    fresh_postgres_url: str,
) -> None:
    with SqlStorage.from_url(fresh_postgres_url) as storage:
        _upgrade_keeps_data(storage)


def test_a_chunk_of_due_templates_walks_the_due_index_without_sorting(
    sqlite_path: Path,
) -> None:
    """The run's query reads its chunk in index order: no scan of every due row."""
    with SqlStorage.sqlite(sqlite_path) as storage:
        storage.migrate()
        _seed(storage)
        queries: list[tuple[str, Any]] = []

        def keep(_conn: Any, _cursor: Any, sql: str, params: Any, *_: Any) -> None:
            if "FROM templates" in sql:
                queries.append((sql, params))

        sa.event.listen(storage.engine, "before_cursor_execute", keep)
        as_of = datetime(2025, 3, 1, tzinfo=timezone.utc)
        with storage.transaction() as tx:
            tx.due_templates(
                as_of,
                account_ids=["acme"],
                after=(as_of, "tpl-0"),
                limit=10,
                for_update=True,
            )
        sa.event.remove(storage.engine, "before_cursor_execute", keep)
        ((sql, params),) = queries
        with storage.engine.connect() as conn:
            plan = " ".join(
                str(row)
                for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
            )
        assert "ix_templates_due" in plan
        assert "B-TREE" not in plan  # no temporary sort of the due rows


def test_an_update_sets_only_the_indexed_columns_that_change(
    sqlite_path: Path,
) -> None:
    """Setting an indexed column rewrites its index entries, even to the same value."""
    with SqlStorage.sqlite(sqlite_path) as storage:
        storage.migrate()
        _seed(storage)
        updates: list[str] = []

        def keep(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
            if sql.startswith("UPDATE"):
                updates.append(sql)

        sa.event.listen(storage.engine, "before_cursor_execute", keep)
        due = datetime(2025, 4, 1, 6, 15, tzinfo=timezone.utc)
        renumbered = make_invoice(
            "inv-1", number=7, template_id="tpl-1", occurrence_index=0
        )
        with storage.transaction() as tx:
            tx.update_templates([make_template("tpl-1", next_due_at=due)])
            tx.update_invoices([renumbered])
            tx.commit()
        sa.event.remove(storage.engine, "before_cursor_execute", keep)
        template_update, invoice_update = updates
        assert "customer_id" not in template_update
        assert "next_due_at" in template_update  # changed, and in the due index
        assert "number" in invoice_update  # changed
        assert "customer_id" not in invoice_update
        assert "occurrence_index" not in invoice_update
        with storage.transaction() as tx:
            assert tx.get_template("acme", "tpl-1").next_due_at == due
            assert tx.get_invoice("acme", "inv-1") == renumbered


def test_an_update_that_changes_no_indexed_column_sets_none(
    sql_storage: SqlStorage,
) -> None:
    """The stored indexed columns are read back with their types' own
    conversions (an instant as an aware datetime, a number as an int), so an
    update that changes none of them leaves them all out, on either backend."""
    _seed(sql_storage)
    updates: list[str] = []

    def keep(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if sql.startswith("UPDATE"):
            updates.append(sql)

    template = make_template("tpl-1", memo="changed")
    invoice = make_invoice(
        "inv-1", number=1, template_id="tpl-1", occurrence_index=0, memo="changed"
    )
    sa.event.listen(sql_storage.engine, "before_cursor_execute", keep)
    with sql_storage.transaction() as tx:
        tx.update_templates([template])
        tx.update_invoices([invoice])
        tx.commit()
    sa.event.remove(sql_storage.engine, "before_cursor_execute", keep)
    assert len(updates) == 2
    for sql, table in zip(updates, (schema.templates, schema.invoices), strict=True):
        assigned = sql.split(" SET ")[1].split(" WHERE ")[0].split(", ")
        names = {part.split(" = ")[0].strip('"') for part in assigned}
        assert "memo" in names
        assert indexed_columns(table)  # customer_id, next_due_at, number, ...
        assert names.isdisjoint(indexed_columns(table))
    with sql_storage.transaction() as tx:
        assert tx.get_template("acme", "tpl-1") == template
        assert tx.get_invoice("acme", "inv-1") == invoice


# -- engines and URLs -------------------------------------------------------------


def test_a_users_own_engine_works(sqlite_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{sqlite_path}")
    try:
        storage = SqlStorage(engine)
        storage.migrate()
        _seed(storage)
        storage.close()  # leaves the user's engine alone
        with storage.transaction() as tx:
            assert tx.list_account_ids() == ["acme"]
        with engine.connect() as conn:
            mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            foreign_keys = conn.exec_driver_sql("PRAGMA foreign_keys").scalar()
        assert (mode, foreign_keys) == ("wal", 1)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_users_own_postgres_engine_works(fresh_postgres_url: str) -> None:
    engine = sa.create_engine(fresh_postgres_url)
    try:
        storage = SqlStorage(engine)
        assert storage.migrate() == schema.LATEST_VERSION
        _seed(storage)
        with storage.transaction() as tx:
            assert tx.get_invoice("acme", "inv-1").number == 1
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_postgres_scheme_url_is_postgresql(fresh_postgres_url: str) -> None:
    """``postgres://``, the scheme of many hosts' DATABASE_URL, works."""
    url = sa.make_url(fresh_postgres_url).set(drivername="postgres")
    with SqlStorage.from_url(url.render_as_string(hide_password=False)) as storage:
        assert storage.engine.dialect.name == "postgresql"
        assert storage.engine.dialect.driver == "psycopg"
        assert storage.migrate() == schema.LATEST_VERSION
        _seed(storage)
        with storage.transaction() as tx:
            assert tx.get_invoice("acme", "inv-1").number == 1


@pytest.mark.parametrize(
    "url",
    [
        "",
        "mysql://user@host/db",
        "sqlite://",
        "sqlite:///:memory:",
        "postgresql+psycopg2://u@h/db",
        "postgres+psycopg2://u@h/db",
        "postgresx://u@h/db",
        "not a url",
    ],
)
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(InvalidInputError):
        SqlStorage.from_url(url)


def test_an_engine_of_another_database_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="engine"):
        SqlStorage("sqlite:///x.db")  # type: ignore[arg-type]


def test_a_nested_sqlite_transaction_in_one_thread_is_refused(
    sqlite_path: Path,
) -> None:
    with SqlStorage.sqlite(sqlite_path) as storage:
        storage.migrate()
        with storage.transaction(), pytest.raises(StateError, match="already open"):
            storage.transaction().__enter__()
        with storage.transaction() as tx:
            assert tx.list_account_ids() == []


def test_an_unwritable_sqlite_path_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "missing-directory" / "billing.db"
    with SqlStorage.sqlite(path) as storage, pytest.raises(StorageUnavailableError):
        storage.migrate()


def test_a_file_that_is_not_a_database_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("shopping list")
    with (
        SqlStorage.sqlite(path) as storage,
        pytest.raises(StorageUnavailableError, match="file is not a database"),
    ):
        storage.migrate()
    assert path.read_text() == "shopping list"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("bogus://x", "database 'bogus' is not supported"),
        ("postgresql://bill:s3cret@db:notaport/x", "'postgresql://bill:***@db:"),
        ("sqlite+nosuch:///x.db", "SQLite URL 'sqlite+nosuch:///x.db'"),
        ("", "database URL ''"),
    ],
)
def test_a_bad_url_is_invalid_input_without_its_password(url: str, says: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        SqlStorage.from_url(url)
    assert says in str(refused.value)
    assert "s3cret" not in str(refused.value)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    "scheme", ["postgresql+psycopg", "postgresql", "postgres", "postgres+psycopg"]
)
def test_an_unreachable_postgres_is_unavailable(scheme: str) -> None:
    url = f"{scheme}://nobody@127.0.0.1:{_closed_port()}/billing"
    with SqlStorage.from_url(url) as storage:
        with pytest.raises(StorageUnavailableError, match="cannot be reached"):
            storage.migrate()
        with pytest.raises(StorageUnavailableError), storage.transaction():
            pass  # pragma: no cover - refused on entry


# -- what the database holds --------------------------------------------------------


def _stored_rows(storage: SqlStorage) -> dict[str, object]:
    invoices = schema.invoices
    with storage.engine.connect() as conn:
        row = conn.execute(
            sa.select(invoices.c.total, invoices.c.created_at, invoices.c.currency)
        ).one()
        raw = conn.exec_driver_sql("SELECT total, created_at FROM invoices").one()
    return {"typed": tuple(row), "raw": tuple(raw)}


def _exact_and_aware(storage: SqlStorage) -> None:
    created = datetime(2025, 6, 1, 8, 30, 15, 123456, tzinfo=_OSLO_SUMMER)
    with storage.transaction() as tx:
        tx.add_account(make_account("acme"))
        tx.add_customer(make_customer("cust-1"))
        tx.add_invoices(
            [
                make_invoice(
                    total=Money("0.10", "NOK"),
                    created_at=created,
                )
            ]
        )
        tx.commit()
    stored = _stored_rows(storage)
    total, created_at, currency = stored["typed"]  # type: ignore[misc]
    assert (total, currency) == (Decimal("0.10"), "NOK")
    assert str(total) == "0.10"
    assert created_at == created
    assert created_at.utcoffset() == timedelta(0)
    raw_total, raw_created = stored["raw"]  # type: ignore[misc]
    assert not isinstance(raw_total, float)
    assert str(raw_total) == "0.10"
    if storage.engine.dialect.name == "sqlite":
        assert raw_created == "2025-06-01 06:30:15.123456+00:00"


def test_sqlite_keeps_amounts_exact_and_instants_in_utc(sqlite_path: Path) -> None:
    with SqlStorage.sqlite(sqlite_path) as storage:
        storage.migrate()
        _exact_and_aware(storage)


@pytest.mark.postgres
def test_postgres_keeps_amounts_exact_and_instants_in_utc(
    migrated_postgres_url: str,
) -> None:
    with SqlStorage.from_url(migrated_postgres_url) as storage:
        _exact_and_aware(storage)


def test_an_amount_in_another_currency_than_the_record_is_refused(
    sqlite_path: Path,
) -> None:
    with SqlStorage.sqlite(sqlite_path) as storage:
        storage.migrate()
        with storage.transaction() as tx, pytest.raises(InvalidInputError):
            tx.add_invoices([make_invoice(paid=Money("1.00", "SEK"))])


def test_a_pending_settlement_key_is_a_partial_unique_index(sqlite_path: Path) -> None:
    with SqlStorage.sqlite(sqlite_path) as storage:
        storage.migrate()
        indexes = sa.inspect(storage.engine).get_indexes("settlements")
    [pending] = [i for i in indexes if i["name"] == "uq_settlements_pending_selection"]
    assert pending["unique"]
    assert pending["column_names"] == ["account_id", "selection_key"]


def test_a_locked_sqlite_database_is_a_conflict(sqlite_path: Path) -> None:
    with SqlStorage.sqlite(sqlite_path, lock_timeout=0.1) as storage:
        storage.migrate()
        with storage.engine.connect() as holder:
            holder.exec_driver_sql("SELECT 1")  # BEGIN IMMEDIATE: the write lock
            other = SqlStorage.sqlite(sqlite_path, lock_timeout=0.1)
            try:
                with (
                    pytest.raises(ConflictError, match="concurrent"),
                    other.transaction(),
                ):
                    pass  # pragma: no cover - refused on entry
            finally:
                other.close()
            holder.rollback()


def test_a_read_only_sqlite_transaction_reads_beside_a_writer(
    sqlite_path: Path,
) -> None:
    """A reader (the customer's overview) does not wait for the write lock the
    daily run holds; it reads what was committed, and keeps reading that
    snapshot after the writer commits."""
    with (
        SqlStorage.sqlite(sqlite_path, lock_timeout=0.1) as writer,
        SqlStorage.sqlite(sqlite_path, lock_timeout=0.1) as reader,
    ):
        writer.migrate()
        with writer.transaction() as tx:
            tx.add_account(make_account("acme"))
            tx.add_customer(make_customer("cust-1"))
            tx.commit()
        with writer.transaction() as holder:
            holder.add_customer(make_customer("cust-2"))  # holds the write lock
            with (  # a plain one waits, then gives up
                pytest.raises(ConflictError, match="concurrent"),
                reader.transaction(),
            ):
                pass  # pragma: no cover - refused on entry
            with reader.transaction(read_only=True) as tx:
                assert [c.id for c in tx.list_customers("acme")] == ["cust-1"]
                holder.commit()
                assert [c.id for c in tx.list_customers("acme")] == ["cust-1"]
        with reader.transaction(read_only=True) as tx:
            assert [c.id for c in tx.list_customers("acme")] == ["cust-1", "cust-2"]


def test_without_wal_a_read_only_transaction_queues_as_any_other(
    sqlite_path: Path,
) -> None:
    """Outside WAL mode (an engine of the user's that keeps its journal in
    memory, a file system without WAL) a reader's shared lock would hold up
    the writer's commit, so a read-only unit of work takes the lock first."""

    def memory_journal(dbapi_connection: Any, _: Any) -> None:
        dbapi_connection.execute("PRAGMA journal_mode = MEMORY")

    engines = [sa.create_engine(f"sqlite:///{sqlite_path}") for _ in range(2)]
    for engine in engines:
        sa.event.listen(engine, "connect", memory_journal)  # before recurbill's
        prepare_sqlite(engine, lock_timeout=0.1)
    first, second = (SqlStorage(engine) for engine in engines)
    first.migrate()
    try:
        with first.transaction(read_only=True) as tx:
            assert tx.list_account_ids() == []
            with (
                pytest.raises(ConflictError, match="concurrent"),
                second.transaction(read_only=True),
            ):
                pass  # pragma: no cover - refused on entry
    finally:
        for engine in engines:
            engine.dispose()


@pytest.mark.postgres
def test_a_read_only_postgres_transaction_reads_one_snapshot(
    two_postgres: tuple[SqlStorage, SqlStorage],
) -> None:
    first, second = two_postgres
    with first.transaction() as tx:
        tx.add_account(make_account("acme"))
        tx.add_customer(make_customer("cust-1"))
        tx.commit()
    with second.transaction(read_only=True) as reading:
        assert [c.id for c in reading.list_customers("acme")] == ["cust-1"]
        with first.transaction() as tx:
            tx.add_customer(make_customer("cust-2"))
            tx.commit()
        assert [c.id for c in reading.list_customers("acme")] == ["cust-1"]
    with second.transaction(read_only=True) as reading:
        assert len(reading.list_customers("acme")) == 2


@pytest.mark.postgres
def test_a_postgres_lock_timeout_is_a_conflict(
    two_postgres: tuple[SqlStorage, SqlStorage],
) -> None:
    first, second = two_postgres
    with first.transaction() as tx:
        tx.add_account(make_account("acme"))
        tx.commit()
    with first.transaction() as holder:
        holder.allocate_invoice_numbers("acme", "INV")
        with second.transaction() as tx, pytest.raises(ConflictError):
            tx.allocate_invoice_numbers("acme", "INV")


@pytest.mark.postgres
def test_a_commit_after_a_failed_postgres_read_refuses(
    two_postgres: tuple[SqlStorage, SqlStorage],
) -> None:
    """A read that failed in the database (here a lock wait that timed out)
    aborts a PostgreSQL transaction, whose COMMIT would then roll back in
    silence: the commit says so instead."""
    first, second = two_postgres
    with first.transaction() as tx:
        tx.add_account(make_account("acme"))
        tx.add_customer(make_customer("cust-1"))
        tx.commit()
    with first.transaction() as holder:
        holder.get_customer("acme", "cust-1", for_update=True)
        with second.transaction() as tx:
            tx.add_customer(make_customer("cust-2"))
            with pytest.raises(ConflictError):
                tx.get_customer("acme", "cust-1", for_update=True)
            with pytest.raises(StorageError, match="nothing was committed"):
                tx.commit()
    with first.transaction(read_only=True) as tx:
        assert [c.id for c in tx.list_customers("acme")] == ["cust-1"]


def test_a_closed_transaction_cannot_be_used(sqlite_path: Path) -> None:
    with SqlStorage.sqlite(sqlite_path) as storage:
        storage.migrate()
        with storage.transaction() as tx:
            tx.add_account(make_account("acme"))
            tx.commit()
        with pytest.raises(StateError, match="closed"):
            tx.get_account("acme")
        with pytest.raises(StateError, match="closed"):
            tx.commit()


def test_a_users_engine_with_pooled_connections_gets_the_sqlite_setup(
    sqlite_path: Path,
) -> None:
    engine = sa.create_engine(f"sqlite:///{sqlite_path}")
    try:
        with engine.connect() as conn:  # pooled before SqlStorage sees the engine
            conn.exec_driver_sql("SELECT 1")
        storage = SqlStorage(engine)
        storage.migrate()
        _seed(storage)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            raw = conn.connection.dbapi_connection
            assert raw is not None
            assert raw.isolation_level is None  # BEGIN IMMEDIATE comes from us
    finally:
        engine.dispose()


def test_invoice_values_follow_the_table_columns() -> None:
    from recurbill.storage import rows

    assert tuple(c.name for c in schema.invoices.columns) == rows.INVOICE_COLUMNS
    invoice = make_invoice(created_at=datetime(2025, 1, 1, 1, 0, tzinfo=_OSLO_SUMMER))
    text = dict(
        zip(rows.INVOICE_COLUMNS, rows.invoice_values(invoice, text=True), strict=True)
    )
    assert text["total"] == "125.00"
    assert text["issue_date"] == "2025-01-01"
    assert text["created_at"] == "2024-12-31 23:00:00.000000+00:00"
    assert rows.encode_invoice(invoice)["total"] == Decimal("125.00")


@pytest.mark.postgres
def test_for_update_locks_the_row_on_postgres(
    two_postgres: tuple[SqlStorage, SqlStorage],
) -> None:
    first, second = two_postgres
    _seed(first)
    with first.transaction() as tx:
        tx.add_payment(make_payment())
        tx.commit()
    with first.transaction() as holder:
        holder.get_invoice("acme", "inv-1", for_update=True)
        holder.get_template("acme", "tpl-1", for_update=True)
        holder.get_payment("acme", "pay-1", for_update=True)
        with second.transaction() as tx:
            assert tx.get_template("acme", "tpl-1").id == "tpl-1"  # reads pass
            with pytest.raises(ConflictError, match="concurrent"):
                tx.get_template("acme", "tpl-1", for_update=True)
        with second.transaction() as tx, pytest.raises(ConflictError):
            tx.get_invoice("acme", "inv-1", for_update=True)
        with second.transaction() as tx:
            assert tx.get_payment("acme", "pay-1").id == "pay-1"
            with pytest.raises(ConflictError):
                tx.get_payment("acme", "pay-1", for_update=True)


# -- locking many rows on PostgreSQL -------------------------------------------------

_DUE_AT = datetime(2025, 3, 1, tzinfo=timezone.utc)


def _seed_due_templates(storage: SqlStorage, count: int) -> list[str]:
    """Account acme with *count* templates due at ``_DUE_AT``; their ids, sorted."""
    ids = [f"tpl-{n:03d}" for n in range(count)]
    with storage.transaction() as tx:
        tx.add_account(make_account("acme"))
        tx.add_customer(make_customer("cust-1"))
        for template_id in ids:
            tx.add_template(make_template(template_id))
        tx.commit()
    return ids


@pytest.mark.postgres
def test_due_templates_skip_locked_skips_what_another_transaction_holds(
    two_postgres: tuple[SqlStorage, SqlStorage],
) -> None:
    first, second = two_postgres
    ids = _seed_due_templates(first, 6)
    with first.transaction() as holder:
        held = holder.due_templates(_DUE_AT, limit=3, for_update=True)
        with second.transaction() as tx:
            taken = tx.due_templates(
                _DUE_AT, limit=3, for_update=True, skip_locked=True
            )
            assert [t.id for t in held] == ids[:3]
            assert [t.id for t in taken] == ids[3:]
            # Its own locks are not skipped; the other transaction's are.
            again = tx.due_templates(_DUE_AT, for_update=True, skip_locked=True)
            assert [t.id for t in again] == ids[3:]
            assert [t.id for t in tx.due_templates(_DUE_AT)] == ids  # reads pass
            with pytest.raises(ConflictError, match="concurrent"):
                tx.get_template("acme", ids[0], for_update=True)
        with (
            second.transaction() as tx,
            pytest.raises(ConflictError, match="concurrent"),
        ):
            tx.due_templates(_DUE_AT, for_update=True)  # waits, then times out
    with second.transaction() as tx:  # both ended: every template is free
        assert [t.id for t in tx.due_templates(_DUE_AT, for_update=True)] == ids


@pytest.mark.postgres
def test_two_locking_streams_of_due_templates_share_them_out(
    migrated_postgres_url: str,
) -> None:
    with SqlStorage.from_url(migrated_postgres_url) as storage:
        ids = _seed_due_templates(storage, 60)
        start = threading.Barrier(2, timeout=30)
        done = threading.Barrier(2, timeout=30)

        def stream() -> list[str]:
            """Lock due templates chunk by chunk; hold them until both are done."""
            got: list[str] = []
            with storage.transaction() as tx:
                start.wait()
                after: tuple[datetime, str] | None = None
                while chunk := tx.due_templates(
                    _DUE_AT, after=after, limit=2, for_update=True, skip_locked=True
                ):
                    got.extend(t.id for t in chunk)
                    last = chunk[-1]
                    assert last.next_due_at is not None
                    after = (last.next_due_at, last.id)
                done.wait()  # neither lets go of its locks before the other ends
            return got

        with ThreadPoolExecutor(max_workers=2) as pool:
            one, other = (f.result() for f in [pool.submit(stream) for _ in "ab"])
    assert one == sorted(one)
    assert other == sorted(other)
    assert not set(one) & set(other)
    assert sorted(one + other) == ids


@pytest.mark.postgres
def test_get_invoices_for_update_locks_every_row_on_postgres(
    two_postgres: tuple[SqlStorage, SqlStorage],
) -> None:
    first, second = two_postgres
    _seed(first)
    with first.transaction() as tx:
        tx.add_invoices([make_invoice("inv-2", number=2)])
        tx.commit()
    with first.transaction() as holder:
        locked = holder.get_invoices("acme", ["inv-2", "inv-1"], for_update=True)
        assert [i.id for i in locked] == ["inv-2", "inv-1"]
        for invoice_id in ("inv-1", "inv-2"):
            with second.transaction() as tx:
                assert tx.get_invoices("acme", [invoice_id])  # reads pass
                with pytest.raises(ConflictError, match="concurrent"):
                    tx.get_invoices("acme", [invoice_id], for_update=True)
    with second.transaction() as tx:
        assert len(tx.get_invoices("acme", ["inv-1", "inv-2"], for_update=True)) == 2

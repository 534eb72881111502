"""SQLAlchemy engines set up the way :class:`~recurbill.storage.sql.SqlStorage` needs.

SQLite (the standard library's ``sqlite3``, "pysqlite"): every connection gets
``foreign_keys=ON`` and a busy timeout; files use write-ahead logging (WAL) so
readers never block the writer. pysqlite's own transaction handling is
switched off and each transaction starts with ``BEGIN IMMEDIATE``, taking the
write lock at once (SQLAlchemy's documented "serializable isolation /
savepoints" recipe for pysqlite). Transactions of several processes then run
one after another instead of failing when a reader tries to become a writer,
and SAVEPOINTs work. A read-only unit of work (``transaction(read_only=True)``)
starts with a plain deferred ``BEGIN`` instead when the file is in WAL mode:
it takes no lock and reads a snapshot while another connection writes (in
another journal mode it would hold up the writer's commit, so it begins
``IMMEDIATE`` as the others do).

PostgreSQL goes through psycopg 3 (``postgresql+psycopg://``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from recurbill.errors import InvalidInputError

__all__ = [
    "LOCK_TIMEOUT_SECONDS",
    "READ_ONLY_OPTION",
    "create_engine",
    "prepare_sqlite",
    "sqlite_file",
    "sqlite_url",
]

LOCK_TIMEOUT_SECONDS = 30.0
"""How long a transaction waits for a lock another one holds, by default.

SQLite's busy timeout (the write lock) and PostgreSQL's ``lock_timeout`` (row
locks such as the invoice counter); after it the wait is a ``ConflictError``.
"""

_PREPARED = "recurbill_prepared"
_WAL = "recurbill_wal"  # connection info: whether the file is in WAL mode
READ_ONLY_OPTION = "recurbill_read_only"
"""The connection option that makes the SQLite begin hook emit a deferred
``BEGIN`` (a read-only unit of work) instead of ``BEGIN IMMEDIATE``."""


def sqlite_url(path: str | os.PathLike[str]) -> str:
    """The SQLAlchemy URL of the SQLite database file at *path*."""
    text = os.fspath(path)
    if not text or text == ":memory:":
        raise InvalidInputError(
            problem=f"SQLite path {text!r}",
            allowed="give a file path; an in-memory database vanishes with its "
            "connection (use InMemoryStorage for tests)",
        )
    return f"sqlite+pysqlite:///{text}"


def sqlite_file(url: str) -> Path | None:
    """The file of the SQLite database *url* names, as SQLAlchemy reads it.

    Any spelling (``sqlite:///``, ``sqlite+pysqlite:///``, query options, a
    SQLite URI filename such as ``file:billing.db?mode=rw`` with
    ``uri=true``). None for another database, a SQLite URL without a file,
    or a URL that cannot be parsed (left to :func:`create_engine` to refuse).
    """
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        return None
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    database = parsed.database
    if parsed.query.get("uri") == "true" and database.startswith("file:"):
        # a SQLite URI filename (file:billing.db?mode=rw): the file is its path
        database = database.removeprefix("file:").split("?", 1)[0]
    return Path(database)


def _timeout(value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < value <= 3600
    ):
        raise InvalidInputError(
            problem=f"lock_timeout={value!r}",
            allowed="a number of seconds above 0 and at most 3600",
        )
    return float(value)


class _SqliteHooks:
    """The connect and begin hooks of one SQLite engine."""

    def __init__(self, lock_timeout: float) -> None:
        self.busy_ms = int(lock_timeout * 1000)

    def connect(self, dbapi_connection: Any, connection_record: Any) -> None:
        # Let SQLAlchemy (the "begin" hook) emit BEGIN instead of pysqlite.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute(f"PRAGMA busy_timeout = {self.busy_ms}")
            cursor.execute("PRAGMA journal_mode")
            (mode,) = cursor.fetchone()
            if mode not in ("wal", "memory"):
                cursor.execute("PRAGMA journal_mode = WAL")
                (mode,) = cursor.fetchone()  # "wal", unless the file cannot be
        finally:
            cursor.close()
        if connection_record is not None:
            connection_record.info[_WAL] = str(mode).lower() == "wal"

    def begin(self, conn: sa.Connection) -> None:
        info = conn.connection.info
        if _WAL not in info:
            # A connection made before prepare_sqlite() ran (a user's own engine).
            self.connect(conn.connection.dbapi_connection, conn.connection)
        read_only = conn.get_execution_options().get(READ_ONLY_OPTION, False)
        # a deferred reader reads beside the writer only in WAL mode; in the
        # others it would hold up the writer's commit, so it queues as one
        snapshot = read_only and info.get(_WAL, False)
        conn.exec_driver_sql("BEGIN" if snapshot else "BEGIN IMMEDIATE")


def prepare_sqlite(
    engine: sa.Engine, *, lock_timeout: float = LOCK_TIMEOUT_SECONDS
) -> sa.Engine:
    """Install the SQLite connection and BEGIN IMMEDIATE hooks on *engine* (once).

    Applies to every use of the engine, as SQLAlchemy's recipe does; other
    dialects are returned untouched.
    """
    if engine.dialect.name != "sqlite" or engine.dialect.driver != "pysqlite":
        return engine
    if not getattr(engine, _PREPARED, False):
        hooks = _SqliteHooks(_timeout(lock_timeout))
        event.listen(engine, "connect", hooks.connect)
        event.listen(engine, "begin", hooks.begin)
        setattr(engine, _PREPARED, True)
    return engine


def create_engine(url: str, *, lock_timeout: float = LOCK_TIMEOUT_SECONDS) -> sa.Engine:
    """A new engine for *url*: a SQLite file or PostgreSQL through psycopg 3.

    *lock_timeout* (seconds) bounds every wait for a lock held by another
    transaction.
    """
    lock_timeout = _timeout(lock_timeout)
    if not isinstance(url, str) or not url:
        raise InvalidInputError(
            problem=f"database URL {url!r}",
            allowed="a URL such as 'sqlite:///billing.db' or "
            "'postgresql+psycopg://user@host/dbname'",
        )
    try:
        parsed = sa.make_url(url)
    except (sa.exc.ArgumentError, ValueError):  # ValueError: a port not a number
        raise InvalidInputError(
            problem=f"database URL {_shown(url)!r} cannot be parsed",
            allowed="a URL such as 'sqlite:///billing.db' or "
            "'postgresql+psycopg://user@host/dbname'",
        ) from None
    if parsed.get_backend_name() == "postgres":
        # the scheme of many hosts' DATABASE_URL; SQLAlchemy knows "postgresql"
        parsed = parsed.set(drivername="postgresql" + parsed.drivername[8:])
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        # before get_driver_name(), which raises for a dialect SQLAlchemy lacks
        raise InvalidInputError(
            problem=f"database {backend!r} is not supported",
            allowed="SQLite ('sqlite:///billing.db') or PostgreSQL "
            "('postgresql+psycopg://user@host/dbname')",
        )
    driver = parsed.get_driver_name()
    if backend == "sqlite":
        if (
            driver not in ("pysqlite", "")
            or not parsed.database
            or (parsed.database == ":memory:")
        ):
            raise InvalidInputError(
                problem=f"SQLite URL {_shown(url)!r}",
                allowed="a database file through the standard library driver, "
                "e.g. 'sqlite:///billing.db'",
            )
        engine = sa.create_engine(
            parsed.set(drivername="sqlite+pysqlite"),
            connect_args={"timeout": lock_timeout},
        )
        return prepare_sqlite(engine, lock_timeout=lock_timeout)
    # PostgreSQL
    if driver not in ("psycopg", ""):
        raise InvalidInputError(
            problem=f"PostgreSQL driver {driver!r}",
            allowed="psycopg 3: 'postgresql+psycopg://...'",
        )
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise InvalidInputError(
            problem="PostgreSQL needs psycopg 3, which is not installed",
            allowed="install recurbill's postgres extra: pip install '.[postgres]' "
            "in recurbill's checkout",
        ) from None
    return sa.create_engine(
        parsed.set(drivername="postgresql+psycopg"),
        connect_args={
            "connect_timeout": 10,
            "options": f"-c lock_timeout={int(lock_timeout * 1000)}",
            # no server-side prepared statements: after a few executions
            # PostgreSQL may settle on a generic plan, and for the daily
            # run's many-row UPDATE ... WHERE id = $n that plan took about
            # 1 ms a row instead of 0.05 ms (a 20,000-invoice run: 44 s -> 20 s)
            "prepare_threshold": None,
        },
        pool_pre_ping=True,
    )


def _shown(url: str) -> str:
    """*url* as an error message may show it: any password replaced by ``***``."""
    return _PASSWORD.sub(r"\1***@", url)


_PASSWORD = re.compile(r"^([A-Za-z0-9+.-]+://[^/@:]*:)[^@]*@")

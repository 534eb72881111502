"""Shared fixtures: a throwaway PostgreSQL server for the ``postgres`` tests.

``postgres_url`` starts one server per test session (see ``postgres_server.py``)
and yields a URL to a database on it; ``fresh_postgres_url`` gives each test a
new, empty database of its own. Without the server binaries the PostgreSQL
tests are skipped, except in CI (the ``CI`` environment variable is set), where
they fail: a missing database must never pass silently there.

Hypothesis runs without its per-example deadline: a property test checks what
is computed, not how fast (``benchmarks/`` measures speed), and a busy machine
must not fail an example for taking 200 ms once. A failure prints the blob that
reproduces it.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import settings

from postgres_server import PostgresServer, start_for_tests
from recurbill.storage.engine import create_engine
from recurbill.storage.memory import InMemoryStorage
from recurbill.storage.protocol import Storage
from recurbill.storage.sql import SqlStorage

__all__ = [
    "engine",
    "fresh_postgres_url",
    "postgres_server",
    "postgres_url",
    "sql_storage",
    "storage",
]

settings.register_profile("recurbill", deadline=None, print_blob=True)
settings.load_profile("recurbill")

_database_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the whole session."""
    server = start_for_tests(os.environ)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """URL of a database shared by the session (``postgresql+psycopg://``)."""
    postgres_server.execute("CREATE DATABASE recurbill_session")
    return postgres_server.url("recurbill_session")


@pytest.fixture
def fresh_postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """URL of a new, empty database for this test alone (dropped afterwards)."""
    name = f"recurbill_test_{next(_database_numbers)}"
    postgres_server.execute(f"CREATE DATABASE {name}")
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new SQLite file, or (param ``"postgresql"``) a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'billing.sqlite3'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlStorage]:
    """A migrated SqlStorage on a new SQLite file, then on a new PostgreSQL database."""
    with SqlStorage.from_url(_sql_url(request, tmp_path)) as storage:
        storage.migrate()
        yield storage


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """A new in-memory storage, then a migrated SQLite file and PostgreSQL database."""
    if request.param == "memory":
        yield InMemoryStorage()
        return
    with SqlStorage.from_url(_sql_url(request, tmp_path)) as sql:
        sql.migrate()
        yield sql


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    """An engine (recurbill's set-up) on a new SQLite file, then on a new
    PostgreSQL database, for tests that change rows with raw SQL; parametrize
    it indirectly to take one."""
    engine = create_engine(_sql_url(request, tmp_path))
    try:
        yield engine
    finally:
        engine.dispose()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the PostgreSQL server as ``postgres``."""
    for item in items:
        if "postgres_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)

"""The PostgreSQL test tooling: found binaries, and no silent skip in CI."""

from __future__ import annotations

import pytest

from postgres_server import (
    PostgresServer,
    PostgresUnavailableError,
    find_bindir,
    start_for_tests,
)


def _no_binaries() -> None:
    raise PostgresUnavailableError("initdb not found (simulated)")


def test_missing_binaries_fail_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PostgresServer, "start", _no_binaries)
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        start_for_tests({"CI": "true"})


def test_missing_binaries_skip_outside_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(PostgresServer, "start", _no_binaries)
    with pytest.raises(pytest.skip.Exception, match="initdb not found"):
        start_for_tests({})


def test_no_binaries_anywhere_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shutil.which", lambda name: None)
    monkeypatch.setattr("glob.glob", lambda pattern: [])
    with pytest.raises(PostgresUnavailableError, match="install"):
        find_bindir()


@pytest.mark.postgres
def test_the_session_server_listens_on_loopback(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    import sqlalchemy as sa

    assert postgres_url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    engine = sa.create_engine(postgres_url)
    try:
        with engine.connect() as conn:
            address = conn.exec_driver_sql("SELECT inet_server_addr()").scalar()
            fsync = conn.exec_driver_sql("SHOW fsync").scalar()
    finally:
        engine.dispose()
    assert (str(address), fsync) == ("127.0.0.1", "off")
    assert (postgres_server.root / "data").is_dir()


@pytest.mark.postgres
def test_fresh_databases_are_separate(
    fresh_postgres_url: str, postgres_url: str
) -> None:
    assert fresh_postgres_url != postgres_url
    assert fresh_postgres_url.rsplit("/", 1)[1].startswith("recurbill_test_")

"""A throwaway PostgreSQL server for the tests and the benchmarks.

``PostgresServer.start()`` finds the server binaries, runs ``initdb`` into a new
temporary directory, starts the server on a free loopback port (unix sockets
in the temporary directory, ``fsync=off`` for speed) and returns a handle whose
``url(database)`` is a ``postgresql+psycopg://`` URL; ``stop()`` stops the
server and removes the directory. As root, ``initdb`` and ``pg_ctl`` run as the
``postgres`` system user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import attrs

__all__ = [
    "PostgresServer",
    "PostgresUnavailableError",
    "find_bindir",
    "start_for_tests",
]

SUPERUSER = "postgres"


class PostgresUnavailableError(RuntimeError):
    """The PostgreSQL server binaries are not installed here."""


def find_bindir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``, or PostgresUnavailableError."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0 and result.stdout.strip():
            candidates.append(Path(result.stdout.strip()))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    candidates.extend(
        Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    )
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    raise PostgresUnavailableError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found via pg_config, "
        "PATH or /usr/lib/postgresql/*/bin; install the 'postgresql' package"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", SUPERUSER, "--", *command]
    return ["su", SUPERUSER, "-s", "/bin/sh", "-c", subprocess.list2cmdline(command)]


def _run(command: list[str]) -> None:
    result = subprocess.run(
        _as_server_user(command), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{command[0]} failed ({result.returncode}):\n{result.stdout}\n"
            f"{result.stderr}"
        )


@attrs.frozen(kw_only=True)
class PostgresServer:
    """A running throwaway server: its directory, binaries and port."""

    root: Path
    bindir: Path
    port: int

    @classmethod
    def start(cls) -> PostgresServer:
        """initdb into a temporary directory and start a server on loopback."""
        bindir = find_bindir()
        root = Path(tempfile.mkdtemp(prefix="recurbill-pg-"))
        try:
            if os.geteuid() == 0:
                shutil.chown(root, user=SUPERUSER, group=None)
            data = root / "data"
            _run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    SUPERUSER,
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "--locale=C",
                ]
            )
            port = _free_port()
            options = (
                f"-p {port} -k {root} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=200"
            )
            _run(
                [
                    str(bindir / "pg_ctl"),
                    "start",
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    str(data),
                    "-l",
                    str(root / "server.log"),
                    "-o",
                    options,
                ]
            )
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise
        return cls(root=root, bindir=bindir, port=port)

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL for *database* on this server (psycopg 3 driver)."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def conninfo(self, database: str = "postgres") -> str:
        """A libpq connection string for *database* (for raw psycopg)."""
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    def execute(self, sql: str) -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE)."""
        import psycopg

        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(sql)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its directory."""
        try:
            _run(
                [
                    str(self.bindir / "pg_ctl"),
                    "stop",
                    "-m",
                    "fast",
                    "-w",
                    "-D",
                    str(self.root / "data"),
                ]
            )
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start_for_tests(environ: Mapping[str, str]) -> PostgresServer:
    """Start a server for a test session, or skip; in CI (``CI`` set) fail instead.

    A missing database must never pass silently in CI.
    """
    import pytest

    try:
        return PostgresServer.start()
    except PostgresUnavailableError as exc:
        if environ.get("CI"):
            pytest.fail(f"CI is set but PostgreSQL cannot start: {exc}")
        pytest.skip(f"PostgreSQL tests skipped: {exc}")

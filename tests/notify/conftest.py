"""Fixtures: real SMTP servers on loopback for the notifier tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from smtp_servers import Collector, Server, serve, server_context


@pytest.fixture
def smtp_server() -> Iterator[Server]:
    """A plain SMTP server that accepts everything except refused@example.no."""
    with serve(Collector(frozenset({"refused@example.no"}))) as server:
        yield server


@pytest.fixture
def tls_server() -> Iterator[Server]:
    """An SMTP server that speaks TLS from the first byte (like port 465)."""
    with serve(Collector(), ssl_context=server_context()) as server:
        yield server


@pytest.fixture
def starttls_server() -> Iterator[Server]:
    """An SMTP server that requires STARTTLS before MAIL (like port 587)."""
    with serve(
        Collector(), tls_context=server_context(), require_starttls=True
    ) as server:
        yield server


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections but never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]

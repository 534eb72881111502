"""Loopback SMTP servers (aiosmtpd) and helpers for the notifier tests."""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import attrs
from aiosmtpd.controller import Controller

DATA = Path(__file__).parent / "data"
CERT = DATA / "localhost.crt"
KEY = DATA / "localhost.key"


@attrs.define
class Received:
    """One message the test server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes

    @property
    def email(self) -> EmailMessage:
        """The message parsed with the modern policy (headers decoded)."""
        parsed = message_from_bytes(self.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class Collector:
    """aiosmtpd handler: keeps what arrives; refuses the addresses in ``refuse``."""

    def __init__(
        self,
        refuse: frozenset[str] = frozenset(),
        reply: str = "550 5.1.1 <{address}>: mailbox unavailable",
    ) -> None:
        self.received: list[Received] = []
        self.refuse = refuse
        self.reply = reply  # to a refused address: 5xx for good, 4xx for now

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return self.reply.format(address=address)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        self.received.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                content=bytes(envelope.original_content or envelope.content),
            )
        )
        return "250 Message accepted"


@attrs.define
class Server:
    """A running loopback SMTP server and what it received."""

    host: str
    port: int
    collector: Collector

    @property
    def received(self) -> list[Received]:
        return self.collector.received


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_context() -> ssl.SSLContext:
    """The TLS context of the test server (the throwaway localhost certificate)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(CERT, KEY)
    return context


def client_context() -> ssl.SSLContext:
    """A client context that trusts only the test certificate."""
    return ssl.create_default_context(cafile=str(CERT))


@contextlib.contextmanager
def serve(collector: Collector, **options: Any) -> Iterator[Server]:
    controller = Controller(
        collector, hostname="127.0.0.1", port=free_port(), **options
    )
    controller.start()
    try:
        yield Server("127.0.0.1", controller.port, collector)
    finally:
        controller.stop()

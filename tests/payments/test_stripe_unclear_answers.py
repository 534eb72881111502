"""Answers that are not Stripe's own leave the outcome unknown, never a decline."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import stripe

from recurbill.errors import GatewayUnavailableError
from recurbill.money import Money
from recurbill.payments.stripe import StripeGateway

TRUNCATED = (
    b'{"id": "pi_1", "object": "payment_intent", '
    b'"client_secret": "pi_1_secret_ABCDEF", "status": "succeeded", "amou'
)


@contextmanager
def _server(status: int, body: bytes) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize(
    ("status", "body"),
    [(200, TRUNCATED), (408, b"<html>Request Timeout</html>"), (502, b"<html/>")],
    ids=["cut-off body", "proxy 408", "proxy 502"],
)
def test_an_answer_that_is_not_stripes_is_an_unknown_outcome(
    status: int, body: bytes
) -> None:
    with _server(status, body) as url:
        client = stripe.StripeClient(
            api_key="sk_test_fake", base_addresses={"api": url}, max_network_retries=0
        )
        gateway = StripeGateway(client)
        with pytest.raises(GatewayUnavailableError) as raised:
            gateway.charge(
                "cus_1",
                payment_method="pm_1",
                amount=Money("10.00", "NOK"),
                idempotency_key="recurbill-key-1",
                off_session=True,
            )
        assert "secret" not in str(raised.value)  # nothing of the body is echoed

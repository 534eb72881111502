"""Webhook signatures in Stripe's scheme, and parsing a verified event.

The signature header reads ``t=<unix seconds>,v1=<hex>[,v1=<hex>…]`` where each
``v1`` is HMAC-SHA256 over ``f"{t}.{raw body}"`` keyed with an endpoint secret.
Verification takes several secrets (rotation: the old and the new one are
both valid for a while) and the current time as an argument, so there is no
hidden clock. A timestamp more than ``tolerance`` seconds away from *now*, in
either direction, is refused: an old one may be a replay, a future one a
forged clock.

>>> header = sign_webhook(b'{"id": "evt_1"}', secret="whsec_x", timestamp=100)
>>> verify_webhook(b'{"id": "evt_1"}', signature=header, secrets=["whsec_x"], now=130)
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence

from recurbill.errors import WebhookError
from recurbill.payments.protocol import WebhookEvent

__all__ = [
    "DEFAULT_TOLERANCE",
    "parse_event",
    "sign_webhook",
    "verify_webhook",
]

DEFAULT_TOLERANCE = 300
"""Seconds a signature's timestamp may be away from now (Stripe's default)."""


def _digest(payload: bytes, secret: str, timestamp: int) -> str:
    message = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_webhook(payload: bytes, *, secret: str, timestamp: int) -> str:
    """The signature header for *payload* sent at *timestamp* (unix seconds)."""
    return f"t={timestamp},v1={_digest(payload, secret, timestamp)}"


def _refuse(problem: str) -> WebhookError:
    return WebhookError(
        problem=problem,
        allowed="only webhooks signed by the gateway with a configured secret "
        "and a recent timestamp are accepted",
    )


_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


def verify_webhook(
    payload: bytes,
    *,
    signature: str,
    secrets: Sequence[str],
    now: int,
    tolerance: int = DEFAULT_TOLERANCE,
) -> None:
    """Raise :class:`WebhookError` unless *signature* signs *payload* recently."""
    if not isinstance(payload, (bytes, bytearray)):
        raise _refuse(f"payload is {type(payload).__name__}, not the raw bytes")
    if not secrets:
        raise _refuse("no webhook secret is configured")
    if not isinstance(signature, str) or not signature:
        raise _refuse("the signature header is missing")
    timestamps: list[str] = []
    candidates: list[str] = []
    for part in signature.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t":
            timestamps.append(value)
        elif name == "v1" and _HEX_DIGEST.fullmatch(value):
            candidates.append(value)  # anything else cannot match: skipped
    if len(timestamps) != 1 or not _TIMESTAMP.fullmatch(timestamps[0]):
        raise _refuse("the signature header is malformed")
    if not candidates:
        raise _refuse("the signature header has no v1 signature")
    timestamp = int(timestamps[0])
    raw = bytes(payload)
    expected = [_digest(raw, secret, timestamp) for secret in secrets]
    if not any(
        hmac.compare_digest(good, given) for good in expected for given in candidates
    ):
        raise _refuse("no signature matches the payload")
    if abs(now - timestamp) > tolerance:
        raise _refuse(
            f"the signature's timestamp {timestamp} is more than {tolerance} s "
            f"away from now ({now})"
        )


def parse_event(payload: bytes) -> WebhookEvent:
    """A verified payload as a :class:`WebhookEvent` (``data`` is ``data.object``)."""
    try:
        body = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise _refuse("the payload is not JSON") from None
    data = body.get("data") if isinstance(body, Mapping) else None
    obj = data.get("object") if isinstance(data, Mapping) else None
    if (
        not isinstance(body, Mapping)
        or not isinstance(body.get("id"), str)
        or not isinstance(body.get("type"), str)
        or not isinstance(body.get("created"), int)
        or not isinstance(obj, Mapping)
    ):
        raise _refuse("the payload is not an event with id, type, created and data")
    return WebhookEvent(
        event_id=body["id"], type=body["type"], created=body["created"], data=obj
    )

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

:func:`parse_event` reads the refund out of Stripe's refund events
(:data:`REFUND_EVENTS`), whose object is a Refund.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence

from recurbill.errors import RecurbillError, WebhookError
from recurbill.payments.minor_units import from_minor_units
from recurbill.payments.protocol import RefundResult, WebhookEvent

__all__ = [
    "DEFAULT_TOLERANCE",
    "REFUND_EVENTS",
    "parse_event",
    "sign_webhook",
    "verify_webhook",
]

DEFAULT_TOLERANCE = 300
"""Seconds a signature's timestamp may be away from now (Stripe's default)."""

REFUND_EVENTS = frozenset(
    {"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"}
)
"""Stripe's event types about a refund (their object is the Refund).

Accounts on API versions before 2024-10-28 get ``charge.refund.updated``
for card refunds instead of ``refund.updated`` and ``refund.failed``."""


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
        event_id=body["id"],
        type=body["type"],
        created=body["created"],
        data=obj,
        refund=_refund(obj) if body["type"] in REFUND_EVENTS else None,
    )


def _refund(obj: Mapping[str, object]) -> RefundResult | None:
    """The refund of a PaymentIntent in an event's Refund object, else None.

    A refund of no PaymentIntent (or in a currency recurbill does not know)
    cannot be one recurbill made: the event is not about a refund of its own.
    """
    refund_id, charge_id = obj.get("id"), obj.get("payment_intent")
    amount, currency = obj.get("amount"), obj.get("currency")
    status, reason = obj.get("status"), obj.get("failure_reason")
    if (
        obj.get("object") != "refund"
        or not isinstance(refund_id, str)
        or not isinstance(charge_id, str)
        or not isinstance(amount, int)
        or isinstance(amount, bool)
        or not isinstance(currency, str)
    ):
        return None
    try:
        money = from_minor_units(amount, currency)
    except RecurbillError:
        return None
    return RefundResult(
        refund_id=refund_id,
        charge_id=charge_id,
        amount=money,
        status=status if isinstance(status, str) else "pending",
        failure_reason=reason if isinstance(reason, str) else None,
    )

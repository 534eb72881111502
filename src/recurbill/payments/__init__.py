"""Payment gateway port and its adapters: in memory, and Stripe.

``StripeGateway`` is imported lazily, so ``import recurbill.payments`` works
without the ``stripe`` package installed.
"""

from __future__ import annotations

from recurbill.payments.memory import InMemoryGateway, RecordedRequest
from recurbill.payments.protocol import (
    CardDetails,
    CardSetup,
    ChargeResult,
    ChargeStatus,
    PaymentGateway,
    RefundResult,
    WebhookEvent,
)

__all__ = [
    "CardDetails",
    "CardSetup",
    "ChargeResult",
    "ChargeStatus",
    "InMemoryGateway",
    "PaymentGateway",
    "RecordedRequest",
    "RefundResult",
    "WebhookEvent",
]


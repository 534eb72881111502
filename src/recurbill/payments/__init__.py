"""Payment gateway port and its adapters: in memory, and Stripe.

``StripeGateway`` is imported lazily, so ``import recurbill.payments`` works
without the ``stripe`` package installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recurbill.payments.checks import check_customer
from recurbill.payments.memory import (
    DEFAULT_WEBHOOK_SECRET,
    InMemoryGateway,
    RecordedRequest,
)
from recurbill.payments.minor_units import (
    check_charge_amount,
    from_minor_units,
    to_minor_units,
)
from recurbill.payments.protocol import (
    CardDetails,
    CardSetup,
    ChargeLimits,
    ChargeResult,
    ChargeStatus,
    PaymentGateway,
    RefundResult,
    WebhookEvent,
)
from recurbill.payments.webhooks import sign_webhook, verify_webhook

if TYPE_CHECKING:
    from recurbill.payments.stripe import StripeGateway

__all__ = [
    "DEFAULT_WEBHOOK_SECRET",
    "CardDetails",
    "CardSetup",
    "ChargeLimits",
    "ChargeResult",
    "ChargeStatus",
    "InMemoryGateway",
    "PaymentGateway",
    "RecordedRequest",
    "RefundResult",
    "StripeGateway",
    "WebhookEvent",
    "check_charge_amount",
    "check_customer",
    "from_minor_units",
    "sign_webhook",
    "to_minor_units",
    "verify_webhook",
]


def __getattr__(name: str) -> object:
    """Import ``StripeGateway`` on first use (it needs the optional stripe extra)."""
    if name == "StripeGateway":
        from recurbill.payments.stripe import StripeGateway

        return StripeGateway
    raise AttributeError(f"module 'recurbill.payments' has no attribute {name!r}")

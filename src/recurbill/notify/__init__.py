"""Notifier port, its adapters (SMTP, in-memory outbox), rendering and delivery.

Everything here needs only the standard library and Babel, so it is imported
eagerly.
"""

from __future__ import annotations

from recurbill.notify.delivery import DeliveryResult, deliver_pending, message_of
from recurbill.notify.memory import Outbox
from recurbill.notify.protocol import (
    Message,
    Notifier,
    OutboxStorage,
    OutboxTransaction,
)
from recurbill.notify.render import (
    notification_for,
    render_invoice,
    render_payment_failed,
    render_payment_needs_action,
    render_receipt,
    render_summary,
    resolve_locale,
)
from recurbill.notify.smtp import Security, SmtpNotifier, build_email

__all__ = [
    "DeliveryResult",
    "Message",
    "Notifier",
    "Outbox",
    "OutboxStorage",
    "OutboxTransaction",
    "Security",
    "SmtpNotifier",
    "build_email",
    "deliver_pending",
    "message_of",
    "notification_for",
    "render_invoice",
    "render_payment_failed",
    "render_payment_needs_action",
    "render_receipt",
    "render_summary",
    "resolve_locale",
]

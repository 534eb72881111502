"""Notifier port, its adapters (SMTP, in-memory outbox), rendering and delivery.

Also the kinds and ids of the notices about a payment's status, to find such
a notice in the outbox. Everything here needs only the standard library and
Babel, so it is imported eagerly.
"""

from __future__ import annotations

from recurbill.notices import (
    NEEDS_ACTION,
    PAYMENT_FAILED,
    needs_action_notice_id,
    payment_notice_id,
)
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
    "NEEDS_ACTION",
    "PAYMENT_FAILED",
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
    "needs_action_notice_id",
    "notification_for",
    "payment_notice_id",
    "render_invoice",
    "render_payment_failed",
    "render_payment_needs_action",
    "render_receipt",
    "render_summary",
    "resolve_locale",
]

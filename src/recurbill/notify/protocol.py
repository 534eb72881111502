"""The notifier port: what billing asks of whatever delivers its e-mail.

A notifier sends one :class:`Message` and returns, or raises
:class:`~recurbill.errors.DeliveryError` when the message could not be handed
over (recipient refused, server unreachable, timeout). Billing never sends
inside a transaction: it writes :class:`~recurbill.records.Notification` rows
with the events they announce (the *outbox*), and
:func:`recurbill.notify.delivery.deliver_pending` sends them after commit.

:class:`OutboxStorage` is the slice of the storage port that delivery needs;
every ``Storage`` satisfies it.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from recurbill.notify.message import Message
from recurbill.records import Notification

__all__ = ["Message", "Notifier", "OutboxStorage", "OutboxTransaction"]


class Notifier(Protocol):
    """Delivers e-mail. Adapters: ``SmtpNotifier``, and ``Outbox`` for tests."""

    def send(self, message: Message) -> None:
        """Hand *message* over for delivery or raise ``DeliveryError``.

        Returning means the message was accepted (by the SMTP server, for
        ``SmtpNotifier``); it does not mean it reached the inbox.
        """


class OutboxTransaction(Protocol):
    """The outbox methods of a storage transaction."""

    def commit(self) -> None:
        """Make the writes of this transaction durable."""

    def pending_notifications(
        self, *, limit: int = 100, skip_ids: Sequence[str] = ()
    ) -> list[Notification]:
        """Messages not sent yet (pending or failed, never withdrawn), oldest
        first, none of ``skip_ids``; a row that cannot be read raises
        ``UnreadableRecordError``."""

    def get_notification(
        self, account_id: str, notification_id: str, *, for_update: bool = False
    ) -> Notification:
        """An outbox message of this account; ``for_update`` locks it."""

    def update_notification(self, notification: Notification) -> None:
        """Replace a stored outbox message."""


class OutboxStorage(Protocol):
    """Storage as outbox delivery sees it (every ``Storage`` is one)."""

    def transaction(self) -> AbstractContextManager[OutboxTransaction]:
        """Open a unit of work; leaving it without ``commit()`` rolls back."""

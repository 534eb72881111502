"""An in-memory notifier for tests: records what was sent, fails when told to.

>>> from recurbill.notify.message import Message
>>> outbox = Outbox()
>>> outbox.fail_next(1, reason="mailbox full")
>>> message = Message(recipient="kari@example.no", subject="Faktura", text="Hei")
>>> try:
...     outbox.send(message)
... except DeliveryError as error:
...     print(error)
kari@example.no: mailbox full; the message was not sent (scripted by Outbox.fail_next)
>>> outbox.send(message)
>>> len(outbox.sent), outbox.sent[0].subject
(1, 'Faktura')
"""

from __future__ import annotations

from recurbill.errors import DeliveryError, InvalidInputError
from recurbill.notify.protocol import Message

__all__ = ["Outbox"]


class Outbox:
    """A ``Notifier`` that keeps every message in memory instead of sending it.

    ``sent`` lists the delivered messages in order, ``failed`` the ones a
    scripted failure refused. :meth:`fail_next` makes the next *count* sends
    raise :class:`~recurbill.errors.DeliveryError`, as a refused recipient or an
    unreachable server would.
    """

    def __init__(self) -> None:
        self._sent: list[Message] = []
        self._failed: list[Message] = []
        self._failures: list[str] = []

    @property
    def sent(self) -> tuple[Message, ...]:
        """Messages delivered so far, oldest first."""
        return tuple(self._sent)

    @property
    def failed(self) -> tuple[Message, ...]:
        """Messages whose send was refused by a scripted failure, oldest first."""
        return tuple(self._failed)

    def to(self, recipient: str) -> tuple[Message, ...]:
        """Messages delivered to *recipient*, oldest first."""
        return tuple(m for m in self._sent if m.recipient == recipient)

    def fail_next(self, count: int = 1, *, reason: str = "delivery failed") -> None:
        """Make the next *count* sends raise ``DeliveryError`` with *reason*."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise InvalidInputError(
                problem=f"fail_next count {count!r} is invalid",
                allowed="give a whole number of sends, 1 or more",
            )
        self._failures.extend([reason] * count)

    def clear(self) -> None:
        """Forget sent and failed messages and any scripted failures."""
        self._sent.clear()
        self._failed.clear()
        self._failures.clear()

    def send(self, message: Message) -> None:
        """Record *message* as sent, or raise the next scripted ``DeliveryError``."""
        if not isinstance(message, Message):
            raise InvalidInputError(
                problem=f"cannot send {type(message).__name__}",
                allowed="send a recurbill.notify.Message",
            )
        if self._failures:
            reason = self._failures.pop(0)
            self._failed.append(message)
            raise DeliveryError(
                problem=f"{message.recipient}: {reason}",
                allowed="the message was not sent (scripted by Outbox.fail_next)",
            )
        self._sent.append(message)

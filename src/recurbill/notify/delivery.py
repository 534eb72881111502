"""Send the outbox: the "after commit" half of transactional e-mail.

Billing writes a :class:`~recurbill.records.Notification` in the same
transaction as the event it announces (an invoice, a receipt), so a message is
queued if and only if the event happened. :func:`deliver_pending` then sends
what is queued, outside any transaction, and records the outcome:

* sent: ``status=SENT``, ``sent_at=now``; it is never sent again;
* failed: ``status=FAILED``, ``attempts + 1`` and ``last_error``; the next call
  tries again, until ``max_attempts`` is reached. A recipient refused for
  good (a :class:`~recurbill.errors.DeliveryError` with ``permanent=True``
  that names its ``recipients``: the mailbox does not exist) is not retried:
  it uses up the attempts at once. A permanent error of the server or its
  settings (a refused sender or login) counts as one attempt, like any other;
* withdrawn: a message taken back before it was sent (``status=WITHDRAWN``:
  a "payment needs confirmation" notice whose payment no longer waits, a
  "payment failed" one whose payment succeeded after all or whose invoice
  was closed another way) is never sent;
  one withdrawn while a send is under way counts as sent if the send
  succeeds, and is not tried again if it fails;
* unreadable: a stored message that cannot be read back (its row was changed
  by hand into what recurbill never writes) is set aside for the call and
  reported; the others are sent, and the row is left as it is, to be sent by
  the first call after it is corrected.

Delivery is *at least once*: if the process dies between the SMTP server's
"250 OK" and the write that records it, the next call sends that message
again. Each message carries a ``Message-ID`` made from its id, so mail clients
can recognise a repeat. Two deliverers running at once (a scheduled run that
overlaps a slow one) may both send a message, but each outcome is applied to
the message as it is stored at that moment, under its lock: a message one of
them gave up on or sent is not sent again, and nobody's retry count is lost.
"""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import format_datetime

import attrs

from recurbill.errors import (
    DeliveryError,
    InvalidInputError,
    RecurbillError,
    UnreadableRecordError,
)
from recurbill.inputs import has_attributes
from recurbill.notify.protocol import Message, Notifier, OutboxStorage
from recurbill.records import UNSENT, Notification, NotificationStatus

__all__ = [
    "FAILURES_IN_A_ROW",
    "MAX_UNREADABLE",
    "DeliveryResult",
    "deliver_pending",
    "message_of",
]

_NOT_ID = re.compile(r"[^A-Za-z0-9_-]+")


@attrs.frozen(kw_only=True)
class DeliveryResult:
    """What one :func:`deliver_pending` call did, as notification ids."""

    sent: tuple[str, ...] = ()
    """Sent now and recorded as ``SENT``."""
    failed: tuple[str, ...] = ()
    """Tried now and recorded as ``FAILED`` (retried by a later call)."""
    given_up: tuple[str, ...] = ()
    """Left alone: they already failed ``max_attempts`` times."""
    unreadable: tuple[str, ...] = ()
    """Left alone: stored rows that cannot be read back (ids as stored). Never
    sent and not changed: correct each row (or restore it from a backup) and
    a later call sends it."""

    @property
    def attempted(self) -> int:
        """How many sends were tried in this call."""
        return len(self.sent) + len(self.failed)


def _msg_id(notification: Notification) -> str:
    ident = _NOT_ID.sub("-", notification.id).strip("-") or "n"
    account = _NOT_ID.sub("-", notification.account_id).strip("-") or "a"
    return f"<{ident}.{account}@recurbill.invalid>"


def message_of(notification: Notification, *, now: datetime) -> Message:
    """The :class:`Message` that delivers *notification* at *now*.

    Adds a ``Date`` (from *now*) and a ``Message-ID`` (from the notification's
    id, stable across retries) unless the notification has its own.
    """
    headers = dict(notification.headers)
    lowered = {name.lower() for name in headers}
    if "date" not in lowered:
        headers["Date"] = format_datetime(now)
    if "message-id" not in lowered:
        headers["Message-ID"] = _msg_id(notification)
    return Message(
        recipient=notification.recipient,
        subject=notification.subject,
        text=notification.text,
        html=notification.html or None,
        headers=headers,
    )


def _check(
    storage: object, notifier: object, now: object, limit: object, max_attempts: object
) -> None:
    has_attributes(
        storage,
        "storage",
        ["transaction"],
        allowed="give the billing's storage (an OutboxStorage such as "
        "SqlStorage or InMemoryStorage), with a transaction() method",
    )
    has_attributes(
        notifier,
        "notifier",
        ["send"],
        allowed="give a Notifier (SmtpNotifier, or Outbox in tests), with a "
        "send(message) method",
    )
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise InvalidInputError(
            problem=f"now {now!r} is not an aware datetime",
            allowed="give an aware datetime, e.g. datetime.now(timezone.utc)",
        )
    for name, value in (("limit", limit), ("max_attempts", max_attempts)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError(
                problem=f"{name} {value!r} is invalid",
                allowed=f"{name} must be a whole number, 1 or more",
            )


@attrs.frozen
class _Due:
    """What one read of the outbox found (see :func:`_due`)."""

    due: list[Notification]
    given_up: list[Notification]
    unreadable: list[str]


def _due(storage: OutboxStorage, limit: int, max_attempts: int) -> _Due:
    """Up to *limit* sendable messages, the given-up ones read on the way, and
    the ids of the rows that could not be read.

    Messages that exhausted their attempts stay in the pending list of the
    storage port, so the read widens until it has *limit* sendable ones or
    has seen every unsent message: they can never block the queue. Nor can a
    row that cannot be read: the read is made again without it.
    """
    fetch = limit
    unreadable: list[str] = []
    with storage.transaction() as tx:
        while True:
            try:  # skip_ids only when there are some: older adapters lack it
                skip = {"skip_ids": list(unreadable)} if unreadable else {}
                batch = tx.pending_notifications(limit=fetch, **skip)
            except UnreadableRecordError as error:
                unreadable.append(_skippable(error, unreadable))
                continue
            unsent = [n for n in batch if n.status in UNSENT]
            due = [n for n in unsent if n.attempts < max_attempts]
            if len(due) >= limit or len(batch) < fetch:
                given_up = [n for n in unsent if n.attempts >= max_attempts]
                return _Due(due[:limit], given_up, unreadable)
            fetch *= 2


def _skippable(error: UnreadableRecordError, skipped: list[str]) -> str:
    """The id of the notification *error* could not read, to skip it; the
    error itself if it names none that a read could leave out."""
    key = error.fields.get("key")
    if error.fields.get("kind") != "notification" or not isinstance(key, str):
        raise error
    if key in skipped:
        raise error  # left out, yet read again: skipping cannot get past it
    if len(skipped) >= MAX_UNREADABLE:
        raise error  # each one costs a read of the outbox: stop, and say why
    return key


MAX_UNREADABLE = 100
"""A call that meets more outbox rows it cannot read than this stops with the
error (each one costs another read of the outbox): that many is no hand
edit, but a store to repair before e-mail goes out again."""

FAILURES_IN_A_ROW = 5
"""A call stops after this many failed sends in a row: the server is likely down."""


def _still_due(
    storage: OutboxStorage,
    notification: Notification,
    max_attempts: int,
    unreadable: list[str],
) -> Notification | None:
    """The message as stored now, if nobody sent, withdrew or gave up on it
    meanwhile and its row can still be read (else its id joins *unreadable*)."""
    with storage.transaction() as tx:
        try:
            current = tx.get_notification(notification.account_id, notification.id)
        except UnreadableRecordError:  # changed by hand since it was read
            unreadable.append(notification.id)
            return None
    if current.status not in UNSENT or current.attempts >= max_attempts:
        return None
    return current


def _record(
    storage: OutboxStorage,
    notification: Notification,
    *,
    now: datetime,
    error: str | None,
    give_up_at: int | None = None,
) -> None:
    """Apply one send's outcome to the message as stored now, under its lock.

    A failure counts one more attempt, or all of them (*give_up_at*) when it
    was a permanent refusal; a message withdrawn meanwhile stays withdrawn,
    unless this send went out (then it was sent).
    """
    with storage.transaction() as tx:
        current = tx.get_notification(
            notification.account_id, notification.id, for_update=True
        )
        if current.status is NotificationStatus.SENT:
            return  # another deliverer sent it too: it stays sent
        if current.status is NotificationStatus.WITHDRAWN and error is not None:
            return  # taken back meanwhile: never tried again
        if error is None:
            outcome = attrs.evolve(
                current,
                status=NotificationStatus.SENT,
                attempts=current.attempts + 1,
                last_error=None,
                sent_at=now,
            )
        else:
            outcome = attrs.evolve(
                current,
                status=NotificationStatus.FAILED,
                attempts=max(current.attempts + 1, give_up_at or 0),
                last_error=error,
            )
        tx.update_notification(outcome)
        tx.commit()


def deliver_pending(
    storage: OutboxStorage,
    notifier: Notifier,
    *,
    now: datetime,
    limit: int = 100,
    max_attempts: int = 10,
) -> DeliveryResult:
    """Send up to *limit* queued messages, oldest first, and record each outcome.

    Reads pending and failed messages in one transaction, sends each one with
    no transaction open, and records it in a transaction of its own right
    after: ``SENT`` with ``sent_at=now``, or ``FAILED`` with ``attempts + 1``
    and ``last_error`` (a permanent refusal uses up all *max_attempts*). A
    failed send never raises out of this function; storage errors do (the
    message then stays queued and is sent again). Messages that failed
    *max_attempts* times are left alone, and so are withdrawn ones (never
    sent). After :data:`FAILURES_IN_A_ROW` failed sends in a row the call
    stops; the rest wait for the next call.

    A stored message that cannot be read back
    (:class:`~recurbill.errors.UnreadableRecordError`) does not stop the
    others: it is never sent nor changed, and its id is reported in
    :attr:`DeliveryResult.unreadable`, by every call until the row is
    corrected (or restored from a backup); the first call after that sends it.

    Any storage and notifier with the methods used will do (no subclassing):
    one without ``transaction`` or ``send`` raises
    :class:`~recurbill.errors.InvalidInputError` naming what is missing, as
    do *now* not an aware datetime and *limit* or *max_attempts* not a whole
    number above zero. Nothing is read or sent then.
    """
    _check(storage, notifier, now, limit, max_attempts)
    read = _due(storage, limit, max_attempts)
    unreadable = read.unreadable
    sent: list[str] = []
    failed: list[str] = []
    in_a_row = 0
    for queued in read.due:
        if in_a_row >= FAILURES_IN_A_ROW:
            break
        notification = _still_due(storage, queued, max_attempts, unreadable)
        if notification is None:
            continue
        error: str | None = None
        permanent = False
        try:
            notifier.send(message_of(notification, now=now))
        except RecurbillError as exc:
            error = str(exc)
            # a recipient refused for good: not a server or settings problem,
            # which must not use up every queued message's attempts
            permanent = (
                isinstance(exc, DeliveryError)
                and bool(exc.fields.get("permanent"))
                and bool(exc.fields.get("recipients"))
            )
        except Exception as exc:  # a third-party notifier's own error
            error = f"{type(exc).__name__}: {exc}"
        give_up_at = max_attempts if permanent else None
        _record(storage, notification, now=now, error=error, give_up_at=give_up_at)
        if error is None:
            sent.append(notification.id)
            in_a_row = 0
        else:
            failed.append(notification.id)
            in_a_row += 1
    return DeliveryResult(
        sent=tuple(sent),
        failed=tuple(failed),
        given_up=tuple(n.id for n in read.given_up),
        unreadable=tuple(unreadable),
    )

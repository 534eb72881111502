"""deliver_pending: the outbox is sent after commit, retried, never sent twice."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

import attrs
import pytest
from smtp_servers import Collector, Server, free_port, serve

from recurbill.errors import DeliveryError, InvalidInputError, UnreadableRecordError
from recurbill.notify.delivery import (
    FAILURES_IN_A_ROW,
    MAX_UNREADABLE,
    deliver_pending,
    message_of,
)
from recurbill.notify.memory import Outbox
from recurbill.notify.message import Message
from recurbill.notify.protocol import OutboxStorage
from recurbill.notify.smtp import SmtpNotifier
from recurbill.records import Account, Notification, NotificationStatus
from recurbill.storage.memory import InMemoryStorage

T0 = datetime(2026, 3, 5, 6, 15, tzinfo=timezone.utc)


def note(n: int, recipient: str = "kari@example.no", **changes: object) -> Notification:
    fields: dict[str, object] = {
        "id": f"ntf_{n:03d}",
        "account_id": "acme",
        "kind": "receipt",
        "recipient": recipient,
        "subject": f"Kvittering {n} – Ærlig",
        "text": f"Takk for betalingen ({n}).",
        "html": f"<p>Takk for betalingen ({n}).</p>",
        "created_at": T0 + timedelta(seconds=n),
    }
    fields.update(changes)
    return Notification(**fields)  # type: ignore[arg-type]


def storage_with(*notifications: Notification) -> InMemoryStorage:
    storage = InMemoryStorage()
    with storage.transaction() as tx:
        tx.add_account(
            Account(
                id="acme", name="Acme AS", currency="NOK", summary_email="a@acme.no"
            )
        )
        tx.add_notifications(list(notifications))
        tx.commit()
    return storage


def stored(storage: InMemoryStorage) -> dict[str, Notification]:
    """The messages still waiting to be sent (pending or failed), by id."""
    with storage.transaction() as tx:
        unsent = {n.id: n for n in tx.pending_notifications(limit=1000)}
    return unsent


def test_in_memory_storage_is_an_outbox_storage() -> None:
    storage: OutboxStorage = InMemoryStorage()  # checked by mypy on the tests
    assert hasattr(storage, "transaction")


def test_sends_pending_oldest_first_and_marks_them_sent() -> None:
    storage = storage_with(note(2), note(1), note(3))
    outbox = Outbox()

    result = deliver_pending(storage, outbox, now=T0 + timedelta(hours=1))

    assert result.sent == ("ntf_001", "ntf_002", "ntf_003")
    assert result.failed == ()
    assert [m.subject for m in outbox.sent] == [
        "Kvittering 1 – Ærlig",
        "Kvittering 2 – Ærlig",
        "Kvittering 3 – Ærlig",
    ]
    assert stored(storage) == {}  # nothing left to send
    again = deliver_pending(storage, outbox, now=T0 + timedelta(hours=2))
    assert again.attempted == 0
    assert len(outbox.sent) == 3  # SENT messages are never sent again


def test_sent_message_carries_date_and_stable_message_id() -> None:
    storage = storage_with(note(1, headers={"Reply-To": "post@acme.no"}))
    outbox = Outbox()
    deliver_pending(storage, outbox, now=T0)

    [message] = outbox.sent
    assert message.headers["Date"] == "Thu, 05 Mar 2026 06:15:00 +0000"
    assert message.headers["Message-ID"] == "<ntf_001.acme@recurbill.invalid>"
    assert message.headers["Reply-To"] == "post@acme.no"
    assert message.html == "<p>Takk for betalingen (1).</p>"


def test_own_message_id_is_kept_and_empty_html_means_text_only() -> None:
    message = message_of(note(1, html="", headers={"Message-ID": "<x@y>"}), now=T0)
    assert message.headers["Message-ID"] == "<x@y>"
    assert message.html is None


def test_failed_send_is_recorded_not_raised_and_retried() -> None:
    storage = storage_with(note(1), note(2))
    outbox = Outbox()
    outbox.fail_next(1, reason="452 mailbox full")

    first = deliver_pending(storage, outbox, now=T0)

    assert first.sent == ("ntf_002",)
    assert first.failed == ("ntf_001",)
    failed = stored(storage)["ntf_001"]
    assert failed.status is NotificationStatus.FAILED
    assert failed.attempts == 1
    assert failed.last_error is not None
    assert "452 mailbox full" in failed.last_error
    assert failed.sent_at is None

    second = deliver_pending(storage, outbox, now=T0 + timedelta(minutes=5))
    assert second.sent == ("ntf_001",)
    assert [m.subject for m in outbox.sent] == [
        "Kvittering 2 – Ærlig",
        "Kvittering 1 – Ærlig",
    ]
    assert stored(storage) == {}


def test_gives_up_after_max_attempts_without_blocking_the_queue() -> None:
    storage = storage_with(
        *(note(n, attempts=3, status="failed") for n in range(1, 6)), note(9)
    )
    outbox = Outbox()

    result = deliver_pending(storage, outbox, now=T0, limit=2, max_attempts=3)

    assert result.sent == ("ntf_009",)
    assert result.given_up == tuple(f"ntf_{n:03d}" for n in range(1, 6))
    assert [m.subject for m in outbox.sent] == ["Kvittering 9 – Ærlig"]


def test_limit_bounds_one_call() -> None:
    storage = storage_with(*(note(n) for n in range(1, 6)))
    outbox = Outbox()
    assert deliver_pending(storage, outbox, now=T0, limit=2).sent == (
        "ntf_001",
        "ntf_002",
    )
    assert len(stored(storage)) == 3


def test_a_notifier_that_raises_anything_is_recorded() -> None:
    class Broken:
        def send(self, message: Message) -> None:
            raise RuntimeError("boom")

    storage = storage_with(note(1))
    result = deliver_pending(storage, Broken(), now=T0)
    assert result.failed == ("ntf_001",)
    assert stored(storage)["ntf_001"].last_error == "RuntimeError: boom"


def test_a_message_that_cannot_be_built_is_recorded_as_failed() -> None:
    storage = storage_with(note(1, subject="two\r\nBcc: x@evil.example"))
    outbox = Outbox()
    result = deliver_pending(storage, outbox, now=T0)
    assert result.failed == ("ntf_001",)
    assert "line break" in (stored(storage)["ntf_001"].last_error or "")
    assert outbox.sent == ()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"now": datetime(2026, 3, 5)}, "aware"),
        ({"now": T0, "limit": 0}, "limit"),
        ({"now": T0, "max_attempts": True}, "max_attempts"),
    ],
)
def test_bad_arguments_are_refused(options: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        deliver_pending(InMemoryStorage(), Outbox(), **options)  # type: ignore[arg-type]


@attrs.frozen
class _OnlyTransaction:
    """A storage that is no Storage class: the one method delivery calls."""

    inner: InMemoryStorage

    def transaction(self) -> contextlib.AbstractContextManager[object]:
        return self.inner.transaction()


@attrs.frozen
class _OnlySend:
    """A notifier that is no Notifier class: it keeps what it is given."""

    sent: list[Message] = attrs.Factory(list)

    def send(self, message: Message) -> None:
        self.sent.append(message)


def test_any_storage_and_notifier_with_the_methods_used_will_do() -> None:
    storage = storage_with(note(1))
    notifier = _OnlySend()
    result = deliver_pending(_OnlyTransaction(storage), notifier, now=T0)  # type: ignore[arg-type]
    assert result.sent == ("ntf_001",)
    assert [m.subject for m in notifier.sent] == ["Kvittering 1 – Ærlig"]


@pytest.mark.parametrize(
    ("storage", "notifier", "match"),
    [
        (None, Outbox(), r"storage None \(NoneType\) has no transaction; give"),
        (Outbox(), Outbox(), r"storage .* \(Outbox\) has no transaction; give"),
        ("db", Outbox(), "storage 'db' .* OutboxStorage"),
        ("storage", None, r"notifier None \(NoneType\) has no send; give a Notifier"),
        ("storage", InMemoryStorage(), r"\(InMemoryStorage\) has no send; give"),
    ],
)
def test_a_storage_or_notifier_of_the_wrong_kind_is_named(
    storage: object, notifier: object, match: str
) -> None:
    real = storage_with(note(1))
    with pytest.raises(InvalidInputError, match=match):
        deliver_pending(
            real if storage == "storage" else storage,  # type: ignore[arg-type]
            notifier,  # type: ignore[arg-type]
            now=T0,
        )
    assert set(stored(real)) == {"ntf_001"}  # nothing sent or changed
    assert stored(real)["ntf_001"].attempts == 0


def test_outbox_over_real_smtp_refused_then_sent_exactly_once() -> None:
    storage = storage_with(note(1, "refused@example.no"), note(2))
    refusing = Collector(
        frozenset({"refused@example.no"}),
        reply="450 4.2.1 <{address}>: mailbox busy, try again later",
    )
    with serve(refusing) as server:
        notifier = notifier_for(server)
        first = deliver_pending(storage, notifier, now=T0)
        assert first.sent == ("ntf_002",)
        assert first.failed == ("ntf_001",)
    failed = stored(storage)["ntf_001"]
    assert failed.status is NotificationStatus.FAILED
    assert failed.attempts == 1
    assert "refused@example.no" in (failed.last_error or "")

    accepting = Collector()
    with serve(accepting) as server:
        notifier = notifier_for(server)
        assert deliver_pending(storage, notifier, now=T0).sent == ("ntf_001",)
        assert deliver_pending(storage, notifier, now=T0).attempted == 0
    assert [r.rcpt_tos for r in accepting.received] == [["refused@example.no"]]
    assert [r.rcpt_tos for r in refusing.received] == [["kari@example.no"]]


def test_unreachable_server_leaves_the_message_queued(smtp_server: Server) -> None:
    storage = storage_with(note(1))
    down = SmtpNotifier(
        "127.0.0.1", free_port(), sender="billing@acme.no", security="none"
    )
    result = deliver_pending(storage, down, now=T0)
    assert result.failed == ("ntf_001",)
    assert stored(storage)["ntf_001"].attempts == 1

    deliver_pending(storage, notifier_for(smtp_server), now=T0)
    deliver_pending(storage, notifier_for(smtp_server), now=T0)
    assert len(smtp_server.received) == 1
    email = smtp_server.received[0].email
    assert email["Subject"] == "Kvittering 1 – Ærlig"
    assert email["Message-ID"] == "<ntf_001.acme@recurbill.invalid>"


def notifier_for(server: Server) -> SmtpNotifier:
    return SmtpNotifier(
        server.host,
        server.port,
        sender="Acme AS <billing@acme.no>",
        security="none",
        local_hostname="localhost",
    )


def test_delivery_error_is_what_outbox_raises() -> None:
    outbox = Outbox()
    outbox.fail_next(2)
    message = message_of(note(1), now=T0)
    for _ in range(2):
        with pytest.raises(DeliveryError):
            outbox.send(message)
    outbox.send(message)
    assert len(outbox.failed) == 2
    assert outbox.to("kari@example.no") == (message,)


def test_outbox_on_sqlite_storage_is_retried_and_sent_once(tmp_path: Path) -> None:
    from recurbill.storage.sql import SqlStorage

    with SqlStorage.sqlite(tmp_path / "outbox.sqlite") as storage:
        storage.migrate()
        with storage.transaction() as tx:
            tx.add_account(
                Account(
                    id="acme", name="Acme AS", currency="NOK", summary_email="a@acme.no"
                )
            )
            tx.add_notifications([note(1), note(2)])
            tx.commit()
        outbox = Outbox()
        outbox.fail_next(1, reason="421 busy")

        first = deliver_pending(storage, outbox, now=T0)
        assert (first.failed, first.sent) == (("ntf_001",), ("ntf_002",))
        with storage.transaction() as tx:
            [queued] = tx.pending_notifications()
        assert (queued.id, queued.status, queued.attempts) == (
            "ntf_001",
            NotificationStatus.FAILED,
            1,
        )
        assert deliver_pending(storage, outbox, now=T0).sent == ("ntf_001",)
        assert deliver_pending(storage, outbox, now=T0).attempted == 0
        assert [m.subject for m in outbox.sent] == [
            "Kvittering 2 – Ærlig",
            "Kvittering 1 – Ærlig",
        ]


def test_a_permanent_refusal_is_not_tried_again() -> None:
    storage = storage_with(note(1, "nobody@example.no"), note(2))
    with serve(Collector(frozenset({"nobody@example.no"}))) as server:  # 550
        notifier = notifier_for(server)
        first = deliver_pending(storage, notifier, now=T0, max_attempts=10)
        assert (first.sent, first.failed) == (("ntf_002",), ("ntf_001",))
        again = deliver_pending(storage, notifier, now=T0, max_attempts=10)
    assert again.attempted == 0
    assert again.given_up == ("ntf_001",)
    refused = stored(storage)["ntf_001"]
    assert (refused.status, refused.attempts) == (NotificationStatus.FAILED, 10)
    assert "mailbox unavailable" in (refused.last_error or "")


def test_a_call_stops_after_failures_in_a_row() -> None:
    class Down:
        calls = 0

        def send(self, message: Message) -> None:
            Down.calls += 1
            raise DeliveryError(
                problem="the SMTP server cannot be reached",
                allowed="check the host",
                permanent=False,
                recipients=(),
            )

    storage = storage_with(*(note(n) for n in range(1, 9)))
    result = deliver_pending(storage, Down(), now=T0)
    assert Down.calls == FAILURES_IN_A_ROW
    assert len(result.failed) == FAILURES_IN_A_ROW
    untouched = [n for n in stored(storage).values() if n.attempts == 0]
    assert len(untouched) == 8 - FAILURES_IN_A_ROW  # still queued, for the next call


class _Refusing:
    """A notifier whose server refuses every recipient for good (550)."""

    def send(self, message: Message) -> None:
        raise DeliveryError(
            problem="550 mailbox unavailable",
            allowed="check the address",
            permanent=True,
            recipients=(message.recipient,),
        )


def test_two_deliverers_never_revive_or_resend_a_message_one_gave_up() -> None:
    """B read the queue before A gave up on a message; B must not send or revive it."""
    storage = storage_with(note(1), note(2))

    class Slow:
        """Deliverer B: before its first send, deliverer A runs to the end."""

        def __init__(self) -> None:
            self.outbox = Outbox()
            self.first = True

        def send(self, message: Message) -> None:
            if self.first:
                self.first = False
                deliver_pending(storage, _Refusing(), now=T0, max_attempts=3)
            self.outbox.send(message)

    b = Slow()
    result = deliver_pending(storage, b, now=T0, max_attempts=3)
    # B's first message was read before A refused it for good: B sends it once
    # (at least once), its outcome lands on the stored row; the second message,
    # given up by A before B reached it, is neither sent nor revived
    with storage.transaction() as tx:
        first = tx.get_notification("acme", "ntf_001")
        second = tx.get_notification("acme", "ntf_002")
    assert [m.subject for m in b.outbox.sent] == [first.subject]
    assert result.sent == ("ntf_001",)
    assert first.status is NotificationStatus.SENT
    assert (second.status, second.attempts) == (NotificationStatus.FAILED, 3)
    assert deliver_pending(storage, b, now=T0, max_attempts=3).attempted == 0


def test_a_late_failure_does_not_revive_a_message_another_deliverer_gave_up() -> None:
    storage = storage_with(note(1))

    class SlowAndFailing:
        def send(self, message: Message) -> None:
            deliver_pending(storage, _Refusing(), now=T0, max_attempts=3)  # A
            raise DeliveryError(
                problem="421 try later", allowed="retry", permanent=False, recipients=()
            )

    deliver_pending(storage, SlowAndFailing(), now=T0, max_attempts=3)  # B
    with storage.transaction() as tx:
        after = tx.get_notification("acme", "ntf_001")
    assert after.status is NotificationStatus.FAILED
    assert after.attempts == 4  # A's three and B's one: still given up
    assert "421" in (after.last_error or "")
    assert deliver_pending(storage, Outbox(), now=T0, max_attempts=3).attempted == 0


def _withdraw(storage: InMemoryStorage, notification_id: str) -> None:
    """Take a message back, as billing does once what it asks for is moot."""
    with storage.transaction() as tx:
        current = tx.get_notification("acme", notification_id, for_update=True)
        tx.update_notification(
            attrs.evolve(current, status=NotificationStatus.WITHDRAWN)
        )
        tx.commit()


def test_a_withdrawn_message_is_never_sent() -> None:
    storage = storage_with(note(1), note(2, status=NotificationStatus.FAILED))
    _withdraw(storage, "ntf_002")
    outbox = Outbox()
    result = deliver_pending(storage, outbox, now=T0)
    assert result.sent == ("ntf_001",)
    assert result.given_up == ()
    assert [m.subject for m in outbox.sent] == [note(1).subject]
    assert deliver_pending(storage, outbox, now=T0).attempted == 0


def test_a_message_withdrawn_after_the_queue_was_read_is_not_sent() -> None:
    storage = storage_with(note(1), note(2))

    class Withdrawing:
        """Sends; while the first message goes out, the second is withdrawn."""

        def __init__(self) -> None:
            self.outbox = Outbox()

        def send(self, message: Message) -> None:
            _withdraw(storage, "ntf_002")
            self.outbox.send(message)

    notifier = Withdrawing()
    result = deliver_pending(storage, notifier, now=T0)
    assert result.sent == ("ntf_001",)
    assert [m.subject for m in notifier.outbox.sent] == [note(1).subject]
    with storage.transaction() as tx:
        after = tx.get_notification("acme", "ntf_002")
    assert (after.status, after.attempts) == (NotificationStatus.WITHDRAWN, 0)


@pytest.mark.parametrize("fails", [False, True])
def test_a_message_withdrawn_during_its_send_keeps_what_happened(fails: bool) -> None:
    """Sent, it was sent (at least once); failed, it is not tried again."""
    storage = storage_with(note(1))

    class WithdrawnMeanwhile:
        def send(self, message: Message) -> None:
            _withdraw(storage, "ntf_001")
            if fails:
                raise DeliveryError(problem="421 try later", allowed="retry")

    result = deliver_pending(storage, WithdrawnMeanwhile(), now=T0)
    with storage.transaction() as tx:
        after = tx.get_notification("acme", "ntf_001")
    if fails:
        assert result.failed == ("ntf_001",)
        assert (after.status, after.attempts) == (NotificationStatus.WITHDRAWN, 0)
    else:
        assert result.sent == ("ntf_001",)
        assert (after.status, after.sent_at) == (NotificationStatus.SENT, T0)
    assert deliver_pending(storage, Outbox(), now=T0).attempted == 0


def test_a_refused_sender_or_login_counts_one_attempt_not_all() -> None:
    class Misconfigured:
        def send(self, message: Message) -> None:
            raise DeliveryError(
                problem="553 5.7.1 sender address rejected",
                allowed="use a sender address the server accepts",
                permanent=True,  # for good, but about the settings, not the message
                recipients=(),
            )

    storage = storage_with(note(1), note(2))
    first = deliver_pending(storage, Misconfigured(), now=T0, max_attempts=10)
    assert first.failed == ("ntf_001", "ntf_002")
    assert {n.attempts for n in stored(storage).values()} == {1}
    fixed = deliver_pending(storage, Outbox(), now=T0, max_attempts=10)
    assert fixed.sent == ("ntf_001", "ntf_002")  # nothing was thrown away


class _Unskippable:
    """An outbox whose reads raise UnreadableRecordError with *fields*,
    whatever they are asked to skip (an adapter that cannot leave the row out)."""

    def __init__(self, **fields: object) -> None:
        self.fields = fields
        self.reads = 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[_Unskippable]:
        yield self

    def pending_notifications(
        self, *, limit: int = 100, skip_ids: Sequence[str] = ()
    ) -> list[Notification]:
        self.reads += 1
        if self.reads > 2:
            return []  # a caller that loops on: the test fails, not hangs
        raise UnreadableRecordError(account="acme", reason="headers: x", **self.fields)


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "notification", "key": "ntf_001"},  # left out, read again
        {"kind": "notification", "key": None},  # no id to leave out
        {"kind": "account", "key": "acme"},  # not an outbox message
    ],
)
def test_an_unreadable_row_that_skipping_cannot_pass_raises(
    fields: dict[str, object],
) -> None:
    storage = _Unskippable(**fields)
    outbox = Outbox()
    with pytest.raises(UnreadableRecordError) as raised:
        deliver_pending(storage, outbox, now=T0)  # type: ignore[arg-type]
    assert raised.value.fields == {"account": "acme", "reason": "headers: x", **fields}
    assert outbox.sent == ()


class _ManyUnreadable:
    """An outbox of *bad* rows it cannot read, then nothing: each read names
    the first row not yet skipped, as an adapter would."""

    def __init__(self, bad: int) -> None:
        self.bad = [f"ntf_{n:04d}" for n in range(bad)]
        self.reads = 0

    @contextlib.contextmanager
    def transaction(self) -> Iterator[_ManyUnreadable]:
        yield self

    def pending_notifications(
        self, *, limit: int = 100, **skip: Sequence[str]
    ) -> list[Notification]:
        self.reads += 1
        if self.reads == 1:
            assert skip == {}  # an adapter without skip_ids keeps working
        left = [key for key in self.bad if key not in skip.get("skip_ids", ())]
        if not left:
            return []
        raise UnreadableRecordError(
            kind="notification", key=left[0], account="acme", reason="headers: x"
        )


def test_up_to_max_unreadable_rows_are_set_aside_then_delivery_stops() -> None:
    """Each row set aside costs a read of the outbox, so a call stops with the
    error once it has met more than MAX_UNREADABLE of them."""
    few = deliver_pending(
        _ManyUnreadable(MAX_UNREADABLE),  # type: ignore[arg-type]
        Outbox(),
        now=T0,
    )
    assert len(few.unreadable) == MAX_UNREADABLE
    many = _ManyUnreadable(MAX_UNREADABLE + 1)
    with pytest.raises(UnreadableRecordError) as raised:
        deliver_pending(many, Outbox(), now=T0)  # type: ignore[arg-type]
    assert raised.value.fields["key"] == many.bad[MAX_UNREADABLE]
    assert many.reads == MAX_UNREADABLE + 1

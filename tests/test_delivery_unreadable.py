"""An outbox row that cannot be read never stops the delivery of the others.

The row is corrupted with raw SQL (as a hand edit would): deliver_pending
sends every other message in order, reports the one it could not read, never
hands it to the notifier, leaves its row as it is, and sends it once the row
is corrected.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
import sqlalchemy as sa

from recurbill.notify.delivery import deliver_pending
from recurbill.notify.memory import Outbox
from recurbill.notify.message import Message
from recurbill.records import Account, Notification
from recurbill.storage.sql import SqlStorage

T0 = datetime(2027, 2, 1, 6, 15, tzinfo=timezone.utc)
NOW = T0 + timedelta(hours=1)


def _note(n: int) -> Notification:
    return Notification(
        id=f"ntf_{n}",
        account_id="acme",
        kind="receipt",
        recipient=f"kunde{n}@example.no",
        subject=f"Kvittering {n}",
        text=f"Takk for betalingen ({n}).",
        html="",
        created_at=T0 + timedelta(minutes=n),
    )


def _storage(engine: sa.Engine, count: int) -> SqlStorage:
    """Storage holding the messages ntf_1 to ntf_<count>, queued in that order."""
    storage = SqlStorage(engine)
    storage.migrate()
    account = Account(
        id="acme", name="Acme AS", currency="NOK", summary_email="post@acme.no"
    )
    with storage.transaction() as tx:
        tx.add_account(account)
        tx.add_notifications([_note(n) for n in range(1, count + 1)])
        tx.commit()
    return storage


@attrs.frozen
class Corruption:
    """A column of a notification row set to what recurbill never writes."""

    column: str
    value: str

    def apply(self, engine: sa.Engine, n: int) -> str:
        """Corrupt ntf_<n>; its id as stored afterwards."""
        _set(engine, f"ntf_{n}", self.column, self.value)
        return self.value if self.column == "id" else f"ntf_{n}"

    def undo(self, engine: sa.Engine, n: int, key: str) -> None:
        """Set the column of the row stored as *key* back to what was written."""
        original = {"id": f"ntf_{n}", "created_at": _note(n).created_at}
        value = original.get(self.column, "{}")  # headers: no headers
        _set(engine, key, self.column, value)


BOTH = {
    "headers that are not JSON": Corruption("headers", "{"),
    "headers that are no mapping": Corruption("headers", "[1]"),
    "an empty id": Corruption("id", ""),
}
SQLITE = {"an instant that is no instant": Corruption("created_at", "noon")}
CASES = [
    *(pytest.param(db, c, id=f"{db}-{name}") for db in ("sqlite", "postgresql")
      for name, c in BOTH.items()),
    *(pytest.param("sqlite", c, id=f"sqlite-{name}") for name, c in SQLITE.items()),
]  # fmt: skip


def _set(engine: sa.Engine, key: str, column: str, value: object) -> None:
    with engine.begin() as conn:
        statement = f"UPDATE notifications SET {column} = :value WHERE id = :id"
        assert conn.execute(sa.text(statement), {"value": value, "id": key}).rowcount


def _rows(engine: sa.Engine) -> dict[str, dict[str, Any]]:
    """Every notification row as stored (raw text on SQLite), by id."""
    with engine.connect() as conn:
        found = conn.execute(sa.text("SELECT * FROM notifications")).mappings()
        return {row["id"]: dict(row) for row in found}


def _subjects(outbox: Outbox) -> list[str]:
    return [message.subject for message in outbox.sent]


@pytest.mark.parametrize(("engine", "corruption"), CASES, indirect=["engine"])
def test_the_others_are_sent_and_the_row_waits_until_corrected(
    engine: sa.Engine, corruption: Corruption
) -> None:
    storage = _storage(engine, 5)
    key = corruption.apply(engine, 3)
    before = _rows(engine)[key]
    outbox = Outbox()

    result = deliver_pending(storage, outbox, now=NOW)

    assert result.sent == ("ntf_1", "ntf_2", "ntf_4", "ntf_5")
    assert _subjects(outbox) == [f"Kvittering {n}" for n in (1, 2, 4, 5)]
    assert (result.unreadable, result.failed, result.given_up) == ((key,), (), ())
    assert _rows(engine)[key] == before  # left as it is
    again = deliver_pending(storage, outbox, now=NOW)
    assert (again.attempted, again.unreadable) == (0, (key,))  # reported again
    assert _rows(engine)[key] == before

    corruption.undo(engine, 3, key)
    fixed = deliver_pending(storage, outbox, now=NOW + timedelta(minutes=5))

    assert (fixed.sent, fixed.unreadable) == (("ntf_3",), ())
    assert _subjects(outbox)[-1] == "Kvittering 3"
    assert len(outbox.sent) == 5


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
def test_unreadable_rows_use_up_no_part_of_the_limit(engine: sa.Engine) -> None:
    storage = _storage(engine, 5)
    for n in (1, 3):
        _set(engine, f"ntf_{n}", "headers", "[")
    outbox = Outbox()

    result = deliver_pending(storage, outbox, now=NOW, limit=2)

    assert result.sent == ("ntf_2", "ntf_4")
    assert result.unreadable == ("ntf_1", "ntf_3")
    rest = deliver_pending(storage, outbox, now=NOW)
    assert (rest.sent, rest.unreadable) == (("ntf_5",), ("ntf_1", "ntf_3"))
    assert _subjects(outbox) == ["Kvittering 2", "Kvittering 4", "Kvittering 5"]


@attrs.frozen
class _Editing:
    """A notifier that, while it sends ntf_1, corrupts ntf_3 (a hand edit
    between the outbox read and that message's send)."""

    engine: sa.Engine
    outbox: Outbox = attrs.field(factory=Outbox)

    def send(self, message: Message) -> None:
        if message.subject == "Kvittering 1":
            _set(self.engine, "ntf_3", "headers", "[1]")
        self.outbox.send(message)


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"], indirect=True)
def test_a_row_that_becomes_unreadable_during_the_call_is_set_aside(
    engine: sa.Engine,
) -> None:
    storage = _storage(engine, 4)
    notifier = _Editing(engine)

    result = deliver_pending(storage, notifier, now=NOW)

    assert result.sent == ("ntf_1", "ntf_2", "ntf_4")
    assert result.unreadable == ("ntf_3",)
    assert _subjects(notifier.outbox) == [
        "Kvittering 1",
        "Kvittering 2",
        "Kvittering 4",
    ]
    assert _rows(engine)["ntf_3"]["headers"] == "[1]"

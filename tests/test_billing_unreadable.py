"""A stored template row that cannot be read never stops the run for anyone else.

The row is corrupted with raw SQL (as a hand edit would): the run issues every
other due template, of its account and of the others, reports the one it
could not read, leaves its row as it is, and issues it once the row is right.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from billing_helpers import World, at, make_world
from recurbill.errors import UnreadableRecordError
from recurbill.notify.render import render_summary
from recurbill.storage.engine import create_engine
from recurbill.storage.sql import SqlStorage

DAY = date(2027, 1, 31)


@pytest.fixture
def world(engine: sa.Engine) -> World:
    storage = SqlStorage(engine)
    storage.migrate()
    return make_world(storage=storage, chunk_size=2)


def _row(engine: sa.Engine, template_id: str) -> dict[str, Any]:
    """The template's row as stored."""
    with engine.connect() as conn:
        query = sa.text("SELECT * FROM templates WHERE id = :id")
        return dict(conn.execute(query, {"id": template_id}).mappings().one())


def _set(engine: sa.Engine, template_id: str, column: str, value: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE templates SET {column} = :value WHERE id = :id"),
            {"value": value, "id": template_id},
        )


def _schedule(change: dict[str, str]) -> Callable[[dict[str, Any]], str]:
    return lambda row: json.dumps({**json.loads(row["schedule"]), **change})


CORRUPTIONS: dict[str, tuple[str, Callable[[dict[str, Any]], str], str]] = {
    "lines that are not JSON": ("lines", lambda row: "[{not json", "lines: "),
    "no lines": ("lines", lambda row: "[]", "lines: no invoice line"),
    "an unknown period": (
        "schedule",
        _schedule({"period": "fortnightly"}),
        "schedule: period 'fortnightly'",
    ),
    "a start that is no date": (
        "schedule",
        _schedule({"start": "2027-02-30"}),
        "schedule: ",
    ),
}


def _templates(world: World) -> list[str]:
    customers = [world.customer(f"Kunde {n}") for n in range(5)]
    return [world.template(c, start=DAY) for c in customers]


def _other_account(world: World) -> World:
    """A second account of the same service, with one due template."""
    account = world.billing.create_account(
        account_id="vik",
        name="Vik Vekst AS",
        currency="NOK",
        locale="nb_NO",
        timezone="Europe/Oslo",
        summary_email="post@vikvekst.no",
    )
    other = World(
        billing=world.billing,
        storage=world.storage,
        gateway=world.gateway,
        account=account,
    )
    other.template(other.customer("Vik Kunde"), start=DAY)
    return other


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
def test_an_unreadable_template_is_reported_and_the_rest_are_issued(
    world: World, engine: sa.Engine, corruption: str
) -> None:
    ids = _templates(world)
    other = _other_account(world)
    bad = ids[2]  # the first of the second chunk: one before it, two after
    column, corrupt, reason = CORRUPTIONS[corruption]
    good = _row(engine, bad)
    _set(engine, bad, column, corrupt(good))
    stored = _row(engine, bad)

    mine, theirs = world.billing.run(at(DAY, 7))
    assert sorted(line.invoice_number for line in mine.issued) == [
        f"INV-{n:06d}" for n in range(1, 5)
    ]
    assert len(theirs.issued) == 1
    assert theirs.failed == ()
    assert len(world.gateway.ledger) == 5
    (failed,) = mine.failed
    assert failed.template_id == bad
    assert failed.customer_name == "Kunde 2"
    assert failed.error == "UnreadableRecordError"
    assert failed.problem.startswith(
        f"stored template {bad!r} of account 'fjord' could not be read ({reason}"
    )
    assert _row(engine, bad) == stored  # left as it is
    summary = render_summary(world.account, mine)
    assert "Lagrede data kunne ikke leses" in summary.text
    assert f"Kunde 2, {bad}: stored template" in summary.text

    _set(engine, bad, column, good[column])  # the row is corrected
    mine, theirs = world.billing.run(at(DAY + date.resolution, 7))
    assert [(line.issue_date, line.invoice_number) for line in mine.issued] == [
        (DAY, "INV-000005")
    ]
    assert mine.failed == ()
    assert theirs.issued == ()
    assert len(world.gateway.ledger) == 6  # each card charged exactly once
    assert other.storage_invoices()[0].issue_date == DAY


def test_every_unreadable_template_is_reported_once(
    world: World, engine: sa.Engine
) -> None:
    ids = _templates(world)
    for bad in (ids[0], ids[1], ids[4]):  # first, a whole chunk, last
        _set(engine, bad, "lines", "null")
    (report,) = world.billing.run(at(DAY, 7))
    assert sorted(line.invoice_number for line in report.issued) == [
        "INV-000001",
        "INV-000002",
    ]
    assert sorted(line.template_id for line in report.failed) == sorted(
        [ids[0], ids[1], ids[4]]
    )  # the second pass meets them again, the report lists them once


def test_due_templates_raises_with_the_templates_read_before(
    world: World, engine: sa.Engine
) -> None:
    ids = _templates(world)
    _set(engine, ids[3], "lines", "{")
    with world.storage.transaction() as tx:
        before = tx.due_templates(at(DAY, 7), limit=3)
        with pytest.raises(UnreadableRecordError) as raised:
            tx.due_templates(at(DAY, 7), after=(before[0].next_due_at, ids[0]))
        with pytest.raises(UnreadableRecordError):
            tx.get_template(world.account.id, ids[3])
    error = raised.value
    assert error.fields["key"] == ids[3]
    assert error.fields["account"] == world.account.id
    assert error.read == tuple(before[1:])  # the chunk up to it, in due order
    assert error.next_due_at == before[0].next_due_at


@pytest.fixture
def sqlite_world(tmp_path: Path) -> Iterator[tuple[World, sa.Engine]]:
    """A world on SQLite, where instants are text a hand edit can break."""
    engine = create_engine(f"sqlite:///{tmp_path / 'billing.sqlite3'}")
    storage = SqlStorage(engine)
    storage.migrate()
    try:
        yield make_world(storage=storage, chunk_size=2), engine
    finally:
        engine.dispose()


def test_an_instant_that_is_no_instant_is_reported_too(
    sqlite_world: tuple[World, sa.Engine],
) -> None:
    world, engine = sqlite_world
    ids = _templates(world)
    _set(engine, ids[1], "created_at", "yesterday")
    (report,) = world.billing.run(at(DAY, 7))
    assert len(report.issued) == 4
    (failed,) = report.failed
    assert failed.template_id == ids[1]
    assert failed.customer_name == "Kunde 1"
    assert (
        "could not be read (created_at: Invalid isoformat string: 'yesterday')"
        in failed.problem
    )


@pytest.mark.parametrize(
    "due",
    [
        "2027-01-30 by hand",  # cannot be read at all, still sorts as due
        "2027-01-30T06:15:00.000000+00:00",  # ISO text another program wrote
        "2027-01-30 07:15:00.000000+01:00",  # an offset: sorts after its UTC text
    ],
)
def test_a_row_whose_due_instant_reads_oddly_is_set_aside_too(
    sqlite_world: tuple[World, sa.Engine], due: str
) -> None:
    """The walk goes on past the row by its id, not by its due instant, so a
    due instant that cannot be read, or that does not sort as recurbill's own
    text would, neither stops the run nor brings the row back forever."""
    world, engine = sqlite_world
    ids = _templates(world)
    _set(engine, ids[1], "next_due_at", due)
    _set(engine, ids[1], "lines", "[{not json")  # and unreadable besides
    reports: list[Any] = []
    runner = threading.Thread(
        target=lambda: reports.extend(world.billing.run(at(DAY, 7))), daemon=True
    )
    runner.start()
    runner.join(timeout=60)
    assert not runner.is_alive(), "the run went round the unreadable row forever"
    (report,) = reports
    assert len(report.issued) == 4
    assert [line.template_id for line in report.failed] == [ids[1]]


@pytest.mark.parametrize("stored_id", ["", "x" * 250])
def test_a_row_with_an_id_recurbill_never_writes_is_set_aside_too(
    sqlite_world: tuple[World, sa.Engine], stored_id: str
) -> None:
    """The run skips the row by the id it holds, whatever that is."""
    world, engine = sqlite_world
    ids = _templates(world)
    _set(engine, ids[1], "lines", "[{not json")
    _set(engine, ids[1], "id", stored_id)
    (report,) = world.billing.run(at(DAY, 7))
    assert len(report.issued) == 4
    assert [line.template_id for line in report.failed] == [stored_id]


def test_numbers_follow_due_dates_past_an_unreadable_template(
    world: World, engine: sa.Engine
) -> None:
    start = DAY - timedelta(days=30)  # missed days: a catch-up
    weekly = world.template(world.customer("Uke"), start=start, period="week")
    bad = world.template(world.customer("Feil"), start=start + timedelta(days=9))
    world.template(world.customer("Senere"), start=start + timedelta(days=12))
    _set(engine, bad, "lines", "{")
    (report,) = world.billing.run(at(DAY, 7))
    assert [line.template_id for line in report.failed] == [bad]
    issued = sorted(report.issued, key=lambda line: line.invoice_number)
    dates = [line.issue_date for line in issued]
    assert dates == sorted(dates)  # the walk's order, past the unreadable row
    with world.storage.transaction() as tx:
        occurrences = tx.list_occurrences(world.account.id, weekly)
    assert [o.on for o in occurrences] == [start + timedelta(weeks=n) for n in range(5)]

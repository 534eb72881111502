"""A catch-up run numbers its invoices in issue-date order, as daily runs would.

Numbers are given by due instant, then template id, across the whole walk of
due templates, whatever the chunk size: a run after missed days leaves the
same invoices, numbers and report lines as a run on each of those days.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_helpers import World, at, make_world
from recurbill.records import CollectionMethod, RecurringTemplate, RunReport
from recurbill.storage.memory import InMemoryStorage
from recurbill.storage.sql import SqlStorage


@pytest.fixture(params=["memory", "sqlite"])
def storage_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _world(kind: str, tmp_path: Path, chunk_size: int) -> Iterator[World]:
    if kind == "memory":
        yield make_world(chunk_size=chunk_size)
        return
    with SqlStorage.from_url(f"sqlite:///{tmp_path / 'billing.sqlite3'}") as storage:
        storage.migrate()
        yield make_world(storage=storage, chunk_size=chunk_size)


def _numbered(report: RunReport) -> list[tuple[str, str]]:
    return [(i.invoice_number, i.issue_date.isoformat()) for i in report.issued]


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 1000])
def test_a_catch_up_numbers_two_weekly_templates_in_date_order(
    storage_kind: str, tmp_path: Path, chunk_size: int
) -> None:
    for world in _world(storage_kind, tmp_path, chunk_size):
        world.template(world.customer(), start=date(2027, 2, 1), period="week")
        world.template(
            world.customer("Ola Hansen"), start=date(2027, 2, 2), period="week"
        )
        (report,) = world.billing.run(at(date(2027, 2, 10), 7))
        assert _numbered(report) == [
            ("INV-000001", "2027-02-01"),
            ("INV-000002", "2027-02-02"),
            ("INV-000003", "2027-02-08"),
            ("INV-000004", "2027-02-09"),
        ]
        stored = sorted((i.number, i.issue_date) for i in world.storage_invoices())
        assert [n for n, _ in stored] == [1, 2, 3, 4]
        assert [d for _, d in stored] == sorted(d for _, d in stored)
        charged = [c.invoice_number for c in report.charges]
        assert charged == [n for n, _ in _numbered(report)]  # charged in order
        assert world.billing.run(at(date(2027, 2, 10), 8))[0].is_empty


def test_a_catch_up_orders_skipped_dates_and_finishes_ended_templates(
    storage_kind: str, tmp_path: Path
) -> None:
    for world in _world(storage_kind, tmp_path, chunk_size=1):
        kari, ola = world.customer(), world.customer("Ola Hansen")
        paused = world.template(kari, start=date(2027, 2, 1), period="week")
        world.billing.pause_template(
            world.account.id, paused, on=date(2027, 2, 5), resume=date(2027, 2, 14)
        )
        ending = world.template(
            ola, start=date(2027, 2, 3), period="week", end=date(2027, 2, 12)
        )
        (report,) = world.billing.run(at(date(2027, 2, 16), 7))
        assert _numbered(report) == [
            ("INV-000001", "2027-02-01"),
            ("INV-000002", "2027-02-03"),
            ("INV-000003", "2027-02-10"),
            ("INV-000004", "2027-02-15"),
        ]
        assert [s.on for s in report.skipped] == [date(2027, 2, 8)]
        assert [e.template_id for e in report.ended] == [ending]
        assert world.billing.run(at(date(2027, 2, 16), 8))[0].is_empty


def _scenario(world: World, rnd: random.Random) -> None:
    """Random weekly and monthly templates starting from 2 February 2027."""
    customers = [
        world.customer("Kari Nordmann"),
        world.customer("Per Olsen", card=None, method=CollectionMethod.SEND_INVOICE),
    ]
    for _ in range(rnd.randint(1, 7)):
        start = date(2027, 2, 2) + timedelta(days=rnd.randint(0, 40))
        kwargs: dict[str, Any] = {}
        if rnd.random() < 0.3:
            kwargs["end"] = start + timedelta(days=rnd.randint(0, 60))
        tid = world.template(
            rnd.choice(customers),
            start=start,
            period=rnd.choice(["week", "month"]),
            every=rnd.choice([1, 1, 2]),
            created=date(2027, 2, 1),
            **kwargs,
        )
        if rnd.random() < 0.3:
            on = start + timedelta(days=rnd.randint(0, 30))
            world.billing.pause_template(
                world.account.id,
                tid,
                on=on,
                resume=on + timedelta(days=rnd.randint(1, 30)),
            )


def _books(world: World) -> list[tuple[object, ...]]:
    with world.storage.transaction() as tx:
        templates = tx.list_templates(world.account.id)
        occurrences = [
            (o.template_id, o.index, o.on, o.outcome)
            for t in templates
            for o in tx.list_occurrences(world.account.id, t.id)
        ]
        finished = [(t.id, t.status, t.next_index) for t in templates]
    invoices = [
        (i.number, i.issue_date, i.template_id, i.occurrence_index)
        for i in world.storage_invoices()
    ]
    return sorted(invoices) + sorted(occurrences) + sorted(finished)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    missed=st.integers(1, 70),
    chunk_size=st.sampled_from([1, 2, 3, 1000]),
)
def test_a_catch_up_equals_a_run_on_each_missed_day(
    seed: int, missed: int, chunk_size: int
) -> None:
    """Numbers follow issue dates, and the books equal daily runs' books."""
    daily, catch_up = make_world(), make_world(chunk_size=chunk_size)
    for world in (daily, catch_up):
        _scenario(world, random.Random(seed))
    first = date(2027, 2, 2)
    last = first + timedelta(days=missed)
    reports = [
        daily.billing.run(at(first + timedelta(days=d), 7))[0]
        for d in range(missed + 1)
    ]
    (report,) = catch_up.billing.run(at(last, 7))

    numbers = sorted((i.number, i.issue_date) for i in catch_up.storage_invoices())
    assert [n for n, _ in numbers] == list(range(1, len(numbers) + 1))
    assert [d for _, d in numbers] == sorted(d for _, d in numbers)
    assert _books(catch_up) == _books(daily)
    assert report.issued == tuple(i for r in reports for i in r.issued)
    assert report.skipped == tuple(s for r in reports for s in r.skipped)
    assert sorted(e.template_id for e in report.ended) == sorted(
        e.template_id for r in reports for e in r.ended
    )
    assert [c.invoice_number for c in report.charges] == [
        c.invoice_number for r in reports for c in r.charges
    ]


class _Moved:
    """A transaction whose walk meets templates as PostgreSQL may show them.

    A chunk read ``FOR UPDATE`` while another worker held a template of it
    comes back in the order of the keys it read, with the template's new
    ``next_due_at``: here every template seems held by another worker at
    first, then the first chunk waited for shows its last template moved on.
    """

    def __init__(self, inner: Any, moved: list[datetime]) -> None:
        self._inner = inner
        self._moved = moved

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def due_templates(self, as_of: datetime, **kwargs: Any) -> list[RecurringTemplate]:
        if kwargs.get("skip_locked"):
            return []  # held by the other worker
        chunk: list[RecurringTemplate] = self._inner.due_templates(as_of, **kwargs)
        if chunk and self._moved:
            chunk[-1] = attrs.evolve(chunk[-1], next_due_at=self._moved.pop())
        return chunk


class _MovingStorage:
    def __init__(self, inner: InMemoryStorage, moved: datetime) -> None:
        self._inner = inner
        self._moved = [moved]

    @contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[Any]:
        with self._inner.transaction(read_only=read_only) as tx:
            yield _Moved(tx, self._moved)


def test_a_walk_carried_past_templates_out_of_order_goes_again() -> None:
    as_of = at(date(2027, 2, 5), 7)
    moved = as_of - timedelta(minutes=1)  # still due, past every other template
    storage = _MovingStorage(InMemoryStorage(), moved.astimezone(timezone.utc))
    world = make_world(storage=storage, chunk_size=2)  # type: ignore[arg-type]
    kari = world.customer()
    for day in (1, 2, 3, 4):
        world.template(kari, start=date(2027, 2, day), period="week")
    (report,) = world.billing.run(as_of)
    assert _numbered(report) == [
        ("INV-000001", "2027-02-01"),
        ("INV-000002", "2027-02-02"),
        ("INV-000003", "2027-02-03"),
        ("INV-000004", "2027-02-04"),
    ]


def test_a_catch_up_asks_for_payment_now_of_invoices_already_past_due(
    storage_kind: str, tmp_path: Path
) -> None:
    """Invoices issued late are dated their own days, so some are past due
    when e-mailed: those ask for payment now, the others by their due date."""
    for world in _world(storage_kind, tmp_path, 1000):
        per = world.customer(
            "Per Olsen", card=None, method=CollectionMethod.SEND_INVOICE
        )
        world.template(per, start=date(2027, 1, 4), period="week")
        (report,) = world.billing.run(at(date(2027, 2, 5), 7))
        assert [i.issue_date.day for i in report.issued] == [4, 11, 18, 25, 1]
        with world.storage.transaction() as tx:
            texts = [
                " ".join(n.text.split())  # the paragraph, unwrapped
                for n in tx.pending_notifications(limit=100)
                if n.kind == "invoice"
            ]
        assert len(texts) == 5
        now = [t for t in texts if "snarest; fakturaen forfalt til betaling" in t]
        by = [t for t in texts if "innen" in t]
        assert len(now) == 3  # due 18 and 25 January, 1 February
        assert len(by) == 2  # due 8 and 15 February
        assert "forfalt til betaling 18. januar 2027" in " ".join(now)
        assert "innen 15. februar 2027" in " ".join(by)

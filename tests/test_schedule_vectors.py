"""Published month-end billing examples, and the RFC 5545 rule that skips months."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from dateutil.rrule import MONTHLY, rrule

from recurbill.schedule import Schedule

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "recurrence-vectors.json").read_text()
)
CASES: list[dict[str, Any]] = VECTORS["cases"]


def _schedule(case: dict[str, Any]) -> Schedule:
    return Schedule(
        start=date.fromisoformat(case["start"]),
        period=case["period"],
        every=case["every"],
    )


def test_there_are_vectors() -> None:
    assert len(CASES) >= 8


@pytest.mark.parametrize(
    "case", CASES, ids=[f"{c['start']}-{c['period']}" for c in CASES]
)
def test_vector(case: dict[str, Any]) -> None:
    schedule = _schedule(case)
    expected = [date.fromisoformat(d) for d in case["dates"]]
    assert [schedule.occurrence(n) for n in range(len(expected))] == expected
    listed = schedule.upcoming(after=schedule.start, count=len(expected))
    assert [o.on for o in listed] == expected
    between = schedule.occurrences_between(expected[0], expected[-1])
    assert [o.on for o in between] == expected


def test_rfc_5545_rrule_skips_short_months_and_recurbill_does_not() -> None:
    counter = VECTORS["counterexample"]
    start = date.fromisoformat(counter["start"])
    rule = rrule(MONTHLY, dtstart=start, bymonthday=31, count=5)
    rrule_dates = [d.date() for d in rule]
    assert rrule_dates == [date.fromisoformat(d) for d in counter["rrule_dates"]]

    ours = Schedule(start=start, period="month")
    recurbill_dates = [ours.occurrence(n) for n in range(5)]
    assert recurbill_dates != rrule_dates
    assert recurbill_dates == [date.fromisoformat(d) for d in CASES[0]["dates"][:5]]
    # rrule loses February and April entirely; recurbill bills every month.
    assert {d.month for d in recurbill_dates} == {1, 2, 3, 4, 5}
    assert {d.month for d in rrule_dates} == {1, 3, 5, 7, 8}

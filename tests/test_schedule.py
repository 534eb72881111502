from __future__ import annotations

import itertools
import json
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.strategies import (
    ZONES,
    aware_datetimes_near,
    dates,
    run_times,
    schedules,
)

from recurbill.errors import (
    InvalidInputError,
    InvalidPauseError,
    InvalidScheduleError,
    StartTooEarlyError,
)
from recurbill.schedule import (
    DEFAULT_RUN_TIME,
    Occurrence,
    OccurrenceStatus,
    Pause,
    Period,
    Schedule,
    due_at,
)

SCHEDULED = OccurrenceStatus.SCHEDULED
SKIPPED = OccurrenceStatus.SKIPPED_PAUSED
AFTER_END = OccurrenceStatus.AFTER_END
UTC = timezone.utc


def _days_in_month(year: int, month: int) -> int:
    following = date(year + month // 12, month % 12 + 1, 1)
    return (following - timedelta(days=1)).day


def _month_index(day: date) -> int:
    return day.year * 12 + day.month - 1


# -- brute-force references: deliberately naive --------------------------------


def _brute_last(s: Schedule) -> int | None:
    """Walk the occurrences, counting invoices (not the ones a pause skips)."""
    if s.end is None and s.max_count is None:
        return None
    n = invoices = 0
    last = -1
    while s.max_count is None or invoices < s.max_count:
        on = s.occurrence(n)
        if s.end is not None and on > s.end:
            break
        if s.end is None and any(p.resume is None and p.start <= on for p in s.pauses):
            return None  # paused for good: the count is never reached
        if not s.is_paused_on(on):
            invoices += 1
        last = n
        n += 1
    return last


def _brute_index(s: Schedule, day: date) -> int:
    n = 0
    while s.occurrence(n) < day:
        n += 1
    return n


def _brute_next(s: Schedule, day: date) -> date | None:
    last = _brute_last(s)
    n = 0
    while last is None or n <= last:
        if s.occurrence(n) >= day:
            return s.occurrence(n)
        n += 1
    return None


def _brute_status(s: Schedule, n: int) -> OccurrenceStatus:
    last = _brute_last(s)
    if last is not None and n > last:
        return AFTER_END
    on = s.occurrence(n)
    for pause in s.pauses:
        if pause.start <= on and (pause.resume is None or on < pause.resume):
            return SKIPPED
    return SCHEDULED


# -- properties ---------------------------------------------------------------


@given(schedules())
def test_occurrences_strictly_increase(s: Schedule) -> None:
    days = [s.occurrence(n) for n in range(40)]
    assert all(a < b for a, b in itertools.pairwise(days))
    assert days[0] == s.start


@given(schedules(), st.integers(0, 200))
def test_occurrence_depends_only_on_n(s: Schedule, n: int) -> None:
    plain = attrs.evolve(s, end=None, max_count=None, pauses=())
    assert s.occurrence(n) == plain.occurrence(n)
    changed = attrs.evolve(
        s, end=s.start, max_count=1, pauses=(Pause(s.start - timedelta(days=1)),)
    )
    assert changed.occurrence(n) == s.occurrence(n)


@given(schedules().filter(lambda s: s.period is not Period.WEEK), st.integers(0, 200))
def test_month_periods_keep_the_day_or_the_last_day(s: Schedule, n: int) -> None:
    on = s.occurrence(n)
    last = _days_in_month(on.year, on.month)
    if s.month_end and s.start.day == _days_in_month(s.start.year, s.start.month):
        assert on.day == last
    else:
        assert on.day == min(s.start.day, last)


@given(schedules(), st.integers(0, 200))
def test_no_month_is_skipped_and_weeks_are_exact(s: Schedule, n: int) -> None:
    a, b = s.occurrence(n), s.occurrence(n + 1)
    if s.period is Period.WEEK:
        assert (b - a).days == 7 * s.every
    else:
        assert _month_index(b) - _month_index(a) == s.period.months * s.every
        assert _month_index(a) - _month_index(s.start) == n * s.period.months * s.every


@given(schedules(), st.integers(-100, 3200))
def test_index_and_next_equal_a_brute_force_scan(s: Schedule, offset: int) -> None:
    day = s.start + timedelta(days=offset)
    assert s.index_on_or_after(day) == _brute_index(s, day)
    assert s.next_on_or_after(day) == _brute_next(s, day)


@given(schedules())
def test_last_index_equals_a_brute_force_count(s: Schedule) -> None:
    assert s.last_index() == _brute_last(s)


@given(schedules(), st.integers(0, 60))
def test_status_matches_pauses_and_end(s: Schedule, n: int) -> None:
    assert s.status(n) == _brute_status(s, n)
    if s.status(n) is not AFTER_END:
        assert (s.status(n) is SKIPPED) == s.is_paused_on(s.occurrence(n))


@given(schedules(), st.integers(-60, 2000), st.integers(0, 25), st.booleans())
def test_upcoming_agrees_with_status(
    s: Schedule, offset: int, count: int, after_end: bool
) -> None:
    after = s.start + timedelta(days=offset)
    listed = s.upcoming(after=after, count=count, include_after_end=after_end)
    first = s.index_on_or_after(after)
    last = s.last_index()
    expected_len = count
    if last is not None and not after_end:
        expected_len = max(0, min(count, last + 1 - first))
    assert len(listed) == expected_len
    for i, occ in enumerate(listed):
        assert occ == Occurrence(
            index=first + i, on=s.occurrence(first + i), status=s.status(first + i)
        )
        assert occ.on >= after


def _walked_to_issued(s: Schedule, n: int) -> Occurrence | None:
    """The first scheduled occurrence from *n* on, walking ``upcoming`` a
    chunk at a time: None at the end, or at a skipped one dated after every
    pause's start and resume (only a pause with no resume date skips it)."""
    bounds = [d for p in s.pauses for d in (p.start, p.resume) if d is not None]
    after = s.occurrence(n)
    while True:
        chunk = s.upcoming(after=after, count=50)
        for occurrence in chunk:
            if occurrence.status is SCHEDULED:
                return occurrence
            if all(occurrence.on > d for d in bounds):
                return None
        if len(chunk) < 50:
            return None
        after = chunk[-1].on + timedelta(days=1)


@given(schedules(), st.integers(0, 300))
def test_next_issued_is_the_first_scheduled_occurrence_upcoming_lists(
    s: Schedule, n: int
) -> None:
    assert s.next_issued(n) == _walked_to_issued(s, n)


@given(schedules(), st.integers(0, 300))
def test_next_issued_skips_only_paused_occurrences(s: Schedule, n: int) -> None:
    issued = s.next_issued(n)
    if issued is None:
        return
    assert issued.status is SCHEDULED is s.status(issued.index)
    assert issued.on == s.occurrence(issued.index)
    assert all(s.status(i) is SKIPPED for i in range(n, issued.index))


@given(schedules(), st.integers(-60, 2000), st.integers(0, 800), st.booleans())
def test_occurrences_between_agree_with_status(
    s: Schedule, offset: int, length: int, after_end: bool
) -> None:
    first = s.start + timedelta(days=offset)
    last = first + timedelta(days=length)
    listed = s.occurrences_between(first, last, include_after_end=after_end)
    bound = s.last_index()
    expected = [
        Occurrence(index=n, on=s.occurrence(n), status=s.status(n))
        for n in range(_brute_index(s, first), _brute_index(s, last + timedelta(1)))
        if after_end or bound is None or n <= bound
    ]
    assert listed == expected


@given(schedules(), st.data())
def test_due_count_equals_a_brute_force_count(s: Schedule, data: st.DataObject) -> None:
    as_of = data.draw(aware_datetimes_near(s.start))
    run_time = data.draw(run_times())
    zone = data.draw(st.sampled_from(ZONES))
    last = _brute_last(s)
    expected = 0
    while (last is None or expected <= last) and due_at(
        s.occurrence(expected), run_time=run_time, zone=zone
    ) <= as_of:
        expected += 1
    assert s.due_count(as_of, run_time=run_time, zone=zone) == expected


@given(schedules())
def test_to_dict_round_trips_through_json(s: Schedule) -> None:
    stored = json.loads(json.dumps(s.to_dict()))
    assert Schedule.from_dict(stored) == s
    assert Schedule.from_dict(stored).to_dict() == s.to_dict()


@given(schedules(with_pauses=False), st.integers(1, 400), st.integers(1, 400))
def test_pause_then_resume_skips_only_inside_and_keeps_the_rhythm(
    s: Schedule, pause_at: int, length: int
) -> None:
    on = s.start + timedelta(days=pause_at)
    resume = on + timedelta(days=length)
    changed = s.paused(on=on).resumed(on=resume)
    assert changed.pauses == (Pause(on, resume),)
    invoices = 0  # max_count counts invoices: the pause moves the end later
    for n in range(30):
        assert changed.occurrence(n) == s.occurrence(n)
        inside = on <= s.occurrence(n) < resume
        past_end = s.end is not None and s.occurrence(n) > s.end
        counted = s.max_count is not None and invoices >= s.max_count
        if past_end or counted:
            expected = AFTER_END
        elif inside:
            expected = SKIPPED
        else:
            expected = SCHEDULED
            invoices += 1
        assert changed.status(n) == expected


@given(dates(), st.sampled_from(ZONES), run_times())
def test_due_at_is_utc_and_local_time_is_run_time_or_shifted_forward(
    on: date, zone: str, run_time: time
) -> None:
    instant = due_at(on, run_time=run_time, zone=zone)
    assert instant.tzinfo is UTC
    local = instant.astimezone(ZoneInfo(zone))
    wall = datetime.combine(on, run_time)
    shift = local.replace(tzinfo=None) - wall
    assert timedelta(0) <= shift <= timedelta(days=1)  # zero unless in a gap


# -- the SPEC's examples ------------------------------------------------------


def _dates(s: Schedule, count: int) -> list[str]:
    return [s.occurrence(n).isoformat() for n in range(count)]


def test_monthly_from_january_31() -> None:
    s = Schedule(start=date(2025, 1, 31), period=Period.MONTH)
    assert _dates(s, 5) == [
        "2025-01-31",
        "2025-02-28",
        "2025-03-31",
        "2025-04-30",
        "2025-05-31",
    ]


def test_quarterly_from_august_31() -> None:
    s = Schedule(start=date(2024, 8, 31), period="quarter")
    assert _dates(s, 5) == [
        "2024-08-31",
        "2024-11-30",
        "2025-02-28",
        "2025-05-31",
        "2025-08-31",
    ]


def test_yearly_from_february_29() -> None:
    s = Schedule(start=date(2024, 2, 29), period="year")
    assert s.occurrence(1) == date(2025, 2, 28)
    assert s.occurrence(4) == date(2028, 2, 29)


def test_month_end_stays_on_last_days() -> None:
    s = Schedule(start=date(2025, 4, 30), period="month", month_end=True)
    assert _dates(s, 4) == ["2025-04-30", "2025-05-31", "2025-06-30", "2025-07-31"]
    without = Schedule(start=date(2025, 4, 30), period="month")
    assert _dates(without, 2) == ["2025-04-30", "2025-05-30"]
    not_last = Schedule(start=date(2025, 4, 29), period="month", month_end=True)
    assert _dates(not_last, 2) == ["2025-04-29", "2025-05-29"]


def test_every_two_weeks() -> None:
    s = Schedule(start=date(2025, 12, 26), period="week", every=2)
    assert _dates(s, 3) == ["2025-12-26", "2026-01-09", "2026-01-23"]


def test_period_strings_are_accepted() -> None:
    assert Schedule(start=date(2025, 1, 1), period="Month").period is Period.MONTH


def test_end_is_inclusive_and_stops_the_listings() -> None:
    s = Schedule(start=date(2025, 1, 31), period="month", end=date(2025, 3, 31))
    assert s.last_index() == 2
    assert s.next_on_or_after(date(2025, 3, 31)) == date(2025, 3, 31)
    assert s.next_on_or_after(date(2025, 4, 1)) is None
    assert [o.index for o in s.upcoming(after=date(2025, 1, 1), count=10)] == [0, 1, 2]
    with_after = s.upcoming(after=date(2025, 3, 1), count=2, include_after_end=True)
    assert [o.status for o in with_after] == [SCHEDULED, AFTER_END]
    assert s.status(3) is AFTER_END


def test_max_count_caps_the_occurrences() -> None:
    s = Schedule(start=date(2025, 1, 1), period="week", max_count=3)
    assert s.last_index() == 2
    assert s.status(2) is SCHEDULED
    assert s.status(3) is AFTER_END
    assert s.next_on_or_after(date(2025, 1, 16)) is None


def test_unbounded_schedule_has_no_last_index() -> None:
    assert Schedule(start=date(2025, 1, 1), period="year").last_index() is None


def test_after_end_beats_skipped_paused() -> None:
    s = Schedule(start=date(2025, 1, 1), period="month", end=date(2025, 2, 1))
    s = s.paused(on=date(2025, 1, 15))
    assert s.status(1) is SKIPPED
    assert s.status(2) is AFTER_END


def test_max_count_counts_invoices_not_the_occurrences_a_pause_skips() -> None:
    s = Schedule(start=date(2027, 2, 1), period="month", max_count=3)
    s = s.paused(on=date(2027, 2, 15), resume=date(2027, 3, 15))
    assert s.last_index() == 3
    assert [s.status(n) for n in range(5)] == [
        SCHEDULED,  # 02-01
        SKIPPED,  # 03-01
        SCHEDULED,  # 04-01
        SCHEDULED,  # 05-01, the third invoice
        AFTER_END,
    ]
    listed = s.upcoming(after=date(2027, 1, 1), count=10)
    assert [o.on for o in listed if o.status is SCHEDULED] == [
        date(2027, 2, 1),
        date(2027, 4, 1),
        date(2027, 5, 1),
    ]


def test_an_open_pause_holds_back_the_last_counted_invoice() -> None:
    s = Schedule(start=date(2027, 2, 1), period="month", max_count=2)
    paused = s.paused(on=date(2027, 2, 15))
    assert paused.last_index() is None  # the second invoice waits for a resume
    assert paused.status(5) is SKIPPED
    resumed = paused.resumed(on=date(2027, 6, 10))
    assert resumed.last_index() == 5  # 07-01, the first date after the resume
    assert resumed.status(6) is AFTER_END


def test_pause_resume_preview() -> None:
    s = (
        Schedule(start=date(2025, 1, 31), period="month")
        .paused(on=date(2025, 2, 10))
        .resumed(on=date(2025, 4, 30))
    )
    preview = s.upcoming(after=date(2025, 1, 1), count=5)
    assert [(o.on.isoformat(), o.status.value) for o in preview] == [
        ("2025-01-31", "scheduled"),
        ("2025-02-28", "skipped_paused"),
        ("2025-03-31", "skipped_paused"),
        ("2025-04-30", "scheduled"),  # the resume day itself is billed
        ("2025-05-31", "scheduled"),
    ]
    assert s.is_paused_on(date(2025, 4, 29))
    assert not s.is_paused_on(date(2025, 4, 30))


def test_next_issued_jumps_over_pauses_to_the_first_billed_date() -> None:
    s = Schedule(start=date(2027, 1, 31), period="month").paused(
        on=date(2027, 2, 1), resume=date(2027, 4, 30)
    )
    assert s.next_issued(0) == Occurrence(
        index=0, on=date(2027, 1, 31), status=SCHEDULED
    )
    assert s.next_issued(1) == Occurrence(
        index=3, on=date(2027, 4, 30), status=SCHEDULED
    )  # the resume day itself is billed
    back_to_back = s.paused(on=date(2027, 4, 30), resume=date(2027, 6, 1))
    assert back_to_back.next_issued(1) == Occurrence(
        index=5, on=date(2027, 6, 30), status=SCHEDULED
    )
    held = s.paused(on=date(2027, 6, 1))
    assert held.next_issued(4) == Occurrence(
        index=4, on=date(2027, 5, 31), status=SCHEDULED
    )
    assert held.next_issued(5) is None  # paused until further notice


def test_next_issued_stops_at_the_end_and_at_the_calendar_end() -> None:
    ending = Schedule(start=date(2027, 1, 31), period="month", max_count=2)
    paused = ending.paused(on=date(2027, 2, 1), resume=date(2027, 3, 1))
    assert paused.next_issued(1) == Occurrence(
        index=2, on=date(2027, 3, 31), status=SCHEDULED
    )  # max_count counts invoices: the pause moved the second one on
    assert paused.next_issued(3) is None
    dated = Schedule(start=date(2027, 1, 31), period="month", end=date(2027, 3, 1))
    assert (
        dated.paused(on=date(2027, 2, 1), resume=date(2027, 3, 1)).next_issued(1)
        is None
    )  # the first date after the pause is after the end
    last = Schedule(start=date(9999, 1, 15), period="month").paused(
        on=date(9999, 12, 1), resume=date(9999, 12, 31)
    )
    assert last.next_issued(10) == Occurrence(
        index=10, on=date(9999, 11, 15), status=SCHEDULED
    )
    assert last.next_issued(11) is None  # the next one would be in 10000


def test_next_issued_jumps_a_long_pause_at_once() -> None:
    weekly = Schedule(start=date(2027, 1, 4), period="week").paused(
        on=date(2027, 1, 5), resume=date(9000, 1, 1)
    )
    issued = weekly.next_issued(1)
    assert issued is not None
    assert issued.on == weekly.next_on_or_after(date(9000, 1, 1))
    assert issued.index == weekly.index_on_or_after(date(9000, 1, 1))


def test_planned_resume_and_resuming_early() -> None:
    s = Schedule(start=date(2025, 1, 1), period="month")
    planned = s.paused(on=date(2025, 2, 1), resume=date(2025, 6, 1))
    assert [o.status for o in planned.upcoming(after=date(2025, 1, 1), count=6)] == [
        SCHEDULED,
        SKIPPED,
        SKIPPED,
        SKIPPED,
        SKIPPED,
        SCHEDULED,
    ]
    early = planned.resumed(on=date(2025, 3, 1))
    assert early.pauses == (Pause(date(2025, 2, 1), date(2025, 3, 1)),)
    assert planned.resumed(on=date(2025, 6, 1)) == planned
    again = early.paused(on=date(2025, 3, 1)).resumed(on=date(2025, 3, 2))
    assert len(again.pauses) == 2


def test_resuming_on_or_before_a_planned_pause_cancels_it() -> None:
    s = Schedule(start=date(2027, 1, 1), period="month")
    planned = s.paused(on=date(2027, 3, 1), resume=date(2027, 3, 20))
    today = date(2027, 1, 10)
    for on in (date(2027, 1, 5), date(2027, 2, 1), date(2027, 3, 1)):
        assert planned.resumed(on=on, open_from=today) == s
    assert planned.without_pause(start=date(2027, 3, 1), open_from=today) == s
    assert planned.resumed(on=date(2027, 3, 1)) == s  # nothing handled yet


def test_a_planned_resume_moves_earlier_or_later() -> None:
    march = Pause(date(2027, 3, 1), date(2027, 3, 20))
    august = Pause(date(2027, 8, 1), date(2027, 9, 1))
    s = Schedule(start=date(2027, 1, 1), period="month", pauses=(march, august))
    today = date(2027, 1, 10)
    earlier = s.resumed(on=date(2027, 3, 10), open_from=today)
    assert earlier.pauses == (Pause(date(2027, 3, 1), date(2027, 3, 10)), august)
    later = s.resumed(on=date(2027, 5, 15), open_from=today)
    assert later.pauses == (Pause(date(2027, 3, 1), date(2027, 5, 15)), august)
    assert [o.status for o in later.upcoming(after=date(2027, 3, 1), count=4)] == [
        SKIPPED,
        SKIPPED,
        SKIPPED,
        SCHEDULED,  # 1 June
    ]
    # a date inside or after the second pause is about the second one
    assert s.resumed(on=date(2027, 8, 15), open_from=today).pauses == (
        march,
        Pause(date(2027, 8, 1), date(2027, 8, 15)),
    )
    assert s.resumed(on=date(2027, 10, 1), open_from=today).pauses == (
        march,
        Pause(date(2027, 8, 1), date(2027, 10, 1)),
    )
    assert s.without_pause(start=date(2027, 8, 1), open_from=today).pauses == (march,)


def test_a_pause_that_has_begun_can_end_sooner_or_later_but_not_be_cancelled() -> None:
    s = Schedule(start=date(2027, 1, 1), period="month").paused(
        on=date(2027, 3, 1), resume=date(2027, 6, 1)
    )
    handled = date(2027, 4, 2)  # 1 March and 1 April are skipped already
    resumed = s.resumed(on=date(2027, 5, 1), open_from=handled)
    assert resumed.pauses == (Pause(date(2027, 3, 1), date(2027, 5, 1)),)
    longer = s.resumed(on=date(2027, 7, 1), open_from=handled)
    assert longer.pauses == (Pause(date(2027, 3, 1), date(2027, 7, 1)),)
    # a date already handled means as soon as possible
    for on in (date(2027, 2, 1), date(2027, 3, 1), date(2027, 4, 2)):
        soon = s.resumed(on=on, open_from=handled)
        assert soon.pauses == (Pause(date(2027, 3, 1), date(2027, 4, 2)),)
    with pytest.raises(
        InvalidPauseError,
        match=r"the pause from 2027-03-01 has begun: occurrences before 2027-04-02, "
        r"the first date that can still change, are already issued or skipped; "
        r"cancel a pause that starts on 2027-04-02 or later; end this one by "
        r"resuming on 2027-04-02 or later",
    ):
        s.without_pause(start=date(2027, 3, 1), open_from=handled)


def test_a_pause_that_ended_before_open_from_stays_as_it_was() -> None:
    s = Schedule(start=date(2027, 1, 1), period="month").paused(
        on=date(2027, 2, 15), resume=date(2027, 3, 10)
    )
    handled = date(2027, 4, 2)
    assert s.resumed(on=date(2027, 3, 5), open_from=handled) == s
    with pytest.raises(
        InvalidPauseError,
        match=r"cannot resume on 2027-04-10: the last pause already ended on "
        r"2027-03-10, and occurrences before 2027-04-02, the first date that can "
        r"still change, are already issued or skipped; pause again, from "
        r"2027-04-02 or later",
    ):
        s.resumed(on=date(2027, 4, 10), open_from=handled)
    with pytest.raises(InvalidPauseError, match="; this one ended on 2027-03-10"):
        s.without_pause(start=date(2027, 2, 15), open_from=handled)
    # the next pause is planned: resuming before it cancels that one
    planned = s.paused(on=date(2027, 6, 1), resume=date(2027, 7, 1))
    assert planned.resumed(on=date(2027, 5, 1), open_from=handled) == s


def test_a_pause_may_come_before_a_planned_one_but_not_before_open_from() -> None:
    june = Pause(date(2027, 6, 1), date(2027, 7, 1))
    s = Schedule(start=date(2027, 1, 1), period="month", pauses=(june,))
    march = s.paused(on=date(2027, 3, 1), resume=date(2027, 4, 1))
    assert march.pauses == (Pause(date(2027, 3, 1), date(2027, 4, 1)), june)
    handled = date(2027, 2, 2)
    clamped = s.paused(on=date(2027, 2, 1), resume=date(2027, 3, 1), open_from=handled)
    assert clamped.pauses == (Pause(handled, date(2027, 3, 1)), june)
    assert s.paused(on=date(2027, 1, 5), resume=handled, open_from=handled) == s
    with pytest.raises(InvalidPauseError, match="overlaps the pause from 2027-06-01"):
        s.paused(on=date(2027, 6, 15), open_from=handled)


def _pause_change(s: Schedule, data: st.DataObject, *, today: date) -> Schedule | None:
    """A random pause, resume or cancellation on *today*, or None if refused."""
    on = today + timedelta(days=data.draw(st.integers(-30, 200), label="on"))
    kind = data.draw(st.sampled_from(["pause", "resume", "cancel"]), label="change")
    try:
        if kind == "pause":
            length = data.draw(st.none() | st.integers(1, 120), label="length")
            resume = None if length is None else on + timedelta(days=length)
            return s.paused(on=on, resume=resume, open_from=today)
        if kind == "resume":
            return s.resumed(on=on, open_from=today)
        starts = [p.start for p in s.pauses] or [on]
        start = data.draw(st.sampled_from(starts), label="cancel")
        return s.without_pause(start=start, open_from=today)
    except InvalidPauseError:
        return None


@given(schedules(), st.data())
def test_pause_changes_never_change_an_occurrence_before_open_from(
    s: Schedule, data: st.DataObject
) -> None:
    """Pauses, resumes and cancellations on ever later days, each with that day
    as open_from, never change the status of an occurrence before the day, nor
    whether a day before it is paused."""
    today = s.start + timedelta(days=data.draw(st.integers(-60, 400)))
    fixed: dict[int, OccurrenceStatus] = {}
    for _ in range(data.draw(st.integers(1, 8))):
        today += timedelta(days=data.draw(st.integers(0, 200)))
        n = len(fixed)
        while n < 300 and s.occurrence(n) < today:
            fixed[n] = s.status(n)  # what the run did with it
            n += 1
        days = [today - timedelta(days=d) for d in range(1, 61)]
        paused_days = [s.is_paused_on(d) for d in days]
        changed = _pause_change(s, data, today=today)
        if changed is None:
            continue
        assert {n: changed.status(n) for n in fixed} == fixed
        assert [changed.is_paused_on(d) for d in days] == paused_days
        assert Schedule.from_dict(changed.to_dict()) == changed
        s = changed


@given(schedules(), st.data())
def test_cancelling_a_pause_that_has_not_begun_leaves_the_schedule_as_it_was(
    s: Schedule, data: st.DataObject
) -> None:
    open_from = s.start + timedelta(days=data.draw(st.integers(-60, 1500)))
    on = open_from + timedelta(days=data.draw(st.integers(0, 400)))
    length = data.draw(st.none() | st.integers(1, 400))
    resume = None if length is None else on + timedelta(days=length)
    # the pauses that end by then, so the new one fits after them
    kept = itertools.takewhile(
        lambda p: p.resume is not None and p.resume <= on, s.pauses
    )
    s = s.paused_by(kept)
    planned = s.paused(on=on, resume=resume, open_from=open_from)
    assert planned.pauses[-1] == Pause(on, resume)
    assert planned.without_pause(start=on, open_from=open_from) == s
    resume_on = on - timedelta(days=data.draw(st.integers(0, 60)))
    day = max(resume_on, open_from)
    still_open = [
        p for p in s.pauses if p.start < day and (p.resume or day) >= open_from
    ]
    later = [p for p in s.pauses if p.start >= day]  # e.g. one ending on `on`
    if not still_open and not later:
        # no earlier pause is still open to change, and the planned one is the
        # next from that day: it goes
        assert planned.resumed(on=resume_on, open_from=open_from) == s
    future = s.upcoming(after=open_from, count=30, include_after_end=True)
    cancelled = planned.without_pause(start=on, open_from=open_from)
    assert (
        cancelled.upcoming(after=open_from, count=30, include_after_end=True) == future
    )


def test_ended_returns_a_new_value() -> None:
    s = Schedule(start=date(2025, 1, 1), period="month")
    assert s.ended(on=date(2025, 6, 1)).end == date(2025, 6, 1)
    assert s.end is None


def test_create_accepts_tomorrow() -> None:
    s = Schedule.create(
        today=date(2025, 1, 30), start=date(2025, 1, 31), period="month"
    )
    assert s == Schedule(start=date(2025, 1, 31), period=Period.MONTH)


@pytest.mark.parametrize("start", [date(2025, 1, 30), date(2024, 12, 1)])
def test_start_too_early_names_the_earliest_date(start: date) -> None:
    with pytest.raises(
        StartTooEarlyError, match="earliest allowed start is 2025-01-31"
    ):
        Schedule.create(today=date(2025, 1, 30), start=start, period="month")


# -- DST ----------------------------------------------------------------------


def test_spring_forward_gap_shifts_forward_by_the_gap() -> None:
    instant = due_at(date(2026, 3, 29), run_time=time(2, 30), zone="Europe/Oslo")
    assert instant == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    local = instant.astimezone(ZoneInfo("Europe/Oslo"))
    assert (local.hour, local.minute) == (3, 30)
    assert local.utcoffset() == timedelta(hours=2)


def test_fall_back_ambiguity_takes_the_first_instant() -> None:
    instant = due_at(date(2026, 11, 1), run_time=time(1, 30), zone="America/New_York")
    assert instant == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT
    local = instant.astimezone(ZoneInfo("America/New_York"))
    assert local.tzname() == "EDT"


def test_reykjavik_has_no_dst() -> None:
    for on in (date(2026, 1, 15), date(2026, 7, 15)):
        instant = due_at(on, run_time=DEFAULT_RUN_TIME, zone="Atlantic/Reykjavik")
        assert instant == datetime.combine(on, time(6, 15), tzinfo=UTC)


def test_due_count_across_the_spring_forward_night() -> None:
    s = Schedule(start=date(2026, 3, 28), period="week")
    zone, run = "Europe/Oslo", time(2, 30)
    assert (
        s.due_count(datetime(2026, 3, 28, 1, 29, tzinfo=UTC), run_time=run, zone=zone)
        == 0
    )
    assert (
        s.due_count(datetime(2026, 3, 28, 1, 30, tzinfo=UTC), run_time=run, zone=zone)
        == 1
    )
    oslo = ZoneInfo("Europe/Oslo")
    assert (
        s.due_count(datetime(2026, 4, 4, 2, 29, tzinfo=oslo), run_time=run, zone=zone)
        == 1
    )
    assert (
        s.due_count(datetime(2026, 4, 4, 2, 30, tzinfo=oslo), run_time=run, zone=zone)
        == 2
    )


def test_due_count_catches_up_missed_days_and_stops_at_the_end() -> None:
    s = Schedule(start=date(2025, 1, 31), period="month", max_count=3)
    as_of = datetime(2026, 1, 1, tzinfo=UTC)
    assert s.due_count(as_of, run_time=DEFAULT_RUN_TIME, zone="Europe/Oslo") == 3
    unbounded = attrs.evolve(s, max_count=None)
    assert unbounded.due_count(as_of, run_time=DEFAULT_RUN_TIME, zone="UTC") == 12


# -- validation: each error names the problem and what is allowed -------------


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"every": 0}, InvalidScheduleError, r"every=0; every must be an integer >= 1"),
        (
            {"every": True},
            InvalidScheduleError,
            r"every=True; every must be an integer",
        ),
        ({"every": 1.5}, InvalidScheduleError, r"every must be an integer >= 1"),
        ({"period": "day"}, InvalidScheduleError, r"'day'; period must be 'week'"),
        ({"period": 3}, InvalidScheduleError, r"period 3; period must be"),
        ({"end": date(2025, 1, 30)}, InvalidScheduleError, r"before the start"),
        ({"max_count": 0}, InvalidScheduleError, r"max_count must be an integer >= 1"),
        (
            {"start": "2025-01-31"},
            InvalidScheduleError,
            r"start must be a datetime\.date",
        ),
        (
            {"start": datetime(2025, 1, 31)},
            InvalidScheduleError,
            r"not a datetime or a string",
        ),
        ({"month_end": 1}, InvalidScheduleError, r"month_end must be True or False"),
        (
            {"period": "week", "month_end": True},
            InvalidScheduleError,
            r"month_end applies to month, quarter and year",
        ),
        (
            {"pauses": (Pause(date(2025, 2, 1)), Pause(date(2025, 3, 1)))},
            InvalidPauseError,
            r"overlaps the pause from 2025-02-01 open-ended",
        ),
        (
            {"pauses": "2025-02-01"},
            InvalidPauseError,
            r"pauses must be a sequence of Pause",
        ),
    ],
)
def test_invalid_schedules_are_refused(
    kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    fields: dict[str, object] = {"start": date(2025, 1, 31), "period": "month"}
    fields.update(kwargs)
    with pytest.raises(error, match=message):
        Schedule(**fields)  # type: ignore[arg-type]


def test_errors_are_value_errors() -> None:
    with pytest.raises(ValueError, match="every"):
        Schedule(start=date(2025, 1, 31), period="month", every=-1)


def test_invalid_pauses_and_resumes_are_refused() -> None:
    s = Schedule(start=date(2025, 1, 31), period="month")
    with pytest.raises(InvalidPauseError, match="never paused"):
        s.resumed(on=date(2025, 3, 1))
    paused = s.paused(on=date(2025, 3, 1))
    with pytest.raises(InvalidPauseError, match="open-ended; pauses must be in date"):
        paused.paused(on=date(2025, 5, 1))
    with pytest.raises(InvalidPauseError, match="resume date 2025-02-01 is not after"):
        s.paused(on=date(2025, 3, 1), resume=date(2025, 2, 1))
    closed = paused.resumed(on=date(2025, 4, 1))
    with pytest.raises(InvalidPauseError, match="already ended on 2025-04-01, and "):
        closed.resumed(on=date(2025, 5, 1), open_from=date(2025, 4, 2))
    with pytest.raises(InvalidPauseError, match="overlaps the pause from 2025-03-01"):
        closed.paused(on=date(2025, 3, 15))
    with pytest.raises(
        InvalidPauseError,
        match=r"no pause starts on 2025-03-02; .*\(pauses start on: 2025-03-01\)",
    ):
        closed.without_pause(start=date(2025, 3, 2))
    with pytest.raises(InvalidInputError, match=r"open_from must be a datetime\.date"):
        closed.without_pause(start=date(2025, 3, 1), open_from="2025-03-01")  # type: ignore[arg-type]


def test_invalid_queries_are_refused() -> None:
    s = Schedule(start=date(2025, 1, 31), period="month")
    with pytest.raises(InvalidInputError, match="n=-1; n must be an integer >= 0"):
        s.occurrence(-1)
    with pytest.raises(InvalidInputError, match="n must be an integer"):
        s.status(True)
    with pytest.raises(InvalidInputError, match=r"day must be a datetime\.date"):
        s.next_on_or_after(datetime(2025, 1, 1))
    with pytest.raises(InvalidInputError, match=r"day must be a datetime\.date"):
        s.index_on_or_after("2025-01-01")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="ends before it starts"):
        s.occurrences_between(date(2025, 3, 1), date(2025, 2, 1))
    with pytest.raises(InvalidInputError, match="count must be an integer >= 0"):
        s.upcoming(after=date(2025, 1, 1), count=-1)
    with pytest.raises(InvalidInputError, match="n=-1; n must be an integer >= 0"):
        s.next_issued(-1)
    with pytest.raises(InvalidInputError, match="falls after 9999-12-31"):
        s.occurrence(10**6)
    assert s.status(10**6) is AFTER_END
    with pytest.raises(InvalidScheduleError, match="end date 2025-01-01 is before"):
        s.ended(on=date(2025, 1, 1))


@given(dates(), st.one_of(st.none(), st.integers(1, 400)), st.integers(-400, 800))
def test_a_pause_covers_its_days_from_start_until_resume(
    start: date, length: int | None, offset: int
) -> None:
    resume = None if length is None else start + timedelta(days=length)
    day = start + timedelta(days=offset)
    expected = start <= day and (resume is None or day < resume)
    assert Pause(start=start, resume=resume).covers(day) is expected
    assert Pause(start=start, resume=resume).covers(start)
    assert not Pause(start=start, resume=resume).covers(start - timedelta(days=1))


def test_the_last_occurrences_are_in_december_9999() -> None:
    monthly = Schedule(start=date(9999, 1, 31), period="month")
    assert [o.on for o in monthly.upcoming(after=date(9999, 10, 1), count=5)] == [
        date(9999, 10, 31),
        date(9999, 11, 30),
        date(9999, 12, 31),
    ]
    assert monthly.status(11) is SCHEDULED
    assert monthly.status(12) is AFTER_END
    weekly = Schedule(start=date(9999, 12, 17), period="week")
    assert [o.on for o in weekly.upcoming(after=weekly.start, count=5)] == [
        date(9999, 12, 17),
        date(9999, 12, 24),
        date(9999, 12, 31),
    ]


def test_naive_as_of_is_refused() -> None:
    s = Schedule(start=date(2025, 1, 31), period="month")
    with pytest.raises(InvalidInputError, match="as_of must be an aware datetime"):
        s.due_count(datetime(2025, 3, 1), run_time=DEFAULT_RUN_TIME, zone="UTC")


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "America", "../etc/passwd", 3])
def test_invalid_zone_is_refused(zone: object) -> None:
    with pytest.raises(InvalidScheduleError, match="use an IANA time zone name"):
        due_at(date(2025, 1, 1), run_time=DEFAULT_RUN_TIME, zone=zone)  # type: ignore[arg-type]


def test_aware_run_time_is_refused() -> None:
    with pytest.raises(InvalidScheduleError, match="run_time must be a naive"):
        due_at(date(2025, 1, 1), run_time=time(6, 15, tzinfo=UTC), zone="UTC")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"period": "month"}, r"lacks \['start'\]"),
        ({"start": "2025-01-31", "period": "month", "colour": 1}, r"unknown fields"),
        ({"start": "31.01.2025", "period": "month"}, r"an ISO date string"),
        ({"start": "2025-01-31", "period": "month", "pauses": {}}, r"stored pauses"),
        (
            {"start": "2025-01-31", "period": "month", "pauses": [{"begin": "x"}]},
            r"stored pause",
        ),
    ],
)
def test_from_dict_refuses_bad_data(data: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidScheduleError, match=message):
        Schedule.from_dict(data)


def test_redated_checks_the_earliest_start_and_keeps_the_rest() -> None:
    s = Schedule(start=date(2025, 1, 31), period="month", every=2).paused(
        on=date(2025, 6, 1), resume=date(2025, 7, 1)
    )
    moved = s.redated(today=date(2025, 2, 10), start=date(2025, 2, 11))
    assert moved.start == date(2025, 2, 11)
    assert (moved.period, moved.every, moved.pauses) == (s.period, 2, s.pauses)
    with pytest.raises(
        StartTooEarlyError, match="earliest allowed start is 2025-02-11"
    ):
        s.redated(today=date(2025, 2, 10), start=date(2025, 2, 10))


def test_create_on_the_last_representable_day_is_refused() -> None:
    with pytest.raises(InvalidScheduleError, match="today is 9999-12-31"):
        Schedule.create(today=date.max, start=date.max, period="week")

"""Reusable Hypothesis strategies for recurbill's values."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from recurbill.schedule import Pause, Period, Schedule

__all__ = [
    "ZONES",
    "aware_datetimes_near",
    "dates",
    "pause_histories",
    "periods",
    "run_times",
    "schedules",
]

MIN_DATE = date(1990, 1, 1)
MAX_DATE = date(2100, 12, 31)

ZONES = (
    "UTC",
    "Europe/Oslo",
    "Europe/Stockholm",
    "Atlantic/Reykjavik",
    "America/New_York",
    "Australia/Lord_Howe",  # a 30-minute DST shift
    "Pacific/Apia",  # skipped 2011-12-30 entirely
)


@st.composite
def _month_end_dates(draw: st.DrawFn) -> date:
    year = draw(st.integers(MIN_DATE.year, MAX_DATE.year))
    month = draw(st.integers(1, 12))
    day = draw(st.integers(28, 31))
    while True:
        try:
            return date(year, month, day)
        except ValueError:
            day -= 1


def dates() -> st.SearchStrategy[date]:
    """Dates from 1990 to 2100, often the 28th-31st or a 29 February."""
    leap_days = st.sampled_from([date(y, 2, 29) for y in range(1992, 2100, 4)])
    return st.one_of(st.dates(MIN_DATE, MAX_DATE), _month_end_dates(), leap_days)


def periods() -> st.SearchStrategy[Period]:
    """Any period."""
    return st.sampled_from(list(Period))


def run_times() -> st.SearchStrategy[time]:
    """Run times, often inside a DST gap or overlap (00:00-03:59)."""
    return st.one_of(
        st.just(time(6, 15)),
        st.builds(time, st.integers(0, 3), st.sampled_from([0, 15, 30, 45])),
        st.times().map(lambda t: t.replace(microsecond=0)),
    )


@st.composite
def pause_histories(draw: st.DrawFn, start: date) -> tuple[Pause, ...]:
    """Sorted, non-overlapping pauses around *start*; the last may be open."""
    points = draw(
        st.lists(st.integers(-60, 1500), min_size=0, max_size=8, unique=True).map(
            sorted
        )
    )
    days = [start + timedelta(days=p) for p in points]
    pauses = [Pause(a, b) for a, b in zip(days[::2], days[1::2], strict=False)]
    if len(days) % 2:
        pauses.append(Pause(days[-1]))
    return tuple(pauses)


@st.composite
def schedules(
    draw: st.DrawFn,
    *,
    bounded: bool | None = None,
    with_pauses: bool = True,
) -> Schedule:
    """Valid schedules: any period, every 1..12, optional end/max_count/pauses.

    *bounded* True forces an end or a max_count, False forbids both, None draws.
    """
    start = draw(dates())
    period = draw(periods())
    every = draw(st.integers(1, 12))
    month_end = period is not Period.WEEK and draw(st.booleans())
    end = max_count = None
    if bounded is None:
        bounded = draw(st.booleans())
    if bounded:
        kind = draw(st.sampled_from(["end", "count", "both"]))
        if kind in ("end", "both"):
            end = start + timedelta(days=draw(st.integers(0, 3000)))
        if kind in ("count", "both"):
            max_count = draw(st.integers(1, 40))
    pauses = draw(pause_histories(start)) if with_pauses else ()
    return Schedule(
        start=start,
        period=period,
        every=every,
        end=end,
        max_count=max_count,
        month_end=month_end,
        pauses=pauses,
    )


@st.composite
def aware_datetimes_near(draw: st.DrawFn, day: date) -> datetime:
    """Aware instants from about a year and a half before *day* (more than one
    period of any schedule) to about four years after it."""
    base = datetime.combine(day, time(0), tzinfo=timezone.utc)
    instant = base + timedelta(minutes=draw(st.integers(-550 * 1440, 1500 * 1440)))
    zone = draw(st.sampled_from(ZONES))
    return instant.astimezone(ZoneInfo(zone))

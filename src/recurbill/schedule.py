"""Recurrence: when the occurrences of a recurring invoice fall. Pure and O(1).

Occurrence *n* of a :class:`Schedule` is computed from the start date, never
from the previous occurrence: ``start + n * every * period``. When the start's
day does not exist in the target month, the month's last day is used, so a
monthly schedule from 2025-01-31 gives 01-31, 02-28, 03-31, 04-30. No month is
ever skipped (unlike RFC 5545 recurrence rules) and no day is ever lost for good.

Nothing here reads a clock: "today" and "now" are always arguments.
"""

from __future__ import annotations

import bisect
import enum
import itertools
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import attrs

from recurbill.errors import (
    InvalidInputError,
    InvalidPauseError,
    InvalidScheduleError,
    StartTooEarlyError,
)

__all__ = [
    "DEFAULT_RUN_TIME",
    "Occurrence",
    "OccurrenceStatus",
    "Pause",
    "Period",
    "Schedule",
    "due_at",
]

DEFAULT_RUN_TIME = time(6, 15)
"""The local time of day at which an occurrence becomes due unless configured."""

_DAYS_IN_MONTH = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_LAST_MONTH_INDEX = 9999 * 12 + 11  # December 9999, as year * 12 + month - 1
_LAST_ORDINAL = date.max.toordinal()
_PERIODS = "'week', 'month', 'quarter' or 'year'"


class Period(str, enum.Enum):
    """The unit a schedule repeats in; a quarter is three months."""

    WEEK = "week"
    MONTH = "month"
    QUARTER = "quarter"
    YEAR = "year"

    @property
    def months(self) -> int:
        """Months in one period: 0 for a week, 1, 3 or 12 otherwise."""
        return {"week": 0, "month": 1, "quarter": 3, "year": 12}[self.value]


class OccurrenceStatus(str, enum.Enum):
    """What happens to an occurrence: issued, skipped by a pause, or past the end."""

    SCHEDULED = "scheduled"
    SKIPPED_PAUSED = "skipped_paused"
    AFTER_END = "after_end"


def _days_in_month(year: int, month: int) -> int:
    if month == 2 and year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
        return 29
    return _DAYS_IN_MONTH[month]


def _is_last_day(day: date) -> bool:
    return day.day == _days_in_month(day.year, day.month)


def _require_date(value: object, name: str, error: type[InvalidInputError]) -> date:
    if not isinstance(value, date) or isinstance(value, datetime):
        raise error(
            problem=f"{name}={value!r}",
            allowed=f"{name} must be a datetime.date (not a datetime or a string)",
        )
    return value


def _require_index(value: object, name: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise InvalidInputError(
        problem=f"{name}={value!r}", allowed=f"{name} must be an integer >= 0"
    )


def _zone(zone: object) -> ZoneInfo:
    allowed = "use an IANA time zone name such as 'Europe/Oslo' or 'UTC'"
    if not isinstance(zone, str) or zone == "localtime":
        raise InvalidScheduleError(problem=f"time zone {zone!r}", allowed=allowed)
    try:
        return ZoneInfo(zone)
    except (KeyError, ValueError, OSError):
        raise InvalidScheduleError(
            problem=f"unknown time zone {zone!r}", allowed=allowed
        ) from None


def _require_run_time(run_time: object) -> time:
    if not isinstance(run_time, time) or run_time.tzinfo is not None:
        raise InvalidScheduleError(
            problem=f"run_time={run_time!r}",
            allowed="run_time must be a naive datetime.time such as time(6, 15); "
            "the zone is given separately",
        )
    return run_time


def due_at(on: date, *, run_time: time, zone: str) -> datetime:
    """The instant (in UTC) at which the occurrence dated *on* is due.

    That is *on* at *run_time* in the IANA time zone *zone*. A local time that
    does not exist (spring forward) is shifted forward by the length of the gap,
    so 02:30 becomes 03:30; an ambiguous one (fall back) is its first instant.

    >>> due_at(date(2026, 3, 29), run_time=time(2, 30), zone="Europe/Oslo")
    datetime.datetime(2026, 3, 29, 1, 30, tzinfo=datetime.timezone.utc)

    Raises:
        InvalidScheduleError: an unknown zone or an aware or non-time run_time.
        InvalidInputError: *on* is not a date, or the instant is not representable.
    """
    _require_date(on, "on", InvalidInputError)
    tz = _zone(zone)
    wall = _require_run_time(run_time).replace(fold=0)
    # With fold=0 zoneinfo uses the offset in force before a transition: a time
    # in a gap lands after it, shifted by the gap; an ambiguous one is the first.
    try:
        return datetime.combine(on, wall, tzinfo=tz).astimezone(timezone.utc)
    except OverflowError:
        raise InvalidInputError(
            problem=f"{on} {wall} in {zone} is outside the representable range",
            allowed="use dates whose due instant falls within years 1 to 9999",
        ) from None


@attrs.frozen
class Pause:
    """A pause: occurrences dated *d* with ``start <= d < resume`` are skipped.

    *resume* ``None`` means the pause is open-ended (not resumed yet); a pause
    with a planned resume date is allowed.

    Raises:
        InvalidPauseError: a non-date, or a resume date not after the start.
    """

    start: date
    resume: date | None = None

    def __attrs_post_init__(self) -> None:
        _require_date(self.start, "pause start", InvalidPauseError)
        if self.resume is not None:
            _require_date(self.resume, "pause resume", InvalidPauseError)
            if self.resume <= self.start:
                raise InvalidPauseError(
                    problem=f"resume date {self.resume} is not after the pause "
                    f"start {self.start}",
                    allowed="resume on a date after the pause started",
                )

    def covers(self, day: date) -> bool:
        """Whether *day* falls inside this pause."""
        return self.start <= day and (self.resume is None or day < self.resume)


@attrs.frozen(kw_only=True)
class Occurrence:
    """Occurrence number *index* of a schedule, dated *on*, with its status."""

    index: int
    on: date
    status: OccurrenceStatus


def _to_period(value: object) -> Period:
    if isinstance(value, Period):
        return value
    if isinstance(value, str):
        try:
            return Period(value.strip().lower())
        except ValueError:
            pass
    raise InvalidScheduleError(
        problem=f"period {value!r}", allowed=f"period must be {_PERIODS}"
    )


def _to_pauses(value: object) -> tuple[Pause, ...]:
    if isinstance(value, tuple) and all(isinstance(p, Pause) for p in value):
        return value
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise InvalidPauseError(
            problem=f"pauses={value!r}", allowed="pauses must be a sequence of Pause"
        )
    pauses = tuple(value)
    for pause in pauses:
        if not isinstance(pause, Pause):
            raise InvalidPauseError(
                problem=f"pause {pause!r}", allowed="each pause must be a Pause"
            )
    return pauses


def _check_pauses(_: object, __: object, pauses: tuple[Pause, ...]) -> None:
    for before, after in itertools.pairwise(pauses):
        if before.resume is None or after.start < before.resume:
            until = "open-ended" if before.resume is None else f"to {before.resume}"
            raise InvalidPauseError(
                problem=f"the pause from {after.start} overlaps the pause from "
                f"{before.start} {until}",
                allowed="pauses must be in date order and must not overlap; "
                "end a pause (resume it) or cancel a planned one before "
                "pausing again",
            )


def _check_start(_: object, __: attrs.Attribute[Any], value: Any) -> None:
    _require_date(value, "start", InvalidScheduleError)


def _check_end(_: object, __: attrs.Attribute[Any], value: Any) -> None:
    if value is not None:
        _require_date(value, "end", InvalidScheduleError)


def _check_positive(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None and attribute.name == "max_count":
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidScheduleError(
            problem=f"{attribute.name}={value!r}",
            allowed=f"{attribute.name} must be an integer >= 1",
        )


def _check_flag(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidScheduleError(
            problem=f"{attribute.name}={value!r}",
            allowed=f"{attribute.name} must be True or False",
        )


@attrs.frozen(kw_only=True)
class Schedule:
    """When a recurring invoice's occurrences fall: a pure value.

    Occurrence *n* is ``start + n * every * period``, computed from the start
    and clamped to the last day of a shorter month. With ``month_end=True`` a
    schedule that starts on a month's last day stays on last days (it has no
    effect for other start days). *end* is inclusive; *max_count* caps the
    number of invoices (occurrences a pause skips do not count); *pauses* skip
    the occurrences that fall inside them without moving the rhythm.

    >>> s = Schedule(start=date(2025, 1, 31), period="month")
    >>> print(*(s.occurrence(n) for n in range(4)))
    2025-01-31 2025-02-28 2025-03-31 2025-04-30

    Raises:
        InvalidScheduleError: a field breaks a rule; the message names it.
        InvalidPauseError: pauses overlap or are out of order.
    """

    start: date = attrs.field(validator=_check_start)
    period: Period = attrs.field(converter=_to_period)
    every: int = attrs.field(default=1, validator=_check_positive)
    end: date | None = attrs.field(default=None, validator=_check_end)
    max_count: int | None = attrs.field(default=None, validator=_check_positive)
    month_end: bool = attrs.field(default=False, validator=_check_flag)
    pauses: tuple[Pause, ...] = attrs.field(
        default=(), converter=_to_pauses, validator=_check_pauses
    )

    # Derived once, so every query is plain integer arithmetic.
    _in_months: bool = attrs.field(init=False, repr=False, eq=False, hash=False)
    _base: int = attrs.field(init=False, repr=False, eq=False, hash=False)
    _step: int = attrs.field(init=False, repr=False, eq=False, hash=False)
    _day: int = attrs.field(init=False, repr=False, eq=False, hash=False)
    _to_last: bool = attrs.field(init=False, repr=False, eq=False, hash=False)
    _last: int | None = attrs.field(init=False, repr=False, eq=False, hash=False)

    def __attrs_post_init__(self) -> None:
        start = self.start
        if self.end is not None and self.end < start:
            raise InvalidScheduleError(
                problem=f"end date {self.end} is before the start {start}",
                allowed="the end date must be on or after the start date",
            )
        months = self.period.months
        if months == 0 and self.month_end:
            raise InvalidScheduleError(
                problem="month_end=True with a weekly period",
                allowed="month_end applies to month, quarter and year periods",
            )
        setattr_ = object.__setattr__
        setattr_(self, "_in_months", months != 0)
        if months:
            setattr_(self, "_base", start.year * 12 + start.month - 1)
            setattr_(self, "_step", months * self.every)
        else:
            setattr_(self, "_base", start.toordinal())
            setattr_(self, "_step", 7 * self.every)
        setattr_(self, "_day", start.day)
        setattr_(self, "_to_last", self.month_end and _is_last_day(start))
        setattr_(self, "_last", self._compute_last())

    # -- construction -------------------------------------------------------

    @classmethod
    def create(
        cls,
        *,
        today: date,
        start: date,
        period: Period | str,
        every: int = 1,
        end: date | None = None,
        max_count: int | None = None,
        month_end: bool = False,
    ) -> Schedule:
        """A new schedule whose start is after *today* (the account's local date).

        Raises:
            StartTooEarlyError: *start* is today or earlier; names the earliest date.
            InvalidScheduleError: any other field breaks a rule.
        """
        _require_date(today, "today", InvalidScheduleError)
        schedule = cls(
            start=start,
            period=period,
            every=every,
            end=end,
            max_count=max_count,
            month_end=month_end,
        )
        if today == date.max:
            raise InvalidScheduleError(
                problem="today is 9999-12-31",
                allowed="a schedule must start after today, which is not representable",
            )
        if start <= today:
            raise StartTooEarlyError(start=start, earliest=today + timedelta(days=1))
        return schedule

    def redated(self, *, today: date, start: date) -> Schedule:
        """This schedule with a new start date, which must be after *today*.

        Everything else (period, end, count, pauses) is kept; occurrences are
        counted from the new start.

        Raises:
            StartTooEarlyError: *start* is today or earlier; names the earliest date.
            InvalidScheduleError: the new start is after the end, or not a date.
        """
        return Schedule.create(
            today=today,
            start=start,
            period=self.period,
            every=self.every,
            end=self.end,
            max_count=self.max_count,
            month_end=self.month_end,
        ).paused_by(self.pauses)

    def paused_by(self, pauses: Iterable[Pause]) -> Schedule:
        """This schedule with *pauses* as its whole pause history.

        Raises:
            InvalidPauseError: the pauses overlap or are out of order.
        """
        return attrs.evolve(self, pauses=pauses)

    # -- occurrence arithmetic ---------------------------------------------

    def _month_date(self, month_index: int) -> date:
        year, month0 = divmod(month_index, 12)
        last = _days_in_month(year, month0 + 1)
        day = self._day
        return date(year, month0 + 1, last if self._to_last or day > last else day)

    def _date_or_none(self, n: int) -> date | None:
        """Occurrence *n*, or None when it would fall after 9999-12-31."""
        if self._in_months:
            month_index = self._base + n * self._step
            if month_index > _LAST_MONTH_INDEX:
                return None
            return self._month_date(month_index)
        ordinal = self._base + n * self._step
        return None if ordinal > _LAST_ORDINAL else date.fromordinal(ordinal)

    def _index_on_or_after(self, day: date) -> int:
        if day <= self.start:
            return 0
        if not self._in_months:
            return -((self._base - day.toordinal()) // self._step)
        year = day.year
        month = day.month
        n, rest = divmod(year * 12 + month - 1 - self._base, self._step)
        if rest:
            return n + 1
        last = _days_in_month(year, month)
        on = last if self._to_last or self._day > last else self._day
        return n if on >= day.day else n + 1

    def _compute_last(self) -> int | None:
        last = None if self.max_count is None else self._counted_last(self.max_count)
        if self.end is not None:
            n = self._index_on_or_after(self.end)
            on = self._date_or_none(n)
            if on is None or on > self.end:
                n -= 1
            last = n if last is None else min(last, n)
        return last

    def _counted_last(self, count: int) -> int | None:
        """Index of the *count*-th occurrence no pause skips; None behind an open pause.

        Each pause before it pushes it on by the occurrences the pause skips
        (pauses are in date order and do not overlap), so this stays O(pauses).
        """
        last = count - 1
        for pause in self.pauses:
            first = self._index_on_or_after(pause.start)
            if first > last:
                break
            if pause.resume is None:
                return None  # the count is not reached before a resume
            last += max(0, self._index_on_or_after(pause.resume) - first)
        return last

    def occurrence(self, n: int) -> date:
        """The date of occurrence *n* (0 is the start), ignoring end and pauses. O(1).

        Raises:
            InvalidInputError: *n* is not an integer >= 0, or the date would fall
                after 9999-12-31.
        """
        _require_index(n, "n")
        on = self._date_or_none(n)
        if on is None:
            raise InvalidInputError(
                problem=f"occurrence {n} of this schedule falls after 9999-12-31",
                allowed="ask for an occurrence dated on or before 9999-12-31",
            )
        return on

    def index_on_or_after(self, day: date) -> int:
        """The smallest *n* with ``occurrence(n) >= day``, ignoring end and pauses.

        O(1).
        """
        _require_date(day, "day", InvalidInputError)
        return self._index_on_or_after(day)

    def next_on_or_after(self, day: date) -> date | None:
        """The first occurrence on or after *day* within end and max_count, else None.

        Pauses are ignored (use :meth:`status` or :meth:`upcoming` for them). O(1).
        """
        if day.__class__ is not date:
            _require_date(day, "day", InvalidInputError)
        start = self.start
        if day <= start:
            n = 0
            on: date | None = start
        elif self._in_months:
            year = day.year
            month = day.month
            n, rest = divmod(year * 12 + month - 1 - self._base, self._step)
            last_day = _days_in_month(year, month)
            wanted = self._day
            if self._to_last or wanted > last_day:
                wanted = last_day
            if rest or wanted < day.day:
                n += 1
                on = None
            else:
                on = date(year, month, wanted)
        else:
            n = -((self._base - day.toordinal()) // self._step)
            on = None
        last = self._last
        if last is not None and n > last:
            return None
        if on is None:
            on = self._date_or_none(n)
        return on

    def last_index(self) -> int | None:
        """Index of the last occurrence allowed by end and max_count.

        With max_count that is the occurrence of the max_count-th invoice:
        occurrences skipped by a pause do not count. None when the schedule is
        unbounded (neither, or an open-ended pause comes before the count is
        reached and there is no end), -1 if no occurrence at all.
        """
        return self._last

    # -- pauses and status -------------------------------------------------

    def is_paused_on(self, day: date) -> bool:
        """Whether *day* falls inside one of the pauses."""
        _require_date(day, "day", InvalidInputError)
        return self._paused(day)

    def _paused(self, day: date) -> bool:
        for pause in self.pauses:
            if day < pause.start:
                return False
            if pause.resume is None or day < pause.resume:
                return True
        return False

    def _status(self, n: int, on: date) -> OccurrenceStatus:
        if self._last is not None and n > self._last:
            return OccurrenceStatus.AFTER_END
        if self.pauses and self._paused(on):
            return OccurrenceStatus.SKIPPED_PAUSED
        return OccurrenceStatus.SCHEDULED

    def status(self, n: int) -> OccurrenceStatus:
        """The status of occurrence *n*: after the end beats skipped by a pause.

        An occurrence that would fall after 9999-12-31 is after the end too.
        """
        _require_index(n, "n")
        on = self._date_or_none(n)
        if on is None:
            return OccurrenceStatus.AFTER_END
        return self._status(n, on)

    def next_issued(self, n: int) -> Occurrence | None:
        """The first occurrence from *n* on that is issued: no pause skips it
        and it is within the end. None when none is left: the end comes
        first, or a pause with no resume date.

        A pause is jumped over to the first occurrence on or after its
        resume date, so this is O(pauses), however long the pauses are.

        >>> s = Schedule(start=date(2027, 1, 31), period="month").paused(
        ...     on=date(2027, 2, 1), resume=date(2027, 5, 1)
        ... )
        >>> print(s.next_issued(1).on)
        2027-05-31

        Raises:
            InvalidInputError: *n* is not an integer >= 0.
        """
        _require_index(n, "n")
        on = self._date_or_none(n)
        for pause in self.pauses:  # in date order: only a later one covers on
            if on is None or on < pause.start:
                break
            if not pause.covers(on):
                continue
            if pause.resume is None:
                return None  # paused until further notice
            n = self._index_on_or_after(pause.resume)
            on = self._date_or_none(n)
        if on is None or (self._last is not None and n > self._last):
            return None
        return Occurrence(index=n, on=on, status=OccurrenceStatus.SCHEDULED)

    def _listing(
        self, n: int, *, until: date | None, count: int | None, after_end: bool
    ) -> list[Occurrence]:
        found: list[Occurrence] = []
        last = self._last
        while count is None or len(found) < count:
            if last is not None and n > last and not after_end:
                break
            on = self._date_or_none(n)
            if on is None or (until is not None and on > until):
                break
            found.append(Occurrence(index=n, on=on, status=self._status(n, on)))
            n += 1
        return found

    def occurrences_between(
        self, first: date, last: date, *, include_after_end: bool = False
    ) -> list[Occurrence]:
        """The occurrences dated from *first* to *last* inclusive, with statuses.

        The list stops at the end (end date or max_count) unless
        *include_after_end*, which also lists the later ones as ``after_end``.

        Raises:
            InvalidInputError: non-dates, or *last* before *first*.
        """
        _require_date(first, "first", InvalidInputError)
        _require_date(last, "last", InvalidInputError)
        if last < first:
            raise InvalidInputError(
                problem=f"the range {first} to {last} ends before it starts",
                allowed="give first <= last (both inclusive)",
            )
        return self._listing(
            self._index_on_or_after(first),
            until=last,
            count=None,
            after_end=include_after_end,
        )

    def upcoming(
        self, *, after: date, count: int, include_after_end: bool = False
    ) -> list[Occurrence]:
        """The next *count* occurrences on or after *after*, with statuses.

        The list stops at the end (end date or max_count), so it may be shorter
        than *count*, unless *include_after_end*, which fills it with the
        ``after_end`` occurrences that would have followed.

        Raises:
            InvalidInputError: *after* is not a date or *count* not an integer >= 0.
        """
        _require_date(after, "after", InvalidInputError)
        _require_index(count, "count")
        return self._listing(
            self._index_on_or_after(after),
            until=None,
            count=count,
            after_end=include_after_end,
        )

    # -- changes: each returns a new value ---------------------------------

    def paused(
        self, *, on: date, resume: date | None = None, open_from: date | None = None
    ) -> Schedule:
        """This schedule also paused from *on*, until *resume* if given (planned).

        The pause takes its place in date order, so it may come before a pause
        already planned, but it must not overlap one. *open_from* is the first
        date that can still change (see :meth:`resumed`): a pause asked to start
        before it starts on it, and one that would then end on or before it
        changes nothing.

        Raises:
            InvalidPauseError: *resume* is not after *on*, or the pause (as asked)
                overlaps another.
        """
        fixed = _open_from(open_from)
        asked = self._with_pause(Pause(on, resume))  # refuses bad dates first
        if fixed is None or on >= fixed:
            return asked
        if resume is not None and resume <= fixed:
            return self  # it would only have covered dates that cannot change
        return self._with_pause(Pause(fixed, resume))

    def resumed(self, *, on: date, open_from: date | None = None) -> Schedule:
        """This schedule billing again from *on*, on the original rhythm.

        The last pause that starts before *on* now ends on *on*: earlier than
        planned, later, or (an open-ended one) at last. When no pause starts
        before *on*, the first pause is cancelled: resuming on or before a
        pause's start means it never happens.

        *open_from* is the first date that can still change: the day after the
        last occurrence the daily run handled (None when it handled none).
        Whether a day before it is paused never changes: an *on* before it
        counts as *open_from*, and pauses that ended before it are left alone
        (when every pause did, an *on* before *open_from* changes nothing).

        Raises:
            InvalidPauseError: never paused, or every pause ended before
                *open_from* and *on* is not before it.
        """
        _require_date(on, "on", InvalidPauseError)
        fixed = _open_from(open_from)
        if not self.pauses:
            raise InvalidPauseError(
                problem=f"cannot resume on {on}: the schedule was never paused",
                allowed="pause a schedule before resuming it",
            )
        day = on if fixed is None or on >= fixed else fixed
        live = [i for i, p in enumerate(self.pauses) if not _ended(p, fixed)]
        if not live:
            if on < day:
                return self  # it ended before any date still open
            last = self.pauses[-1]
            raise InvalidPauseError(
                problem=f"cannot resume on {on}: the last pause already ended on "
                f"{last.resume}, and occurrences before {fixed}, the first date "
                "that can still change, are already issued or skipped",
                allowed=f"pause again, from {fixed} or later",
            )
        starting_before = [i for i in live if self.pauses[i].start < day]
        if starting_before:
            i = starting_before[-1]
            return self._replaced(i, Pause(self.pauses[i].start, day))
        return self._replaced(live[0], None)  # starts on or after day >= fixed

    def without_pause(self, *, start: date, open_from: date | None = None) -> Schedule:
        """This schedule without the pause that starts on *start*: as if never paused.

        Only a pause that has not begun can be cancelled: one that starts on or
        after *open_from*, the first date that can still change (see
        :meth:`resumed`). To end one that has begun, resume it.

        Raises:
            InvalidPauseError: no pause starts on *start*, or it has begun.
        """
        _require_date(start, "pause start", InvalidPauseError)
        fixed = _open_from(open_from)
        starts = [p.start for p in self.pauses]
        if start not in starts:
            listed = ", ".join(map(str, starts)) or "none"
            raise InvalidPauseError(
                problem=f"no pause starts on {start}",
                allowed=f"give the start of a pause (pauses start on: {listed})",
            )
        i = starts.index(start)
        if fixed is not None and start < fixed:
            pause = self.pauses[i]
            instead = (
                f"this one ended on {pause.resume}"
                if _ended(pause, fixed)
                else f"end this one by resuming on {fixed} or later"
            )
            raise InvalidPauseError(
                problem=f"the pause from {start} has begun: occurrences before "
                f"{fixed}, the first date that can still change, are already "
                "issued or skipped",
                allowed=f"cancel a pause that starts on {fixed} or later; {instead}",
            )
        return self._replaced(i, None)

    def _with_pause(self, pause: Pause) -> Schedule:
        at = bisect.bisect_right([p.start for p in self.pauses], pause.start)
        return attrs.evolve(self, pauses=(*self.pauses[:at], pause, *self.pauses[at:]))

    def _replaced(self, i: int, pause: Pause | None) -> Schedule:
        """This schedule with pause *i* replaced by *pause*, or removed (None)."""
        kept = () if pause is None else (pause,)
        return attrs.evolve(
            self, pauses=(*self.pauses[:i], *kept, *self.pauses[i + 1 :])
        )

    def ended(self, *, on: date) -> Schedule:
        """This schedule ending on *on* (inclusive).

        Raises:
            InvalidScheduleError: *on* is not a date or is before the start.
        """
        _require_date(on, "end", InvalidScheduleError)
        return attrs.evolve(self, end=on)

    # -- the daily run -----------------------------------------------------

    def due_count(self, as_of: datetime, *, run_time: time, zone: str) -> int:
        """How many occurrences (indices 0..k-1) are due by the instant *as_of*.

        Occurrence *n* is due at :func:`due_at` of its date; the count is capped
        at the end (``last_index() + 1``). Skipped occurrences are counted: the
        caller records them as skipped. O(1).

        Raises:
            InvalidInputError: *as_of* is not an aware datetime.
            InvalidScheduleError: an unknown zone or a bad run_time.
        """
        if not isinstance(as_of, datetime) or as_of.utcoffset() is None:
            raise InvalidInputError(
                problem=f"as_of={as_of!r}",
                allowed="as_of must be an aware datetime (with tzinfo), "
                "for example datetime(2026, 1, 5, 7, 0, tzinfo=timezone.utc)",
            )
        tz = _zone(zone)
        _require_run_time(run_time)
        try:
            local_day = as_of.astimezone(tz).date()
        except OverflowError:
            local_day = as_of.date()
        n = self._index_on_or_after(local_day)
        last = self._last
        if last is not None:
            n = min(n, last + 1)

        def due(index: int) -> bool:
            on = self._date_or_none(index)
            if on is None:
                return False
            try:
                return due_at(on, run_time=run_time, zone=zone) <= as_of
            except InvalidInputError:
                return on <= local_day

        # The local date gives n within one or two steps of the answer.
        while n > 0 and not due(n - 1):
            n -= 1
        while (last is None or n <= last) and due(n):
            n += 1
        return n

    # -- storage -----------------------------------------------------------

    def to_dict(self) -> dict[str, object]:
        """This schedule as JSON-safe data (ISO date strings), for storage."""
        return {
            "start": self.start.isoformat(),
            "period": self.period.value,
            "every": self.every,
            "end": None if self.end is None else self.end.isoformat(),
            "max_count": self.max_count,
            "month_end": self.month_end,
            "pauses": [
                {
                    "start": p.start.isoformat(),
                    "resume": None if p.resume is None else p.resume.isoformat(),
                }
                for p in self.pauses
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Schedule:
        """The schedule stored by :meth:`to_dict`.

        Raises:
            InvalidScheduleError: missing, unknown or malformed fields.
        """
        if not isinstance(data, Mapping):
            raise InvalidScheduleError(
                problem=f"stored schedule {data!r}",
                allowed="a mapping as produced by Schedule.to_dict()",
            )
        known = {"start", "period", "every", "end", "max_count", "month_end", "pauses"}
        unknown = sorted(map(str, set(data) - known))
        missing = sorted({"start", "period"} - set(data))
        if unknown or missing:
            raise InvalidScheduleError(
                problem=f"stored schedule has unknown fields {unknown} "
                f"and lacks {missing}",
                allowed=f"fields {sorted(known)}; start and period are required",
            )
        raw_pauses = data.get("pauses", [])
        if not isinstance(raw_pauses, (list, tuple)):
            raise InvalidScheduleError(
                problem=f"stored pauses {raw_pauses!r}",
                allowed="a list of {'start': ..., 'resume': ...} mappings",
            )
        pauses = []
        for item in raw_pauses:
            if not isinstance(item, Mapping) or not set(item) <= {"start", "resume"}:
                raise InvalidScheduleError(
                    problem=f"stored pause {item!r}",
                    allowed="a mapping with 'start' and optional 'resume' dates",
                )
            pauses.append(
                Pause(
                    _parse_date(item.get("start"), "pause start"),
                    _parse_optional_date(item.get("resume"), "pause resume"),
                )
            )
        return cls(
            start=_parse_date(data["start"], "start"),
            period=data["period"],
            every=data.get("every", 1),  # type: ignore[arg-type]
            end=_parse_optional_date(data.get("end"), "end"),
            max_count=data.get("max_count"),  # type: ignore[arg-type]
            month_end=data.get("month_end", False),  # type: ignore[arg-type]
            pauses=pauses,
        )


def _parse_date(value: object, name: str) -> date:
    if isinstance(value, str) and len(value) == 10 and value[4] == value[7] == "-":
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidScheduleError(
        problem=f"stored {name} {value!r}",
        allowed="an ISO date string such as '2025-01-31'",
    )


def _parse_optional_date(value: object, name: str) -> date | None:
    return None if value is None else _parse_date(value, name)


def _open_from(value: object) -> date | None:
    if value is None:
        return None
    return _require_date(value, "open_from", InvalidInputError)


def _ended(pause: Pause, open_from: date | None) -> bool:
    """Whether *pause* ended before *open_from*, so it can no longer change."""
    return (
        open_from is not None and pause.resume is not None and pause.resume < open_from
    )

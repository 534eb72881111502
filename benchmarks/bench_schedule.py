"""Next occurrence on or after a date, for many schedules: recurbill vs relativedelta.

For N schedules (mixed periods, multipliers 1..12, start days including the
29th-31st and 29 February, some month_end, some with an end date or a maximum
count) and one query date each, compute the first occurrence on or after the
date, within the end:

* recurbill: ``Schedule.next_on_or_after(day)`` on Schedule instances built
  before timing (the public method; no special fast path).
* baseline: what a user would write with dateutil. Estimate *n* from the
  number of months (or days) between the start and the date, then step forward
  with ``start + relativedelta(months=n * step)`` (``weeks=`` for weekly,
  ``day=31`` added for month-end schedules) until the date is reached: one or
  two relativedelta additions per query. Then the end and count checks.

Both are run on the same inputs in the same process; every result of the two
is compared, and the timings and their ratio are printed.

    python benchmarks/bench_schedule.py [--count N] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from datetime import date, timedelta

import dateutil
from dateutil.relativedelta import relativedelta

from recurbill.schedule import Period, Schedule

MONTHS = {Period.WEEK: 0, Period.MONTH: 1, Period.QUARTER: 3, Period.YEAR: 12}

Case = tuple[date, Period, int, bool, "date | None", "int | None"]


def make_cases(count: int, seed: int) -> tuple[list[Case], list[date]]:
    """Random schedule parameters and one query date per schedule."""
    rng = random.Random(seed)
    periods = [Period.WEEK, Period.MONTH, Period.MONTH, Period.QUARTER, Period.YEAR]
    cases: list[Case] = []
    days: list[date] = []
    first = date(2015, 1, 1).toordinal()
    for _ in range(count):
        period = rng.choice(periods)
        year = rng.randint(2015, 2025)
        month = rng.randint(1, 12)
        if rng.random() < 0.4:  # the hard days: 29th-31st, 29 February
            day = rng.randint(29, 31)
            while True:
                try:
                    start = date(year, month, day)
                    break
                except ValueError:
                    day -= 1
        else:
            start = date.fromordinal(first + rng.randrange(11 * 365))
        every = rng.randint(1, 12)
        month_end = period is not Period.WEEK and rng.random() < 0.1
        roll = rng.random()
        end = start + timedelta(days=rng.randint(0, 4000)) if roll < 0.15 else None
        max_count = rng.randint(1, 60) if 0.15 <= roll < 0.3 else None
        cases.append((start, period, every, month_end, end, max_count))
        days.append(start + timedelta(days=rng.randint(-30, 15 * 365)))
    return cases, days


def _last_day(day: date) -> bool:
    return (day + timedelta(days=1)).month != day.month


def baseline_next(case: Case, day: date) -> date | None:
    """The first occurrence on or after *day* with relativedelta: estimate, step."""
    start, period, every, month_end, end, max_count = case
    months = MONTHS[period]
    if day <= start:
        n = 0
    elif months:
        elapsed = (day.year - start.year) * 12 + day.month - start.month
        n = elapsed // (months * every)
    else:
        n = (day - start).days // (7 * every)
    to_last = month_end and _last_day(start)
    while True:
        if months:
            step = relativedelta(months=n * months * every, day=31 if to_last else None)
        else:
            step = relativedelta(weeks=n * every)
        on = start + step
        if on >= day:
            break
        n += 1
    if max_count is not None and n >= max_count:
        return None
    if end is not None and on > end:
        return None
    return on


def _best(runs: list[float]) -> float:
    return min(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20251122)
    args = parser.parse_args()

    print(
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} cores; dateutil {dateutil.__version__}"
    )
    cases, days = make_cases(args.count, args.seed)

    t0 = time.perf_counter()
    schedules = [
        Schedule(
            start=start,
            period=period,
            every=every,
            month_end=month_end,
            end=end,
            max_count=max_count,
        )
        for start, period, every, month_end, end, max_count in cases
    ]
    built = time.perf_counter() - t0
    print(f"built {args.count:,} Schedule objects in {built:.2f} s (not timed below)")

    ours_runs: list[float] = []
    base_runs: list[float] = []
    ours: list[date | None] = []
    base: list[date | None] = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ours = [s.next_on_or_after(d) for s, d in zip(schedules, days, strict=True)]
        ours_runs.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        base = [baseline_next(c, d) for c, d in zip(cases, days, strict=True)]
        base_runs.append(time.perf_counter() - t0)

    mismatches = [i for i, (a, b) in enumerate(zip(ours, base, strict=True)) if a != b]
    nones = sum(o is None for o in ours)
    print(
        f"compared all {args.count:,} results: {len(mismatches)} differ "
        f"({nones:,} are None: past the end or the count)"
    )
    if mismatches:
        i = mismatches[0]
        print(f"first difference: {cases[i]} on {days[i]}: {ours[i]} vs {base[i]}")
        sys.exit(1)

    o, b = _best(ours_runs), _best(base_runs)
    per = 1e9 / args.count
    print(f"recurbill next_on_or_after : {o:7.3f} s  ({o * per:6.0f} ns per schedule)")
    print(f"relativedelta estimate+step: {b:7.3f} s  ({b * per:6.0f} ns per schedule)")
    print(f"best of {args.repeat}; recurbill is {b / o:.1f}x faster")
    if b / o < 10:
        print("FAIL: recurbill is less than 10x faster than the baseline")
        sys.exit(1)


if __name__ == "__main__":
    main()

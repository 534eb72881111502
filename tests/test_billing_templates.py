"""A template's end, re-dating, pauses, and the preview against the run through changes.

A template stopped by its end date stays active until the first daily run at
or after that date's run time, which finishes it and reports it ended, however
the end was set; until then the end can be moved, but never before an
occurrence the run already handled.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_helpers import World, at, line, make_world
from recurbill.errors import InvalidPauseError, InvalidScheduleError, StateError
from recurbill.records import (
    CollectionMethod,
    Customer,
    OccurrenceOutcome,
    OccurrenceRecord,
    RunReport,
    TemplateStatus,
)
from recurbill.schedule import OccurrenceStatus, Pause, due_at
from recurbill.views import TemplateView


def _send_invoice(world: World) -> Customer:
    return world.customer(card=None, method=CollectionMethod.SEND_INVOICE)


def _daily(world: World, first: date, last: date) -> list[tuple[date, RunReport]]:
    """Run every morning from *first* to *last*, inclusive."""
    reports = []
    day = first
    while day <= last:
        reports += [(day, r) for r in world.billing.run(at(day, 7))]
        day += timedelta(days=1)
    return reports


def _outcomes(
    history: Sequence[OccurrenceRecord],
) -> list[tuple[int, date, OccurrenceStatus]]:
    """What the runs did, as the statuses a preview shows."""
    return [
        (
            h.index,
            h.on,
            OccurrenceStatus.SCHEDULED
            if h.outcome is OccurrenceOutcome.ISSUED
            else OccurrenceStatus.SKIPPED_PAUSED,
        )
        for h in history
    ]


def _assert_the_run_did_what_the_preview_said(
    preview: TemplateView, view: TemplateView, *, asked: int
) -> None:
    """*view*, after one run, handled what *preview* (asked for *asked*
    upcoming occurrences before that run) listed: same indices, dates and
    outcomes, as far as the run got, and nothing the preview did not list."""
    promised = [
        (u.occurrence.index, u.occurrence.on, u.occurrence.status)
        for u in preview.upcoming
    ]
    assert view.history[: len(preview.history)] == preview.history
    handled = _outcomes(view.history[len(preview.history) :])
    shown = min(len(handled), len(promised))
    assert handled[:shown] == promised[:shown]
    if len(promised) < asked:  # the preview listed all that is left
        assert len(handled) <= len(promised)


def _invoice_dates(world: World, template_id: str) -> list[date]:
    view = world.billing.template_view(world.account.id, template_id)
    return [i.issue_date for i in view.invoices]


def test_an_end_set_later_is_reported_as_one_given_at_creation() -> None:
    world = make_world()
    kari = world.billing.add_customer(
        world.account.id,
        name="Kari",
        email="kari@example.no",
        collection_method="send_invoice",
    )
    ids = {}
    for memo, end in (("Office rent", date(2027, 2, 20)), ("Storage rent", None)):
        ids[memo] = world.billing.create_template(
            world.account.id,
            kari.id,
            lines=[line("100")],
            start=date(2027, 2, 1),
            period="month",
            end=end,
            memo=memo,
            now=at(date(2027, 1, 10)),
        ).id
    reports = _daily(world, date(2027, 1, 31), date(2027, 2, 9))
    later = world.billing.end_template(
        world.account.id, ids["Storage rent"], on=date(2027, 2, 20)
    )
    assert later.status is TemplateStatus.ACTIVE  # the run has not reached the end
    reports += _daily(world, date(2027, 2, 10), date(2027, 4, 1))
    ended = [(day, e.description) for day, r in reports for e in r.ended]
    assert sorted(ended) == [
        (date(2027, 2, 20), "Office rent"),
        (date(2027, 2, 20), "Storage rent"),
    ]
    for template_id in ids.values():
        assert _invoice_dates(world, template_id) == [date(2027, 2, 1)]
        view = world.billing.template_view(world.account.id, template_id)
        assert view.template.status is TemplateStatus.FINISHED
    with world.storage.transaction() as tx:
        summaries = [
            n.text
            for n in tx.pending_notifications(limit=100)
            if n.kind == "daily_summary"
        ]
    for memo in ids:  # listed once: issued on 1 February, ended on the 20th
        assert sum(memo in text for text in summaries) == 1


def test_an_end_still_ahead_can_be_moved_until_the_run_reaches_it() -> None:
    world = make_world()
    tid = world.template(_send_invoice(world), start=date(2027, 4, 1))
    world.billing.run(at(date(2027, 4, 2), 7))
    world.billing.end_template(world.account.id, tid, on=date(2027, 4, 20))
    view = world.billing.template_view(world.account.id, tid)
    assert view.template.status is TemplateStatus.ACTIVE
    assert view.upcoming == ()  # nothing more to issue before the end
    # meant 20 December: the end is still ahead, so it can be corrected
    moved = world.billing.end_template(world.account.id, tid, on=date(2027, 12, 20))
    assert moved.schedule.end == date(2027, 12, 20)
    ended = [
        (day, e.template_id)
        for day, r in _daily(world, date(2027, 4, 3), date(2028, 1, 31))
        for e in r.ended
    ]
    assert ended == [(date(2027, 12, 20), tid)]
    assert _invoice_dates(world, tid) == [date(2027, m, 1) for m in range(4, 13)]
    with pytest.raises(StateError, match="has finished"):
        world.billing.end_template(world.account.id, tid, on=date(2028, 6, 1))


def test_an_end_can_be_brought_forward_to_the_last_handled_occurrence() -> None:
    world = make_world()
    tid = world.template(_send_invoice(world), start=date(2027, 1, 1))
    world.billing.run(at(date(2027, 3, 10), 12))  # January, February and March
    before = world.billing.template_view(world.account.id, tid).template
    with pytest.raises(
        InvalidScheduleError,
        match=r"end date 2027-01-15 is before 2027-03-01, an occurrence the daily "
        r"run already handled; end on 2027-03-01 or later",
    ):
        world.billing.end_template(world.account.id, tid, on=date(2027, 1, 15))
    assert world.billing.template_view(world.account.id, tid).template == before
    with pytest.raises(InvalidScheduleError, match="before the start"):
        world.billing.end_template(world.account.id, tid, on=date(2026, 12, 1))
    world.billing.end_template(world.account.id, tid, on=date(2027, 3, 1))
    view = world.billing.template_view(world.account.id, tid)
    assert [view.template.schedule.status(h.index) for h in view.history] == [
        OccurrenceStatus.SCHEDULED
    ] * 3
    (report,) = world.billing.run(at(date(2027, 3, 10), 13))  # the next run
    assert [e.template_id for e in report.ended] == [tid]
    assert report.issued == ()
    assert _invoice_dates(world, tid) == [date(2027, m, 1) for m in (1, 2, 3)]


def test_a_count_still_ends_with_the_run_of_the_last_invoice() -> None:
    world = make_world()
    tid = world.template(
        _send_invoice(world), start=date(2027, 1, 1), max_count=2, end=date(2027, 2, 20)
    )  # the count runs out on 1 February, before the end date
    ended = [
        (day, e.template_id)
        for day, r in _daily(world, date(2027, 1, 1), date(2027, 3, 1))
        for e in r.ended
    ]
    assert ended == [(date(2027, 2, 1), tid)]  # not on the end date


def test_a_template_skipped_from_its_start_cannot_be_redated() -> None:
    world = make_world()
    tid = world.template(_send_invoice(world), start=date(2027, 2, 1))
    world.billing.pause_template(world.account.id, tid, on=date(2027, 2, 1))
    world.billing.run(at(date(2027, 2, 5)))
    assert _invoice_dates(world, tid) == []
    with pytest.raises(
        StateError,
        match=r"has handled occurrences \(issued or skipped\), the first on "
        r"2027-02-01; re-date only a template the daily run has not reached yet",
    ):
        world.billing.change_template(
            world.account.id, tid, start=date(2027, 3, 15), now=at(date(2027, 2, 5))
        )


@settings(max_examples=60, deadline=None)
@given(rnd=st.randoms(use_true_random=False))
def test_the_preview_and_the_run_agree_through_pauses_and_ends(
    rnd: random.Random,
) -> None:
    """Random pauses, resumes and (re)set ends between runs of random length.

    Before each run the preview lists what comes next; the run then handles
    exactly those occurrences (as far as it gets), with the same dates and
    outcomes. It reports the template ended once, in the run that finishes it:
    the first at or after its end date's run time, or, for a count, the one
    that issues its last invoice.
    """
    world = make_world()
    account = world.account
    start = date(2027, 1, 1) + timedelta(days=rnd.randint(1, 60))
    tid = world.template(
        _send_invoice(world),
        start=start,
        period=rnd.choice(["week", "month", "quarter"]),
        every=rnd.choice([1, 1, 2]),
        end=start + timedelta(days=rnd.randint(0, 400)) if rnd.random() < 0.4 else None,
        max_count=rnd.randint(1, 8) if rnd.random() < 0.3 else None,
        created=date(2027, 1, 1),
    )
    day = date(2027, 1, 1)
    reported = 0
    for _ in range(rnd.randint(5, 30)):
        on = day + timedelta(days=rnd.randint(-30, 120))
        change = rnd.random()
        with contextlib.suppress(InvalidScheduleError, StateError):
            if change < 0.2:
                resume = on + timedelta(days=rnd.randint(1, 90))
                world.billing.pause_template(
                    account.id,
                    tid,
                    on=on,
                    resume=resume if rnd.random() < 0.5 else None,
                )
            elif change < 0.3:
                world.billing.resume_template(account.id, tid, on=on)
            elif change < 0.5:
                world.billing.end_template(account.id, tid, on=on)
        preview = world.billing.template_view(account.id, tid, upcoming=8)
        day += timedelta(days=rnd.choice([1, 7, 30, 90]))
        as_of = at(day, rnd.choice([5, 7, 12]))
        (report,) = world.billing.run(as_of)
        view = world.billing.template_view(account.id, tid)
        _assert_the_run_did_what_the_preview_said(preview, view, asked=8)
        # no handled occurrence is ever after the end
        schedule = view.template.schedule
        assert all(
            schedule.status(h.index) is not OccurrenceStatus.AFTER_END
            for h in view.history
        )
        finished = view.template.status is TemplateStatus.FINISHED
        ends_now = [e.template_id for e in report.ended] == [tid]
        was_finished = preview.template.status is TemplateStatus.FINISHED
        assert ends_now == (finished and not was_finished)
        reported += ends_now
        counted_out = (
            schedule.max_count is not None and len(view.invoices) == schedule.max_count
        )
        end_due = schedule.end is not None and as_of >= due_at(
            schedule.end, run_time=account.run_time, zone=account.timezone
        )
        if ends_now:
            assert counted_out or end_due
        if not finished:
            assert not counted_out
            assert not end_due
    assert reported <= 1


def test_a_finished_template_cannot_be_changed_or_brought_back() -> None:
    world = make_world()
    billing, acct = world.billing, world.account.id
    kari = world.customer()
    tid = world.template(kari, start=date(2025, 3, 1), end=date(2025, 4, 15))
    for day in (date(2025, 3, 1), date(2025, 4, 1), date(2025, 4, 15)):
        billing.run(at(day, 7))
    assert billing.template_view(acct, tid).template.status is TemplateStatus.FINISHED
    changes = (
        lambda: billing.change_template(
            acct, tid, memo="new", now=at(date(2025, 4, 20))
        ),
        lambda: billing.change_template(
            acct, tid, lines=[line("900")], now=at(date(2025, 4, 20))
        ),
        lambda: billing.end_template(acct, tid, on=date(2025, 7, 31)),
        lambda: billing.pause_template(acct, tid, on=date(2025, 5, 1)),
    )
    for change in changes:
        with pytest.raises(StateError, match="has finished"):
            change()
    for day in (date(2025, 5, 1), date(2025, 6, 1)):
        (report,) = billing.run(at(day, 7))
        assert report.issued == ()
        assert report.ended == ()
    assert len(world.storage_invoices()) == 2


@pytest.mark.parametrize(
    ("zone", "run_time", "latest"),
    [
        ("Europe/Oslo", time(6, 15), date(9998, 12, 31)),  # 05:15 UTC
        ("America/Los_Angeles", time(20), date(9998, 12, 30)),  # 04:00 UTC next day
    ],
)
def test_a_template_that_would_never_produce_an_invoice_is_refused(
    zone: str, run_time: time, latest: date
) -> None:
    """Its first date is due after the end of the calendar (the year 9998 in
    UTC): the run would only finish it, unreported. Ends and counts cannot
    cause it (an end before the start, or a count of 0, is refused)."""
    world = make_world()
    billing = world.billing
    account = billing.create_account(
        account_id="late",
        name="Late Ltd",
        currency="NOK",
        timezone=zone,
        run_time=run_time,
        summary_email="post@late.example",
    )
    kari = billing.add_customer(account.id, name="Kari", email="kari@example.no")
    too_late = latest + timedelta(days=1)
    created = datetime(2027, 1, 1, tzinfo=timezone.utc)

    def create(start: date) -> str:
        return billing.create_template(
            account.id, kari.id, lines=[line()], start=start, period="month",
            now=created,
        ).id  # fmt: skip

    with pytest.raises(InvalidScheduleError) as refused:
        create(too_late)
    assert str(refused.value) == (
        f"a template starting {too_late} would never produce an invoice: its "
        "first is due after the end of recurbill's calendar (9998-12-31 in "
        f"UTC); start on {latest} or earlier (the latest start for account "
        f"'late', whose run time is {run_time:%H:%M} in {zone})"
    )
    with world.storage.transaction() as tx:
        assert tx.list_templates(account.id) == []  # nothing written
    view = billing.template_view(account.id, create(latest), upcoming=3)
    assert view.template.status is TemplateStatus.ACTIVE
    assert [u.occurrence.on for u in view.upcoming] == [latest]


def test_re_dating_a_template_past_the_latest_start_is_refused() -> None:
    world = make_world()
    tid = world.template(_send_invoice(world), start=date(2027, 2, 1))
    before = world.billing.template_view(world.account.id, tid).template
    with pytest.raises(InvalidScheduleError, match="start on 9998-12-31 or earlier"):
        world.billing.change_template(
            world.account.id, tid, start=date(9999, 3, 1), now=at(date(2027, 1, 10))
        )
    after = world.billing.template_view(world.account.id, tid).template
    assert after == before  # still active, on its old start


# pauses that are planned, moved, cancelled or ended early ---------------------


FINISHED = TemplateStatus.FINISHED


def _monthly_from_january(world: World) -> str:
    tid = world.template(
        _send_invoice(world), start=date(2027, 1, 1), created=date(2026, 12, 1)
    )
    _daily(world, date(2027, 1, 1), date(2027, 1, 10))  # 1 January is issued
    return tid


@pytest.mark.parametrize("resume_on", [date(2027, 2, 1), date(2027, 3, 1)])
def test_resuming_on_or_before_a_planned_pause_cancels_it(resume_on: date) -> None:
    world = make_world()
    tid = _monthly_from_january(world)
    world.billing.pause_template(
        world.account.id, tid, on=date(2027, 3, 1), resume=date(2027, 3, 20)
    )
    resumed = world.billing.resume_template(world.account.id, tid, on=resume_on)
    assert resumed.schedule.pauses == ()
    _daily(world, date(2027, 1, 11), date(2027, 4, 2))
    assert _invoice_dates(world, tid) == [date(2027, m, 1) for m in (1, 2, 3, 4)]


def test_a_planned_pause_is_cancelled_moved_and_paused_over_again() -> None:
    world = make_world()
    acct = world.account.id
    tid = _monthly_from_january(world)
    world.billing.pause_template(
        acct, tid, on=date(2027, 3, 1), resume=date(2027, 3, 20)
    )
    with pytest.raises(
        InvalidPauseError,
        match=r"the pause from 2027-03-01 overlaps the pause from 2027-02-15 "
        r"open-ended; .* cancel a planned one before pausing again",
    ):
        world.billing.pause_template(acct, tid, on=date(2027, 2, 15))
    later = world.billing.resume_template(acct, tid, on=date(2027, 5, 10))
    assert later.schedule.pauses == (Pause(date(2027, 3, 1), date(2027, 5, 10)),)
    # its start moves by cancelling it and pausing again
    world.billing.cancel_pause(acct, tid, start=date(2027, 3, 1))
    moved = world.billing.pause_template(
        acct, tid, on=date(2027, 4, 1), resume=date(2027, 4, 2)
    )
    assert moved.schedule.pauses == (Pause(date(2027, 4, 1), date(2027, 4, 2)),)
    earlier = world.billing.pause_template(
        acct, tid, on=date(2027, 2, 1), resume=date(2027, 2, 2)
    )
    assert earlier.schedule.pauses == (
        Pause(date(2027, 2, 1), date(2027, 2, 2)),
        Pause(date(2027, 4, 1), date(2027, 4, 2)),
    )
    with pytest.raises(InvalidPauseError, match=r"no pause starts on 2027-03-01"):
        world.billing.cancel_pause(acct, tid, start=date(2027, 3, 1))
    _daily(world, date(2027, 1, 11), date(2027, 6, 2))
    assert _invoice_dates(world, tid) == [date(2027, m, 1) for m in (1, 3, 5, 6)]


def test_a_pause_in_effect_ends_early_or_later_but_is_not_cancelled() -> None:
    world = make_world()
    acct = world.account.id
    tid = _monthly_from_january(world)
    world.billing.pause_template(
        acct, tid, on=date(2027, 3, 1), resume=date(2027, 5, 1)
    )
    _daily(world, date(2027, 1, 11), date(2027, 3, 10))  # 1 March is skipped
    with pytest.raises(
        InvalidPauseError,
        match=r"the pause from 2027-03-01 has begun: occurrences before 2027-03-02, "
        r"the first date that can still change, are already issued or skipped",
    ):
        world.billing.cancel_pause(acct, tid, start=date(2027, 3, 1))
    later = world.billing.resume_template(acct, tid, on=date(2027, 6, 1))
    assert later.schedule.pauses == (Pause(date(2027, 3, 1), date(2027, 6, 1)),)
    early = world.billing.resume_template(acct, tid, on=date(2027, 3, 15))
    assert early.schedule.pauses == (Pause(date(2027, 3, 1), date(2027, 3, 15)),)
    _daily(world, date(2027, 3, 11), date(2027, 5, 2))
    assert _invoice_dates(world, tid) == [date(2027, m, 1) for m in (1, 2, 4, 5)]
    history = world.billing.template_view(acct, tid).history
    assert [h.on for h in history if h.outcome is OccurrenceOutcome.SKIPPED] == [
        date(2027, 3, 1)
    ]


def _pause_change(world: World, tid: str, data: st.DataObject, *, today: date) -> None:
    """A random pause, resume or cancellation, refused or not."""
    acct = world.account.id
    on = today + timedelta(days=data.draw(st.integers(-20, 150), label="on"))
    kind = data.draw(st.sampled_from(["pause", "resume", "cancel"]), label="change")
    with contextlib.suppress(InvalidPauseError, StateError):
        if kind == "pause":
            length = data.draw(st.none() | st.integers(1, 90), label="length")
            resume = None if length is None else on + timedelta(days=length)
            world.billing.pause_template(acct, tid, on=on, resume=resume)
        elif kind == "resume":
            world.billing.resume_template(acct, tid, on=on)
        else:
            pauses = world.billing.template_view(acct, tid).template.schedule.pauses
            starts = [p.start for p in pauses] or [on]
            start = data.draw(st.sampled_from(starts), label="cancel")
            world.billing.cancel_pause(acct, tid, start=start)


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_pause_changes_keep_what_the_runs_did_and_the_preview_holds(
    data: st.DataObject,
) -> None:
    """Random pauses, resumes and cancellations between runs of random length.

    After each change the schedule still says what the runs did with every
    occurrence they handled (none before the day of the change is rewritten),
    and the next run handles what the preview listed before it.
    """
    world = make_world()
    acct = world.account.id
    start = date(2027, 1, 1) + timedelta(days=data.draw(st.integers(1, 60)))
    tid = world.template(
        _send_invoice(world),
        start=start,
        period=data.draw(st.sampled_from(["week", "month", "quarter"])),
        every=data.draw(st.sampled_from([1, 2])),
        max_count=data.draw(st.none() | st.integers(1, 10)),
        created=date(2027, 1, 1),
    )
    today = date(2027, 1, 1)
    for _ in range(data.draw(st.integers(3, 15))):
        before = world.billing.template_view(acct, tid)
        _pause_change(world, tid, data, today=today)
        preview = world.billing.template_view(acct, tid, upcoming=8)
        assert preview.history == before.history
        schedule = preview.template.schedule
        assert _outcomes(preview.history) == [
            (h.index, h.on, schedule.status(h.index)) for h in preview.history
        ]
        today += timedelta(days=data.draw(st.sampled_from([1, 7, 30, 90])))
        world.billing.run(at(today, data.draw(st.sampled_from([5, 7, 12]))))
        view = world.billing.template_view(acct, tid)
        _assert_the_run_did_what_the_preview_said(preview, view, asked=8)


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_cancelling_a_pause_before_it_begins_bills_as_if_never_paused(
    data: st.DataObject,
) -> None:
    """Two templates alike, one paused and then, before the pause begins,
    cancelled (with ``cancel_pause`` or by resuming on or before its start):
    they issue the same invoices and record the same history."""
    plain, paused = make_world(), make_world()
    period = data.draw(st.sampled_from(["week", "month", "quarter"]))
    max_count = data.draw(st.none() | st.integers(1, 10))
    tids = [
        world.template(
            _send_invoice(world),
            start=date(2027, 1, 15),
            period=period,
            max_count=max_count,
            created=date(2027, 1, 1),
        )
        for world in (plain, paused)
    ]
    acct = paused.account.id

    def run_both(day: date) -> None:
        for world in (plain, paused):
            world.billing.run(at(day, 7))

    planned_on = date(2027, 1, 1) + timedelta(days=data.draw(st.integers(0, 200)))
    run_both(planned_on)
    on = planned_on + timedelta(days=data.draw(st.integers(0, 200)))
    length = data.draw(st.none() | st.integers(1, 200))
    resume = None if length is None else on + timedelta(days=length)
    if paused.billing.template_view(acct, tids[1]).template.status is FINISHED:
        return  # its count ran out: nothing to pause
    planned = paused.billing.pause_template(acct, tids[1], on=on, resume=resume)
    # a day the run already handled is not paused: the pause starts after it
    if not planned.schedule.pauses:
        return  # it covered only days the run had handled: nothing was paused
    (pause,) = planned.schedule.pauses
    on = pause.start
    cancelled_on = planned_on + timedelta(days=data.draw(st.integers(0, 200)))
    run_both(cancelled_on)
    view = paused.billing.template_view(acct, tids[1])
    if view.template.status is FINISHED:
        return  # its count ran out before the pause: it can no longer change
    history = view.history
    begun = bool(history) and history[-1].on >= on
    if data.draw(st.booleans(), label="by resuming") and not begun:
        back = on - timedelta(days=data.draw(st.integers(0, 30)))
        paused.billing.resume_template(acct, tids[1], on=back)
    elif begun:
        with pytest.raises(InvalidPauseError, match="has begun"):
            paused.billing.cancel_pause(acct, tids[1], start=on)
        return
    else:
        paused.billing.cancel_pause(acct, tids[1], start=on)
    run_both(cancelled_on + timedelta(days=400))
    plain_view = plain.billing.template_view(plain.account.id, tids[0], upcoming=10)
    paused_view = paused.billing.template_view(acct, tids[1], upcoming=10)
    assert paused_view.template.schedule.pauses == ()
    assert _outcomes(paused_view.history) == _outcomes(plain_view.history)
    assert _invoice_dates(paused, tids[1]) == _invoice_dates(plain, tids[0])
    assert paused_view.upcoming == plain_view.upcoming

"""A template's end, re-dating, and the preview against the run through changes.

A template stopped by its end date stays active until the first daily run at
or after that date's run time, which finishes it and reports it ended, however
the end was set; until then the end can be moved, but never before an
occurrence the run already handled.
"""

from __future__ import annotations

import contextlib
import random
from datetime import date, datetime, time, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_helpers import World, at, line, make_world
from recurbill.errors import InvalidScheduleError, StateError
from recurbill.records import (
    CollectionMethod,
    Customer,
    OccurrenceOutcome,
    RunReport,
    TemplateStatus,
)
from recurbill.schedule import OccurrenceStatus, due_at


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
        promised = [
            (u.occurrence.index, u.occurrence.on, u.occurrence.status)
            for u in preview.upcoming
        ]
        day += timedelta(days=rnd.choice([1, 7, 30, 90]))
        as_of = at(day, rnd.choice([5, 7, 12]))
        (report,) = world.billing.run(as_of)
        view = world.billing.template_view(account.id, tid)
        handled = [
            (
                h.index,
                h.on,
                OccurrenceStatus.SCHEDULED
                if h.outcome is OccurrenceOutcome.ISSUED
                else OccurrenceStatus.SKIPPED_PAUSED,
            )
            for h in view.history[len(preview.history) :]
        ]
        shown = min(len(handled), len(promised))
        assert handled[:shown] == promised[:shown]
        if len(promised) < 8:  # the preview listed all that is left
            assert len(handled) <= len(promised)
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

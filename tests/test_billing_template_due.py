"""A template change never reaches an occurrence that was already due.

An occurrence is due at its date at the account's run time. When the daily
run has not issued one that was due by ``now`` (it was missed), a change of
what the template invoices, or a re-dating, is refused and changes nothing;
once the run has issued it, the change goes ahead and reaches the later
occurrences only. Occurrences a pause skips do not hold a change up.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_helpers import World, at, line, make_world
from recurbill import AllowanceCharge, Money, StateError
from recurbill.records import CollectionMethod, RecurringTemplate
from recurbill.schedule import due_at
from recurbill.storage.protocol import Storage


def _nok(amount: str) -> Money:
    return Money(amount, "NOK")


def _basic(world: World, *, start: date = date(2027, 1, 1)) -> str:
    """A monthly template of 99.00 + 25 % VAT for a customer paying by hand."""
    customer = world.customer(card=None, method=CollectionMethod.SEND_INVOICE)
    return world.template(
        customer, start=start, lines=[line("99.00", description="Basic")]
    )


def _stored(world: World, template_id: str) -> RecurringTemplate:
    with world.storage.transaction(read_only=True) as tx:
        return tx.get_template(world.account.id, template_id)


def _issued(world: World) -> list[tuple[date, Money, str]]:
    return sorted(
        (i.issue_date, i.total, i.lines[0].description)
        for i in world.storage_invoices()
    )


def test_an_upgrade_after_a_missed_run_waits_for_the_run(storage: Storage) -> None:
    world = make_world(storage=storage)
    acct = world.account.id
    tid = _basic(world)
    world.billing.run(at(date(2027, 1, 1), 7))
    # the run of 1 February did not happen; on 15 February the customer upgrades
    shown = world.billing.template_view(acct, tid).upcoming[0]
    assert (shown.occurrence.on, shown.amount) == (date(2027, 2, 1), _nok("123.75"))
    before = _stored(world, tid)
    with pytest.raises(StateError) as refused:
        world.billing.change_template(
            acct,
            tid,
            now=at(date(2027, 2, 15)),
            lines=[line("249.00", description="Pro")],
        )
    message = str(refused.value)
    assert "not issued yet: 2027-02-01;" in message
    assert "call run (the daily run) first" in message
    assert _stored(world, tid) == before  # nothing was changed

    world.billing.run(at(date(2027, 2, 16), 7))  # the catch-up
    world.billing.change_template(
        acct, tid, now=at(date(2027, 2, 16)), lines=[line("249.00", description="Pro")]
    )
    world.billing.run(at(date(2027, 3, 1), 7))
    assert _issued(world) == [
        (date(2027, 1, 1), _nok("123.75"), "Basic"),
        (date(2027, 2, 1), _nok("123.75"), "Basic"),  # as the preview showed
        (date(2027, 3, 1), _nok("311.25"), "Pro"),
    ]


def _fee(*, is_charge: bool) -> AllowanceCharge:
    return AllowanceCharge(
        is_charge=is_charge,
        amount="5.00",
        reason="Paper invoice fee" if is_charge else "Loyalty discount",
        vat_category="S",
        vat_rate=25,
    )


@pytest.mark.parametrize(
    "change",
    [
        {"memo": "new terms"},
        {"charges": []},
        {"allowances": []},
        {"lines": [line("99.00", description="Basic"), line("10.00")]},
    ],
    ids=["memo", "charges", "allowances", "lines"],
)
def test_every_change_of_content_waits_for_a_due_occurrence(
    change: dict[str, object],
) -> None:
    world = make_world()
    customer = world.customer(card=None, method=CollectionMethod.SEND_INVOICE)
    tid = world.template(
        customer,
        start=date(2027, 1, 1),
        lines=[line("99.00", description="Basic")],
        allowances=[_fee(is_charge=False)],
        charges=[_fee(is_charge=True)],
    )
    before = _stored(world, tid)
    # due at 06:15 on 1 January: a change at 07:00 is too late, one at 06:00 not
    with pytest.raises(StateError, match="not issued yet: 2027-01-01;"):
        world.billing.change_template(
            world.account.id, tid, now=at(date(2027, 1, 1), 7), **change
        )
    assert _stored(world, tid) == before
    early = world.billing.change_template(
        world.account.id, tid, now=at(date(2027, 1, 1), 6), **change
    )
    assert early != before
    assert _stored(world, tid) == early


def test_a_change_that_gives_what_the_template_has_goes_through() -> None:
    world = make_world()
    tid = _basic(world)
    before = _stored(world, tid)
    same = world.billing.change_template(
        world.account.id,
        tid,
        now=at(date(2027, 2, 15)),
        lines=list(before.lines),
        memo=before.memo,
    )
    assert same == before


def test_occurrences_a_pause_skips_do_not_hold_a_change_up(storage: Storage) -> None:
    world = make_world(storage=storage)
    acct = world.account.id
    tid = _basic(world)
    world.billing.run(at(date(2027, 1, 1), 7))
    world.billing.pause_template(
        acct, tid, on=date(2027, 1, 20), resume=date(2027, 2, 10)
    )
    world.billing.change_template(
        acct, tid, now=at(date(2027, 2, 15)), lines=[line("249.00", description="Pro")]
    )
    (report,) = world.billing.run(at(date(2027, 3, 1), 7))
    assert [s.on for s in report.skipped] == [date(2027, 2, 1)]
    assert _issued(world) == [
        (date(2027, 1, 1), _nok("123.75"), "Basic"),
        (date(2027, 3, 1), _nok("311.25"), "Pro"),
    ]


def test_re_dating_waits_for_a_first_occurrence_that_is_due(storage: Storage) -> None:
    world = make_world(storage=storage)
    acct = world.account.id
    tid = _basic(world, start=date(2027, 2, 1))
    before = _stored(world, tid)
    with pytest.raises(StateError, match="not issued yet: 2027-02-01;"):
        world.billing.change_template(
            acct, tid, now=at(date(2027, 2, 3)), start=date(2027, 3, 1)
        )
    assert _stored(world, tid) == before
    # a first occurrence a pause skips is not held up for
    world.billing.pause_template(acct, tid, on=date(2027, 2, 1))
    moved = world.billing.change_template(
        acct, tid, now=at(date(2027, 2, 3)), start=date(2027, 3, 1)
    )
    assert moved.schedule.start == date(2027, 3, 1)


def test_the_message_names_the_first_three_dates_and_counts_the_rest() -> None:
    world = make_world()
    customer = world.customer(card=None, method=CollectionMethod.SEND_INVOICE)
    tid = world.template(customer, start=date(2027, 1, 1), period="week")
    with pytest.raises(StateError) as refused:
        world.billing.change_template(
            world.account.id, tid, now=at(date(2027, 2, 1)), memo="new"
        )
    named = "not issued yet: 2027-01-01, 2027-01-08, 2027-01-15 and 2 more;"
    assert named in str(refused.value)


_START = date(2027, 1, 4)


@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["run", "change"]),
            st.integers(min_value=0, max_value=70 * 24),  # hours after the start
        ),
        min_size=1,
        max_size=12,
    )
)
def test_each_invoice_says_what_the_template_said_when_it_fell_due(
    steps: list[tuple[str, int]],
) -> None:
    """Runs and price changes in any order, at any hour: every invoice has
    the price the template had at its occurrence's due instant, and a change
    is refused exactly when an occurrence due before it was not issued."""
    world = make_world()
    acct = world.account.id
    customer = world.customer(card=None, method=CollectionMethod.SEND_INVOICE)
    tid = world.template(customer, start=_START, period="week", lines=[line("100")])
    prices: list[tuple[datetime, str]] = [(at(_START - timedelta(days=1)), "100")]
    issued_until = at(_START - timedelta(days=1))
    base = at(_START, 0)
    for number, (kind, hours) in enumerate(sorted(steps, key=lambda s: s[1])):
        when = base + timedelta(hours=hours)
        if kind == "run":
            world.billing.run(when)
            issued_until = max(issued_until, when)
            continue
        price = str(200 + number)
        waiting = [d for d in _due_dates(world, when) if d > issued_until]
        try:
            world.billing.change_template(acct, tid, now=when, lines=[line(price)])
        except StateError:
            assert waiting, "refused although nothing due waited"
            continue
        assert not waiting, "changed although an occurrence due waited"
        prices.append((when, price))
    world.billing.run(base + timedelta(days=80))
    for invoice in world.storage_invoices():
        due = _due(world, invoice.issue_date)
        in_force = [p for changed, p in prices if changed < due][-1]
        assert invoice.lines[0].unit_price == Money(in_force, "NOK").amount


def _due(world: World, on: date) -> datetime:
    account = world.account
    return due_at(on, run_time=account.run_time, zone=account.timezone)


def _due_dates(world: World, until: datetime) -> list[datetime]:
    """The due instants of the weekly template's occurrences by *until*."""
    dates = []
    on = _START
    while _due(world, on) <= until:
        dates.append(_due(world, on))
        on += timedelta(days=7)
    return dates


def test_reach_due_corrects_a_template_the_run_cannot_issue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The run fails the template each time until it is corrected; the
    correction must reach the waiting occurrence, so it is asked for."""
    from recurbill import daily
    from recurbill.errors import InvalidInvoiceError

    world = make_world()
    template_id = _basic(world, start=date(2027, 1, 31))
    build = daily.build_invoice

    def failing(**fields: object) -> object:  # stands for a rule the lines break
        lines = fields["lines"]
        assert isinstance(lines, tuple)
        if lines[0].description == "Basic":
            raise InvalidInvoiceError(problem="broken", allowed="correct it")
        return build(**fields)

    monkeypatch.setattr(daily, "build_invoice", failing)
    day = date(2027, 1, 31)
    (report,) = world.billing.run(at(day, 7))
    assert [f.template_id for f in report.failed] == [template_id]
    fixed = [line("99.00", description="Fixed")]
    with pytest.raises(StateError, match="reach_due=True"):
        world.billing.change_template(
            world.account.id, template_id, now=at(day, 8), lines=fixed
        )
    world.billing.change_template(
        world.account.id, template_id, now=at(day, 8), lines=fixed, reach_due=True
    )
    (report,) = world.billing.run(at(day, 9))
    assert report.failed == ()
    ((issued,),) = [world.storage_invoices()]
    assert (issued.issue_date, issued.lines[0].description) == (day, "Fixed")


def test_reach_due_re_dates_a_template_whose_first_occurrence_waits() -> None:
    world = make_world()
    day = date(2027, 1, 31)
    template_id = _basic(world, start=day)
    waiting = at(day, 6).replace(minute=30)  # due at 06:15, the run not yet there
    with pytest.raises(StateError):
        world.billing.change_template(
            world.account.id, template_id, now=waiting, start=date(2027, 2, 7)
        )
    moved = world.billing.change_template(
        world.account.id,
        template_id,
        now=waiting,
        start=date(2027, 2, 7),
        reach_due=True,
    )
    assert moved.schedule.start == date(2027, 2, 7)
    (report,) = world.billing.run(at(day, 7))
    assert report.issued == ()
    (report,) = world.billing.run(at(date(2027, 2, 7), 7))
    assert [i.issue_date for i in report.issued] == [date(2027, 2, 7)]


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_reach_due_is_true_or_false(bad: object) -> None:
    from recurbill import InvalidInputError

    world = make_world()
    template_id = _basic(world)
    with pytest.raises(InvalidInputError, match="reach_due"):
        world.billing.change_template(
            world.account.id,
            template_id,
            now=at(date(2026, 12, 1)),
            memo="x",
            reach_due=bad,  # type: ignore[arg-type]
        )

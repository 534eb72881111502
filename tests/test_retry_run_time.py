"""Retries of declined automatic charges come out at the account's run time
(06:15 in its zone) on their day, with that day's invoices, not at midnight."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from billing_helpers import at, make_world
from recurbill import RetryPolicy
from recurbill.records import PaymentStatus


@pytest.mark.parametrize("zone", ["Europe/Oslo", "America/New_York"])
def test_a_retry_is_made_by_the_first_run_at_or_after_the_run_time(zone: str) -> None:
    world = make_world(timezone=zone, retry_policy=RetryPolicy((3,)))
    declining = world.customer(card="pm_card_visa_chargeDeclinedInsufficientFunds")
    world.template(declining, start=date(2027, 1, 4))
    local = ZoneInfo(zone)
    tried: list[datetime] = []
    instant = datetime(2027, 1, 4, tzinfo=local)  # every 15 minutes, 4 days
    while instant < datetime(2027, 1, 9, tzinfo=local):
        for report in world.billing.run(instant):
            tried += [instant for c in report.charges]
        instant += timedelta(minutes=15)
    assert [t.astimezone(local).replace(tzinfo=None) for t in tried] == [
        datetime(2027, 1, 4, 6, 15),  # the invoice's own charge
        datetime(2027, 1, 7, 6, 15),  # its retry, 3 days later, at the run time
    ]
    assert [p.status for p in world.payments()] == [PaymentStatus.DECLINED] * 2


def test_one_summary_a_day_when_a_retry_is_due() -> None:
    world = make_world(retry_policy=RetryPolicy((3,)))
    world.template(
        world.customer(card="pm_card_visa_chargeDeclinedInsufficientFunds"),
        start=date(2027, 1, 4),
    )
    world.billing.run(at(date(2027, 1, 4), 7))
    assert world.billing.run(at(date(2027, 1, 7), 0))[0].charges == ()
    assert world.billing.run(at(date(2027, 1, 7), 6))[0].charges == ()
    (retried,) = world.billing.run(at(date(2027, 1, 7), 7))[0].charges
    assert retried.status is PaymentStatus.DECLINED
    summaries = [k for k in world.notification_kinds() if k == "daily_summary"]
    assert len(summaries) == 2  # the 4th and the 7th

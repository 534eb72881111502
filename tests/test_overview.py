"""The customer's overview: which open invoices are overdue, and what they owe."""

from __future__ import annotations

from datetime import date, timedelta

from billing_helpers import World, at, line, make_world
from recurbill.money import Money
from recurbill.records import CollectionMethod, Invoice


def _issued(world: World, customer_id: str, on: date) -> Invoice:
    """A 500.00 NOK invoice (400 + 25 % VAT) issued on *on*, not paid."""
    return world.billing.record_session(
        world.account.id, customer_id, lines=[line("400")], now=at(on)
    ).invoice


def test_total_overdue_is_what_is_still_owed_on_the_overdue_invoices() -> None:
    world = make_world()
    account = world.account.id
    per = world.customer("Per Olsen", card=None, method=CollectionMethod.SEND_INVOICE)
    paid_in_part = _issued(world, per.id, date(2027, 1, 5))
    credited_in_part = _issued(world, per.id, date(2027, 1, 6))
    world.billing.record_bank_transfer(  # the oldest due date first
        account,
        per.id,
        amount=Money("200.00", "NOK"),
        now=at(date(2027, 1, 7)),
        reference="bank-1",
    )
    world.billing.credit_invoice(
        account,
        credited_in_part.id,
        amount=Money("100.00", "NOK"),
        reason="Shorter session",
        now=at(date(2027, 1, 7)),
    )
    on = max(paid_in_part.due_date, credited_in_part.due_date) + timedelta(days=1)
    overview = world.billing.overview(account, per.id, on=on)
    owed = {i.id: i.outstanding for i in overview.overdue}
    assert owed == {
        paid_in_part.id: Money("300.00", "NOK"),
        credited_in_part.id: Money("400.00", "NOK"),
    }
    assert overview.total_overdue == Money("700.00", "NOK")
    assert overview.total_open == overview.total_overdue


def test_an_invoice_is_overdue_from_the_day_after_its_due_date() -> None:
    world = make_world()
    kari = world.customer(card=None, method=CollectionMethod.SEND_INVOICE)
    invoice = _issued(world, kari.id, date(2027, 1, 5))
    due = invoice.due_date
    assert due > invoice.issue_date
    for on, overdue in (
        (due - timedelta(days=1), False),
        (due, False),
        (due + timedelta(days=1), True),
    ):
        assert invoice.is_overdue(on=on) is overdue
        overview = world.billing.overview(world.account.id, kari.id, on=on)
        assert [i.id for i in overview.open] == [invoice.id]
        assert [i.id for i in overview.overdue] == ([invoice.id] if overdue else [])
        expected = invoice.total if overdue else Money.zero("NOK")
        assert overview.total_overdue == expected


def test_a_customer_without_invoices_or_credit_sees_zeros_with_decimals() -> None:
    world = make_world()
    new = world.customer("Nils Nilsen", card=None)
    overview = world.billing.overview(world.account.id, new.id, on=date(2027, 1, 7))
    shown = [overview.total_open, overview.total_overdue, overview.credit_balance]
    assert [str(amount) for amount in shown] == ["0.00 NOK"] * 3

"""Line-level allowances and charges (EN 16931 BG-27, BG-28) through the
service: the rules of document-level ones, for record_session,
create_template and change_template, with nothing written when refused; and
templates stored before those rules, which the daily run keeps issuing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest

from billing_helpers import World, at, line, make_world
from recurbill.errors import InvalidInvoiceError
from recurbill.invoice import AllowanceCharge, InvoiceLine
from recurbill.money import Money
from recurbill.records import CollectionMethod, Customer, RecurringTemplate
from recurbill.storage.sql import SqlStorage

NOW = at(date(2027, 1, 5))
FIRST = line("500", description="Konsultasjon")


def nok(amount: str) -> Money:
    return Money(amount, "NOK")


def _timer(**items: Any) -> InvoiceLine:
    """2 × 100 NOK at 25 %, with these allowances and charges."""
    return InvoiceLine(
        description="Timer", quantity=2, unit_price=100, vat_rate=Decimal(25), **items
    )


def _allowance(**fields: Any) -> AllowanceCharge:
    return AllowanceCharge(**{"is_charge": False, "reason": "Rabatt", **fields})


def _charge(**fields: Any) -> AllowanceCharge:
    return AllowanceCharge(**{"is_charge": True, "reason": "Gebyr", **fields})


ON_LINE = "on line 2 ('Timer')"
ABOVE_ZERO = "the amount is above zero"
PERCENTAGE = "a percentage above 0 and at most 100"

BAD: list[tuple[str, InvoiceLine, str]] = [
    (
        "a negative allowance",
        _timer(allowances=[_allowance(amount=-40)]),
        f"allowance 'Rabatt' {ON_LINE} has the amount -40; {ABOVE_ZERO}",
    ),
    (
        "a negative charge",
        _timer(charges=[_charge(amount=-40)]),
        f"charge 'Gebyr' {ON_LINE} has the amount -40; {ABOVE_ZERO}",
    ),
    (
        "an allowance of zero",
        _timer(allowances=[_allowance(amount=0)]),
        f"allowance 'Rabatt' {ON_LINE} has the amount 0; {ABOVE_ZERO}",
    ),
    (
        "a percentage over 100",
        _timer(allowances=[_allowance(percentage=150, base_amount=100)]),
        f"allowance 'Rabatt' {ON_LINE} has the percentage 150; {PERCENTAGE}",
    ),
    (
        "a negative percentage",
        _timer(allowances=[_allowance(percentage=-10, base_amount=100)]),
        f"allowance 'Rabatt' {ON_LINE} has the percentage -10; {PERCENTAGE}",
    ),
    (
        "a percentage of zero",
        _timer(charges=[_charge(percentage=0, base_amount=100)]),
        f"charge 'Gebyr' {ON_LINE} has the percentage 0; {PERCENTAGE}",
    ),
    (
        "a base amount of zero",
        _timer(allowances=[_allowance(percentage=10, base_amount=0)]),
        f"allowance 'Rabatt' {ON_LINE} has the base amount 0; a base amount above zero",
    ),
    (
        "a base amount without a percentage",
        _timer(charges=[_charge(amount=10, base_amount=100)]),
        f"charge 'Gebyr' {ON_LINE} has a percentage or a base amount without the other",
    ),
    (
        "an amount of zero with a percentage",
        _timer(allowances=[_allowance(amount=0, percentage=10, base_amount=100)]),
        f"allowance 'Rabatt' {ON_LINE} has the amount 0; {ABOVE_ZERO}",
    ),
    (
        "an amount the percentage does not make",
        _timer(allowances=[_allowance(amount=9, percentage=10, base_amount=100)]),
        f"allowance 'Rabatt' {ON_LINE} has the amount 9, but 10 % of 100 is "
        "10.00; give amount alone, percentage with base_amount, or all three "
        "agreeing",
    ),
    (
        "more decimals than NOK has",
        _timer(charges=[_charge(amount="1.001")]),
        f"charge 'Gebyr' {ON_LINE} has the amount 1.001, with more decimals than "
        "NOK has; NOK amounts have at most 2 decimals",
    ),
    (
        "a base amount with more decimals than NOK has",
        _timer(allowances=[_allowance(percentage=10, base_amount="0.001")]),
        f"allowance 'Rabatt' {ON_LINE} has the base_amount 0.001, with more "
        "decimals than NOK has",
    ),
    (
        "no reason",
        _timer(allowances=[_allowance(amount=10, reason=" ")]),
        f"an allowance {ON_LINE} has no reason; give every allowance on a line a "
        "reason the customer reads",
    ),
]


def _customer(world: World) -> Customer:
    return world.customer(card=None, method=CollectionMethod.SEND_INVOICE)


def _session(world: World, customer: Customer, lines: list[InvoiceLine]) -> Any:
    return world.billing.record_session(
        world.account.id, customer.id, lines=lines, now=NOW, session_id="s-1"
    )


def _create(world: World, customer: Customer, lines: list[InvoiceLine]) -> Any:
    return world.billing.create_template(
        world.account.id,
        customer.id,
        lines=lines,
        start=date(2027, 2, 1),
        period="month",
        now=NOW,
    )


def _templates(world: World) -> list[RecurringTemplate]:
    with world.storage.transaction() as tx:
        return tx.list_templates(world.account.id)


@pytest.mark.parametrize("call", [_session, _create], ids=["session", "template"])
@pytest.mark.parametrize(
    ("bad", "message"), [case[1:] for case in BAD], ids=[case[0] for case in BAD]
)
def test_bad_line_items_are_refused_and_nothing_is_written(
    call: Callable[..., Any], bad: InvoiceLine, message: str
) -> None:
    world = make_world()
    customer = world.customer()
    with pytest.raises(InvalidInvoiceError) as raised:
        call(world, customer, [FIRST, bad])
    assert type(raised.value) is InvalidInvoiceError
    assert message in str(raised.value)
    with world.storage.transaction() as tx:
        assert tx.list_invoices(world.account.id) == []
        assert tx.list_templates(world.account.id) == []
        assert tx.list_payments(world.account.id) == []
        assert tx.pending_notifications(limit=10) == []
    # no invoice number was used up
    assert _session(world, customer, [FIRST]).invoice.number == 1


@pytest.mark.parametrize(
    ("bad", "message"), [case[1:] for case in BAD], ids=[case[0] for case in BAD]
)
def test_change_template_refuses_bad_line_items_and_keeps_the_template(
    bad: InvoiceLine, message: str
) -> None:
    world = make_world()
    template = _create(world, _customer(world), [FIRST])
    with pytest.raises(InvalidInvoiceError) as raised:
        world.billing.change_template(
            world.account.id, template.id, now=NOW, lines=[FIRST, bad], memo="New"
        )
    assert message in str(raised.value)
    assert _templates(world) == [template]


def test_good_line_items_are_issued() -> None:
    world = make_world()
    full = _allowance(percentage=100, base_amount=200)  # the boundary: all of it
    timer = _timer(allowances=[full], charges=[_charge(amount="12.50")])
    returned = InvoiceLine(  # a negative net through the quantity stays allowed
        description="Retur", quantity=-1, unit_price=300, vat_rate=Decimal(25)
    )
    invoice = _session(world, _customer(world), [FIRST, timer, returned]).invoice
    assert invoice.lines == (FIRST, timer, returned)
    assert invoice.net_total == nok("212.50")  # 500 + (200 − 200 + 12.50) − 300
    assert invoice.total == nok("265.63")


# -- templates stored before the rules ----------------------------------------------

NEGATIVE = _timer(allowances=[_allowance(amount=-40)])


def _stored_before_the_rules(world: World) -> RecurringTemplate:
    """A template whose line has an allowance of -40, as the service stored
    it before line items had the rules (written past the service here)."""
    template = _create(world, _customer(world), [FIRST])
    stored = attrs.evolve(template, lines=(FIRST, NEGATIVE))
    with world.storage.transaction() as tx:
        tx.update_template(stored)
        tx.commit()
    return stored


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_the_run_keeps_issuing_a_template_stored_before_the_rules(
    backend: str, tmp_path: Path
) -> None:
    storage = None
    if backend == "sqlite":
        storage = SqlStorage.sqlite(tmp_path / "billing.sqlite3")
        storage.migrate()
    world = make_world(storage=storage)
    template = _stored_before_the_rules(world)
    view = world.billing.template_view(world.account.id, template.id, upcoming=1)
    assert [u.amount for u in view.upcoming] == [nok("925.00")]  # (500+240)×1.25
    (report,) = world.billing.run(at(date(2027, 2, 1), 7))
    assert report.failed == ()
    (invoice,) = world.billing.template_view(world.account.id, template.id).invoices
    assert invoice.lines == (FIRST, NEGATIVE)
    assert invoice.total == nok("925.00")


def test_changing_what_such_a_template_invoices_needs_lines_that_keep_them() -> None:
    world = make_world()
    template = _stored_before_the_rules(world)
    memo = world.billing.change_template(
        world.account.id, template.id, now=NOW, memo="x"
    )
    assert memo.lines == (FIRST, NEGATIVE)  # not what it invoices: not checked
    # the lines, allowances and charges it ends up with are checked together
    with pytest.raises(InvalidInvoiceError, match=f"has the amount -40; {ABOVE_ZERO}"):
        world.billing.change_template(
            world.account.id, template.id, now=NOW, allowances=[]
        )
    assert _templates(world) == [memo]
    fixed = world.billing.change_template(
        world.account.id, template.id, now=NOW, lines=[FIRST, _timer()]
    )
    assert fixed.lines == (FIRST, _timer())

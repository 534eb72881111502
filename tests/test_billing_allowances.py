"""Document-level allowances and charges (EN 16931 BG-20, BG-21) through the
service: recorded sessions, templates and their preview, the daily run,
credit notes, and bad input refused with nothing written.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from billing_helpers import World, at, line, make_world
from recurbill.errors import InvalidInvoiceError, VatCategoryError
from recurbill.invoice import AllowanceCharge, InvoiceLine, Totals, VatCategory
from recurbill.money import Currency, Money
from recurbill.records import CollectionMethod, Customer, invoice_totals
from recurbill.storage.sql import SqlStorage

LOYALTY = AllowanceCharge(
    is_charge=False,
    percentage=10,
    base_amount=800,
    reason="Lojalitetsrabatt",
    vat_category="S",
    vat_rate=25,
)
FEE = AllowanceCharge(
    is_charge=True, amount=35, reason="Fakturagebyr", vat_category="S", vat_rate=25
)


def nok(amount: str) -> Money:
    return Money(amount, "NOK")


def _send_invoice(world: World) -> Customer:
    return world.customer(card=None, method=CollectionMethod.SEND_INVOICE)


def _by_rate(totals: Totals) -> dict[tuple[VatCategory, Decimal], tuple[Money, Money]]:
    return {(g.category, g.rate): (g.taxable, g.tax) for g in totals.vat_breakdown}


# -- sessions -----------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_a_session_with_a_discount_and_a_fee(backend: str, tmp_path: Any) -> None:
    storage = None
    if backend == "sqlite":
        storage = SqlStorage.sqlite(tmp_path / "billing.sqlite3")
        storage.migrate()
    world = make_world(storage=storage)
    kari = world.customer()
    outcome = world.billing.record_session(
        world.account.id,
        kari.id,
        lines=[line()],
        allowances=[LOYALTY],
        charges=[FEE],
        now=at(date(2027, 1, 5)),
    )
    invoice = outcome.invoice
    # 800 − 80 + 35 = 755 at 25 %
    assert invoice.net_total == nok("755.00")
    assert invoice.vat_total == nok("188.75")
    assert invoice.total == nok("943.75")
    assert (invoice.allowances, invoice.charges) == ((LOYALTY,), (FEE,))
    assert outcome.payment is not None
    assert outcome.payment.amount == nok("943.75")  # charged what it totals
    (stored,) = world.storage_invoices()
    assert stored.allowances == (LOYALTY,)
    assert stored.charges == (FEE,)
    assert stored.total == invoice.total


def test_allowances_and_charges_default_to_none() -> None:
    world = make_world()
    invoice = world.billing.record_session(
        world.account.id, world.customer().id, lines=[line()], now=at(date(2027, 1, 5))
    ).invoice
    assert (invoice.allowances, invoice.charges) == ((), ())
    assert invoice.total == nok("1000.00")


def test_each_item_has_its_own_vat_and_the_breakdown_counts_it() -> None:
    world = make_world()
    exempt_fee = AllowanceCharge(
        is_charge=True,
        amount=50,
        reason="Gebyr",
        vat_category="E",
        exemption_reason="Unntatt",
    )
    invoice = world.billing.record_session(
        world.account.id,
        _send_invoice(world).id,
        lines=[line(), line("200", "15", "Bok")],
        allowances=[LOYALTY],
        charges=[exempt_fee],
        now=at(date(2027, 1, 5)),
    ).invoice
    totals = invoice_totals(
        world.account,
        lines=invoice.lines,
        allowances=invoice.allowances,
        charges=invoice.charges,
    )
    assert _by_rate(totals) == {
        (VatCategory.STANDARD, Decimal(25)): (nok("720.00"), nok("180.00")),
        (VatCategory.STANDARD, Decimal(15)): (nok("200.00"), nok("30.00")),
        (VatCategory.EXEMPT, Decimal(0)): (nok("50.00"), nok("0.00")),
    }
    assert invoice.vat_total == nok("210.00")
    assert invoice.total == nok("1180.00")


# -- bad input ----------------------------------------------------------------------


def _item(**changes: Any) -> AllowanceCharge:
    fields: dict[str, Any] = {
        "is_charge": False,
        "amount": 100,
        "reason": "Rabatt",
        "vat_category": "S",
        "vat_rate": 25,
    }
    return AllowanceCharge(**{**fields, **changes})


BAD: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    (
        "text",
        {"allowances": "10 %"},
        InvalidInvoiceError,
        "allowances '10 %' is not a sequence of AllowanceCharge",
    ),
    (
        "one item",
        {"charges": FEE},
        InvalidInvoiceError,
        "is not a sequence of AllowanceCharge values; give charges as a list",
    ),
    (
        "a line",
        {"allowances": [line()]},
        InvalidInvoiceError,
        "not an AllowanceCharge",
    ),
    (
        "a charge among the allowances",
        {"allowances": [FEE]},
        InvalidInvoiceError,
        "allowances contain a charge ('Fakturagebyr'); put is_charge=True items "
        "in charges",
    ),
    (
        "an allowance among the charges",
        {"charges": [LOYALTY]},
        InvalidInvoiceError,
        "charges contain an allowance ('Lojalitetsrabatt'); put is_charge=False "
        "items in allowances",
    ),
    (
        "no reason",
        {"allowances": [_item(reason=" ")]},
        InvalidInvoiceError,
        "has no reason; give every allowance on the whole invoice a reason",
    ),
    (
        "no VAT category",
        {"allowances": [AllowanceCharge(is_charge=False, amount=10, reason="x")]},
        VatCategoryError,
        "allowance 'x' has no VAT category; a document-level allowance or charge "
        "has its own VAT",
    ),
    (
        "a negative amount",
        {"charges": [_item(is_charge=True, amount=-5)]},
        InvalidInvoiceError,
        "charge 'Rabatt' has the amount -5; the amount is above zero",
    ),
    (
        "a zero amount",
        {"allowances": [_item(amount=0)]},
        InvalidInvoiceError,
        "has the amount 0",
    ),
    (
        "a percentage over 100",
        {"allowances": [_item(amount=None, percentage=150, base_amount=800)]},
        InvalidInvoiceError,
        "has the percentage 150; a percentage above 0 and at most 100",
    ),
    (
        "a base amount of zero",
        {"allowances": [_item(amount=None, percentage=10, base_amount=0)]},
        InvalidInvoiceError,
        "has the base amount 0; a base amount above zero",
    ),
    (
        "a base amount without a percentage",
        {"allowances": [_item(base_amount=800)]},
        InvalidInvoiceError,
        "a percentage or a base amount without the other",
    ),
    (
        "more decimals than NOK has",
        {"charges": [_item(is_charge=True, amount="35.005")]},
        InvalidInvoiceError,
        "has the amount 35.005, with more decimals than NOK has; NOK amounts "
        "have at most 2 decimals",
    ),
    (
        "a base amount with more decimals than NOK has",
        {"allowances": [_item(amount=None, percentage=10, base_amount="0.001")]},
        InvalidInvoiceError,
        "has the base_amount 0.001, with more decimals than NOK has",
    ),
    (
        "an amount the percentage does not make",
        {"allowances": [_item(amount=90, percentage=10, base_amount=800)]},
        InvalidInvoiceError,
        "has the amount 90, but 10 % of 800 is 80.00",
    ),
    (
        "outside scope mixed with standard rate",
        {
            "charges": [
                _item(
                    is_charge=True,
                    vat_category="O",
                    vat_rate=0,
                    exemption_reason="Not subject to VAT",
                )
            ]
        },
        VatCategoryError,
        "mixes category O (outside scope) with others",
    ),
    (
        "a total below zero",
        {"allowances": [_item(amount=1000)]},
        InvalidInvoiceError,
        "these lines, allowances and charges total -250.00 NOK, less than zero; "
        "an invoice totals zero or more",
    ),
]


def _session(world: World, customer: Customer, **extra: Any) -> Any:
    return world.billing.record_session(
        world.account.id, customer.id, lines=[line()], now=at(date(2027, 1, 5)), **extra
    )


def _template(world: World, customer: Customer, **extra: Any) -> Any:
    return world.billing.create_template(
        world.account.id,
        customer.id,
        lines=[line()],
        start=date(2027, 2, 1),
        period="month",
        now=at(date(2027, 1, 5)),
        **extra,
    )


@pytest.mark.parametrize("call", [_session, _template], ids=["session", "template"])
@pytest.mark.parametrize(
    ("given", "error", "message"),
    [case[1:] for case in BAD],
    ids=[case[0] for case in BAD],
)
def test_bad_allowances_and_charges_are_refused_and_nothing_is_written(
    call: Callable[..., Any],
    given: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    world = make_world()
    customer = world.customer()
    with pytest.raises(error) as raised:
        call(world, customer, **given)
    assert type(raised.value) is error
    assert message in str(raised.value)
    with world.storage.transaction() as tx:
        assert tx.list_invoices(world.account.id) == []
        assert tx.list_templates(world.account.id) == []
        assert tx.list_payments(world.account.id) == []
    # no invoice number was used up
    assert _session(world, customer).invoice.number == 1


# -- templates, the preview and the run ---------------------------------------------


def test_a_template_issues_its_allowances_and_charges_as_previewed() -> None:
    world = make_world()
    template = world.billing.create_template(
        world.account.id,
        _send_invoice(world).id,
        lines=[line()],
        allowances=[LOYALTY],
        charges=[FEE],
        start=date(2027, 2, 1),
        period="month",
        now=at(date(2027, 1, 5)),
    )
    assert (template.allowances, template.charges) == ((LOYALTY,), (FEE,))
    preview = world.billing.template_view(world.account.id, template.id, upcoming=3)
    assert [u.amount for u in preview.upcoming] == [nok("943.75")] * 3
    for day in range(0, 45):
        world.billing.run(at(date(2027, 2, 1) + timedelta(days=day), 7))
    view = world.billing.template_view(world.account.id, template.id)
    assert [i.total for i in view.invoices] == [nok("943.75")] * 2
    for invoice in view.invoices:
        assert (invoice.allowances, invoice.charges) == ((LOYALTY,), (FEE,))
        assert invoice.net_total == nok("755.00")


def test_change_template_sets_keeps_and_removes_allowances_and_charges() -> None:
    world = make_world()
    customer = _send_invoice(world)
    tid = world.template(customer, start=date(2027, 2, 1))
    account = world.account.id
    now = at(date(2027, 1, 10))

    def amounts() -> list[Money]:
        view = world.billing.template_view(account, tid, upcoming=1)
        return [u.amount for u in view.upcoming]

    assert amounts() == [nok("1000.00")]
    changed = world.billing.change_template(
        account, tid, now=now, allowances=[LOYALTY], charges=[FEE]
    )
    assert (changed.allowances, changed.charges) == ((LOYALTY,), (FEE,))
    assert amounts() == [nok("943.75")]
    # left out: kept, also when the lines change
    kept = world.billing.change_template(
        account, tid, now=now, lines=[line("1000")], memo="New price"
    )
    assert (kept.allowances, kept.charges) == ((LOYALTY,), (FEE,))
    assert amounts() == [nok("1193.75")]  # (1000 − 80 + 35) × 1.25
    # an empty list removes them
    removed = world.billing.change_template(account, tid, now=now, charges=[])
    assert (removed.allowances, removed.charges) == ((LOYALTY,), ())
    assert amounts() == [nok("1150.00")]
    # lines that the kept allowance would take below zero are refused
    with pytest.raises(InvalidInvoiceError, match="less than zero"):
        world.billing.change_template(account, tid, now=now, lines=[line("50")])
    with world.storage.transaction() as tx:
        assert tx.get_template(account, tid) == removed
    world.billing.run(at(date(2027, 2, 1), 7))
    (invoice,) = world.billing.template_view(account, tid).invoices
    assert invoice.allowances == (LOYALTY,)
    assert invoice.total == nok("1150.00")


def test_change_template_refuses_bad_allowances_before_reading() -> None:
    world = make_world()
    tid = world.template(_send_invoice(world), start=date(2027, 2, 1))
    with pytest.raises(VatCategoryError, match="no VAT category"):
        world.billing.change_template(
            world.account.id,
            tid,
            now=at(date(2027, 1, 10)),
            allowances=[AllowanceCharge(is_charge=False, amount=1, reason="x")],
        )
    with world.storage.transaction() as tx:
        assert tx.get_template(world.account.id, tid).allowances == ()


# -- property tests: random invoices --------------------------------------------------

_GROUPS = [
    (VatCategory.STANDARD, Decimal(25), None),
    (VatCategory.STANDARD, Decimal(15), None),
    (VatCategory.STANDARD, Decimal("12.5"), None),
    (VatCategory.ZERO, Decimal(0), None),
    (VatCategory.EXEMPT, Decimal(0), "Unntatt"),
    (VatCategory.REVERSE_CHARGE, Decimal(0), "Omvendt avgiftsplikt"),
]
_vat = st.sampled_from(_GROUPS)


def _amounts(decimals: int, low: str, high: str) -> st.SearchStrategy[Decimal]:
    return st.decimals(
        min_value=Decimal(low), max_value=Decimal(high), places=decimals
    ).filter(lambda d: d > 0)


@st.composite
def _lines(draw: st.DrawFn) -> InvoiceLine:
    category, rate, reason = draw(_vat)
    return InvoiceLine(
        description="Line",
        quantity=draw(st.decimals(min_value=-3, max_value=40, places=2)),
        unit_price=draw(st.decimals(min_value=0, max_value=5000, places=3)),
        base_quantity=draw(st.sampled_from(["1", "1", "12"])),
        vat_category=category,
        vat_rate=rate,
        exemption_reason=reason,
    )


@st.composite
def _items(draw: st.DrawFn, is_charge: bool, decimals: int) -> AllowanceCharge:
    category, rate, reason = draw(_vat)
    fields: dict[str, Any] = {}
    if draw(st.booleans()):
        fields["amount"] = draw(_amounts(decimals, "0", "400"))
    else:
        fields["percentage"] = draw(
            st.decimals(min_value="0.01", max_value=100, places=2)
        )
        fields["base_amount"] = draw(_amounts(decimals, "0", "3000"))
    return AllowanceCharge(
        is_charge=is_charge,
        reason="Gebyr" if is_charge else "Rabatt",
        vat_category=category,
        vat_rate=rate,
        exemption_reason=reason,
        **fields,
    )


@st.composite
def _documents(
    draw: st.DrawFn,
) -> tuple[str, list[InvoiceLine], list[AllowanceCharge], list[AllowanceCharge]]:
    currency = draw(st.sampled_from(["NOK", "ISK", "KWD"]))
    decimals = Currency(currency).decimals
    return (
        currency,
        draw(st.lists(_lines(), min_size=1, max_size=5)),
        draw(st.lists(_items(False, decimals), max_size=3)),
        draw(st.lists(_items(True, decimals), max_size=3)),
    )


def _below_zero(
    world: World,
    document: tuple[
        str, list[InvoiceLine], list[AllowanceCharge], list[AllowanceCharge]
    ],
) -> bool:
    _, lines, allowances, charges = document
    totals = invoice_totals(
        world.account, lines=lines, allowances=allowances, charges=charges
    )
    return totals.amount_due.amount < 0


_PROPERTY = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@_PROPERTY
@given(_documents())
def test_a_full_credit_nets_to_zero_per_vat_rate(
    document: tuple[
        str, list[InvoiceLine], list[AllowanceCharge], list[AllowanceCharge]
    ],
) -> None:
    """Crediting a whole invoice of random lines, allowances and charges
    reverses it exactly: the same taxable amount and VAT in every category and
    rate, the same total, and nothing left owed."""
    currency, lines, allowances, charges = document
    world = make_world(currency=currency)
    customer = _send_invoice(world)
    session = {
        "lines": lines,
        "allowances": allowances,
        "charges": charges,
        "now": at(date(2027, 1, 5)),
    }
    if _below_zero(world, document):
        with pytest.raises(InvalidInvoiceError, match="less than zero"):
            world.billing.record_session(world.account.id, customer.id, **session)
        assert world.storage_invoices() == []  # nothing written
        return
    invoice = world.billing.record_session(
        world.account.id, customer.id, **session
    ).invoice
    assume(invoice.total.amount > 0)
    note = world.billing.credit_invoice(
        world.account.id,
        invoice.id,
        amount=invoice.total,
        reason="Cancelled",
        now=at(date(2027, 1, 6)),
    )
    issued = invoice_totals(
        world.account,
        lines=invoice.lines,
        allowances=invoice.allowances,
        charges=invoice.charges,
    )
    credited = invoice_totals(
        world.account,
        lines=note.lines,
        allowances=note.allowances,
        charges=note.charges,
    )
    assert (note.lines, note.allowances, note.charges) == (
        invoice.lines,
        invoice.allowances,
        invoice.charges,
    )
    assert issued.vat_breakdown  # there are rates to net
    zero = Money.zero(currency)
    for key, (taxable, tax) in _by_rate(issued).items():
        back_taxable, back_tax = _by_rate(credited)[key]
        assert taxable - back_taxable == zero
        assert tax - back_tax == zero
    assert set(_by_rate(credited)) == set(_by_rate(issued))
    assert note.amount == credited.amount_due == invoice.total
    assert credited.vat_total == invoice.vat_total
    (after,) = world.storage_invoices()
    assert after.outstanding == zero


@_PROPERTY
@given(_documents())
def test_the_preview_shows_what_the_run_issues(
    document: tuple[
        str, list[InvoiceLine], list[AllowanceCharge], list[AllowanceCharge]
    ],
) -> None:
    currency, lines, allowances, charges = document
    world = make_world(currency=currency)
    customer = _send_invoice(world)
    assume(not _below_zero(world, document))  # refused: see the test above
    template = world.billing.create_template(
        world.account.id,
        customer.id,
        lines=lines,
        allowances=allowances,
        charges=charges,
        start=date(2027, 2, 1),
        period="week",
        now=at(date(2027, 1, 5)),
    )
    preview = world.billing.template_view(world.account.id, template.id, upcoming=2)
    world.billing.run(at(date(2027, 2, 8), 7))
    view = world.billing.template_view(world.account.id, template.id)
    assert [i.total for i in view.invoices] == [u.amount for u in preview.upcoming]
    for invoice in view.invoices:
        totals = invoice_totals(
            world.account, lines=lines, allowances=allowances, charges=charges
        )
        assert invoice.net_total == totals.tax_exclusive
        assert invoice.vat_total == totals.vat_total
        assert (list(invoice.allowances), list(invoice.charges)) == (
            allowances,
            charges,
        )


# -- credit notes of part of an invoice ----------------------------------------------


def test_a_partial_credit_is_an_amount_and_the_rest_then_too() -> None:
    world = make_world()
    invoice = world.billing.record_session(
        world.account.id,
        _send_invoice(world).id,
        lines=[line()],
        allowances=[LOYALTY],
        charges=[FEE],
        now=at(date(2027, 1, 5)),
    ).invoice
    credit = world.billing.credit_invoice
    first = credit(
        world.account.id,
        invoice.id,
        amount=nok("100"),
        reason="Late",
        now=at(date(2027, 1, 6)),
    )
    assert (first.lines, first.allowances, first.charges) == ((), (), ())
    rest = credit(
        world.account.id,
        invoice.id,
        amount=nok("843.75"),
        reason="Cancelled",
        now=at(date(2027, 1, 6)),
    )
    assert (rest.lines, rest.allowances, rest.charges) == ((), (), ())
    (after,) = world.storage_invoices()
    assert after.outstanding == nok("0")

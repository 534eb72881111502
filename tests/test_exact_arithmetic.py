"""Money arithmetic is exact and ignores the caller's decimal context.

Every amount is rounded once, from its exact value, with the rounding mode
asked for; the thread's decimal context (its precision, rounding and traps)
changes nothing. Amounts beyond Money's limits are refused up front.
"""

from __future__ import annotations

import decimal
from datetime import date
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, localcontext
from fractions import Fraction

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tests.billing_helpers import at, line, make_world

from recurbill.errors import InvalidAmountError, RecurbillError
from recurbill.invoice import (
    MAX_LINE_DECIMALS,
    MAX_LINE_DIGITS,
    AllowanceCharge,
    InvoiceLine,
    check_consistency,
    compute_totals,
    line_net,
)
from recurbill.money import (
    ISO_4217_DECIMALS,
    MAX_AMOUNT_DIGITS,
    Money,
    allocate,
    divide,
    format_money,
)
from recurbill.records import CollectionMethod
from recurbill.settlement import allocate_payment

D = Decimal
ROUNDINGS = [
    getattr(decimal, name) for name in dir(decimal) if name.startswith("ROUND_")
]


def exact_decimal(integer_digits: int = MAX_LINE_DIGITS) -> st.SearchStrategy[Decimal]:
    """Decimals within the line limits, up to 28 decimals."""
    return st.integers(0, MAX_LINE_DECIMALS).flatmap(
        lambda places: st.integers(
            -(10 ** (integer_digits + places)) + 1, 10 ** (integer_digits + places) - 1
        ).map(lambda n: Decimal(f"{n}E-{places}"))
    )


callers_contexts = st.builds(
    lambda prec, rounding, inexact: decimal.Context(
        prec=prec,
        rounding=rounding,
        traps=[decimal.InvalidOperation, *([decimal.Inexact] if inexact else [])],
    ),
    st.integers(1, 28),
    st.sampled_from(ROUNDINGS),
    st.booleans(),
)


def half_up(value: Fraction, decimals: int) -> Decimal:
    """*value* rounded half-up to *decimals*, computed on fractions."""
    scaled = abs(value) * 10**decimals
    units = int(scaled)
    if scaled - units >= Fraction(1, 2):
        units += 1
    return Decimal(f"{-units if value < 0 else units}E-{decimals}")


def half_even(value: Fraction, decimals: int) -> Decimal:
    scaled = abs(value) * 10**decimals
    units = round(scaled)  # Fraction rounds half to even
    return Decimal(f"{-units if value < 0 else units}E-{decimals}")


@given(
    exact_decimal(),
    exact_decimal().map(Decimal.copy_abs),
    st.one_of(st.just(D(1)), exact_decimal().map(Decimal.copy_abs).filter(bool)),
    st.sampled_from(["NOK", "JPY", "KWD", "CLF"]),
    st.sampled_from([ROUND_HALF_UP, ROUND_HALF_EVEN]),
    callers_contexts,
)
def test_line_net_is_rounded_once_from_the_exact_value(
    quantity: Decimal,
    price: Decimal,
    base: Decimal,
    code: str,
    rounding: str,
    context: decimal.Context,
) -> None:
    item = InvoiceLine(
        description="x",
        quantity=quantity,
        unit_price=price,
        base_quantity=base,
        vat_rate=25,
    )
    exact = Fraction(quantity) * Fraction(price) / Fraction(base)
    decimals = ISO_4217_DECIMALS[code]
    expected = (half_up if rounding == ROUND_HALF_UP else half_even)(exact, decimals)
    with localcontext(context):
        net = line_net(item, code, rounding=rounding).amount
        total = compute_totals([item], currency=code, rounding=rounding)
    assert net == expected
    assert total.line_net_total.amount == expected
    assert net.as_tuple().exponent == -decimals


@pytest.mark.parametrize(
    ("code", "quantity", "price", "expected"),
    [
        ("NOK", "1.0049999999999999999999999999", "1", "1.00"),
        ("JPY", "2.4999999999999999999999999999", "1", "2"),
        ("NOK", "100000000000.0049999999999", "1", "100000000000.00"),
        ("NOK", "3.333333333333333333333333333", "1234567.89", "4115226.30"),
    ],
)
def test_no_double_rounding(
    code: str, quantity: str, price: str, expected: str
) -> None:
    item = InvoiceLine(
        description="x", quantity=quantity, unit_price=price, vat_rate=25
    )
    assert str(line_net(item, code).amount) == expected
    assert str(compute_totals([item], currency=code).line_net_total.amount) == expected


def test_the_callers_context_changes_nothing() -> None:
    lines = [
        InvoiceLine(
            description="Server", quantity="1.5", unit_price="999.99", vat_rate=25
        ),
        InvoiceLine(description="Disk", quantity="7", unit_price="12.35", vat_rate=25),
    ]
    expected = compute_totals(lines, currency="NOK")
    assert str(expected.amount_due.amount) == "1983.05"
    for context in (
        decimal.Context(prec=6),
        decimal.Context(prec=4),
        decimal.Context(prec=6, rounding=decimal.ROUND_FLOOR),
        decimal.Context(prec=2, traps=[decimal.Inexact, decimal.Rounded]),
    ):
        with localcontext(context):
            assert compute_totals(lines, currency="NOK") == expected
            assert Money("0.1", "NOK") + Money("1234567.89", "NOK") == Money(
                "1234567.99", "NOK"
            )
            assert format_money(Money("1234567.895", "NOK"), "en_GB") == (
                "NOK1,234,567.90"
            )


@given(
    st.lists(
        st.tuples(
            exact_decimal(),
            exact_decimal().map(Decimal.copy_abs),
            st.sampled_from([0, 25]),
        ),
        min_size=1,
        max_size=40,
    ),
    st.sampled_from(["NOK", "ISK", "KWD"]),
    callers_contexts,
)
def test_totals_of_large_lines_are_exact(
    items: list[tuple[Decimal, Decimal, int]], code: str, context: decimal.Context
) -> None:
    lines = [
        InvoiceLine(
            description="x",
            quantity=q,
            unit_price=p,
            vat_rate=rate,
            vat_category="S" if rate else "Z",
        )
        for q, p, rate in items
    ]
    with localcontext(context):
        totals = compute_totals(lines, currency=code)
    decimals = ISO_4217_DECIMALS[code]
    nets = [half_up(Fraction(q) * Fraction(p), decimals) for q, p, _ in items]
    assert [n.amount for n in totals.line_nets] == nets
    assert totals.line_net_total.amount == sum(nets, D(0))  # BR-CO-10
    vat = D(0)
    for group in totals.vat_breakdown:
        tax = half_up(
            Fraction(group.taxable.amount) * Fraction(group.rate) / 100, decimals
        )
        assert group.tax.amount == tax
        vat += tax
    assert totals.amount_due.amount == totals.line_net_total.amount + vat
    assert totals.amount_due.amount.as_tuple().exponent == -decimals


def test_150_lines_at_the_limits_add_up() -> None:
    big = InvoiceLine(
        description="big",
        quantity="999999999999",
        unit_price="999999999999.99",
        vat_category="Z",
    )
    cent = InvoiceLine(
        description="cent", quantity=1, unit_price="0.01", vat_category="Z"
    )
    totals = compute_totals([big] * 150 + [cent], currency="NOK")
    assert str(totals.line_net_total.amount) == "149999999999848500000000001.51"
    assert totals.amount_due == totals.line_net_total


@given(
    exact_decimal(30).filter(bool),
    exact_decimal(30).map(Decimal.copy_abs).filter(bool),
    st.integers(0, 4),
    st.sampled_from(ROUNDINGS),
)
def test_divide_rounds_the_exact_quotient(
    dividend: Decimal, divisor: Decimal, decimals: int, rounding: str
) -> None:
    context = decimal.Context(prec=1000, rounding=rounding)
    wide = context.divide(dividend, divisor)
    if context.flags[decimal.Inexact]:  # digits were dropped: mark it
        wide = context.add(wide, wide.copy_sign(D(1)).scaleb(wide.adjusted() - 999))
    expected = wide.quantize(D(1).scaleb(-decimals), context=context)
    assert divide(dividend, divisor, decimals, rounding) == expected


def test_check_consistency_reports_the_exact_expected_net() -> None:
    item = InvoiceLine(
        description="x", quantity=1, unit_price="1", base_quantity=3, vat_rate=25
    )
    with localcontext(decimal.Context(prec=3)):
        (found,) = check_consistency([item], [Money("0.40", "NOK")], currency="NOK")
    assert found.expected == D("0.3333333333333333333333333333")


def test_allowance_percentage_is_exact_in_any_context() -> None:
    item = InvoiceLine(
        description="x",
        quantity=1,
        unit_price="123456.78",
        vat_rate=25,
        allowances=[
            AllowanceCharge(
                is_charge=False, percentage="12.345", base_amount="123456.78"
            )
        ],
    )
    expected = line_net(item, "NOK")
    assert str(expected.amount) == "108216.04"  # 123456.78 − 15240.74
    with localcontext(decimal.Context(prec=5)):
        assert line_net(item, "NOK") == expected


BIG = Money(10**27, "NOK")  # 28 digits, 30 with the decimals


def test_large_money_works_everywhere() -> None:
    assert BIG.quantize().amount == D(10**27)
    assert sum(a.amount for a in allocate(BIG, [1, 2])) == D(10**27)
    assert [str(a.amount) for a in allocate(Money("1E+99", "NOK"), [1, 2])] == [
        "3" * 98 + "3.33",
        "6" * 98 + "6.67",
    ]
    assert format_money(BIG, "en_GB") == "NOK1" + ",000" * 9 + ".00"
    world = make_world()
    account = world.account.id
    customer = world.customer(method=CollectionMethod.SEND_INVOICE)
    invoice = world.billing.record_session(
        account, customer.id, lines=[line("800")], now=at(date(2026, 3, 2))
    ).invoice
    result = allocate_payment(BIG, [invoice])
    assert result.applied + result.credit == BIG
    transfer = world.billing.record_bank_transfer(
        account, customer.id, amount=BIG, now=at(date(2026, 3, 3)), reference="r1"
    )
    assert transfer.applied + transfer.credit == BIG


@pytest.mark.parametrize(
    "amount",
    [
        D(10) ** MAX_AMOUNT_DIGITS,
        -(D(10) ** MAX_AMOUNT_DIGITS),
        D("1E+1000000"),
        D("1E-29"),
        D("0.00000000000000000000000000001"),
    ],
)
def test_money_beyond_its_limits_is_refused(amount: Decimal) -> None:
    with pytest.raises(
        InvalidAmountError, match="at most 100 digits before the decimal"
    ):
        Money(amount, "NOK")


def test_money_products_beyond_the_limits_are_refused() -> None:
    largest = Money(10**MAX_AMOUNT_DIGITS - 1, "NOK")
    with pytest.raises(InvalidAmountError):
        largest + Money(1, "NOK")
    with pytest.raises(InvalidAmountError):
        largest * 2
    with pytest.raises(RecurbillError):
        allocate(Money(1, "NOK"), [D("1E+200")])


@pytest.mark.parametrize(
    "field", ["vat_rate", "price_discount", "gross_price", "quantity"]
)
def test_line_numbers_beyond_the_limits_are_refused(field: str) -> None:
    fields: dict[str, object] = {
        "description": "x",
        "quantity": 1,
        "unit_price": 1,
        "vat_rate": 25,
        field: D("1E+12"),
    }
    with pytest.raises(RecurbillError, match="at most 12 digits before"):
        InvoiceLine(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["amount", "percentage", "base_amount"])
def test_allowance_numbers_beyond_the_limits_are_refused(field: str) -> None:
    fields: dict[str, object] = {
        "is_charge": False,
        "amount": 1,
        "percentage": 1,
        "base_amount": 1,
        field: D("1E+500"),
    }
    with pytest.raises(RecurbillError, match="at most 12 digits before"):
        AllowanceCharge(**fields)  # type: ignore[arg-type]


def rounded(value: Fraction, decimals: int, rounding: str) -> Decimal:
    """*value* rounded half-up or half-even, computed on fractions."""
    return (half_up if rounding == ROUND_HALF_UP else half_even)(value, decimals)


cents = st.integers(1, 10**6).map(lambda n: D(n).scaleb(-2))
tie_rates = st.sampled_from([D(25), D("12.5"), D(15), D(10), D("6.25")])
"""Rates and percentages whose products with cents often end in a half."""


def percentage_of(is_charge: bool) -> st.SearchStrategy[AllowanceCharge]:
    return st.builds(
        lambda pct, base: AllowanceCharge(
            is_charge=is_charge, percentage=pct, base_amount=base, reason="x"
        ),
        tie_rates,
        cents,
    )


def on_document(item: AllowanceCharge, rate: Decimal) -> AllowanceCharge:
    return attrs.evolve(item, vat_category="S", vat_rate=rate)


@given(
    st.lists(
        st.tuples(
            cents,
            tie_rates,
            st.lists(percentage_of(False), max_size=2),
            st.lists(percentage_of(True), max_size=2),
        ),
        min_size=1,
        max_size=6,
    ),
    st.lists(st.tuples(percentage_of(False), tie_rates), max_size=2),
    st.lists(st.tuples(percentage_of(True), tie_rates), max_size=2),
    st.sampled_from(["NOK", "JPY", "KWD"]),
    st.sampled_from([ROUND_HALF_UP, ROUND_HALF_EVEN]),
)
def test_vat_and_percentages_round_as_asked(
    items: list[tuple[Decimal, Decimal, list[AllowanceCharge], list[AllowanceCharge]]],
    allowances: list[tuple[AllowanceCharge, Decimal]],
    charges: list[tuple[AllowanceCharge, Decimal]],
    code: str,
    rounding: str,
) -> None:
    """The rounding mode reaches the VAT of each rate and every percentage
    allowance or charge, on the lines and on the document (ties are common:
    cents times rates such as 12.5 % end in a half)."""
    decimals = ISO_4217_DECIMALS[code]

    def part(item: AllowanceCharge) -> Decimal:
        exact = Fraction(item.base_amount or 0) * Fraction(item.percentage or 0) / 100
        return rounded(exact, decimals, rounding)

    lines = [
        InvoiceLine(
            description="x",
            quantity=1,
            unit_price=price,
            vat_rate=rate,
            allowances=line_allowances,
            charges=line_charges,
        )
        for price, rate, line_allowances, line_charges in items
    ]
    taxable: dict[Decimal, Decimal] = {}
    nets = []
    for price, rate, line_allowances, line_charges in items:
        net = rounded(Fraction(price), decimals, rounding)
        net += sum(map(part, line_charges), D(0))
        net -= sum(map(part, line_allowances), D(0))
        nets.append(net)
        taxable[rate] = taxable.get(rate, D(0)) + net
    for sign, items_of_rate in ((-1, allowances), (1, charges)):
        for item, rate in items_of_rate:
            taxable[rate] = taxable.get(rate, D(0)) + sign * part(item)
    totals = compute_totals(
        lines,
        currency=code,
        allowances=[on_document(item, rate) for item, rate in allowances],
        charges=[on_document(item, rate) for item, rate in charges],
        rounding=rounding,
    )
    assert [n.amount for n in totals.line_nets] == nets
    assert totals.allowance_total.amount == sum((part(a) for a, _ in allowances), D(0))
    assert totals.charge_total.amount == sum((part(c) for c, _ in charges), D(0))
    assert {g.rate: g.taxable.amount for g in totals.vat_breakdown} == taxable
    assert {g.rate: g.tax.amount for g in totals.vat_breakdown} == {
        rate: rounded(Fraction(amount) * Fraction(rate) / 100, decimals, rounding)
        for rate, amount in taxable.items()
    }


TENTH = InvoiceLine(description="x", quantity=1, unit_price="0.10", vat_rate=25)


def eighth_of_twenty(is_charge: bool, **vat: object) -> AllowanceCharge:
    """12.5 % of 0.20, which is 0.025: a tie at two decimals."""
    return AllowanceCharge(
        is_charge=is_charge,
        percentage="12.5",
        base_amount="0.20",
        reason="x",
        **vat,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("rounding", "vat", "part", "vat_of_part"),
    [
        (ROUND_HALF_UP, "0.03", "0.03", "0.01"),  # 0.0075 -> 0.01
        (ROUND_HALF_EVEN, "0.02", "0.02", "0.00"),  # 0.005 -> 0.00
    ],
)
def test_vat_and_percentages_round_half_even_at_a_tie(
    rounding: str, vat: str, part: str, vat_of_part: str
) -> None:
    """0.10 at 25 % is 0.025 of VAT, and 12.5 % of 0.20 is 0.025."""
    totals = compute_totals([TENTH], currency="NOK", rounding=rounding)
    assert totals.vat_total == Money(vat, "NOK")
    on_line = attrs.evolve(
        TENTH,
        vat_category="Z",
        vat_rate=0,
        allowances=[eighth_of_twenty(False)],
        charges=[eighth_of_twenty(True)],
    )
    less = line_net(attrs.evolve(on_line, charges=()), "NOK", rounding=rounding)
    more = line_net(attrs.evolve(on_line, allowances=()), "NOK", rounding=rounding)
    assert less.amount == D("0.10") - D(part)
    assert more.amount == D("0.10") + D(part)
    document = compute_totals(
        [attrs.evolve(on_line, allowances=[], charges=[])],
        currency="NOK",
        allowances=[eighth_of_twenty(False, vat_category="Z")],
        charges=[eighth_of_twenty(True, vat_category="S", vat_rate=25)],
        rounding=rounding,
    )
    assert document.allowance_total == Money(part, "NOK")
    assert document.charge_total == Money(part, "NOK")
    (_, standard) = document.vat_breakdown
    assert standard.taxable == Money(part, "NOK")
    assert standard.tax == Money(vat_of_part, "NOK")

from __future__ import annotations

import enum
import hashlib
from collections.abc import Sequence
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import attrs
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from recurbill.errors import (
    CurrencyMismatchError,
    InvalidInputError,
    InvalidSelectionError,
)
from recurbill.money import Currency, Money
from recurbill.settlement import (
    AllocationResult,
    Due,
    SettleableInvoice,
    SettlementPlan,
    allocate_payment,
    plan_settlement,
    reconcile_settlement,
)

ACC = "acc_1"
CUS = "cus_1"
DAY = date(2026, 3, 1)


@attrs.frozen(kw_only=True)
class FakeInvoice:
    """The smallest invoice the calculators accept."""

    id: str
    display_number: str
    account_id: str = ACC
    customer_id: str = CUS
    status: str = "open"
    currency: Currency = attrs.field(factory=lambda: Currency("NOK"))
    outstanding: Money
    due_date: date = DAY


def inv(
    n: int,
    amount: str = "100.00",
    *,
    code: str = "NOK",
    status: str = "open",
    due: date = DAY,
    account_id: str = ACC,
    customer_id: str = CUS,
) -> FakeInvoice:
    return FakeInvoice(
        id=f"inv_{n}",
        display_number=f"INV-{n:06d}",
        account_id=account_id,
        customer_id=customer_id,
        status=status,
        currency=Currency(code),
        outstanding=Money(amount, code),
        due_date=due,
    )


def plan(
    selection: Sequence[str], invoices: Sequence[SettleableInvoice]
) -> SettlementPlan:
    return plan_settlement(selection, invoices, account_id=ACC, customer_id=CUS)


def refusal(
    selection: object, invoices: Sequence[FakeInvoice]
) -> InvalidSelectionError:
    with pytest.raises(InvalidSelectionError) as info:
        plan(selection, invoices)  # type: ignore[arg-type]
    return info.value


# plan_settlement: examples


def test_plan_lists_each_invoice_in_selection_order() -> None:
    invoices = [inv(1, "100.00"), inv(2, "250.50"), inv(3, "0.01")]
    result = plan(["inv_3", "inv_1"], invoices)
    assert [(line.invoice_id, line.invoice_number) for line in result.lines] == [
        ("inv_3", "INV-000003"),
        ("inv_1", "INV-000001"),
    ]
    assert [line.amount for line in result.lines] == [
        Money("0.01", "NOK"),
        Money("100.00", "NOK"),
    ]
    assert result.total == Money("100.01", "NOK")
    assert (result.account_id, result.customer_id) == (ACC, CUS)
    assert result.currency == Currency("NOK")
    assert result.invoice_ids == ("inv_3", "inv_1")


def test_plan_accepts_a_mapping_by_id() -> None:
    invoices = {i.id: i for i in [inv(1), inv(2)]}
    assert plan_settlement(
        ["inv_2"], invoices, account_id=ACC, customer_id=CUS
    ).total == Money("100.00", "NOK")


def test_plan_takes_outstanding_in_the_currency_decimals() -> None:
    result = plan(["inv_1"], [inv(1, "10.5")])
    assert str(result.total.amount) == "10.50"
    with pytest.raises(InvalidInputError, match=r"10\.005 NOK, with more decimals"):
        plan(["inv_1"], [inv(1, "10.005")])  # never rounded up to 10.01


def test_empty_selection() -> None:
    error = refusal([], [inv(1)])
    assert str(error) == (
        "the selection is empty; select at least one open invoice to pay"
    )
    assert error.fields["reason"] == "empty"


@pytest.mark.parametrize("selection", ["inv_1", None, 7, {"inv_1"}])
def test_selection_must_be_a_list_of_ids(selection: object) -> None:
    error = refusal(selection, [inv(1)])
    assert "is not a list of invoice ids" in str(error)
    assert "give a list or tuple of invoice ids" in str(error)


def test_selection_ids_must_be_text() -> None:
    error = refusal(["inv_1", 2, ""], [inv(1)])
    assert "empty or not text: [2, '']" in str(error)


def test_duplicate_ids() -> None:
    error = refusal(["inv_1", "inv_2", "inv_1"], [inv(1), inv(2)])
    assert str(error) == (
        "invoice 'inv_1' is in the selection more than once; name each invoice once"
    )
    assert error.fields["invoice_ids"] == ("inv_1",)
    many = refusal(["inv_2", "inv_1", "inv_2", "inv_1"], [inv(1), inv(2)])
    assert "invoices 'inv_2', 'inv_1' are in the selection more than once" in str(many)


def test_unknown_id_is_not_found() -> None:
    error = refusal(["inv_1", "inv_9"], [inv(1)])
    assert str(error) == (
        "invoice 'inv_9' not found for customer 'cus_1'; select invoices of this "
        "customer from the list of open invoices"
    )
    assert error.fields["reason"] == "not_found"
    assert error.fields["invoice_ids"] == ("inv_9",)


def test_other_customer_and_other_account_look_exactly_like_not_found() -> None:
    invoices = [
        inv(1),
        inv(2, customer_id="cus_2"),
        inv(3, account_id="acc_2"),
        inv(4),
    ]
    elsewhere = refusal(["inv_2", "inv_3"], invoices)
    nowhere = refusal(["inv_5", "inv_6"], invoices)
    assert str(elsewhere) == str(nowhere).replace("inv_5", "inv_2").replace(
        "inv_6", "inv_3"
    )
    assert "invoices 'inv_2', 'inv_3' not found for customer 'cus_1'" in str(elsewhere)
    assert "cus_2" not in str(elsewhere)
    assert "acc_2" not in str(elsewhere)


def test_invoice_that_is_not_open_names_its_status() -> None:
    invoices = [inv(1), inv(2, status="paid"), inv(3, status="void")]
    error = refusal(["inv_1", "inv_2", "inv_3"], invoices)
    assert str(error) == (
        "invoices 'inv_2' (INV-000002) is paid, 'inv_3' (INV-000003) is void; "
        "only open invoices can be paid; remove those that are not open from "
        "the selection"
    )
    assert error.fields["reason"] == "not_open"
    assert error.fields["invoice_ids"] == ("inv_2", "inv_3")


class Status(str, enum.Enum):
    OPEN = "open"
    UNCOLLECTIBLE = "uncollectible"


def test_a_str_enum_status_is_read_by_its_value() -> None:
    invoices = [
        attrs.evolve(inv(1), status=Status.OPEN),
        attrs.evolve(inv(2), status=Status.UNCOLLECTIBLE),
    ]
    assert plan(["inv_1"], invoices).total == Money("100.00", "NOK")
    error = refusal(["inv_2"], invoices)
    assert "'inv_2' (INV-000002) is uncollectible" in str(error)


def test_nothing_outstanding() -> None:
    error = refusal(["inv_1", "inv_2"], [inv(1, "0.00"), inv(2, "-5.00")])
    assert str(error) == (
        "nothing is outstanding: 'inv_1' (INV-000001) owes 0.00 NOK, "
        "'inv_2' (INV-000002) owes -5.00 NOK; select invoices with an amount "
        "left to pay"
    )
    assert error.fields["reason"] == "nothing_due"


def test_mixed_currencies_name_the_currencies() -> None:
    invoices = [inv(1), inv(2, "10", code="SEK"), inv(3)]
    error = refusal(["inv_1", "inv_2", "inv_3"], invoices)
    assert str(error) == (
        "the selection mixes currencies (NOK: 'inv_1', 'inv_3'; SEK: 'inv_2'); "
        "one payment settles invoices in one currency; select invoices that "
        "share a currency"
    )
    assert error.fields["reason"] == "currency"
    assert isinstance(error, InvalidInputError)
    assert isinstance(error, ValueError)


def test_invoice_in_a_pending_settlement_is_refused() -> None:
    invoices = [inv(1), inv(2), inv(3)]
    with pytest.raises(InvalidSelectionError) as info:
        plan_settlement(
            ["inv_1", "inv_2", "inv_3"],
            invoices,
            account_id=ACC,
            customer_id=CUS,
            pending={"inv_3", "inv_9"},
        )
    assert str(info.value) == (
        "invoice 'inv_3' (INV-000003) is already in a payment in progress; "
        "wait until that payment has finished, or select other invoices"
    )
    assert info.value.fields["reason"] == "pending"
    assert info.value.fields["invoice_ids"] == ("inv_3",)
    assert plan_settlement(
        ["inv_1", "inv_2"],
        invoices,
        account_id=ACC,
        customer_id=CUS,
        pending={"inv_3"},
    ).total == Money("200.00", "NOK")
    with pytest.raises(InvalidInputError, match="not a collection of invoice ids"):
        plan_settlement(
            ["inv_1"], invoices, account_id=ACC, customer_id=CUS, pending="inv_1"
        )


@pytest.mark.parametrize("pending", [b"inv_3", [5], [""], ["  "], {None}])
def test_pending_ids_are_text(pending: object) -> None:
    message = r"pending .*; give the ids of invoices"
    with pytest.raises(InvalidInputError, match=message):
        plan_settlement(
            ["inv_1"],
            [inv(1)],
            account_id=ACC,
            customer_id=CUS,
            pending=pending,  # type: ignore[arg-type]
        )


@attrs.frozen
class NoDueDate:
    """An invoice-like value without a due date."""

    id: str = "inv_1"
    display_number: str = "INV-000001"
    account_id: str = ACC
    customer_id: str = CUS
    status: str = "open"
    currency: Currency = attrs.field(factory=lambda: Currency("NOK"))
    outstanding: Money = attrs.field(factory=lambda: Money(100, "NOK"))


@pytest.mark.parametrize(
    ("invoice", "missing"),
    [
        (
            5,
            "id, display_number, account_id, customer_id, status, currency, "
            "outstanding, due_date",
        ),
        ("inv_1", "id, display_number, account_id"),
        (NoDueDate(), "due_date"),
    ],
)
def test_invoices_without_the_fields_of_one_are_named(
    invoice: object, missing: str
) -> None:
    message = f"^invoice .* has no {missing}.*; give invoices"
    with pytest.raises(InvalidInputError, match=message):
        plan(["inv_1"], [invoice])  # type: ignore[list-item]
    with pytest.raises(InvalidInputError, match=message):
        allocate_payment(Money(100, "NOK"), [inv(2), invoice])  # type: ignore[list-item]


def test_checks_run_in_a_fixed_order() -> None:
    # duplicate before not found, not found before not open, not open before currency
    invoices = [inv(1, status="paid"), inv(2, code="SEK")]
    assert refusal(["inv_1", "inv_1", "x"], invoices).fields["reason"] == "duplicate"
    assert refusal(["inv_1", "x"], invoices).fields["reason"] == "not_found"
    assert refusal(["inv_1", "inv_2"], invoices).fields["reason"] == "not_open"


def test_bad_account_or_customer_argument() -> None:
    with pytest.raises(InvalidInputError, match="customer_id '' is empty"):
        plan_settlement(["inv_1"], [inv(1)], account_id=ACC, customer_id="")


def test_two_different_invoices_with_one_id_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="share the id 'inv_1'"):
        plan(["inv_1"], [inv(1), inv(1, "5.00")])
    # the very same invoice twice is harmless
    assert plan(["inv_1"], [inv(1), inv(1)]).total == Money("100.00", "NOK")


def test_mapping_keys_must_be_the_invoice_ids() -> None:
    with pytest.raises(InvalidInputError, match="mapping key 'x' holds invoice"):
        plan_settlement(["inv_1"], {"x": inv(1)}, account_id=ACC, customer_id=CUS)


def test_outstanding_in_another_currency_than_the_invoice() -> None:
    bad = attrs.evolve(inv(1), outstanding=Money("1", "SEK"))
    with pytest.raises(CurrencyMismatchError, match="NOK with SEK"):
        plan(["inv_1"], [bad])


def test_selection_key_ignores_click_order_but_not_the_set_or_amounts() -> None:
    invoices = [inv(1), inv(2, "5.00"), inv(3)]
    key = plan(["inv_1", "inv_2"], invoices).selection_key
    assert plan(["inv_2", "inv_1"], invoices).selection_key == key
    assert plan(["inv_1", "inv_3"], invoices).selection_key != key
    assert plan(["inv_1"], invoices).selection_key != key
    lowered = [inv(1), inv(2, "4.00"), inv(3)]
    assert plan(["inv_1", "inv_2"], lowered).selection_key != key
    other = plan_settlement(
        ["inv_1"],
        [inv(1, customer_id="cus_2")],
        account_id=ACC,
        customer_id="cus_2",
    )
    assert other.selection_key != plan(["inv_1"], invoices).selection_key
    assert len(key) == 64
    assert int(key, 16) >= 0


def test_selection_key_is_the_documented_hash() -> None:
    # a change of encoding would let a double click straddling an upgrade
    # charge twice, so the encoding is pinned here
    result = plan(["inv_2", "inv_1"], [inv(1, "7.50"), inv(2, "10")])
    canonical = (
        '{"account":"acc_1","currency":"NOK","customer":"cus_1",'
        '"invoices":[["inv_1","7.50"],["inv_2","10.00"]]}'
    )
    assert result.selection_key == hashlib.sha256(canonical.encode()).hexdigest()


# allocate_payment: examples


def test_oldest_due_first_partly_paying_the_last() -> None:
    invoices = [
        inv(1, "300.00", due=DAY),
        inv(2, "100.00", due=DAY - timedelta(days=30)),
        inv(3, "50.00", due=DAY + timedelta(days=1)),
    ]
    result = allocate_payment(Money("350.00", "NOK"), invoices)
    assert [(a.invoice_id, str(a.amount), a.settles) for a in result.allocations] == [
        ("inv_2", "100.00 NOK", True),
        ("inv_1", "250.00 NOK", False),
    ]
    assert result.credit == Money("0.00", "NOK")
    assert result.total == Money("350.00", "NOK")
    assert result.applied == Money("350.00", "NOK")


def test_excess_becomes_credit() -> None:
    result = allocate_payment(Money("500", "NOK"), [inv(1), inv(2)])
    assert [a.settles for a in result.allocations] == [True, True]
    assert result.credit == Money("300.00", "NOK")


def test_ties_on_due_date_go_by_invoice_number_naturally() -> None:
    invoices = [
        FakeInvoice(
            id=f"id_{n}", display_number=f"INV-{n}", outstanding=Money(1, "NOK")
        )
        for n in (10, 9, 100)
    ]
    result = allocate_payment(Money(3, "NOK"), invoices)
    assert [a.invoice_number for a in result.allocations] == [
        "INV-9",
        "INV-10",
        "INV-100",
    ]


def test_not_open_and_nothing_due_are_ignored_without_order() -> None:
    invoices = [
        inv(1, status="paid"),
        inv(2, "0.00"),
        inv(3, "40.00"),
        inv(4, status="void", code="SEK"),
    ]
    result = allocate_payment(Money("50.00", "NOK"), invoices)
    assert [a.invoice_id for a in result.allocations] == ["inv_3"]
    assert result.credit == Money("10.00", "NOK")


def test_given_order_is_followed_and_unnamed_invoices_get_nothing() -> None:
    invoices = [inv(1, due=DAY - timedelta(days=99)), inv(2), inv(3)]
    result = allocate_payment(
        Money("150.00", "NOK"), invoices, order=["inv_3", "inv_2"]
    )
    assert [(a.invoice_id, str(a.amount)) for a in result.allocations] == [
        ("inv_3", "100.00 NOK"),
        ("inv_2", "50.00 NOK"),
    ]
    assert result.credit == Money("0.00", "NOK")


def test_given_order_refuses_what_cannot_be_paid() -> None:
    invoices = [inv(1, status="paid"), inv(2, "0.00"), inv(3)]
    amount = Money("10.00", "NOK")
    with pytest.raises(InvalidSelectionError, match=r"'inv_1' \(INV-000001\) is paid"):
        allocate_payment(amount, invoices, order=["inv_3", "inv_1"])
    with pytest.raises(InvalidSelectionError, match="nothing is outstanding"):
        allocate_payment(amount, invoices, order=["inv_2"])
    with pytest.raises(
        InvalidSelectionError, match="invoice 'inv_7' in the order not found"
    ):
        allocate_payment(amount, invoices, order=["inv_7"])
    with pytest.raises(InvalidSelectionError, match="in the order more than once"):
        allocate_payment(amount, invoices, order=["inv_3", "inv_3"])
    with pytest.raises(InvalidSelectionError, match="not a list of invoice ids"):
        allocate_payment(amount, invoices, order="inv_3")


def test_empty_order_makes_everything_credit() -> None:
    result = allocate_payment(Money("10.00", "NOK"), [inv(1)], order=[])
    assert result.allocations == ()
    assert result.credit == Money("10.00", "NOK")


def test_zero_amount_allocates_nothing() -> None:
    result = allocate_payment(Money(0, "NOK"), [inv(1)])
    assert result == AllocationResult(
        allocations=(), credit=Money(0, "NOK"), total=Money(0, "NOK")
    )


def test_negative_amount_is_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"amount -1\.00 NOK is negative"):
        allocate_payment(Money("-1.00", "NOK"), [inv(1)])


def test_amount_with_too_many_decimals_is_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"more decimals than ISK allows \(0\)"):
        allocate_payment(Money("10.5", "ISK"), [inv(1, "10", code="ISK")])


def test_amount_must_be_money() -> None:
    with pytest.raises(InvalidInputError, match="is not Money"):
        allocate_payment(Decimal(10), [inv(1)])  # type: ignore[arg-type]


def test_currency_mismatch() -> None:
    with pytest.raises(CurrencyMismatchError, match="cannot combine SEK with NOK"):
        allocate_payment(Money("10.00", "SEK"), [inv(1)])


def test_invoices_of_several_customers_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="several accounts or customers"):
        allocate_payment(Money("1.00", "NOK"), [inv(1), inv(2, customer_id="cus_2")])


def test_a_mapping_is_refused_for_allocation() -> None:
    with pytest.raises(InvalidInputError, match="invoices is a mapping"):
        allocate_payment(Money("1.00", "NOK"), {"inv_1": inv(1)})  # type: ignore[arg-type]


# reconcile_settlement: examples


def test_reconcile_unchanged_applies_everything() -> None:
    invoices = [inv(1), inv(2, "20.00")]
    planned = plan(["inv_1", "inv_2"], invoices)
    result = reconcile_settlement(planned, invoices)
    assert result.applied == planned.lines
    assert result.unapplied == ()
    assert result.credit == Money("0.00", "NOK")
    assert result.total == planned.total


def test_reconcile_turns_what_was_paid_elsewhere_into_credit() -> None:
    invoices = [inv(1), inv(2, "20.00"), inv(3, "30.00"), inv(4, "5.00")]
    planned = plan(["inv_1", "inv_2", "inv_3", "inv_4"], invoices)
    now = [
        inv(1, status="paid"),  # paid by bank transfer meanwhile
        inv(2, "15.00"),  # partly credited meanwhile
        inv(3, "99.00"),  # grew: still only the planned amount
        # inv_4 is gone
    ]
    result = reconcile_settlement(planned, now)
    assert [(line.invoice_id, str(line.amount)) for line in result.applied] == [
        ("inv_2", "15.00 NOK"),
        ("inv_3", "30.00 NOK"),
    ]
    assert [(line.invoice_id, str(line.amount)) for line in result.unapplied] == [
        ("inv_1", "100.00 NOK"),
        ("inv_2", "5.00 NOK"),
        ("inv_4", "5.00 NOK"),
    ]
    assert result.credit == Money("110.00", "NOK")


def test_reconcile_ignores_an_invoice_that_moved_to_another_customer() -> None:
    planned = plan(["inv_1"], [inv(1)])
    result = reconcile_settlement(planned, [inv(1, customer_id="cus_2")])
    assert result.applied == ()
    assert result.credit == planned.total


def test_reconcile_refuses_a_currency_change() -> None:
    planned = plan(["inv_1"], [inv(1)])
    with pytest.raises(CurrencyMismatchError):
        reconcile_settlement(planned, [inv(1, code="SEK")])


def test_reconcile_needs_a_plan() -> None:
    with pytest.raises(InvalidInputError, match="not a SettlementPlan"):
        reconcile_settlement("plan", [inv(1)])  # type: ignore[arg-type]


# Due


def test_due_snapshots_and_fits_the_protocol() -> None:
    source = attrs.evolve(inv(1, "10"), status=Status.OPEN)
    due = Due.of(source)
    assert due.status == "open"
    assert type(due.status) is str
    assert str(due.outstanding) == "10.00 NOK"
    as_protocol: SettleableInvoice = due
    assert (as_protocol.id, as_protocol.display_number) == ("inv_1", "INV-000001")
    assert plan(["inv_1"], [due]).total == Money("10.00", "NOK")


def test_due_refuses_bad_fields() -> None:
    with pytest.raises(InvalidInputError, match="invoice id '' is empty"):
        Due.of(attrs.evolve(inv(1), id=""))
    with pytest.raises(InvalidInputError, match="outstanding a Money"):
        Due.of(attrs.evolve(inv(1), outstanding=Decimal(1)))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"due_date must be a datetime\.date"):
        Due.of(attrs.evolve(inv(1), due_date="2026-01-01"))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="status must be a string"):
        Due.of(attrs.evolve(inv(1), status=1))  # type: ignore[arg-type]


# real records.Invoice values


def test_records_invoice_is_accepted_as_it_is() -> None:
    from recurbill.records import Invoice, InvoiceStatus

    def record(n: int, status: InvoiceStatus, paid: str) -> Invoice:
        return Invoice(
            id=f"inv_{n}",
            account_id=ACC,
            customer_id=CUS,
            series="INV",
            number=n,
            status=status,
            currency="NOK",  # records converts the code (a Currency is refused)
            issue_date=DAY - timedelta(days=14),
            due_date=DAY + timedelta(days=n),
            lines=(),
            net_total=Money("80.00", "NOK"),
            vat_total=Money("20.00", "NOK"),
            total=Money("100.00", "NOK"),
            paid=Money(paid, "NOK"),
            credited=Money("0.00", "NOK"),
            created_at=datetime(2026, 2, 15, tzinfo=timezone.utc),
        )

    invoices = [
        record(1, InvoiceStatus.OPEN, "0.00"),
        record(2, InvoiceStatus.OPEN, "40.00"),
        record(3, InvoiceStatus.PAID, "100.00"),
    ]
    as_protocol: Sequence[SettleableInvoice] = invoices
    # mypy --strict checks here that records.Invoice fits SettleableInvoice
    result = plan(["inv_2", "inv_1"], as_protocol)
    assert [(line.invoice_number, str(line.amount)) for line in result.lines] == [
        ("INV-000002", "60.00 NOK"),
        ("INV-000001", "100.00 NOK"),
    ]
    assert result.total == Money("160.00", "NOK")
    with pytest.raises(InvalidSelectionError, match=r"\(INV-000003\) is paid"):
        plan_settlement(["inv_3"], invoices, account_id=ACC, customer_id=CUS)
    allocated = allocate_payment(Money("120.00", "NOK"), invoices)
    assert [(a.invoice_number, str(a.amount)) for a in allocated.allocations] == [
        ("INV-000001", "100.00 NOK"),
        ("INV-000002", "20.00 NOK"),
    ]
    paid_meanwhile = [record(1, InvoiceStatus.PAID, "100.00"), invoices[1]]
    reconciled = reconcile_settlement(result, paid_meanwhile)
    assert reconciled.credit == Money("100.00", "NOK")


# properties

CURRENCIES = ("ISK", "NOK", "KWD", "JPY")
STATUSES = ("open", "open", "open", "paid", "void", "draft", "uncollectible")


def minor(units: int, code: str) -> Money:
    currency = Currency(code)
    return Money(Decimal(units).scaleb(-currency.decimals), currency)


@st.composite
def invoice_lists(
    draw: st.DrawFn, code: str, *, open_only: bool = False
) -> list[FakeInvoice]:
    numbers = draw(st.lists(st.integers(1, 10**6), unique=True, max_size=12))
    return [
        FakeInvoice(
            id=f"inv_{n}",
            display_number=f"INV-{n}",
            status="open" if open_only else draw(st.sampled_from(STATUSES)),
            currency=Currency(code),
            outstanding=minor(draw(st.integers(0, 10**7)), code),
            due_date=DAY + timedelta(days=draw(st.integers(-400, 400))),
        )
        for n in numbers
    ]


def owed(invoices: Sequence[FakeInvoice]) -> int:
    return sum(
        int(i.outstanding.amount.scaleb(i.currency.decimals))
        for i in invoices
        if i.status == "open"
    )


@st.composite
def allocations(
    draw: st.DrawFn, *, with_order: bool
) -> tuple[Money, list[FakeInvoice], list[str] | None, AllocationResult]:
    code = draw(st.sampled_from(CURRENCIES))
    invoices = draw(invoice_lists(code))
    amount = minor(draw(st.integers(0, owed(invoices) + 10**6)), code)
    order = None
    if with_order:
        payable = [i.id for i in invoices if i.status == "open" and i.outstanding]
        order = draw(st.permutations(payable))
        order = order[: draw(st.integers(0, len(order)))]
    return amount, invoices, order, allocate_payment(amount, invoices, order=order)


@given(allocations(with_order=False) | allocations(with_order=True))
def test_allocation_never_creates_or_loses_money(
    case: tuple[Money, list[FakeInvoice], list[str] | None, AllocationResult],
) -> None:
    amount, _invoices, _order, result = case
    parts = sum((a.amount.amount for a in result.allocations), Decimal(0))
    assert parts + result.credit.amount == amount.amount
    assert result.applied + result.credit == result.total == amount
    assert result.credit.amount >= 0
    assert all(a.amount.is_quantized for a in result.allocations)
    assert result.credit.is_quantized


@given(allocations(with_order=False) | allocations(with_order=True))
def test_allocation_never_pays_beyond_what_is_owed(
    case: tuple[Money, list[FakeInvoice], list[str] | None, AllocationResult],
) -> None:
    _amount, invoices, _order, result = case
    by_id = {i.id: i for i in invoices}
    assert len({a.invoice_id for a in result.allocations}) == len(result.allocations)
    for a in result.allocations:
        invoice = by_id[a.invoice_id]
        assert invoice.status == "open"
        assert Money(0, a.amount.currency) < a.amount <= invoice.outstanding
        assert a.settles == (a.amount == invoice.outstanding)
        assert a.invoice_number == invoice.display_number


@given(allocations(with_order=False) | allocations(with_order=True))
def test_allocation_respects_the_order(
    case: tuple[Money, list[FakeInvoice], list[str] | None, AllocationResult],
) -> None:
    _amount, invoices, order, result = case
    by_id = {i.id: i for i in invoices}
    if order is None:
        sequence = sorted(
            (i for i in invoices if i.status == "open" and i.outstanding),
            key=lambda i: (i.due_date, int(i.display_number[4:])),
        )
    else:
        sequence = [by_id[i] for i in order]
    paid = [a.invoice_id for a in result.allocations]
    # money goes to a prefix of the order, each one settled but the last
    assert paid == [i.id for i in sequence[: len(paid)]]
    assert all(a.settles for a in result.allocations[:-1])
    # credit only once every invoice in the order is settled
    if result.credit:
        assert len(paid) == len(sequence)
        assert all(a.settles for a in result.allocations)


@given(st.sampled_from(CURRENCIES).flatmap(lambda c: invoice_lists(c, open_only=True)))
def test_paying_exactly_what_is_owed_settles_everything(
    invoices: list[FakeInvoice],
) -> None:
    amount = minor(owed(invoices), invoices[0].currency.code if invoices else "NOK")
    result = allocate_payment(amount, invoices)
    assert not result.credit
    assert all(a.settles for a in result.allocations)
    assert len(result.allocations) == sum(1 for i in invoices if i.outstanding)


@st.composite
def plans(draw: st.DrawFn) -> tuple[list[FakeInvoice], list[str], SettlementPlan]:
    code = draw(st.sampled_from(CURRENCIES))
    invoices = [i for i in draw(invoice_lists(code, open_only=True)) if i.outstanding]
    assume(invoices)
    chosen = draw(st.permutations([i.id for i in invoices]))
    chosen = chosen[: draw(st.integers(1, len(chosen)))]
    return invoices, list(chosen), plan(chosen, invoices)


@given(plans())
def test_plan_total_is_the_sum_of_its_lines(
    case: tuple[list[FakeInvoice], list[str], SettlementPlan],
) -> None:
    invoices, chosen, result = case
    by_id = {i.id: i for i in invoices}
    assert result.invoice_ids == tuple(chosen)
    assert [line.amount for line in result.lines] == [
        by_id[i].outstanding for i in chosen
    ]
    total = sum((line.amount.amount for line in result.lines), Decimal(0))
    assert result.total.amount == total
    assert result.total.is_quantized


@given(plans(), st.randoms(use_true_random=False))
def test_selection_key_is_the_same_for_the_same_set(
    case: tuple[list[FakeInvoice], list[str], SettlementPlan], random: object
) -> None:
    invoices, chosen, result = case
    shuffled = list(chosen)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    assert plan(shuffled, invoices).selection_key == result.selection_key


@given(plans(), st.data())
def test_selection_key_differs_for_another_set(
    case: tuple[list[FakeInvoice], list[str], SettlementPlan], data: st.DataObject
) -> None:
    invoices, chosen, result = case
    ids = [i.id for i in invoices]
    other = data.draw(st.lists(st.sampled_from(ids), min_size=1, unique=True))
    assume(set(other) != set(chosen))
    assert plan(other, invoices).selection_key != result.selection_key


@st.composite
def later_states(draw: st.DrawFn, invoice: FakeInvoice) -> FakeInvoice | None:
    change = draw(st.sampled_from(["same", "paid", "void", "lower", "higher", "gone"]))
    if change == "gone":
        return None
    if change in ("paid", "void"):
        return attrs.evolve(invoice, status=change)
    units = int(invoice.outstanding.amount.scaleb(invoice.currency.decimals))
    if change == "lower":
        units = draw(st.integers(-units, units))
    elif change == "higher":
        units += draw(st.integers(0, 10**6))
    return attrs.evolve(invoice, outstanding=minor(units, invoice.currency.code))


@given(plans(), st.data())
def test_reconcile_never_loses_money(
    case: tuple[list[FakeInvoice], list[str], SettlementPlan], data: st.DataObject
) -> None:
    invoices, _chosen, planned = case
    now = [data.draw(later_states(i)) for i in invoices]
    current = [i for i in now if i is not None]
    result = reconcile_settlement(planned, current)
    applied = sum((line.amount.amount for line in result.applied), Decimal(0))
    assert applied + result.credit.amount == planned.total.amount
    assert result.credit.amount == sum(
        (line.amount.amount for line in result.unapplied), Decimal(0)
    )
    by_id = {i.id: i for i in current}
    planned_amounts = {line.invoice_id: line.amount for line in planned.lines}
    for line in result.applied:
        invoice = by_id[line.invoice_id]
        assert invoice.status == "open"
        assert Money(0, line.amount.currency) < line.amount
        assert line.amount <= min(invoice.outstanding, planned_amounts[line.invoice_id])
    for line in result.unapplied:
        assert line.amount.amount > 0


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=6),
    cuts=st.lists(st.integers(min_value=1, max_value=10_000), max_size=6),
)
def test_refund_slices_partition_what_was_paid(
    sizes: list[int], cuts: list[int]
) -> None:
    from recurbill.corrections import refund_slices
    from recurbill.errors import StateError

    buckets = [(f"b{i}", Money(size, "ISK")) for i, size in enumerate(sizes)]
    total = sum(sizes)
    taken: dict[str, int] = {}
    start = 0
    for cut in cuts:
        if start + cut > total:
            with pytest.raises(StateError):
                refund_slices(
                    buckets, start=Money(start, "ISK"), amount=Money(cut, "ISK")
                )
            break
        parts = refund_slices(
            buckets, start=Money(start, "ISK"), amount=Money(cut, "ISK")
        )
        assert sum(int(m.amount) for _, m in parts) == cut
        for key, money in parts:
            taken[key] = taken.get(key, 0) + int(money.amount)
        start += cut
    for key, size in zip((k for k, _ in buckets), sizes, strict=True):
        assert taken.get(key, 0) <= size  # never more than a bucket held
    order = [k for k, _ in buckets]
    filled = [taken.get(k, 0) == s for k, s in zip(order, sizes, strict=True)]
    # buckets are emptied in order: a later one is touched only when earlier are empty
    for i, key in enumerate(order):
        if taken.get(key, 0):
            assert all(filled[:i])


def _owing(outstanding: str) -> Due:
    return Due(
        invoice_id="inv_1",
        invoice_number="INV-1",
        account_id="a",
        customer_id="c",
        status="open",
        currency=Currency("NOK"),
        outstanding=Money(outstanding, "NOK"),
        due_date=date(2026, 1, 1),
    )


@given(st.integers(1, 10**9), st.integers(1, 9))
def test_an_outstanding_amount_with_too_many_decimals_is_refused(
    cents: int, extra: int
) -> None:
    """100.005 NOK owed was planned and allocated as 100.01, beyond what is owed."""
    due = _owing(f"{cents // 100}.{cents % 100:02d}{extra}")  # e.g. 100.005
    with pytest.raises(InvalidInputError, match="more decimals than NOK has"):
        plan_settlement(["inv_1"], [due], account_id="a", customer_id="c")
    with pytest.raises(InvalidInputError, match="more decimals than NOK has"):
        allocate_payment(Money("200.00", "NOK"), [due])
    with pytest.raises(InvalidInputError, match="more decimals than NOK has"):
        Due.of(due)

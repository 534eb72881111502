"""Hypothesis strategies for invoices: lines, allowances, charges, currencies."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs
from hypothesis import strategies as st

from recurbill.invoice import AllowanceCharge, InvoiceLine, VatCategory
from recurbill.money import Currency, Money

__all__ = [
    "CURRENCIES",
    "REASONS",
    "InvoiceInput",
    "invoice_inputs",
    "invoice_lines",
    "vat_groups",
]

CURRENCIES = ("ISK", "NOK", "KWD")
REASONS = {
    VatCategory.EXEMPT: "Exempt (VATEX-EU-132)",
    VatCategory.REVERSE_CHARGE: "Reverse charge",
    VatCategory.INTRA_COMMUNITY: "Intra-community supply",
    VatCategory.EXPORT: "Export outside the EU",
    VatCategory.OUTSIDE_SCOPE: "Not subject to VAT",
}
_STANDARD_RATES = ("25", "15", "12", "6", "21", "12.5", "24.5")

VatGroup = tuple[VatCategory, Decimal, "str | None"]

standard = st.sampled_from(_STANDARD_RATES).map(
    lambda r: (VatCategory.STANDARD, Decimal(r), None)
)
zero_rated = st.sampled_from(
    [VatCategory.ZERO, *[c for c in REASONS if c is not VatCategory.OUTSIDE_SCOPE]]
).map(lambda c: (c, Decimal(0), REASONS.get(c)))
vat_groups = st.one_of(standard, standard, zero_rated)
"""A (category, rate, exemption reason) that may mix with others (not O)."""


def _amounts(decimals: int, bound: int) -> st.SearchStrategy[Decimal]:
    return st.decimals(
        min_value=-bound, max_value=bound, places=decimals, allow_nan=False
    )


@st.composite
def _allowance_charges(
    draw: st.DrawFn, is_charge: bool, decimals: int, vat: VatGroup | None
) -> AllowanceCharge:
    fields: dict[str, Any] = {"is_charge": is_charge}
    if draw(st.booleans()):
        fields["amount"] = draw(_amounts(decimals, 500))
    else:  # EN 16931 sets no sign or range: negative and over 100 % too
        fields["percentage"] = draw(
            st.decimals(min_value=-200, max_value=200, places=2, allow_nan=False)
        )
        fields["base_amount"] = draw(_amounts(decimals, 5_000))
    if vat is not None:
        fields["vat_category"], fields["vat_rate"], fields["exemption_reason"] = vat
    return AllowanceCharge(reason="charge" if is_charge else "allowance", **fields)


@st.composite
def invoice_lines(draw: st.DrawFn, decimals: int, vat: VatGroup) -> InvoiceLine:
    """A line with a random quantity (may be negative), price, base quantity,
    and up to two line allowances and charges."""
    category, rate, reason = vat
    return InvoiceLine(
        description=draw(st.text(min_size=1, max_size=10).filter(str.strip)),
        quantity=draw(
            st.decimals(
                min_value=-1000,
                max_value=1000,
                places=draw(st.integers(0, 3)),
                allow_nan=False,
            )
        ),
        unit_price=draw(
            st.decimals(
                min_value=0,
                max_value=100_000,
                places=draw(st.integers(0, 4)),
                allow_nan=False,
            )
        ),
        base_quantity=draw(st.sampled_from(["1", "1", "12", "0.5", "100", "3"])),
        allowances=tuple(
            draw(st.lists(_allowance_charges(False, decimals, None), max_size=2))
        ),
        charges=tuple(
            draw(st.lists(_allowance_charges(True, decimals, None), max_size=2))
        ),
        vat_category=category,
        vat_rate=rate,
        exemption_reason=reason,
    )


@attrs.frozen(kw_only=True)
class InvoiceInput:
    """Everything compute_totals takes, drawn together."""

    currency: Currency
    lines: tuple[InvoiceLine, ...]
    allowances: tuple[AllowanceCharge, ...]
    charges: tuple[AllowanceCharge, ...]
    prepaid: Money | None
    rounding_amount: Money | None


@st.composite
def invoice_inputs(
    draw: st.DrawFn,
    *,
    with_prepaid: bool = True,
    currencies: tuple[str, ...] = CURRENCIES,
) -> InvoiceInput:
    """A random invoice: ISK/NOK/KWD, mixed categories and rates (or only O),
    negative quantities, line and document allowances and charges."""
    currency = Currency(draw(st.sampled_from(currencies)))
    decimals = currency.decimals
    if draw(st.integers(0, 9)) == 0:
        groups: list[VatGroup] = [
            (VatCategory.OUTSIDE_SCOPE, Decimal(0), REASONS[VatCategory.OUTSIDE_SCOPE])
        ]
    else:
        groups = draw(st.lists(vat_groups, min_size=1, max_size=4))
    lines = draw(
        st.lists(
            st.sampled_from(groups).flatmap(lambda g: invoice_lines(decimals, g)),
            min_size=1,
            max_size=8,
        )
    )
    allowances = draw(
        st.lists(
            st.sampled_from(groups).flatmap(
                lambda g: _allowance_charges(False, decimals, g)
            ),
            max_size=3,
        )
    )
    charges = draw(
        st.lists(
            st.sampled_from(groups).flatmap(
                lambda g: _allowance_charges(True, decimals, g)
            ),
            max_size=3,
        )
    )
    optional = st.none() | _amounts(decimals, 10_000).map(lambda a: Money(a, currency))
    return InvoiceInput(
        currency=currency,
        lines=tuple(lines),
        allowances=tuple(allowances),
        charges=tuple(charges),
        prepaid=draw(optional) if with_prepaid else None,
        rounding_amount=draw(optional),
    )

"""Row encoding keeps every line exactly as given, whatever it shares a cache with."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from recurbill.invoice import AllowanceCharge, InvoiceLine
from recurbill.storage import rows
from recurbill.testing.storage import make_invoice

_DIGITS = st.sampled_from(["1", "1.0", "1.00", "2.50", "2.5", "0.125"])


def _line(quantity: str, price: str) -> InvoiceLine:
    return InvoiceLine(
        description="Hosting",
        quantity=Decimal(quantity),
        unit_price=Decimal(price),
        vat_rate=Decimal(25),
    )


@given(st.lists(st.tuples(_DIGITS, _DIGITS), min_size=1, max_size=4), st.data())
def test_lines_round_trip_digit_for_digit(
    pairs: list[tuple[str, str]], data: st.DataObject
) -> None:
    lines = tuple(_line(q, p) for q, p in pairs)
    text = rows._lines_json(lines)
    decoded = rows._lines(text)
    assert rows._lines_json(decoded) == text  # the shared decoded tuple
    # an equal tuple written with other digits (1.0 == 1.00) keeps its own
    other = tuple(
        _line(data.draw(st.sampled_from([q, q + "0" if "." in q else q + ".0"])), p)
        for q, p in pairs
    )
    assert other == lines
    again = rows._lines(rows._lines_json(other))
    assert [str(line.quantity) for line in again] == [
        str(line.quantity) for line in other
    ]


def _invoice_row(**changes: Any) -> dict[str, Any]:
    return rows.encode_invoice(make_invoice(**changes))


def test_no_allowances_or_charges_cost_no_json_work() -> None:
    assert rows._allowance_charges_json((), ()) is rows._NO_ITEMS
    row = _invoice_row()
    assert row["allowance_charges"] == "[]"
    decoded = rows.decode_invoice(row)
    assert decoded.allowances == decoded.charges == ()


def test_a_row_written_by_version_4_reads_with_none() -> None:
    row = _invoice_row()
    del row["allowance_charges"]  # version 4 had no such column
    invoice = rows.decode_invoice(row)
    assert (invoice.allowances, invoice.charges) == ((), ())


def test_allowances_and_charges_round_trip_in_order_digit_for_digit() -> None:
    items = [
        AllowanceCharge(
            is_charge=False,
            amount="10.50",
            reason="A",
            vat_category="S",
            vat_rate="25.00",
        ),
        AllowanceCharge(
            is_charge=False,
            percentage="2.5",
            base_amount="100.0",
            reason="B",
            vat_category="Z",
        ),
        AllowanceCharge(
            is_charge=True,
            amount="35",
            reason="C",
            vat_category="AE",
            exemption_reason="Reverse charge",
        ),
    ]
    text = rows._allowance_charges_json(items[:2], items[2:])
    row = _invoice_row(allowances=tuple(items[:2]), charges=tuple(items[2:]))
    assert row["allowance_charges"] == text
    invoice = rows.decode_invoice(row)
    assert invoice.allowances == tuple(items[:2])
    assert invoice.charges == tuple(items[2:])
    assert [i.to_dict() for i in invoice.allowances + invoice.charges] == [
        i.to_dict() for i in items
    ]

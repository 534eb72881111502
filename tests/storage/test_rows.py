"""Row encoding keeps every line exactly as given, whatever it shares a cache with."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from recurbill.invoice import InvoiceLine
from recurbill.storage import rows

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

"""Plain-text e-mails keep every line within 72 characters, tables included.

A table cell or footer label too long for its column wraps inside it. Words
are never broken (an amount, a reference, a long compound): a line is longer
only when a word cannot fit the room it has.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from datetime import date, datetime, timezone
from decimal import Decimal

from hypothesis import assume, given, settings
from hypothesis import strategies as st
from render_fixtures import account, customer, invoice, money, receipt

from recurbill.errors import RecurbillError
from recurbill.invoice import AllowanceCharge, InvoiceLine, compute_totals
from recurbill.notify.render import (
    _WIDTH,
    render_invoice,
    render_payment_failed,
    render_receipt,
    render_summary,
)
from recurbill.records import (
    ChargeLine,
    EndedLine,
    FailedLine,
    Invoice,
    IssuedLine,
    ReceiptItem,
    RunReport,
    SkippedLine,
)

LOCALES = ("nb_NO", "sv_SE", "is_IS", "en_GB", "nn_NO", "sv_FI", "en_US", "de_DE")
CURRENCIES = ("NOK", "SEK", "ISK", "EUR", "GBP", "KWD")
REASONS = {
    "E": "Unntatt fra merverdiavgift etter merverdiavgiftsloven § 3-2",
    "AE": "Omvendt avgiftsplikt",
    "Z": None,
    "S": None,
}

word = st.text(
    alphabet=st.sampled_from(
        "abcdefghijklmnopqrstuvwxyzæøåðþ.,-()ÆØÅ0123456789%"
        "🎉日本語\u0301\u0308"  # two columns each; combining marks take none
    ),
    min_size=1,
    max_size=15,
).filter(lambda w: _width(w) > 0)
text = st.lists(word, min_size=1, max_size=30).map(
    lambda words: "".join(
        w + sep for w, sep in zip(words, itertools.cycle(" \t \r "), strict=False)
    ).strip()
)
"""Text of words a line always has room for: up to 30 of up to 15 characters
(at most 30 columns), apart by spaces, a tab or a lone carriage return."""


def _lines(message_text: str) -> list[str]:
    return message_text.split("\n")


def _width(text: str) -> int:
    """Display width, counted independently of the renderer."""
    return sum(
        0
        if unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me", "Cf")
        else 2
        if unicodedata.east_asian_width(c) in "WF"
        else 1
        for c in text
    )


def _too_long(message_text: str) -> list[str]:
    """Lines wider than 72 columns, or that keep a tab or a carriage return."""
    return [
        line
        for line in _lines(message_text)
        if _width(line) > _WIDTH or "\t" in line or "\r" in line
    ]


@st.composite
def _items(draw: st.DrawFn, is_charge: bool) -> AllowanceCharge:
    fields: dict[str, object] = {"is_charge": is_charge, "reason": draw(text)}
    if draw(st.booleans()):
        fields["amount"] = draw(st.decimals(0, 500, places=2))
    else:
        fields["percentage"] = draw(st.decimals(0, 100, places=2))
        fields["base_amount"] = draw(st.decimals(0, 5_000, places=2))
    return AllowanceCharge(**fields)  # type: ignore[arg-type]


@st.composite
def _invoice_lines(draw: st.DrawFn) -> InvoiceLine:
    category = draw(st.sampled_from(sorted(REASONS)))
    return InvoiceLine(
        description=draw(text),
        quantity=draw(st.decimals(-100, 1_000, places=draw(st.integers(0, 2)))),
        unit_price=draw(st.decimals(0, 20_000, places=draw(st.integers(0, 3)))),
        base_quantity=draw(st.sampled_from(["1", "1", "12", "0.5", "100"])),
        vat_category=category,
        vat_rate=Decimal(25 if category == "S" else 0),
        exemption_reason=REASONS[category] if category in ("E", "AE") else None,
        allowances=tuple(draw(st.lists(_items(False), max_size=2))),
        charges=tuple(draw(st.lists(_items(True), max_size=2))),
    )


@st.composite
def _document_items(draw: st.DrawFn, is_charge: bool) -> AllowanceCharge:
    """An allowance or charge on the whole invoice, with its own VAT."""
    category = draw(st.sampled_from(sorted(REASONS)))
    item = draw(_items(is_charge))
    return AllowanceCharge(
        is_charge=is_charge,
        amount=item.amount,
        percentage=item.percentage,
        base_amount=item.base_amount,
        reason=item.reason,
        vat_category=category,
        vat_rate=Decimal(25 if category == "S" else 0),
        exemption_reason=REASONS[category],
    )


@st.composite
def invoices(draw: st.DrawFn) -> Invoice:
    currency = draw(st.sampled_from(CURRENCIES))
    lines = tuple(draw(st.lists(_invoice_lines(), min_size=1, max_size=6)))
    allowances = tuple(draw(st.lists(_document_items(False), max_size=3)))
    charges = tuple(draw(st.lists(_document_items(True), max_size=3)))
    try:
        totals = compute_totals(
            lines, currency=currency, allowances=allowances, charges=charges
        )
        return invoice(
            currency,
            lines=lines,
            allowances=allowances,
            charges=charges,
            net_total=totals.tax_exclusive,
            vat_total=totals.vat_total,
            total=totals.amount_due,
            memo=draw(text),
        )
    except RecurbillError:
        assume(False)
        raise  # unreachable: assume raised


@given(invoices(), st.sampled_from(LOCALES))
@settings(max_examples=150, deadline=None)
def test_no_line_of_an_invoice_e_mail_is_longer_than_72(
    bill: Invoice, locale: str
) -> None:
    acc = account(locale, currency=bill.currency.code)
    message = render_invoice(acc, customer(locale, name=" ".join(["Kari"] * 20)), bill)
    assert _too_long(message.text) == []
    for line in bill.lines:  # every word is there, none broken
        assert set(line.description.split()) <= set(message.text.split())
    for item in bill.allowances + bill.charges:  # each has its row, reason whole
        assert set(f"({item.reason})".split()) <= set(message.text.split())


@given(
    st.lists(
        st.tuples(word, st.decimals(1, 99_999, places=2)), min_size=1, max_size=12
    ),
    st.decimals(0, 99_999, places=2),
    st.sampled_from(LOCALES),
    st.sampled_from(CURRENCIES),
    word,
)
@settings(max_examples=100, deadline=None)
def test_no_line_of_a_receipt_e_mail_is_longer_than_72(
    items: list[tuple[str, Decimal]],
    credit: Decimal,
    locale: str,
    currency: str,
    brand: str,
) -> None:
    paid = [
        ReceiptItem(
            invoice_id=f"inv_{n}", invoice_number=number, amount=money(str(a), currency)
        )
        for n, (number, a) in enumerate(items)
    ]
    kept = money(str(credit), currency)
    total = sum((item.amount for item in paid), kept)
    message = render_receipt(
        account(locale, currency=currency),
        customer(locale),
        receipt(
            currency, items=tuple(paid), credit=kept, amount=total, card_brand=brand
        ),
    )
    assert _too_long(message.text) == []


def _line(description: str, **fields: object) -> InvoiceLine:
    values: dict[str, object] = {
        "quantity": Decimal(2),
        "unit_price": Decimal(800),
        "vat_rate": Decimal(25),
    }
    return InvoiceLine(description=description, **values | fields)  # type: ignore[arg-type]


def _invoice_of(*lines: InvoiceLine, currency: str = "NOK") -> Invoice:
    totals = compute_totals(lines, currency=currency)
    return invoice(
        currency,
        lines=lines,
        net_total=totals.tax_exclusive,
        vat_total=totals.vat_total,
        total=totals.amount_due,
    )


def test_a_long_discount_label_wraps_with_its_amount_on_its_first_line() -> None:
    reason = (
        "rabatt for medlemmer av Norsk Fysioterapeutforbund som betaler innen fristen"
    )
    discount = AllowanceCharge(is_charge=False, amount=Decimal(160), reason=reason)
    bill = _invoice_of(_line("Samtaletime", allowances=(discount,)))
    text = render_invoice(account(), customer(), bill).text
    assert _too_long(text) == []
    lines = _lines(text)
    first = next(n for n, line in enumerate(lines) if line.startswith("  Rabatt ("))
    assert lines[first].endswith("-160,00\xa0kr")
    label = " ".join(
        re.split(" {2,}", line.strip())[0] for line in lines[first : first + 3]
    )
    assert label.startswith(f"Rabatt ({reason})")  # read in order, word for word
    header = next(line for line in lines if "Beskrivelse" in line)
    assert lines[first + 1].startswith("  ")  # in the description column
    assert len(lines[first + 1]) <= header.index("Antall")


def test_a_long_exemption_reason_wraps_in_the_totals() -> None:
    reason = "Unntatt fra merverdiavgift etter merverdiavgiftsloven paragraf 3-2"
    bill = _invoice_of(
        _line("Bok", vat_category="E", vat_rate=Decimal(0), exemption_reason=reason)
    )
    text = render_invoice(account(), customer(), bill).text
    assert _too_long(text) == []
    assert "merverdiavgiftsloven" in text


def test_a_word_longer_than_a_line_stays_whole_on_its_own_line() -> None:
    """The one exception, as in paragraphs: words are never broken."""
    long_word = "x" * 90
    bill = _invoice_of(_line(f"Samtaletime {long_word} med rapport"))
    text = render_invoice(account(), customer(), bill).text
    assert [line.strip() for line in _too_long(text)] == [long_word]


def test_totals_wider_than_every_line_stay_in_the_amount_column() -> None:
    bill = _invoice_of(
        _line("Kurs", unit_price=Decimal(4500)),  # 9 000,00 kr
        _line("Bok", unit_price=Decimal(1000)),
    )  # total 13 750,00 kr is wider than any line's amount
    text = render_invoice(account(), customer(), bill).text
    rows = [line for line in _lines(text) if line.endswith("kr") and "  " in line]
    assert len({len(line) for line in rows}) == 1  # one right edge


def test_a_long_list_of_invoice_numbers_wraps_in_its_field() -> None:
    numbers = [f"INV-{n:06d}" for n in range(1, 31)]
    text = render_payment_failed(
        account(), customer(), numbers, money("300", "NOK"), None
    ).text
    assert _too_long(text) == []
    assert ", ".join(numbers) in " ".join(text.split())


@given(
    st.lists(st.tuples(text, text), min_size=1, max_size=8),
    st.sampled_from(LOCALES),
)
@settings(max_examples=60, deadline=None)
def test_no_line_of_a_daily_summary_is_longer_than_72(
    names: list[tuple[str, str]], locale: str
) -> None:
    when = datetime(2026, 3, 5, 5, 15, tzinfo=timezone.utc)
    run = RunReport(
        account_id="acme",
        as_of=when,
        issued=tuple(
            IssuedLine(
                invoice_id=f"inv_{n}",
                invoice_number=f"INV-{n:06d}",
                customer_name=name,
                issue_date=date(2026, 3, 5),
                total=money("1234.50", "NOK"),
            )
            for n, (name, _) in enumerate(names)
        ),
        charges=tuple(
            ChargeLine(
                invoice_number=f"INV-{n:06d}",
                customer_name=name,
                amount=money("1234.50", "NOK"),
                status=status,
                decline_code="insufficient_funds" if status == "declined" else None,
            )
            for n, ((name, _), status) in enumerate(
                zip(
                    names, itertools.cycle(["succeeded", "declined", "requires_action"])
                )
            )
        ),
        skipped=tuple(
            SkippedLine(
                template_id=f"tpl_{n}",
                customer_name=name,
                on=date(2026, 3, 4),
                description=what,
            )
            for n, (name, what) in enumerate(names)
        ),
        ended=tuple(
            EndedLine(template_id=f"tpl_{n}", customer_name=name, description=what)
            for n, (name, what) in enumerate(names)
        ),
        failed=tuple(
            FailedLine(
                template_id=f"tpl_{n}",
                customer_name=name,
                description=what,
                problem="line 1: unit price -5 is negative; use a price of 0 or more",
            )
            for n, (name, what) in enumerate(names)
        ),
    )
    assert _too_long(render_summary(account(locale), run).text) == []


def test_a_line_break_in_a_description_stays_in_its_column() -> None:
    bill = _invoice_of(_line("Samtaletime\nmed rapport"))
    lines = _lines(render_invoice(account(), customer(), bill).text)
    first = lines.index(next(line for line in lines if "Samtaletime" in line))
    assert lines[first].endswith("1\xa0600,00\xa0kr")
    assert lines[first + 1] == "  med rapport"


def test_a_tab_or_carriage_return_in_a_short_cell_becomes_spaces() -> None:
    """As in a wrapped cell: a lone CR would split the row once e-mailed."""
    bill = _invoice_of(_line("Massasje\t30 min"), _line("Time\rnotat"))
    lines = _lines(render_invoice(account(), customer(), bill).text)
    assert not [line for line in lines if "\t" in line or "\r" in line]
    assert any(line.startswith("  Massasje        30 min  ") for line in lines)
    assert any(line.startswith("  Time notat  ") for line in lines)


def test_a_long_word_at_the_start_of_a_cell_goes_below_the_amounts() -> None:
    url = "https://fjordfysio.no/avtaler/2027/kari-nordmann/behandlingsplan"
    bill = _invoice_of(_line(f"{url} med rapport"))
    lines = _lines(render_invoice(account(), customer(), bill).text)
    assert _too_long("\n".join(lines)) == []
    first = next(
        n for n, line in enumerate(lines) if line.endswith("1\xa0600,00\xa0kr")
    )
    assert lines[first].split()[0] == "2"  # the quantity first: no description
    assert lines[first + 1] == f"  {url}"
    assert lines[first + 2] == "  med rapport"


def test_wide_characters_and_combining_marks_keep_the_columns() -> None:
    """Emoji and CJK take two columns, a combining mark none: the amounts of
    every row end in the same column on screen."""
    descriptions = ("Bursdag 🎉🎉", "日本語のテキスト", "Cafe\u0301 au lait", "Kaffe")
    bill = _invoice_of(*(_line(d) for d in descriptions))
    lines = _lines(render_invoice(account(), customer(), bill).text)
    rows = [
        line
        for line in lines
        if line.startswith(("  Bursdag", "  日", "  Caf", "  Kaffe"))
    ]
    assert len(rows) == len(descriptions)
    assert len({_width(row) for row in rows}) == 1
    amounts = {_width(row[: row.index("2 ")]) for row in rows}  # the quantity
    assert len(amounts) == 1
    long = "🎉" * 40  # 80 columns: wraps in its column, never breaks
    text = render_invoice(account(), customer(), _invoice_of(_line(long))).text
    assert [line.strip() for line in _too_long(text)] == [long]

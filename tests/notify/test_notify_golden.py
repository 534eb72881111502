"""E-mails rendered for fixed records, against reviewed golden files.

The daily summary (plain text), and the invoice and receipt e-mails (subject,
plain text and HTML) of a typical invoice and of one that takes the
renderer's other paths: a price per 12, line and document allowances and
charges, an exemption reason and a description too long for their columns,
wide characters, an amount already settled, stored totals the lines do not
reproduce, a due date passed and a card that could not be charged.

To accept a deliberate change, delete the golden file and run the test once:
it writes the new rendering and fails, asking you to review it.
"""

from __future__ import annotations

import difflib
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from render_fixtures import (
    CURRENCY,
    account,
    customer,
    invoice,
    money,
    receipt,
    report,
)

from recurbill.invoice import AllowanceCharge, InvoiceLine, compute_totals
from recurbill.notify.message import Message
from recurbill.notify.render import render_invoice, render_receipt, render_summary
from recurbill.records import Invoice, ReceiptItem

GOLDEN = Path(__file__).parent / "golden"


def _check(name: str, text: str) -> None:
    path = GOLDEN / name
    if not path.exists():
        path.write_text(text, encoding="utf-8")
        pytest.fail(f"wrote {path.name}; review it and run the tests again")
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=f"golden/{path.name}",
                tofile="rendered",
            )
        )
        pytest.fail(f"{name} differs from its golden file:\n{diff}")


def _shown(messages: list[Message]) -> str:
    """Each message's subject, plain text and HTML, one after the other."""
    return "".join(f"=== {m.subject}\n{m.text}--- html\n{m.html}" for m in messages)


@pytest.mark.parametrize("locale", sorted(CURRENCY))
def test_daily_summary_matches_golden_file(locale: str) -> None:
    text = render_summary(account(locale), report(CURRENCY[locale])).text
    _check(f"summary_{locale}.txt", text)


def _typical(currency: str) -> Invoice:
    """Three lines, two VAT rates: the daily run's benchmark invoice."""
    lines = (
        InvoiceLine(description="Service", quantity=1, unit_price="499", vat_rate=25),
        InvoiceLine(
            description="Support", quantity=2, unit_price="120.50", vat_rate=25
        ),
        InvoiceLine(description="Books", quantity=1, unit_price="99", vat_rate=12),
    )
    return _with_totals(invoice(currency, lines=lines))


def _with_totals(base: Invoice, **changes: object) -> Invoice:
    totals = compute_totals(
        base.lines,
        currency=base.currency,
        allowances=base.allowances,
        charges=base.charges,
    )
    fields: dict[str, object] = {
        "net_total": totals.tax_exclusive,
        "vat_total": totals.vat_total,
        "total": totals.amount_due,
    }
    fields.update(changes)
    return invoice(
        base.currency.code,
        lines=base.lines,
        allowances=base.allowances,
        charges=base.charges,
        **fields,
    )


def _unusual(currency: str) -> Invoice:
    """Every kind of row, with labels too long or too wide for their columns."""
    lines = (
        InvoiceLine(
            description="Strøm",
            quantity=132,
            unit_price="15.24",
            base_quantity=12,
            vat_rate=25,
        ),
        InvoiceLine(
            description="Time med en svært lang beskrivelse som må brytes i "
            "kolonnen sin\tog en tabulator",
            quantity=2,
            unit_price="999.125",
            vat_rate=25,
            allowances=[
                AllowanceCharge(
                    is_charge=False,
                    percentage=10,
                    base_amount="1998",
                    reason="stamkunde",
                )
            ],
            charges=[AllowanceCharge(is_charge=True, amount="50", reason="frakt")],
        ),
        InvoiceLine(
            description="日本語の本 🎉 e\u0301dition",
            quantity=Decimal("-1.5"),
            unit_price="349",
            vat_category="E",
            vat_rate=0,
            exemption_reason="Unntatt fra merverdiavgift etter "
            "merverdiavgiftsloven § 3-2",
        ),
    )
    allowances = (
        AllowanceCharge(
            is_charge=False,
            percentage=10,
            base_amount="1600",
            reason="Lojalitet",
            vat_category="S",
            vat_rate=25,
        ),
    )
    charges = (
        AllowanceCharge(
            is_charge=True,
            amount="35",
            reason="Fakturagebyr <&>",
            vat_category="S",
            vat_rate=25,
        ),
    )
    base = invoice(currency, lines=lines, allowances=allowances, charges=charges)
    return _with_totals(
        base, paid=money("100", currency), memo="Takk for handelen!\nMvh <oss>"
    )


def _invoices(locale: str) -> list[Message]:
    currency = CURRENCY[locale]
    card = customer(locale, collection_method="charge_automatically")
    unusual = _unusual(currency)
    mismatched = _with_totals(_typical(currency), vat_total=money("200", currency))
    return [
        render_invoice(account(locale), customer(locale), _typical(currency)),
        render_invoice(account(locale), customer(locale), unusual),
        render_invoice(
            account(locale),
            card,
            unusual,
            on=date(2026, 4, 1),
            not_charged="below_minimum",
        ),
        render_invoice(account(locale), customer("en_US"), mismatched),
    ]


@pytest.mark.parametrize("locale", sorted(CURRENCY))
def test_invoice_e_mails_match_golden_file(locale: str) -> None:
    _check(f"invoice_{locale}.txt", _shown(_invoices(locale)))


@pytest.mark.parametrize("locale", sorted(CURRENCY))
def test_receipt_e_mails_match_golden_file(locale: str) -> None:
    currency = CURRENCY[locale]
    single = receipt(
        currency,
        items=(
            ReceiptItem(
                invoice_id="inv_41",
                invoice_number="INV-000041",
                amount=money("1035.88", currency),
            ),
        ),
        amount=money("1035.88", currency),
        credit=money("0", currency),
        card_brand="unknown",
    )
    messages = [
        render_receipt(account(locale), customer(locale), receipt(currency)),
        render_receipt(account(locale), customer(locale), single),
    ]
    _check(f"receipt_{locale}.txt", _shown(messages))

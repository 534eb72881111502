"""Fixed records for the rendering tests and the golden files."""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

from recurbill.invoice import InvoiceLine, compute_totals
from recurbill.money import Money
from recurbill.records import (
    Account,
    ChargeLine,
    Customer,
    EndedLine,
    FailedLine,
    Invoice,
    IssuedLine,
    Receipt,
    ReceiptItem,
    RunReport,
    SkippedLine,
)

CURRENCY = {"nb_NO": "NOK", "sv_SE": "SEK", "is_IS": "ISK", "en_GB": "GBP"}
ZONE = {
    "nb_NO": "Europe/Oslo",
    "sv_SE": "Europe/Stockholm",
    "is_IS": "Atlantic/Reykjavik",
    "en_GB": "Europe/London",
}


def money(amount: str, currency: str) -> Money:
    """An amount rounded to the currency's decimals (ISK has none)."""
    return Money(amount, currency).quantize()


def account(locale: str = "nb_NO", **changes: object) -> Account:
    fields: dict[str, object] = {
        "id": "acme",
        "name": "Bakeriet Ærlig AS",
        "currency": CURRENCY.get(locale, "NOK"),
        "locale": locale,
        "timezone": ZONE.get(locale, "Europe/Oslo"),
        "summary_email": "post@bakeriet.no",
    }
    fields.update(changes)
    return Account(**fields)  # type: ignore[arg-type]


def customer(locale: str = "nb_NO", **changes: object) -> Customer:
    fields: dict[str, object] = {
        "id": "cus_1",
        "account_id": "acme",
        "name": "Kari Nordmann",
        "email": "kari@example.no",
        "locale": locale,
        "collection_method": "send_invoice",
    }
    fields.update(changes)
    return Customer(**fields)  # type: ignore[arg-type]


def report(currency: str) -> RunReport:
    """A run that did a bit of everything: the golden files render this."""

    def m(amount: str) -> Money:
        return money(amount, currency)

    return RunReport(
        account_id="acme",
        as_of=datetime(2026, 3, 5, 5, 15, tzinfo=timezone.utc),
        issued=(
            IssuedLine(
                invoice_id="inv_41",
                invoice_number="INV-000041",
                customer_name="Kari Nordmann",
                issue_date=date(2026, 3, 5),
                total=m("1234.50"),
            ),
            IssuedLine(
                invoice_id="inv_42",
                invoice_number="INV-000042",
                customer_name="Þórður Guðmundsson",
                issue_date=date(2026, 3, 3),
                total=m("890.00"),
            ),
            IssuedLine(
                invoice_id="inv_43",
                invoice_number="INV-000043",
                customer_name="Åsa Lindqvist",
                issue_date=date(2026, 3, 5),
                total=m("12500.00"),
            ),
        ),
        charges=(
            ChargeLine(
                invoice_number="INV-000041",
                customer_name="Kari Nordmann",
                amount=m("1234.50"),
                status="succeeded",
            ),
            ChargeLine(
                invoice_number="INV-000042",
                customer_name="Þórður Guðmundsson",
                amount=m("890.00"),
                status="declined",
                decline_code="insufficient_funds",
            ),
            ChargeLine(
                invoice_number="INV-000043",
                customer_name="Åsa Lindqvist",
                amount=m("12500.00"),
                status="requires_action",
            ),
        ),
        skipped=(
            SkippedLine(
                template_id="tpl_7", customer_name="Ola Hansen", on=date(2026, 3, 4)
            ),
        ),
        ended=(EndedLine(template_id="tpl_3", customer_name="Åsa Lindqvist"),),
        failed=(
            FailedLine(
                template_id="tpl_9",
                customer_name="Per Ødegård",
                description="Husleie kontor",
                problem="line 1 has VAT category AE without an exemption reason; "
                "category AE needs an exemption reason text or code (e.g. "
                "'VATEX-EU-AE' or 'Reverse charge')",
                error="VatCategoryError",
            ),
        ),
    )


def invoice(currency: str = "NOK", **changes: object) -> Invoice:
    lines = (
        InvoiceLine(
            description="Samtaletime",
            quantity=Decimal(2),
            unit_price=Decimal("800"),
            vat_category="S",
            vat_rate=Decimal(25),
        ),
        InvoiceLine(
            description="Bok: «Ærlig brød»",
            quantity=Decimal(1),
            unit_price=Decimal("349"),
            vat_category="Z",
            vat_rate=Decimal(0),
        ),
    )
    totals = compute_totals(lines, currency=currency)
    fields: dict[str, object] = {
        "id": "inv_41",
        "account_id": "acme",
        "customer_id": "cus_1",
        "series": "INV",
        "number": 41,
        "status": "open",
        "currency": currency,
        "issue_date": date(2026, 3, 5),
        "due_date": date(2026, 3, 19),
        "lines": lines,
        "net_total": totals.tax_exclusive,
        "vat_total": totals.vat_total,
        "total": totals.amount_due,
        "paid": Money.zero(currency),
        "credited": Money.zero(currency),
        "payment_reference": "1234567897",
        "created_at": datetime(2026, 3, 5, 5, 15, tzinfo=timezone.utc),
    }
    fields.update(changes)
    return Invoice(**fields)  # type: ignore[arg-type]


def receipt(currency: str = "NOK", **changes: object) -> Receipt:
    fields: dict[str, object] = {
        "id": "rcp_7",
        "account_id": "acme",
        "customer_id": "cus_1",
        "number": "R-000007",
        "payment_id": "pay_9",
        "items": (
            ReceiptItem(
                invoice_id="inv_41",
                invoice_number="INV-000041",
                amount=money("1234.50", currency),
            ),
            ReceiptItem(
                invoice_id="inv_42",
                invoice_number="INV-000042",
                amount=money("500.00", currency),
            ),
        ),
        "amount": money("1834.50", currency),
        "credit": money("100.00", currency),
        "card_brand": "visa",
        "card_last4": "4242",
        "issued_at": datetime(2026, 3, 5, 23, 30, tzinfo=timezone.utc),
        "paid_at": datetime(2026, 3, 5, 23, 30, tzinfo=timezone.utc),
    }
    fields.update(changes)
    return Receipt(**fields)  # type: ignore[arg-type]

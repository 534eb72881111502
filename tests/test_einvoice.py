"""Published EN 16931 / Peppol BIS 3 examples, rebuilt and recomputed with recurbill.

A small UBL 2.1 reader (written for this test) turns each document into
recurbill lines, allowances and charges; the totals BT-106 … BT-115 and the
VAT breakdown are recomputed from the stated line net amounts and must match
the document exactly. ``check_consistency`` must report exactly the lines
the data's README lists as inconsistent, and no other.
"""

from __future__ import annotations

import csv
import hashlib
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path

import attrs
import pytest

from recurbill.invoice import (
    AllowanceCharge,
    InvoiceLine,
    VatCategory,
    check_consistency,
    totals_from_line_nets,
)
from recurbill.money import Money

DATA = Path(__file__).parent / "data" / "einvoice"
CAC = "{urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2}"
CBC = "{urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2}"


def _manifest() -> list[dict[str, str]]:
    with (DATA / "MANIFEST.tsv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


FILES = [f"{row['dir']}/{row['file']}" for row in _manifest()]
# Every file in the manifest holds one complete Invoice or CreditNote (the
# "snippets" directory of the Peppol repository holds full documents too, each
# illustrating one part), so none is skipped.
SKIPPED: dict[str, str] = {}

# From the data's README: lines whose own data contradict their stated net
# (Peppol R120) or whose net price is not gross price − discount (R046).
KNOWN_INCONSISTENT = {
    ("en16931-ubl/ubl-tc434-example1.xml", "20"),
    ("en16931-ubl/ubl-tc434-example10.xml", "20"),
    ("en16931-ubl/guide-example1.xml", "20"),
    ("en16931-ubl/ubl-tc434-example2.xml", "1"),
    ("en16931-ubl/ubl-tc434-example2.xml", "3"),
    ("en16931-ubl/guide-example2.xml", "1"),
    ("en16931-ubl/guide-example2.xml", "3"),
    ("en16931-ubl/ubl-tc434-example3.xml", "1"),
    ("en16931-ubl/ubl-tc434-example3.xml", "2"),
    ("en16931-ubl/guide-example3.xml", "1"),
    ("en16931-ubl/guide-example3.xml", "2"),
}


@attrs.frozen(kw_only=True)
class Subtotal:
    """A stated VAT breakdown group."""

    category: str
    rate: Decimal
    taxable: Decimal
    tax: Decimal
    reason: str | None


@attrs.frozen(kw_only=True)
class Document:
    """What the test reads from one UBL document."""

    kind: str
    currency: str
    lines: tuple[InvoiceLine, ...]
    line_nets: tuple[Money, ...]
    allowances: tuple[AllowanceCharge, ...]
    charges: tuple[AllowanceCharge, ...]
    totals: dict[str, Decimal | None]
    vat_total: Decimal
    breakdown: tuple[Subtotal, ...]


def _dec(el: ET.Element | None, path: str) -> Decimal | None:
    text = None if el is None else el.findtext(path)
    return None if text is None else Decimal(text.strip())


def _req(el: ET.Element, path: str) -> Decimal:
    value = _dec(el, path)
    assert value is not None, path
    return value


def _reason(tax_category: ET.Element) -> str | None:
    text = tax_category.findtext(CBC + "TaxExemptionReason")
    code = tax_category.findtext(CBC + "TaxExemptionReasonCode")
    for value in (text, code):
        if value is not None and value.strip():
            return value.strip()
    return None


def _is_charge(ac: ET.Element) -> bool:
    flag = (ac.findtext(CBC + "ChargeIndicator") or "").strip().lower()
    assert flag in {"true", "false", "1", "0"}, flag
    return flag in {"true", "1"}


def _allowance_charges(
    parent: ET.Element, reasons: dict[str, str | None] | None
) -> tuple[list[AllowanceCharge], list[AllowanceCharge]]:
    """Line level (reasons is None) or document level AllowanceCharge elements."""
    allowances: list[AllowanceCharge] = []
    charges: list[AllowanceCharge] = []
    for ac in parent.findall(CAC + "AllowanceCharge"):
        vat: dict[str, object] = {}
        if reasons is not None:
            tc = ac.find(CAC + "TaxCategory")
            assert tc is not None
            category = (tc.findtext(CBC + "ID") or "").strip()
            vat = {
                "vat_category": category,
                "vat_rate": _dec(tc, CBC + "Percent") or Decimal(0),
                "exemption_reason": reasons.get(category),
            }
        item = AllowanceCharge(
            is_charge=_is_charge(ac),
            amount=_req(ac, CBC + "Amount"),
            percentage=_dec(ac, CBC + "MultiplierFactorNumeric"),
            base_amount=_dec(ac, CBC + "BaseAmount"),
            reason=(ac.findtext(CBC + "AllowanceChargeReason") or "").strip(),
            **vat,
        )
        (charges if item.is_charge else allowances).append(item)
    return allowances, charges


def parse(path: Path) -> Document:
    root = ET.parse(path).getroot()
    kind = root.tag.rpartition("}")[2]
    assert kind in {"Invoice", "CreditNote"}, kind
    line_tag, qty_tag = {
        "Invoice": ("InvoiceLine", "InvoicedQuantity"),
        "CreditNote": ("CreditNoteLine", "CreditedQuantity"),
    }[kind]
    currency = (root.findtext(CBC + "DocumentCurrencyCode") or "").strip()
    # The VAT breakdown in the document currency (a second TaxTotal may give
    # the VAT total in the tax currency, BT-111, without subtotals).
    tax_totals = [
        tt
        for tt in root.findall(CAC + "TaxTotal")
        if (tt.find(CBC + "TaxAmount") is not None)
        and tt.find(CBC + "TaxAmount").get("currencyID") == currency  # type: ignore[union-attr]
    ]
    assert len(tax_totals) == 1
    breakdown = []
    for st in tax_totals[0].findall(CAC + "TaxSubtotal"):
        tc = st.find(CAC + "TaxCategory")
        assert tc is not None
        breakdown.append(
            Subtotal(
                category=(tc.findtext(CBC + "ID") or "").strip(),
                rate=_dec(tc, CBC + "Percent") or Decimal(0),
                taxable=_req(st, CBC + "TaxableAmount"),
                tax=_req(st, CBC + "TaxAmount"),
                reason=_reason(tc),
            )
        )
    # EN 16931 puts the exemption reason on the breakdown only; recurbill
    # wants it on every line, allowance and charge of that category.
    reasons = {s.category: s.reason for s in breakdown}

    lines: list[InvoiceLine] = []
    nets: list[Money] = []
    for el in root.findall(CAC + line_tag):
        price = el.find(CAC + "Price")
        assert price is not None
        tc = el.find(f"{CAC}Item/{CAC}ClassifiedTaxCategory")
        assert tc is not None
        category = (tc.findtext(CBC + "ID") or "").strip()
        price_ac = price.find(CAC + "AllowanceCharge")
        allowances, charges = _allowance_charges(el, None)
        lines.append(
            InvoiceLine(
                line_id=(el.findtext(CBC + "ID") or "").strip(),
                description=el.findtext(f"{CAC}Item/{CBC}Name") or "",
                quantity=_req(el, CBC + qty_tag),
                unit_price=_req(price, CBC + "PriceAmount"),
                base_quantity=_dec(price, CBC + "BaseQuantity") or Decimal(1),
                gross_price=_dec(price_ac, CBC + "BaseAmount"),
                price_discount=_dec(price_ac, CBC + "Amount"),
                allowances=tuple(allowances),
                charges=tuple(charges),
                vat_category=VatCategory(category),
                vat_rate=_dec(tc, CBC + "Percent") or Decimal(0),
                exemption_reason=reasons.get(category),
            )
        )
        nets.append(Money(_req(el, CBC + "LineExtensionAmount"), currency))

    doc_allowances, doc_charges = _allowance_charges(root, reasons)
    lmt = root.find(CAC + "LegalMonetaryTotal")
    assert lmt is not None
    names = {
        "line_net_total": "LineExtensionAmount",
        "allowance_total": "AllowanceTotalAmount",
        "charge_total": "ChargeTotalAmount",
        "tax_exclusive": "TaxExclusiveAmount",
        "tax_inclusive": "TaxInclusiveAmount",
        "prepaid": "PrepaidAmount",
        "rounding": "PayableRoundingAmount",
        "amount_due": "PayableAmount",
    }
    return Document(
        kind=kind,
        currency=currency,
        lines=tuple(lines),
        line_nets=tuple(nets),
        allowances=tuple(doc_allowances),
        charges=tuple(doc_charges),
        totals={key: _dec(lmt, CBC + tag) for key, tag in names.items()},
        vat_total=_req(tax_totals[0], CBC + "TaxAmount"),
        breakdown=tuple(breakdown),
    )


def _optional(value: Decimal | None, currency: str) -> Money | None:
    return None if value is None else Money(value, currency)


def test_copied_files_match_the_manifest() -> None:
    rows = _manifest()
    assert len(rows) == 44
    for row in rows:
        data = (DATA / row["dir"] / row["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"], row["file"]
    on_disk = {
        p.relative_to(DATA).as_posix()
        for p in DATA.rglob("*")
        if p.is_file() and p.name not in {"README.md", "MANIFEST.tsv"}
    }
    assert on_disk == set(FILES)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(f, marks=pytest.mark.skip(reason=SKIPPED[f]))
        if f in SKIPPED
        else f
        for f in FILES
    ],
)
def test_totals_recompute_exactly(name: str) -> None:
    doc = parse(DATA / name)
    assert doc.lines
    totals = totals_from_line_nets(
        doc.lines,
        doc.line_nets,
        currency=doc.currency,
        allowances=doc.allowances,
        charges=doc.charges,
        prepaid=_optional(doc.totals["prepaid"], doc.currency),
        rounding_amount=_optional(doc.totals["rounding"], doc.currency),
    )
    zero = Decimal(0)
    stated = {k: zero if v is None else v for k, v in doc.totals.items()}
    assert totals.line_net_total.amount == stated["line_net_total"]  # BT-106
    assert totals.allowance_total.amount == stated["allowance_total"]  # BT-107
    assert totals.charge_total.amount == stated["charge_total"]  # BT-108
    assert totals.tax_exclusive.amount == stated["tax_exclusive"]  # BT-109
    assert totals.vat_total.amount == doc.vat_total  # BT-110
    assert totals.tax_inclusive.amount == stated["tax_inclusive"]  # BT-112
    assert totals.prepaid.amount == stated["prepaid"]  # BT-113
    assert totals.rounding.amount == stated["rounding"]  # BT-114
    assert totals.amount_due.amount == stated["amount_due"]  # BT-115
    ours = {
        (s.category.value, s.rate): (s.taxable.amount, s.tax.amount, s.exemption_reason)
        for s in totals.vat_breakdown
    }
    theirs = {(s.category, s.rate): (s.taxable, s.tax, s.reason) for s in doc.breakdown}
    assert ours == theirs
    assert len(totals.vat_breakdown) == len(doc.breakdown)
    assert all(m.is_quantized for m in totals.line_nets)


def test_inconsistent_lines_are_exactly_the_known_ones() -> None:
    found = set()
    rules = {}
    for name in FILES:
        doc = parse(DATA / name)
        for problem in check_consistency(
            doc.lines, doc.line_nets, currency=doc.currency
        ):
            assert problem.line_id is not None
            found.add((name, problem.line_id))
            rules[(name, problem.line_id)] = problem.rule
            assert problem.line_id in problem.message
    assert found == KNOWN_INCONSISTENT
    # Return lines with positive quantity and 2 x price stated as 1 x: R120;
    # 2.75 - 0.75 != 2.48: R046 (its quantity x price does match the net).
    assert rules[("en16931-ubl/guide-example1.xml", "20")] == "PEPPOL-EN16931-R120"
    assert rules[("en16931-ubl/guide-example2.xml", "3")] == "PEPPOL-EN16931-R046"
    assert rules[("en16931-ubl/guide-example3.xml", "2")] == "PEPPOL-EN16931-R120"


def test_norwegian_example_rounds_to_whole_kroner() -> None:
    from recurbill.invoice import cash_rounding

    doc = parse(DATA / "peppol-bis3-national-NO/Norwegian-example-1.xml")
    before = totals_from_line_nets(
        doc.lines,
        doc.line_nets,
        currency=doc.currency,
        allowances=doc.allowances,
        charges=doc.charges,
        prepaid=Money(1000, "NOK"),
    )
    assert str(before.amount_due) == "801.78 NOK"
    rounding = cash_rounding(before.amount_due, increment=Decimal(1))
    assert rounding == Money("0.22", "NOK")
    after = totals_from_line_nets(
        doc.lines,
        doc.line_nets,
        currency=doc.currency,
        allowances=doc.allowances,
        charges=doc.charges,
        prepaid=Money(1000, "NOK"),
        rounding_amount=rounding,
    )
    assert after.amount_due.amount == doc.totals["amount_due"] == Decimal("802.00")


def test_per_line_vat_rounding_would_differ() -> None:
    """EN 16931 rounds VAT per category; per-line rounding is off by a cent."""
    doc = parse(DATA / "en16931-ubl/ubl-tc434-example8.xml")
    totals = totals_from_line_nets(doc.lines, doc.line_nets, currency="EUR")
    per_line = sum(
        (
            Money(net.amount * line.vat_rate / 100, "EUR").quantize().amount
            for line, net in zip(doc.lines, doc.line_nets, strict=True)
        ),
        Decimal(0),
    )
    assert totals.vat_total.amount == doc.vat_total == Decimal("190.87")
    assert per_line == Decimal("190.88")

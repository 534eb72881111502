"""The customer e-mails of the daily run: render_invoice and render_receipt.

Renders the daily-run benchmark's invoice (three NOK lines, two VAT rates,
e-mailed to a customer in nb_NO) and a receipt for one such invoice without
credit, N times a round; the clock is the process's CPU time. With
``--against FILE`` (a ``render.py`` of another version, e.g. from
``git show REV:src/recurbill/notify/render.py > old_render.py``) it imports
that module too, checks that both render the same e-mails byte for byte, and
alternates rounds between the two; the best round of each counts.

    python benchmarks/bench_render.py
    python benchmarks/bench_render.py --against old_render.py --rounds 9
"""

from __future__ import annotations

import argparse
import functools
import gc
import importlib.util
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timezone
from pathlib import Path
from types import ModuleType

import recurbill.notify.render as current
from recurbill.invoice import InvoiceLine, compute_totals
from recurbill.money import Money
from recurbill.records import (
    Account,
    Customer,
    Invoice,
    NoChargeReason,
    Receipt,
    ReceiptItem,
)

ACCOUNT = Account(
    id="acct",
    name="Bench AS",
    currency="NOK",
    locale="nb_NO",
    timezone="Europe/Oslo",
    summary_email="bench@example.no",
)
CUSTOMER = Customer(
    id="cus_00001",
    account_id="acct",
    name="Customer 1",
    email="c1@example.no",
    locale="nb_NO",
    collection_method="send_invoice",
)
LINES = (
    InvoiceLine(description="Service", quantity=1, unit_price="499", vat_rate=25),
    InvoiceLine(description="Support", quantity=2, unit_price="120.50", vat_rate=25),
    InvoiceLine(description="Books", quantity=1, unit_price="99", vat_rate=12),
)


def _invoice() -> Invoice:
    totals = compute_totals(LINES, currency="NOK")
    return Invoice(
        id="inv_1",
        account_id="acct",
        customer_id=CUSTOMER.id,
        series="INV",
        number=41,
        status="open",
        currency="NOK",
        issue_date=date(2027, 1, 31),
        due_date=date(2027, 2, 14),
        lines=LINES,
        net_total=totals.tax_exclusive,
        vat_total=totals.vat_total,
        total=totals.amount_due,
        paid=Money.zero("NOK"),
        credited=Money.zero("NOK"),
        payment_reference="1234567897",
        created_at=datetime(2027, 1, 31, 12, tzinfo=timezone.utc),
    )


def _receipt(invoice: Invoice) -> Receipt:
    return Receipt(
        id="rcp_1",
        account_id="acct",
        customer_id=CUSTOMER.id,
        number="R-000001",
        payment_id="pay_1",
        items=(
            ReceiptItem(
                invoice_id=invoice.id,
                invoice_number=invoice.display_number,
                amount=invoice.total,
            ),
        ),
        amount=invoice.total,
        credit=Money.zero("NOK"),
        card_brand="visa",
        card_last4="4242",
        issued_at=datetime(2027, 1, 31, 12, tzinfo=timezone.utc),
        paid_at=datetime(2027, 1, 31, 12, tzinfo=timezone.utc),
    )


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("other_render", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _round(render: Callable[[], object], count: int) -> float:
    """CPU seconds per call of *render*, over *count* calls."""
    gc.collect()
    started = time.process_time()
    for _ in range(count):
        render()
    return (time.process_time() - started) / count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--against", type=Path)
    args = parser.parse_args(argv)
    modules = {"this": current}
    if args.against is not None:
        modules = {"other": _load(args.against), "this": current}
    invoice = _invoice()
    receipt = _receipt(invoice)
    reason = NoChargeReason.SEND_INVOICE

    def render_invoice(module: ModuleType) -> object:
        return module.render_invoice(
            ACCOUNT, CUSTOMER, invoice, on=invoice.issue_date, not_charged=reason
        )

    def render_receipt(module: ModuleType) -> object:
        return module.render_receipt(ACCOUNT, CUSTOMER, receipt)

    for name, call in (
        ("render_invoice", render_invoice),
        ("render_receipt", render_receipt),
    ):
        if len({call(m) for m in modules.values()}) != 1:
            print(f"{name}: the two versions render different e-mails")
            return 1
        best = dict.fromkeys(modules, float("inf"))
        for _ in range(args.rounds):
            for label, module in modules.items():
                spent = _round(functools.partial(call, module), args.count)
                best[label] = min(best[label], spent)
        shown = ", ".join(f"{label} {best[label] * 1e6:6.1f} us" for label in best)
        ratio = f" ({best['other'] / best['this']:.2f}x)" if "other" in best else ""
        print(f"{name}: {shown}{ratio}, best of {args.rounds} x {args.count:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

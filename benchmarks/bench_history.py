"""Paying, voiding and retrying one invoice of a customer with a long history.

A customer billed for years has many payments: the charges that paid each
earlier invoice, with their receipts, and declined attempts. Work on one
invoice should read that invoice's payments and receipts, not the
customer's history. Seeds three SQLite databases, each with one account
whose customer has a saved card:

- ``baseline``: no history;
- ``paid``: H earlier payments on other invoices, each the charge that paid
  its invoice, with its receipt;
- ``declines``: H earlier payments on other invoices, half of them declined
  first attempts and half the charges that then paid those invoices, with
  their receipts.

Then, going round the three in the same process (each round another goes
first), each round times on a fresh open invoice of each:

- ``pay``: the customer pays the invoice with the saved card;
- ``void_invoice``: the invoice is voided;
- a retry: the daily run (``Billing.run`` for the account) on the day the
  retry of the invoice's declined first attempt is due.

It prints the fastest of the rounds of each and its ratio to the baseline,
and exits non-zero if a ratio is above ``LIMIT``; but the run over the
declines: to find the retries due, it reads the account's declined payments
and their invoices (one batched read each, ``bench_retries.py``), whatever
is due.

    python benchmarks/bench_history.py                  # 2,000 earlier payments
    python benchmarks/bench_history.py --history 10000 --rounds 5
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs

from recurbill.billing import Billing
from recurbill.ids import automatic_charge_id
from recurbill.money import Money
from recurbill.payments.memory import InMemoryGateway
from recurbill.records import (
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentStatus,
    Receipt,
    ReceiptItem,
)
from recurbill.storage.protocol import Transaction
from recurbill.storage.sql import SqlStorage
from recurbill.testing import make_invoice, make_payment

T0 = datetime(2025, 1, 1, 9, tzinfo=timezone.utc)
NOW = datetime(2027, 3, 1, 9, tzinfo=timezone.utc)
LIMIT = 3.0
PAID = Money("125.00", "NOK")


class _Side:
    """One database: an account, a customer with a card, and its history."""

    def __init__(
        self, folder: Path, name: str, history: int, *, declines: bool
    ) -> None:
        self.storage = SqlStorage.sqlite(folder / f"{name}.sqlite3")
        self.storage.migrate()
        self.billing = Billing(storage=self.storage, gateway=InMemoryGateway())
        account = self.billing.create_account(
            name="Fjord Fysio AS",
            currency="NOK",
            locale="nb_NO",
            timezone="Europe/Oslo",
            summary_email="post@fjordfysio.no",
        )
        customer = self.billing.add_customer(
            account.id, name="Kari Nordmann", email="kari@example.no"
        )
        card = self.billing.save_card(account.id, customer.id, token="pm_card_visa")
        self.account, self.customer, self.card = account.id, customer.id, card.id
        self._fresh = 0
        self._seed(history // 2 if declines else history, declines=declines)

    def _seed(self, count: int, *, declines: bool) -> None:
        """*count* earlier invoices, each paid by a charge with its receipt,
        after a declined first attempt if *declines*."""
        for start in range(0, count, 500):
            invoices = [
                self._invoice(status=InvoiceStatus.PAID, paid=PAID)
                for _ in range(min(500, count - start))
            ]
            payments, receipts = [], []
            for invoice in invoices:
                if declines:
                    payments.append(self._payment(invoice.id, attempt=1))
                charged = self._payment(
                    invoice.id,
                    attempt=2 if declines else 1,
                    status=PaymentStatus.SUCCEEDED,
                )
                payments.append(charged)
                receipts.append(self._receipt(charged, invoice.display_number))
            with self.storage.transaction() as tx:
                tx.add_invoices(self._numbered(tx, invoices))
                tx.add_payments(payments)
                tx.add_receipts(receipts)
                tx.commit()

    def _invoice(self, **changes: Any) -> Invoice:
        self._fresh += 1
        return make_invoice(
            f"inv-{self._fresh:06d}",
            account_id=self.account,
            customer_id=self.customer,
            issue_date=(NOW - timedelta(days=10)).date(),
            due_date=(NOW + timedelta(days=4)).date(),
            **changes,
        )

    def _numbered(self, tx: Transaction, invoices: list[Invoice]) -> list[Invoice]:
        first = tx.allocate_invoice_numbers(self.account, "INV", count=len(invoices))
        return [
            attrs.evolve(invoice, number=first + n)
            for n, invoice in enumerate(invoices)
        ]

    def _payment(
        self,
        invoice_id: str,
        *,
        attempt: int,
        status: PaymentStatus = PaymentStatus.DECLINED,
        created_at: datetime = T0,
    ) -> Payment:
        return make_payment(
            automatic_charge_id(self.account, invoice_id, attempt),
            account_id=self.account,
            customer_id=self.customer,
            payment_method_id=self.card,
            invoice_ids=(invoice_id,),
            status=status,
            attempt=attempt,
            decline_code=None
            if status is PaymentStatus.SUCCEEDED
            else "insufficient_funds",
            created_at=created_at,
            updated_at=created_at,
        )

    def _receipt(self, payment: Payment, number: str) -> Receipt:
        return Receipt(
            id=f"rct-{payment.id}",
            account_id=self.account,
            customer_id=self.customer,
            number=f"R-{payment.id}",
            payment_id=payment.id,
            items=(
                ReceiptItem(
                    invoice_id=payment.invoice_ids[0],
                    invoice_number=number,
                    amount=PAID,
                ),
            ),
            amount=PAID,
            credit=Money("0.00", "NOK"),
            card_brand="visa",
            card_last4="4242",
            issued_at=T0,
            paid_at=T0,
        )

    def open_invoice(self, *, declined_at: datetime | None = None) -> str:
        """A fresh open invoice; with *declined_at*, its first automatic
        attempt was declined then."""
        invoice = self._invoice()
        with self.storage.transaction() as tx:
            tx.add_invoices(self._numbered(tx, [invoice]))
            if declined_at is not None:
                declined = self._payment(invoice.id, attempt=1, created_at=declined_at)
                tx.add_payment(declined)
            tx.commit()
        return invoice.id

    def expect(self, invoice_id: str, status: InvoiceStatus) -> None:
        """Stop if the timed call did not leave the invoice in *status*."""
        with self.storage.transaction(read_only=True) as tx:
            found = tx.get_invoice(self.account, invoice_id).status
        if found is not status:
            raise SystemExit(f"invoice {invoice_id} is {found.value}, not {status}")

    def close(self) -> None:
        self.storage.close()


def _timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _pay(side: _Side) -> float:
    invoice = side.open_invoice()
    took = _timed(
        lambda: side.billing.pay(
            side.account, invoice, payment_method_id=side.card, now=NOW
        )
    )
    side.expect(invoice, InvoiceStatus.PAID)
    return took


def _void(side: _Side) -> float:
    invoice = side.open_invoice()
    took = _timed(lambda: side.billing.void_invoice(side.account, invoice, now=NOW))
    side.expect(invoice, InvoiceStatus.VOID)
    return took


def _retry(side: _Side) -> float:
    invoice = side.open_invoice(declined_at=NOW - timedelta(days=3))
    took = _timed(
        lambda: side.billing.run(NOW, account_ids=[side.account], send_summaries=False)
    )
    side.expect(invoice, InvoiceStatus.PAID)  # the retry charged it
    return took


RUN = "retry (run)"
OPERATIONS: dict[str, Callable[[_Side], float]] = {
    "pay": _pay,
    "void_invoice": _void,
    RUN: _retry,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp())
    best: dict[tuple[str, str], float] = {}
    try:
        start = time.perf_counter()
        sides = {
            "baseline": _Side(folder, "baseline", 0, declines=False),
            "paid": _Side(folder, "paid", args.history, declines=False),
            "declines": _Side(folder, "declines", args.history, declines=True),
        }
        seeded = time.perf_counter() - start
        order = list(sides)
        for round_ in range(args.rounds):
            turn = order[round_ % 3 :] + order[: round_ % 3]  # each goes first
            for operation, measure in OPERATIONS.items():
                for name in turn:
                    took = measure(sides[name])
                    key = (operation, name)
                    best[key] = min(best.get(key, took), took)
        for side in sides.values():
            side.close()
    finally:
        shutil.rmtree(folder)
    print(
        f"SQLite; a customer with {args.history:,} earlier payments on other "
        f"invoices against one with none (seeded in {seeded:.1f} s); "
        f"fastest of {args.rounds} rounds"
    )
    print(f"  {'':<13} {'baseline':>9} {'paid':>9} {'declines':>17}")
    worst = 0.0
    for operation in OPERATIONS:
        base = best[(operation, "baseline")]
        line = f"  {operation:<13} {base * 1000:6.2f} ms"
        for name in ("paid", "declines"):
            took = best[(operation, name)]
            ratio = took / base
            if (operation, name) != (RUN, "declines"):
                worst = max(worst, ratio)
            line += f" {took * 1000:6.2f} ms {ratio:5.2f}x"
        print(line)
    print(f"worst ratio {worst:.2f}x (limit {LIMIT}x, the run over declines aside)")
    return 0 if worst <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())

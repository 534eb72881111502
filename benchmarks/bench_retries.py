"""The daily run over a history of declined charges, against one without it.

Declined automatic charges stay declined for good, so every run meets more of
them. Seeds A accounts, each with a customer whose P invoices were each once
declined (``insufficient_funds``) and later paid, and runs ``Billing.run`` when
nothing is due. The baseline, measured in the same process, is the same
accounts and paid invoices without the declines. The ratio says what the
history costs; it exits non-zero if the run over the history takes more than
``LIMIT`` times the baseline (before the retries were read in one pass it
took about 400 times at the default size).

    python benchmarks/bench_retries.py                        # 100 accounts x 100
    python benchmarks/bench_retries.py --accounts 400 --per-account 25
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from recurbill.billing import Billing
from recurbill.money import Money
from recurbill.payments.memory import InMemoryGateway
from recurbill.records import InvoiceStatus, PaymentStatus
from recurbill.storage.sql import SqlStorage
from recurbill.testing import (
    make_account,
    make_customer,
    make_invoice,
    make_payment,
    make_payment_method,
)

T0 = datetime(2025, 1, 1, 9, tzinfo=timezone.utc)
AS_OF = datetime(2025, 3, 1, 9, tzinfo=timezone.utc)
LIMIT = 50
TRIES = 3


def _seed(
    storage: SqlStorage, accounts: int, per_account: int, *, declines: bool
) -> None:
    for a in range(accounts):
        account, customer, card = f"a{a:04d}", f"c{a:04d}", f"pm{a:04d}"
        invoices = [f"i{a:04d}-{k}" for k in range(per_account)]
        with storage.transaction() as tx:
            tx.add_account(make_account(account))
            tx.add_customer(
                make_customer(
                    customer, account_id=account, default_payment_method_id=card
                )
            )
            tx.add_payment_method(
                make_payment_method(card, account_id=account, customer_id=customer)
            )
            tx.add_invoices(
                [
                    make_invoice(
                        invoice,
                        account_id=account,
                        customer_id=customer,
                        number=k + 1,
                        status=InvoiceStatus.PAID,
                        paid=Money("125.00", "NOK"),
                    )
                    for k, invoice in enumerate(invoices)
                ]
            )
            tx.allocate_invoice_numbers(account, "INV", count=per_account)
            if declines:
                tx.add_payments(
                    [
                        make_payment(
                            f"p-{invoice}",
                            account_id=account,
                            customer_id=customer,
                            payment_method_id=card,
                            invoice_ids=(invoice,),
                            status=PaymentStatus.DECLINED,
                            decline_code="insufficient_funds",
                            created_at=T0,
                            updated_at=T0,
                        )
                        for invoice in invoices
                    ]
                )
            tx.commit()


def _run_time(
    folder: Path, accounts: int, per_account: int, *, declines: bool
) -> float:
    """The fastest of TRIES runs with nothing due (a run then changes nothing)."""
    name = "history" if declines else "baseline"
    with SqlStorage.sqlite(folder / f"{name}.sqlite3") as storage:
        storage.migrate()
        _seed(storage, accounts, per_account, declines=declines)
        billing = Billing(storage=storage, gateway=InMemoryGateway())
        times = []
        for _ in range(TRIES):
            start = time.perf_counter()
            billing.run(AS_OF, send_summaries=False)
            times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100)
    parser.add_argument("--per-account", type=int, default=100)
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp())
    try:
        base = _run_time(folder, args.accounts, args.per_account, declines=False)
        history = _run_time(folder, args.accounts, args.per_account, declines=True)
    finally:
        shutil.rmtree(folder)
    declined = args.accounts * args.per_account
    print(f"{args.accounts} accounts, {declined:,} paid invoices, SQLite")
    print(f"run, no declines in the history : {base:7.3f} s (fastest of {TRIES})")
    print(f"run, each invoice once declined : {history:7.3f} s (fastest of {TRIES})")
    ratio = history / base
    print(f"history / baseline              : {ratio:7.1f}x (limit {LIMIT}x)")
    return 0 if ratio <= LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())

"""Two mass payments race for overlapping invoices: each invoice is settled once.

Threads on separate database connections start at the same instant (a
barrier); PostgreSQL's row locks and the pending-settlement rule decide who
wins. The loser gets a clear refusal, and the gateway's ledger holds exactly
one charge per settlement that succeeded.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date
from functools import partial
from typing import Any

from billing_helpers import Counter, at, line
from recurbill.billing import Billing
from recurbill.errors import InvalidSelectionError
from recurbill.money import Money
from recurbill.payments.memory import InMemoryGateway
from recurbill.records import CollectionMethod, InvoiceStatus, SettlementStatus
from recurbill.storage.sql import SqlStorage

ROUNDS = 5


def _race(*calls: Callable[[], Any]) -> list[Any]:
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int, call: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            results[i] = call()
        except InvalidSelectionError as error:
            results[i] = error

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_overlapping_mass_payments_settle_each_invoice_once(
    sql_storage: SqlStorage,
) -> None:
    gateway = InMemoryGateway()
    billing = Billing(storage=sql_storage, gateway=gateway, ids=Counter())
    account = billing.create_account(
        account_id="fjord",
        name="Fjord Fysio AS",
        currency="NOK",
        summary_email="post@fjordfysio.no",
        timezone="Europe/Oslo",
    )
    succeeded = 0
    for round_ in range(ROUNDS):
        customer = billing.add_customer(
            account.id,
            name=f"Per {round_}",
            email=f"per{round_}@example.no",
            collection_method=CollectionMethod.SEND_INVOICE,
        )
        card = billing.save_card(account.id, customer.id, token="pm_card_visa")
        a, b, c = (
            billing.record_session(
                account.id,
                customer.id,
                lines=[line("100")],
                now=at(date(2027, 1, 1 + n)),
            ).invoice.id
            for n in range(3)
        )
        now = at(date(2027, 2, 1))
        first, second = _race(
            partial(
                billing.mass_pay,
                account.id,
                customer.id,
                [a, b],
                payment_method_id=card.id,
                now=now,
            ),
            partial(
                billing.mass_pay,
                account.id,
                customer.id,
                [b, c],
                payment_method_id=card.id,
                now=now,
            ),
        )
        outcomes = [r for r in (first, second) if not isinstance(r, Exception)]
        refused = [r for r in (first, second) if isinstance(r, Exception)]
        assert len(outcomes) >= 1
        assert len(outcomes) + len(refused) == 2
        assert all(o.status is SettlementStatus.SUCCEEDED for o in outcomes)
        assert len(outcomes) == 1, "an invoice may be in one settlement only"
        succeeded += 1
        overview = billing.overview(account.id, customer.id, on=date(2027, 2, 1))
        paid_b = next(i for i in overview.paid if i.id == b)
        assert paid_b.paid == Money("125.00", "NOK")
        assert paid_b.status is InvoiceStatus.PAID
        assert len(overview.open) == 1
        assert overview.credit_balance == Money(0, "NOK")
    assert len(gateway.ledger) == succeeded == ROUNDS


def test_the_same_selection_from_two_tabs_charges_once(sql_storage: SqlStorage) -> None:
    gateway = InMemoryGateway()
    billing = Billing(storage=sql_storage, gateway=gateway, ids=Counter())
    account = billing.create_account(
        account_id="fjord",
        name="Fjord Fysio AS",
        currency="NOK",
        summary_email="post@fjordfysio.no",
    )
    for round_ in range(ROUNDS):
        customer = billing.add_customer(
            account.id,
            name=f"Per {round_}",
            email=f"per{round_}@example.no",
            collection_method=CollectionMethod.SEND_INVOICE,
        )
        card = billing.save_card(account.id, customer.id, token="pm_card_visa")
        ids = [
            billing.record_session(
                account.id,
                customer.id,
                lines=[line("100")],
                now=at(date(2027, 1, 1 + n)),
            ).invoice.id
            for n in range(2)
        ]
        now = at(date(2027, 2, 1))
        results = _race(
            *[
                partial(
                    billing.mass_pay,
                    account.id,
                    customer.id,
                    ids,
                    payment_method_id=card.id,
                    now=now,
                )
                for _ in range(2)
            ]
        )
        assert not [r for r in results if isinstance(r, Exception)], results
        assert len({r.settlement.id for r in results}) == 1, results
        assert len(gateway.ledger) == round_ + 1


class _SlowToStore:
    """A storage whose first add_settlement waits while its transaction holds
    the invoices' locks, so a second submit overlaps it for certain."""

    def __init__(self, inner: SqlStorage) -> None:
        self.inner = inner
        self.delay = threading.Event()

    @contextlib.contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[Any]:
        with self.inner.transaction(read_only=read_only) as tx:
            yield _SlowTransaction(tx, self.delay)


class _SlowTransaction:
    def __init__(self, tx: Any, delay: threading.Event) -> None:
        self._tx, self._delay = tx, delay

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    def add_settlement(self, settlement: Any) -> None:
        if self._delay.is_set():
            self._delay.clear()  # the first submit only
            time.sleep(0.5)
        self._tx.add_settlement(settlement)


def test_a_resubmit_that_waited_for_the_first_gets_its_confirmation(
    sql_storage: SqlStorage,
) -> None:
    gateway = InMemoryGateway()
    slow = _SlowToStore(sql_storage)
    billing = Billing(storage=slow, gateway=gateway, ids=Counter())  # type: ignore[arg-type]
    account = billing.create_account(
        account_id="fjord",
        name="Fjord Fysio AS",
        currency="NOK",
        summary_email="post@fjordfysio.no",
    )
    customer = billing.add_customer(
        account.id,
        name="Per",
        email="per@example.no",
        collection_method=CollectionMethod.SEND_INVOICE,
    )
    card = billing.save_card(account.id, customer.id, token="pm_card_visa")
    ids = [
        billing.record_session(
            account.id, customer.id, lines=[line("100")], now=at(date(2027, 1, n))
        ).invoice.id
        for n in (1, 2, 3)
    ]
    submit = partial(
        billing.mass_pay,
        account.id,
        customer.id,
        ids,
        payment_method_id=card.id,
        now=at(date(2027, 2, 1)),
    )
    slow.delay.set()
    results: list[Any] = []
    first = threading.Thread(target=lambda: results.append(submit()))
    first.start()
    time.sleep(0.1)  # the first holds the invoices' locks now
    results.append(submit())  # a double click
    first.join(timeout=30)
    assert len(results) == 2
    assert len({r.settlement.id for r in results}) == 1
    assert len(gateway.ledger) == 1

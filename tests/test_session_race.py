"""Two calls of record_session with one session_id at the same moment."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import datetime
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from billing_helpers import together
from recurbill import Billing, InMemoryGateway, InvoiceLine, SqlStorage
from recurbill.errors import ConflictError, NotFoundError
from recurbill.storage.protocol import Transaction

NOW = datetime(2027, 1, 15, 10, tzinfo=ZoneInfo("Europe/Oslo"))


class _MeetAfterLookUp:
    """A transaction whose first look-up of an invoice that is not there waits
    for the other caller's (both then go on as if neither had stored it)."""

    def __init__(self, inner: Transaction, barrier: threading.Barrier) -> None:
        self._inner, self._barrier = inner, barrier

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def get_invoice(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._inner.get_invoice(*args, **kwargs)
        except NotFoundError:
            with contextlib.suppress(threading.BrokenBarrierError):
                self._barrier.wait(timeout=5)
            raise


class _Meeting:
    def __init__(self, inner: SqlStorage) -> None:
        self._inner = inner
        self.barrier = threading.Barrier(2)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @contextlib.contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[Any]:
        with self._inner.transaction(read_only=read_only) as tx:
            yield _MeetAfterLookUp(tx, self.barrier)


def _world(url: str) -> tuple[SqlStorage, Billing, str, str]:
    storage = SqlStorage.from_url(url)
    storage.migrate()
    gateway = InMemoryGateway()
    setup = Billing(storage=storage, gateway=gateway)
    account = setup.create_account(
        name="Fjord Fysio AS", currency="NOK", summary_email="post@fjord.no"
    )
    kari = setup.add_customer(
        account.id,
        name="Kari",
        email="kari@example.no",
        collection_method="send_invoice",
    )
    billing = Billing(storage=_Meeting(storage), gateway=gateway)  # type: ignore[arg-type]
    return storage, billing, account.id, kari.id


def _record(billing: Billing, account_id: str, customer_id: str, price: str) -> Any:
    return partial(
        billing.record_session,
        account_id,
        customer_id,
        lines=[
            InvoiceLine(
                description="Session", quantity=1, unit_price=price, vat_rate=25
            )
        ],
        now=NOW,
        session_id="booking-7",
    )


def test_one_session_recorded_twice_at_once_is_one_invoice(
    fresh_postgres_url: str,
) -> None:
    """Both calls look before either stores (PostgreSQL lets them): the one
    that stores second is a repeat, and returns the first one's invoice."""
    storage, billing, account_id, kari = _world(fresh_postgres_url)
    with storage:
        record = _record(billing, account_id, kari, "800")
        first, second = together(record, record)
        assert not isinstance(first, Exception), first
        assert not isinstance(second, Exception), second
        assert first.invoice == second.invoice
        with storage.transaction() as tx:
            assert len(tx.list_invoices(account_id)) == 1


def test_another_session_under_the_id_at_once_is_refused_by_its_content(
    fresh_postgres_url: str,
) -> None:
    storage, billing, account_id, kari = _world(fresh_postgres_url)
    with storage:
        results = together(
            _record(billing, account_id, kari, "800"),
            _record(billing, account_id, kari, "900"),
        )
        refused = [r for r in results if isinstance(r, Exception)]
        assert len(refused) == 1, results
        assert isinstance(refused[0], ConflictError)
        assert "was recorded already with other content" in str(refused[0])
        assert "lines" in str(refused[0])
        with storage.transaction() as tx:
            assert len(tx.list_invoices(account_id)) == 1

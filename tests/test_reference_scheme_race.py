"""A reference scheme changes while invoices are being issued.

``change_account`` checks a new scheme against the account's next invoice
number with the number counter locked, and the invoice writers
(``record_session``, the daily run) read the account's scheme after taking
their numbers: every invoice gets the scheme the account has when its number
is taken, and the OCR length digit is never dropped once an invoice has it
(a later invoice's reference would repeat it).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from datetime import date
from typing import Any

import pytest

from billing_helpers import at, line, together
from recurbill import (
    Billing,
    CollectionMethod,
    FixedSettingError,
    InMemoryGateway,
    Invoice,
    ReferenceScheme,
)
from recurbill.storage.sql import SqlStorage

NOW = at(date(2027, 1, 5), 12)
WITH_DIGIT = ReferenceScheme(method="ocr_length_digit")
PLAIN = ReferenceScheme(method="ocr")


class _Paused:
    """A storage whose first allocation of invoice numbers pauses: ``reached``
    is set and it waits for ``go``, before or after taking the numbers."""

    def __init__(self, inner: SqlStorage, *, after: bool) -> None:
        self.inner = inner
        self.after = after
        self.reached = threading.Event()
        self.go = threading.Event()

    @contextlib.contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[Any]:
        with self.inner.transaction(read_only=read_only) as tx:
            yield _PausedTransaction(self, tx)


class _PausedTransaction:
    def __init__(self, storage: _Paused, tx: Any) -> None:
        self._storage = storage
        self._tx = tx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    def _pause(self) -> None:
        if not self._storage.reached.is_set():
            self._storage.reached.set()
            assert self._storage.go.wait(timeout=30)

    def allocate_invoice_numbers(self, account_id: str, series: str, **kw: Any) -> int:
        pausing = series == "INV" and not self._storage.reached.is_set()
        if pausing and not self._storage.after:
            self._pause()
        first: int = self._tx.allocate_invoice_numbers(account_id, series, **kw)
        if pausing and self._storage.after:
            self._pause()
        return first


def _world(storage: SqlStorage) -> tuple[Billing, str, str]:
    billing = Billing(storage=storage, gateway=InMemoryGateway(environ={}))
    account = billing.create_account(
        name="Sven AB",
        currency="SEK",
        timezone="Europe/Stockholm",
        summary_email="ekonomi@sven.se",
        reference_scheme=WITH_DIGIT,
    )
    customer = billing.add_customer(
        account.id,
        name="Sven",
        email="sven@example.se",
        collection_method=CollectionMethod.SEND_INVOICE,
    )
    return billing, account.id, customer.id


def _invoices(storage: SqlStorage, account_id: str) -> list[Invoice]:
    with storage.transaction() as tx:
        return tx.list_invoices(account_id)


def _session(billing: Billing, account_id: str, customer_id: str) -> Callable[[], Any]:
    return lambda: billing.record_session(
        account_id, customer_id, lines=[line()], now=NOW
    )


def _in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(call())
        except Exception as error:  # reported to the test
            result.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


@pytest.fixture
def postgres_storage(fresh_postgres_url: str) -> Iterator[SqlStorage]:
    with SqlStorage.from_url(fresh_postgres_url) as storage:
        storage.migrate()
        yield storage


# -- deterministic interleavings (PostgreSQL: readers wait for no one) --------


@pytest.mark.parametrize("writer", ["record_session", "run"])
def test_an_invoice_numbered_after_the_change_gets_the_new_scheme(
    postgres_storage: SqlStorage, writer: str
) -> None:
    """The writer read the account (old scheme) before the change committed
    and takes its number after: it must use the scheme the account has then."""
    billing, account_id, customer_id = _world(postgres_storage)
    if writer == "run":
        billing.create_template(
            account_id,
            customer_id,
            lines=[line()],
            start=date(2027, 1, 5),
            period="month",
            now=at(date(2027, 1, 1)),
        )
    paused = _Paused(postgres_storage, after=False)
    slow = Billing(storage=paused, gateway=billing.gateway)  # type: ignore[arg-type]
    thread, result = _in_thread(
        _session(slow, account_id, customer_id)
        if writer == "record_session"
        else lambda: slow.run(NOW)
    )
    assert paused.reached.wait(timeout=30)
    # no invoice is numbered yet: the length digit may go
    assert billing.change_account(account_id, reference_scheme=PLAIN) is not None
    paused.go.set()
    thread.join(timeout=60)
    assert not isinstance(result[0], Exception), result
    (invoice,) = _invoices(postgres_storage, account_id)
    assert invoice.number == 1
    assert invoice.payment_reference == PLAIN.reference(1, series="INV")


def test_a_change_waits_for_an_invoice_being_numbered(
    postgres_storage: SqlStorage,
) -> None:
    """The writer holds its number: change_account waits for it, then sees the
    invoice and keeps the length digit."""
    billing, account_id, customer_id = _world(postgres_storage)
    paused = _Paused(postgres_storage, after=True)
    slow = Billing(storage=paused, gateway=billing.gateway)  # type: ignore[arg-type]
    writing, written = _in_thread(_session(slow, account_id, customer_id))
    assert paused.reached.wait(timeout=30)
    changing, changed = _in_thread(
        lambda: billing.change_account(account_id, reference_scheme=PLAIN)
    )
    changing.join(timeout=0.5)
    assert changing.is_alive()  # waits for the counter
    paused.go.set()
    writing.join(timeout=60)
    changing.join(timeout=60)
    assert not isinstance(written[0], Exception), written
    assert isinstance(changed[0], FixedSettingError), changed
    (invoice,) = _invoices(postgres_storage, account_id)
    assert invoice.payment_reference == WITH_DIGIT.reference(1, series="INV")
    with postgres_storage.transaction() as tx:
        assert tx.get_account(account_id).reference_scheme == WITH_DIGIT


# -- threads racing, no hooks ------------------------------------------------------


def test_a_session_racing_a_change_never_gets_the_old_scheme(
    sql_storage: SqlStorage,
) -> None:
    """Dropping the length digit while the first invoice is recorded: either
    the change comes first (the invoice has no length digit) or the change is
    refused (the invoice has one). Before the fix, some trials dropped it after
    invoice 1 got OCR 133, which invoice 13 gets again."""
    trials = 60 if sql_storage.engine.dialect.name == "postgresql" else 150
    for _ in range(trials):
        billing, account_id, customer_id = _world(sql_storage)
        session, change = together(
            _session(billing, account_id, customer_id),
            lambda: billing.change_account(account_id, reference_scheme=PLAIN),  # noqa: B023
        )
        assert not isinstance(session, Exception), session
        (invoice,) = _invoices(sql_storage, account_id)
        if isinstance(change, FixedSettingError):
            assert invoice.payment_reference == WITH_DIGIT.reference(1, series="INV")
        else:
            assert not isinstance(change, Exception), change
            assert invoice.payment_reference == PLAIN.reference(1, series="INV")

"""The storage contract every backend passes, and record factories for tests.

Check a storage backend (recurbill's own or yours) by subclassing
:class:`StorageContract` in a test module and giving it a ``storage`` fixture
that returns a fresh, empty backend::

    class TestMyStorage(StorageContract):
        @pytest.fixture
        def storage(self) -> Storage:
            return MyStorage(...)

The contract only uses the :class:`~recurbill.storage.protocol.Storage`
protocol: datetimes are compared as instants, amounts with ``==`` (so
``Decimal("1.50") == Decimal("1.5")``), and nothing depends on how a backend
keeps its rows.

The ``make_*`` factories build valid records with sensible defaults for your
own tests; keyword arguments replace any field.
"""

from __future__ import annotations

import inspect
import itertools
import random
import threading
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, TypeVar

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recurbill.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    StateError,
)
from recurbill.invoice import AllowanceCharge, InvoiceLine, VatCategory
from recurbill.money import Money
from recurbill.payee import PayeeAccount
from recurbill.records import (
    Account,
    CollectionMethod,
    CreditEntry,
    CreditNoteRecord,
    Customer,
    Invoice,
    InvoiceStatus,
    Notification,
    NotificationStatus,
    OccurrenceOutcome,
    OccurrenceRecord,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Receipt,
    ReceiptItem,
    RecurringTemplate,
    Refund,
    Settlement,
    SettlementItem,
    SettlementStatus,
    SummaryLines,
    TemplateStatus,
)
from recurbill.references import ReferenceMethod, ReferenceScheme
from recurbill.schedule import Pause, Schedule
from recurbill.storage.protocol import Storage, Transaction

__all__ = [
    "StorageContract",
    "make_account",
    "make_customer",
    "make_invoice",
    "make_notification",
    "make_payment",
    "make_payment_method",
    "make_template",
]

_T = TypeVar("_T")
_T0 = datetime(2025, 1, 1, 9, 0, tzinfo=timezone.utc)
_OSLO = timezone(timedelta(hours=1), "CET")
_PLUS_TWO = timezone(timedelta(hours=2))


# -- factories ---------------------------------------------------------------


def make_account(id: str = "acme", **changes: Any) -> Account:
    """An account billing in NOK, with a valid summary address."""
    fields: dict[str, Any] = {
        "id": id,
        "name": f"{id} AS",
        "currency": "NOK",
        "summary_email": f"billing@{id}.example",
    }
    return Account(**{**fields, **changes})


def make_customer(
    id: str = "cust-1", *, account_id: str = "acme", **changes: Any
) -> Customer:
    """A customer of *account_id* charged automatically."""
    fields: dict[str, Any] = {
        "id": id,
        "account_id": account_id,
        "name": f"Customer {id}",
        "email": f"{id}@example.no",
    }
    return Customer(**{**fields, **changes})


def make_payment_method(
    id: str = "pm-1",
    *,
    account_id: str = "acme",
    customer_id: str = "cust-1",
    **changes: Any,
) -> PaymentMethod:
    """A saved Visa card of *customer_id* (a gateway token, never a card number)."""
    fields: dict[str, Any] = {
        "id": id,
        "account_id": account_id,
        "customer_id": customer_id,
        "token": f"pm_test_{id}",
        "brand": "visa",
        "last4": "4242",
        "exp_month": 12,
        "exp_year": 2030,
    }
    return PaymentMethod(**{**fields, **changes})


def _line(price: str = "100.00") -> InvoiceLine:
    return InvoiceLine(description="Service", quantity=1, unit_price=price, vat_rate=25)


def _document_items() -> dict[str, Any]:
    """Document-level allowances and charges of every shape, digits to keep."""
    return {
        "allowances": (
            AllowanceCharge(
                is_charge=False,
                percentage="12.50",
                base_amount="1234.560",
                reason="Lojalitetsrabatt – 12,5 %",
                vat_category=VatCategory.STANDARD,
                vat_rate="25.0",
            ),
            AllowanceCharge(
                is_charge=False,
                amount="10.00",
                reason="Goodwill",
                vat_category=VatCategory.ZERO,
            ),
        ),
        "charges": (
            AllowanceCharge(
                is_charge=True,
                amount="35",
                percentage="100",
                base_amount="35",
                reason="Fakturagebyr",
                vat_category=VatCategory.EXEMPT,
                vat_rate="0",
                exemption_reason="Unntatt etter § 3-6",
            ),
        ),
    }


def make_template(
    id: str = "tpl-1",
    *,
    account_id: str = "acme",
    customer_id: str = "cust-1",
    **changes: Any,
) -> RecurringTemplate:
    """A monthly template (from 2025-02-01) of one 100.00 NOK line at 25 % VAT."""
    fields: dict[str, Any] = {
        "id": id,
        "account_id": account_id,
        "customer_id": customer_id,
        "currency": "NOK",
        "lines": (_line(),),
        "schedule": Schedule(start=date(2025, 2, 1), period="month"),
        "next_due_at": datetime(2025, 2, 1, 6, 15, tzinfo=timezone.utc),
        "created_at": _T0,
    }
    return RecurringTemplate(**{**fields, **changes})


def make_invoice(
    id: str = "inv-1",
    *,
    account_id: str = "acme",
    customer_id: str = "cust-1",
    number: int = 1,
    **changes: Any,
) -> Invoice:
    """An open invoice of one 100.00 NOK line at 25 % VAT (total 125.00 NOK)."""
    fields: dict[str, Any] = {
        "id": id,
        "account_id": account_id,
        "customer_id": customer_id,
        "series": "INV",
        "number": number,
        "status": InvoiceStatus.OPEN,
        "currency": "NOK",
        "issue_date": date(2025, 1, 1),
        "due_date": date(2025, 1, 15),
        "lines": (_line(),),
        "net_total": Money("100.00", "NOK"),
        "vat_total": Money("25.00", "NOK"),
        "total": Money("125.00", "NOK"),
        "paid": Money("0.00", "NOK"),
        "credited": Money("0.00", "NOK"),
        "created_at": _T0,
    }
    return Invoice(**{**fields, **changes})


def make_payment(
    id: str = "pay-1",
    *,
    account_id: str = "acme",
    customer_id: str = "cust-1",
    **changes: Any,
) -> Payment:
    """A pending off-session payment of 125.00 NOK for ``inv-1`` with ``pm-1``."""
    fields: dict[str, Any] = {
        "id": id,
        "account_id": account_id,
        "customer_id": customer_id,
        "idempotency_key": f"recurbill-{id}",
        "amount": Money("125.00", "NOK"),
        "payment_method_id": "pm-1",
        "invoice_ids": ("inv-1",),
        "status": PaymentStatus.PENDING,
        "created_at": _T0,
        "updated_at": _T0,
    }
    return Payment(**{**fields, **changes})


def make_notification(
    id: str = "note-1", *, account_id: str = "acme", **changes: Any
) -> Notification:
    """A pending invoice e-mail to a customer."""
    fields: dict[str, Any] = {
        "id": id,
        "account_id": account_id,
        "kind": "invoice",
        "recipient": "cust-1@example.no",
        "subject": "Invoice INV-000001",
        "text": "Please find your invoice.",
        "html": "<p>Please find your invoice.</p>",
        "created_at": _T0,
    }
    return Notification(**{**fields, **changes})


def _occurrence(
    index: int,
    *,
    template_id: str = "tpl-1",
    account_id: str = "acme",
    invoice_id: str | None = None,
) -> OccurrenceRecord:
    return OccurrenceRecord(
        account_id=account_id,
        template_id=template_id,
        index=index,
        on=date(2025, 2, 1) + timedelta(days=31 * index),
        outcome=OccurrenceOutcome.ISSUED if invoice_id else OccurrenceOutcome.SKIPPED,
        invoice_id=invoice_id,
    )


def _settlement(
    id: str = "set-1",
    *,
    account_id: str = "acme",
    customer_id: str = "cust-1",
    **changes: Any,
) -> Settlement:
    fields: dict[str, Any] = {
        "id": id,
        "account_id": account_id,
        "customer_id": customer_id,
        "selection_key": "sel-inv-1",
        "items": (
            SettlementItem(
                invoice_id="inv-1",
                invoice_number="INV-000001",
                amount=Money("125.00", "NOK"),
            ),
        ),
        "total": Money("125.00", "NOK"),
        "payment_method_id": "pm-1",
        "status": SettlementStatus.PENDING,
        "created_at": _T0,
    }
    return Settlement(**{**fields, **changes})


def _receipt(id: str = "rcpt-1", **changes: Any) -> Receipt:
    fields: dict[str, Any] = {
        "id": id,
        "account_id": "acme",
        "customer_id": "cust-1",
        "number": "R-1",
        "payment_id": "pay-1",
        "items": (
            ReceiptItem(
                invoice_id="inv-1",
                invoice_number="INV-000001",
                amount=Money("125.00", "NOK"),
            ),
        ),
        "amount": Money("125.00", "NOK"),
        "credit": Money("0.00", "NOK"),
        "card_brand": "visa",
        "card_last4": "4242",
        "issued_at": _T0,
    }
    fields["paid_at"] = changes.get("issued_at", _T0)
    return Receipt(**{**fields, **changes})


def _credit_note(id: str = "cn-1", **changes: Any) -> CreditNoteRecord:
    fields: dict[str, Any] = {
        "id": id,
        "account_id": "acme",
        "customer_id": "cust-1",
        "invoice_id": "inv-1",
        "number": 1,
        "series": "CN",
        "amount": Money("62.50", "NOK"),
        "reason": "Half the sessions were cancelled",
        "issue_date": date(2025, 1, 10),
        "lines": (_line("50.00"),),
    }
    return CreditNoteRecord(**{**fields, **changes})


def _refund(id: str = "ref-1", **changes: Any) -> Refund:
    fields: dict[str, Any] = {
        "id": id,
        "account_id": "acme",
        "payment_id": "pay-1",
        "amount": Money("25.00", "NOK"),
        "idempotency_key": f"refund-{id}",
        "status": "pending",
        "created_at": _T0,
    }
    return Refund(**{**fields, **changes})


def _credit_entry(id: str = "cred-1", **changes: Any) -> CreditEntry:
    fields: dict[str, Any] = {
        "id": id,
        "account_id": "acme",
        "customer_id": "cust-1",
        "amount": Money("10.00", "NOK"),
        "reason": "overpaid",
        "source_id": "pay-1",
        "created_at": _T0,
    }
    return CreditEntry(**{**fields, **changes})


# -- helpers -----------------------------------------------------------------


def _write(tx: Transaction, record: object) -> None:
    """Add *record* with the add_* method of its kind."""
    if isinstance(record, Account):
        tx.add_account(record)
    elif isinstance(record, Customer):
        tx.add_customer(record)
    elif isinstance(record, PaymentMethod):
        tx.add_payment_method(record)
    elif isinstance(record, RecurringTemplate):
        tx.add_template(record)
    elif isinstance(record, OccurrenceRecord):
        tx.add_occurrences([record])
    elif isinstance(record, Invoice):
        tx.add_invoices([record])
    elif isinstance(record, Payment):
        tx.add_payment(record)
    elif isinstance(record, Settlement):
        tx.add_settlement(record)
    elif isinstance(record, Receipt):
        tx.add_receipt(record)
    elif isinstance(record, CreditNoteRecord):
        tx.add_credit_note(record)
    elif isinstance(record, Refund):
        tx.add_refund(record)
    elif isinstance(record, CreditEntry):
        tx.add_credit_entry(record)
    elif isinstance(record, Notification):
        tx.add_notifications([record])
    else:  # pragma: no cover - a mistake in a test
        raise TypeError(f"no add_* method for {type(record).__name__}")


def _add(storage: Storage, *records: object) -> None:
    """Add *records* in one committed transaction."""
    with storage.transaction() as tx:
        for record in records:
            _write(tx, record)
        tx.commit()


def _read(storage: Storage, read: Callable[[Transaction], _T]) -> _T:
    """What *read* returns inside a fresh transaction."""
    with storage.transaction() as tx:
        return read(tx)


_WRITES = ("add_", "update_", "remove_", "allocate_", "lock_", "record_")


def _write_calls() -> list[str]:
    """The port's write calls, by name: every method a read-only transaction
    refuses (a new one is covered as soon as the protocol has it)."""
    return sorted(
        name
        for name, _ in inspect.getmembers(Transaction, inspect.isfunction)
        if name.startswith(_WRITES)
    )


def _locking_calls() -> list[str]:
    """The port's reads that can lock (they take ``for_update``)."""
    return sorted(
        name
        for name, method in inspect.getmembers(Transaction, inspect.isfunction)
        if "for_update" in inspect.signature(method).parameters
    )


_EXISTING = {  # arguments naming records of _world
    "account_id": "acme",
    "customer_id": "cust-1",
    "customer_ids": ["cust-1"],
    "template_id": "tpl-1",
    "invoice_id": "inv-1",
    "invoice_ids": ["inv-1"],
    "payment_id": "pay-1",
    "payment_ids": ["pay-1"],
    "notification_id": "n-1",
    "as_of": datetime(2030, 1, 1, tzinfo=timezone.utc),
}


def _locking_read(tx: Transaction, name: str) -> object:
    """Call the read *name* on records of _world, with ``for_update=True``."""
    method = getattr(tx, name)
    parameters = inspect.signature(method).parameters
    arguments = {
        key: _EXISTING[key]
        for key, parameter in parameters.items()
        if parameter.default is inspect.Parameter.empty
    }
    return method(**arguments, for_update=True)


def _world(storage: Storage) -> None:
    """Two accounts, acme and beta, each with a customer, card, template,
    invoice and payment; acme has a second customer."""
    _add(
        storage,
        make_account("acme"),
        make_account("beta", currency="SEK", locale="sv_SE"),
        make_customer("cust-1"),
        make_customer("cust-2"),
        make_customer("beta-1", account_id="beta"),
        make_payment_method("pm-1"),
        make_payment_method("pm-beta", account_id="beta", customer_id="beta-1"),
        make_template("tpl-1"),
        make_template("tpl-beta", account_id="beta", customer_id="beta-1"),
        make_invoice("inv-1"),
        make_invoice("inv-beta", account_id="beta", customer_id="beta-1"),
        make_payment("pay-1"),
        make_payment(
            "pay-beta",
            account_id="beta",
            customer_id="beta-1",
            payment_method_id="pm-beta",
            invoice_ids=("inv-beta",),
        ),
    )


def _assert_not_found(call: Callable[[], object], *, key: str, account: str) -> None:
    """*call* raises NotFoundError naming *key* in *account*."""
    with pytest.raises(NotFoundError) as info:
        call()
    assert info.value.fields["key"] == key
    assert info.value.fields["account"] == account


def _assert_id_in_use(error: ConflictError, named: str) -> None:
    """*error* says the id *named* is in use in the database, not where."""
    message = str(error)
    assert message.startswith(f"{named} is already in use in this database")
    assert "unique across all accounts" in message
    assert "to get a generated one" in message
    assert "constraint" not in message.lower()  # not the database's own words


_series_numbers = itertools.count(1)

_UNKNOWN_ID_CALLS: dict[str, Callable[[Transaction], object]] = {
    "get_customer": lambda tx: tx.get_customer("acme", "nope"),
    "get_customer(for_update)": lambda tx: tx.get_customer(
        "acme", "nope", for_update=True
    ),
    "update_customer": lambda tx: tx.update_customer(make_customer("nope")),
    "get_payment_method": lambda tx: tx.get_payment_method("acme", "nope"),
    "remove_payment_method": lambda tx: tx.remove_payment_method("acme", "nope"),
    "get_template": lambda tx: tx.get_template("acme", "nope"),
    "update_template": lambda tx: tx.update_template(make_template("nope")),
    "get_invoice": lambda tx: tx.get_invoice("acme", "nope", for_update=True),
    "update_invoice": lambda tx: tx.update_invoice(make_invoice("nope", number=50)),
    "get_payment": lambda tx: tx.get_payment("acme", "nope"),
    "update_payment": lambda tx: tx.update_payment(make_payment("nope")),
    "get_settlement": lambda tx: tx.get_settlement("acme", "nope"),
    "update_settlement": lambda tx: tx.update_settlement(_settlement("nope")),
    "update_refund": lambda tx: tx.update_refund(_refund("nope")),
    "update_notification": lambda tx: tx.update_notification(make_notification("nope")),
}
"""Calls naming id ``nope``, which exists in no account."""


def _ids(records: Sequence[Any]) -> list[str]:
    return [record.id for record in records]


def _cursor(template: RecurringTemplate) -> tuple[datetime, str]:
    """Where the chunk after *template* starts (see ``due_templates``)."""
    assert template.next_due_at is not None
    return template.next_due_at, template.id


_ManyRead = Callable[[Transaction, str, Any], list[Any]]
_OneRead = Callable[[Transaction, str, str], Any]

_MANY_READS: dict[str, tuple[_ManyRead, _OneRead, str, str, str]] = {
    "get_customers": (
        lambda tx, account, ids: tx.get_customers(account, ids),
        lambda tx, account, key: tx.get_customer(account, key),
        "cust-1",
        "cust-2",
        "beta-1",
    ),
    "get_payment_methods": (
        lambda tx, account, ids: tx.get_payment_methods(account, ids),
        lambda tx, account, key: tx.get_payment_method(account, key),
        "pm-1",
        "pm-2",
        "pm-beta",
    ),
    "get_invoices": (
        lambda tx, account, ids: tx.get_invoices(account, ids),
        lambda tx, account, key: tx.get_invoice(account, key),
        "inv-1",
        "inv-2",
        "inv-beta",
    ),
    "get_invoices(for_update)": (
        lambda tx, account, ids: tx.get_invoices(account, ids, for_update=True),
        lambda tx, account, key: tx.get_invoice(account, key),
        "inv-1",
        "inv-2",
        "inv-beta",
    ),
    "get_payments": (
        lambda tx, account, ids: tx.get_payments(account, ids),
        lambda tx, account, key: tx.get_payment(account, key),
        "pay-1",
        "pay-2",
        "pay-beta",
    ),
}
"""Plural reads: (read many, read one, two ids of acme, an id of beta)."""

_NOT_IDS: dict[str, object] = {
    "a str": "cust-1",
    "bytes": b"cust-1",
    "None": None,
    "a set": {"cust-1"},
    "a dict": {"cust-1": "cust-1"},
    "an empty id": ["cust-1", ""],
    "a NUL": ["cust-1", "cust\x00-1"],
    "a number": ["cust-1", 7],
}
"""Id lists that are not a sequence of non-empty strings without NUL."""

_MANY_WRITES: dict[str, tuple[Callable[[Transaction, Any], None], object]] = {
    "update_templates": (lambda tx, r: tx.update_templates(r), make_template()),
    "update_invoices": (lambda tx, r: tx.update_invoices(r), make_invoice()),
    "add_payments": (lambda tx, r: tx.add_payments(r), make_payment("pay-2")),
    "update_payments": (lambda tx, r: tx.update_payments(r), make_payment()),
    "add_receipts": (lambda tx, r: tx.add_receipts(r), _receipt("rcpt-2")),
}
"""Plural writes and a record each would accept."""


def _many_world(storage: Storage) -> None:
    """:func:`_world` with a second card, invoice and payment in acme."""
    _world(storage)
    _add(
        storage,
        make_payment_method("pm-2", customer_id="cust-2"),
        make_invoice("inv-2", customer_id="cust-2", number=2),
        make_payment("pay-2", customer_id="cust-2", invoice_ids=("inv-2",)),
    )


def _snapshot(storage: Storage) -> dict[str, list[Any]]:
    """Every record the plural writes can touch, committed."""

    def read(tx: Transaction) -> dict[str, list[Any]]:
        accounts = ("acme", "beta")
        customers = (("acme", "cust-1"), ("acme", "cust-2"), ("beta", "beta-1"))
        return {
            "templates": [t for a in accounts for t in tx.list_templates(a)],
            "invoices": [i for a in accounts for i in tx.list_invoices(a)],
            "payments": tx.list_payments(),
            "receipts": [r for a, c in customers for r in tx.list_receipts(a, c)],
        }

    return _read(storage, read)


_WAIT = 10.0
"""Seconds the isolation tests wait at most for another thread."""
_BLOCKED = 0.2
"""Seconds a call that should wait for another transaction is given to finish
anyway (a bounded wait: it proves the call blocks, nothing else)."""


class _Thread(threading.Thread):
    """Runs *call* on its own thread; :meth:`outcome` is what it returned."""

    def __init__(self, call: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self._call = call
        self._result: object = None
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._result = self._call()
        except BaseException as error:  # raised again by outcome()
            self._error = error

    def finished_within(self, seconds: float) -> bool:
        self.join(seconds)
        return not self.is_alive()

    def outcome(self) -> object:
        assert self.finished_within(_WAIT), "a transaction never finished"
        if self._error is not None:
            raise self._error
        return self._result


def _customer_name(storage: Storage, *, read_only: bool) -> str:
    with storage.transaction(read_only=read_only) as tx:
        return tx.get_customer("acme", "cust-1").name


class StorageContract:
    """Tests every :class:`~recurbill.storage.protocol.Storage` must pass.

    Subclass it in a test module and define a ``storage`` fixture returning a
    fresh, empty backend. Accounts ``acme`` and ``beta`` are used throughout;
    ids of ``beta`` must never be found through ``acme``. The isolation tests
    open transactions on two threads at once, so the backend must serve one
    transaction per thread.
    """

    # -- unit of work ---------------------------------------------------------

    def test_a_read_only_transaction_reads_what_was_committed(
        self, storage: Storage
    ) -> None:
        _world(storage)
        with storage.transaction(read_only=True) as tx:
            assert tx.list_account_ids() == ["acme", "beta"]
            assert tx.get_customer("acme", "cust-1") == make_customer("cust-1")
            assert _ids(tx.list_invoices("acme")) == ["inv-1"]
            tx.commit()  # nothing to make durable, and allowed

    @pytest.mark.parametrize("name", _write_calls())
    def test_a_read_only_transaction_refuses_every_write_call(
        self, storage: Storage, name: str
    ) -> None:
        _world(storage)
        before = _read(storage, lambda tx: tx.list_customers("acme"))
        with storage.transaction(read_only=True) as tx:
            method = getattr(tx, name)
            required = [
                parameter
                for parameter in inspect.signature(method).parameters.values()
                if parameter.default is inspect.Parameter.empty
            ]
            with pytest.raises(StateError, match=rf"{name}\(\) in a read-only"):
                method(*(None for _ in required))  # refused before any check
            with pytest.raises(StateError, match="add_customer"):
                tx.add_customer(make_customer("cust-3"))  # a valid write too
            assert tx.get_customer("acme", "cust-1") == make_customer("cust-1")
        assert _read(storage, lambda tx: tx.list_customers("acme")) == before

    @pytest.mark.parametrize("name", _locking_calls())
    def test_a_read_only_transaction_refuses_locking_reads(
        self, storage: Storage, name: str
    ) -> None:
        _world(storage)
        _add(storage, make_notification("n-1"))
        with storage.transaction() as tx:
            assert _locking_read(tx, name)  # the same read locks in a plain one
        with (
            storage.transaction(read_only=True) as tx,
            pytest.raises(StateError, match="for_update"),
        ):
            _locking_read(tx, name)

    @pytest.mark.parametrize("flag", [None, 1, "yes"])
    def test_read_only_must_be_a_bool(self, storage: Storage, flag: object) -> None:
        with (
            pytest.raises(InvalidInputError, match="read_only"),
            storage.transaction(read_only=flag),  # type: ignore[arg-type]
        ):
            pass  # pragma: no cover - refused on entry

    def test_committed_writes_are_visible_to_later_transactions(
        self, storage: Storage
    ) -> None:
        _add(storage, make_account("acme"))
        assert _read(storage, lambda tx: tx.get_account("acme")) == make_account()

    def test_leaving_without_commit_writes_nothing(self, storage: Storage) -> None:
        with storage.transaction() as tx:
            tx.add_account(make_account("acme"))
        assert _read(storage, lambda tx: tx.list_account_ids()) == []

    def test_an_exception_rolls_back_and_propagates(self, storage: Storage) -> None:
        def crash() -> None:
            with storage.transaction() as tx:
                tx.add_account(make_account("acme"))
                tx.commit()
                tx.add_account(make_account("beta"))
                raise ZeroDivisionError

        with pytest.raises(ZeroDivisionError):
            crash()
        assert _read(storage, lambda tx: tx.list_account_ids()) == ["acme"]

    def test_a_transaction_reads_its_own_writes(self, storage: Storage) -> None:
        _world(storage)
        with storage.transaction() as tx:
            tx.add_customer(make_customer("cust-3"))
            tx.update_invoice(make_invoice("inv-1", memo="changed"))
            assert tx.get_customer("acme", "cust-3") == make_customer("cust-3")
            assert tx.get_invoice("acme", "inv-1").memo == "changed"
            assert _ids(tx.list_customers("acme")) == ["cust-1", "cust-2", "cust-3"]

    def test_writes_after_commit_need_another_commit(self, storage: Storage) -> None:
        with storage.transaction() as tx:
            tx.add_account(make_account("acme"))
            tx.commit()
            tx.add_account(make_account("beta"))
        assert _read(storage, lambda tx: tx.list_account_ids()) == ["acme"]

    def test_rolled_back_update_keeps_the_old_record(self, storage: Storage) -> None:
        _world(storage)
        with storage.transaction() as tx:
            tx.update_customer(make_customer("cust-1", name="Renamed"))
            tx.remove_payment_method("acme", "pm-1")
        assert _read(storage, lambda tx: tx.get_customer("acme", "cust-1")).name == (
            "Customer cust-1"
        )
        assert _read(storage, lambda tx: tx.get_payment_method("acme", "pm-1"))

    def test_a_conflict_keeps_the_transaction_usable(self, storage: Storage) -> None:
        _world(storage)
        with storage.transaction() as tx:
            tx.add_customer(make_customer("cust-3"))
            with pytest.raises(ConflictError):
                tx.add_customer(make_customer("cust-1"))
            tx.add_customer(make_customer("cust-4"))
            tx.commit()
        customers = _read(storage, lambda tx: tx.list_customers("acme"))
        assert _ids(customers) == ["cust-1", "cust-2", "cust-3", "cust-4"]

    def test_a_failed_batch_writes_none_of_it(self, storage: Storage) -> None:
        _world(storage)
        with storage.transaction() as tx:
            with pytest.raises(ConflictError):
                tx.add_invoices(
                    [make_invoice("inv-2", number=2), make_invoice("inv-3", number=1)]
                )
            _assert_not_found(
                lambda: tx.get_invoice("acme", "inv-2"), key="inv-2", account="acme"
            )
            tx.commit()
        invoices = _read(storage, lambda tx: tx.list_invoices("acme"))
        assert _ids(invoices) == ["inv-1"]

    def test_lists_are_fresh_copies(self, storage: Storage) -> None:
        _world(storage)
        with storage.transaction() as tx:
            tx.list_customers("acme").clear()
            tx.list_invoices("acme").append(make_invoice("inv-x", number=9))
            assert _ids(tx.list_customers("acme")) == ["cust-1", "cust-2"]
            assert _ids(tx.list_invoices("acme")) == ["inv-1"]

    # -- isolation between transactions ----------------------------------------

    @pytest.mark.parametrize("read_only", [True, False])
    @pytest.mark.parametrize("commit", [True, False])
    def test_uncommitted_writes_are_invisible_to_another_transaction(
        self, storage: Storage, commit: bool, read_only: bool
    ) -> None:
        """Another transaction reads the committed record while a writer's
        transaction is open, or waits for it to end; after a rollback (leaving
        without commit) nobody ever sees the change."""
        _world(storage)
        written = threading.Barrier(2, timeout=_WAIT)
        finish = threading.Event()

        def write() -> None:
            with storage.transaction() as tx:
                tx.update_customer(make_customer("cust-1", name="Uncommitted"))
                written.wait()
                assert finish.wait(_WAIT)
                if commit:
                    tx.commit()

        writer = _Thread(write)
        try:
            written.wait()
            reader = _Thread(lambda: _customer_name(storage, read_only=read_only))
            read_while_open = reader.finished_within(_BLOCKED)
        finally:
            finish.set()
        writer.outcome()
        seen = reader.outcome()
        if read_while_open or not commit:
            assert seen == "Customer cust-1", f"another transaction read {seen!r}"
        else:  # it waited for the writer's commit
            assert seen in {"Customer cust-1", "Uncommitted"}
        after = _customer_name(storage, read_only=True)
        assert after == ("Uncommitted" if commit else "Customer cust-1")

    @pytest.mark.parametrize("kind", ["customer", "invoice"])
    def test_a_locking_read_waits_for_the_writer_holding_the_lock(
        self, storage: Storage, kind: str
    ) -> None:
        """Two writers read the same record ``for_update``: the second waits
        until the first commits, then reads its change (no lost update)."""
        _world(storage)
        locked = threading.Barrier(2, timeout=_WAIT)
        release = threading.Event()

        def read(tx: Transaction, lock: bool = True) -> str:
            if kind == "customer":
                return tx.get_customer("acme", "cust-1", for_update=lock).name
            return tx.get_invoice("acme", "inv-1", for_update=lock).memo

        def change(tx: Transaction, text: str) -> None:
            if kind == "customer":
                tx.update_customer(make_customer("cust-1", name=text))
            else:
                tx.update_invoice(make_invoice("inv-1", memo=text))

        def first() -> None:
            with storage.transaction() as tx:
                read(tx)
                locked.wait()
                assert release.wait(_WAIT)
                change(tx, "first")
                tx.commit()

        def second() -> str:
            with storage.transaction() as tx:
                seen = read(tx)
                change(tx, f"{seen}, second")
                tx.commit()
                return seen

        holder = _Thread(first)
        try:
            locked.wait()
            waiter = _Thread(second)
            waited = not waiter.finished_within(_BLOCKED)
        finally:
            release.set()
        holder.outcome()
        seen = waiter.outcome()
        assert seen == "first", f"the second writer read {seen!r}, not the commit"
        assert waited, "the second locking read did not wait for the first"
        assert _read(storage, lambda tx: read(tx, lock=False)) == "first, second"

    # -- accounts -------------------------------------------------------------

    def test_account_round_trip(self, storage: Storage) -> None:
        account = make_account(
            "nordlys",
            name="Nordlys Terapi",
            currency="ISK",
            locale="is_IS",
            timezone="Atlantic/Reykjavik",
            run_time=time(7, 30),
            payment_terms_days=30,
            invoice_series="F2025",
            summary_email="eigandi@nordlys.is",
            rounding=ROUND_HALF_EVEN,
        )
        _add(storage, account)
        assert _read(storage, lambda tx: tx.get_account("nordlys")) == account

    @pytest.mark.parametrize(
        ("currency", "method", "length"),
        [
            ("NOK", "kid_mod10", None),
            ("NOK", "kid_mod11", 25),
            ("SEK", "ocr_length_digit", 3),
            ("SEK", "ocr", 12),
            ("EUR", "invoice_number", None),
        ],
    )
    def test_account_reference_scheme_round_trip(
        self, storage: Storage, currency: str, method: str, length: int | None
    ) -> None:
        scheme = ReferenceScheme(method=method, length=length)
        _add(storage, make_account("acme", currency=currency, reference_scheme=scheme))
        stored = _read(storage, lambda tx: tx.get_account("acme"))
        assert stored.reference_scheme == scheme
        assert stored.reference_scheme.method is ReferenceMethod(method)

    @pytest.mark.parametrize(
        ("currency", "payee", "vat_number"),
        [
            ("NOK", PayeeAccount(kind="no_account", number="1234.56.78903"), None),
            ("SEK", PayeeAccount(kind="bankgiro", number="5050-1055"), "SE5566778899"),
            ("SEK", PayeeAccount(kind="plusgiro", number="28 65 43-4"), None),
            (
                "ISK",
                PayeeAccount(
                    kind="iban",
                    number="IS14 0159 2600 7654 5510 7303 39",
                    bic="NBIIISRE",
                ),
                "IS 12345",
            ),
            ("EUR", PayeeAccount(kind="iban", number="NO9386011117947"), None),
            ("NOK", None, "NO 999 999 999 MVA"),
        ],
    )
    def test_account_payee_account_and_vat_number_round_trip(
        self,
        storage: Storage,
        currency: str,
        payee: PayeeAccount | None,
        vat_number: str | None,
    ) -> None:
        account = make_account(
            "acme", currency=currency, payee_account=payee, vat_number=vat_number
        )
        _add(storage, account)
        stored = _read(storage, lambda tx: tx.get_account("acme"))
        assert stored == account
        assert (stored.payee_account, stored.vat_number) == (payee, vat_number)

    def test_account_default_reference_scheme_round_trips(
        self, storage: Storage
    ) -> None:
        accounts = [make_account(code, currency=code) for code in ("NOK", "SEK", "ISK")]
        _add(storage, *accounts)
        stored = _read(storage, lambda tx: [tx.get_account(a.id) for a in accounts])
        assert [(a.payee_account, a.vat_number) for a in stored] == [(None, None)] * 3
        assert [a.reference_scheme.method.value for a in stored] == [
            "kid_mod10",
            "ocr_length_digit",
            "invoice_number",
        ]
        assert stored == accounts

    def test_account_update(self, storage: Storage) -> None:
        _add(storage, make_account("acme"))
        changed = make_account(
            "acme",
            payment_terms_days=0,
            locale="nb_NO",
            reference_scheme=ReferenceScheme(method="kid_mod11", length=10),
            payee_account=PayeeAccount(kind="iban", number="NO93 8601 1117 947"),
            vat_number="NO 999 999 999 MVA",
        )
        with storage.transaction() as tx:
            tx.update_account(changed)
            tx.commit()
        assert _read(storage, lambda tx: tx.get_account("acme")) == changed

    def test_account_update_after_a_locking_read(self, storage: Storage) -> None:
        """How ``Billing.change_account`` reads the account it changes."""
        _add(storage, make_account("acme"))
        changed = make_account("acme", name="Acme Renamed", payment_terms_days=30)
        with storage.transaction() as tx:
            assert tx.get_account("acme", for_update=True) == make_account("acme")
            tx.update_account(changed)
            assert tx.get_account("acme", for_update=True) == changed
            tx.commit()
        assert _read(storage, lambda tx: tx.get_account("acme")) == changed

    def test_unknown_account_is_not_found(self, storage: Storage) -> None:
        _add(storage, make_account("acme"))
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: tx.get_account("nope"), key="nope", account="nope"
            )
            _assert_not_found(
                lambda: tx.get_account("nope", for_update=True),
                key="nope",
                account="nope",
            )
            _assert_not_found(
                lambda: tx.update_account(make_account("nope")),
                key="nope",
                account="nope",
            )

    def test_duplicate_account_id_conflicts(self, storage: Storage) -> None:
        _add(storage, make_account("acme"))
        with storage.transaction() as tx, pytest.raises(ConflictError) as info:
            tx.add_account(make_account("acme", name="Another"))
        _assert_id_in_use(info.value, "account id 'acme'")

    def test_account_ids_are_listed_sorted(self, storage: Storage) -> None:
        _add(storage, make_account("m"), make_account("a"), make_account("z"))
        assert _read(storage, lambda tx: tx.list_account_ids()) == ["a", "m", "z"]

    # -- customers ------------------------------------------------------------

    def test_customer_round_trip(self, storage: Storage) -> None:
        _add(storage, make_account("acme"))
        customer = make_customer(
            "kari",
            name="Kari Nordmann",
            email="kari@example.no",
            locale="nb_NO",
            collection_method=CollectionMethod.SEND_INVOICE,
            default_payment_method_id="pm-9",
            gateway_customer_id="cus_123",
            added_with="9f" * 32,
        )
        _add(storage, customer)
        assert _read(storage, lambda tx: tx.get_customer("acme", "kari")) == customer

    def test_customer_update(self, storage: Storage) -> None:
        _world(storage)
        changed = make_customer("cust-1", default_payment_method_id="pm-1")
        with storage.transaction() as tx:
            tx.update_customer(changed)
            tx.commit()
        assert _read(storage, lambda tx: tx.get_customer("acme", "cust-1")) == changed

    def test_customer_update_after_a_locking_read(self, storage: Storage) -> None:
        _world(storage)
        changed = make_customer("cust-1", email="kari.hansen@example.no")
        with storage.transaction() as tx:
            assert tx.get_customer("acme", "cust-1", for_update=True) == (
                make_customer("cust-1")
            )
            tx.update_customer(changed)
            tx.commit()
        assert _read(storage, lambda tx: tx.get_customer("acme", "cust-1")) == changed

    def test_customers_are_listed_by_id_within_their_account(
        self, storage: Storage
    ) -> None:
        _add(storage, make_account("acme"), make_account("beta"))
        _add(
            storage,
            make_customer("c"),
            make_customer("a"),
            make_customer("b", account_id="beta"),
        )
        assert _ids(_read(storage, lambda tx: tx.list_customers("acme"))) == ["a", "c"]
        assert _ids(_read(storage, lambda tx: tx.list_customers("beta"))) == ["b"]
        assert _read(storage, lambda tx: tx.list_customers("nope")) == []

    def test_unknown_customer_is_not_found(self, storage: Storage) -> None:
        _world(storage)
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: tx.get_customer("acme", "nope"), key="nope", account="acme"
            )
            _assert_not_found(
                lambda: tx.update_customer(make_customer("nope")),
                key="nope",
                account="acme",
            )

    @pytest.mark.parametrize("call", sorted(_UNKNOWN_ID_CALLS))
    def test_unknown_id_is_not_found(self, storage: Storage, call: str) -> None:
        _world(storage)
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: _UNKNOWN_ID_CALLS[call](tx), key="nope", account="acme"
            )

    def test_customer_of_another_account_is_not_found(self, storage: Storage) -> None:
        _world(storage)
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: tx.get_customer("acme", "beta-1"), key="beta-1", account="acme"
            )
            _assert_not_found(
                lambda: tx.get_customer("acme", "beta-1", for_update=True),
                key="beta-1",
                account="acme",
            )
            _assert_not_found(
                lambda: tx.update_customer(make_customer("beta-1", name="Stolen")),
                key="beta-1",
                account="acme",
            )
            tx.commit()
        kept = _read(storage, lambda tx: tx.get_customer("beta", "beta-1"))
        assert kept == make_customer("beta-1", account_id="beta")

    def test_customer_of_an_unknown_account_is_refused(self, storage: Storage) -> None:
        _add(storage, make_account("acme"))
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: tx.add_customer(make_customer("c", account_id="nope")),
                key="nope",
                account="nope",
            )

    def test_duplicate_customer_id_conflicts(self, storage: Storage) -> None:
        _world(storage)
        with storage.transaction() as tx, pytest.raises(ConflictError):
            tx.add_customer(make_customer("cust-1", name="Twin"))

    def test_duplicate_id_in_another_account_conflicts(self, storage: Storage) -> None:
        _world(storage)
        with storage.transaction() as tx:
            with pytest.raises(ConflictError) as info:
                tx.add_customer(make_customer("cust-1", account_id="beta"))
            _assert_id_in_use(info.value, "customer id 'cust-1'")
            assert "acme" not in str(info.value)  # nor which account holds it
            assert tx.list_customers("beta") == [
                make_customer("beta-1", account_id="beta")
            ]

    # -- payment methods ----------------------------------------------------

    def test_payment_method_round_trip(self, storage: Storage) -> None:
        _world(storage)
        method = make_payment_method(
            "pm-2",
            customer_id="cust-2",
            token="pm_1PqR",
            brand="mastercard",
            last4="0005",
            exp_month=1,
            exp_year=2031,
        )
        _add(storage, method)
        got = _read(storage, lambda tx: tx.get_payment_method("acme", "pm-2"))
        assert got == method

    def test_payment_methods_are_listed_by_id_per_customer(
        self, storage: Storage
    ) -> None:
        _world(storage)
        _add(
            storage,
            make_payment_method("pm-0"),
            make_payment_method("pm-c2", customer_id="cust-2"),
        )
        listed = _read(storage, lambda tx: tx.list_payment_methods("acme", "cust-1"))
        assert _ids(listed) == ["pm-0", "pm-1"]
        assert (
            _read(storage, lambda tx: tx.list_payment_methods("acme", "beta-1")) == []
        )

    def test_removed_payment_method_is_gone(self, storage: Storage) -> None:
        _world(storage)
        with storage.transaction() as tx:
            tx.remove_payment_method("acme", "pm-1")
            tx.commit()
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: tx.get_payment_method("acme", "pm-1"),
                key="pm-1",
                account="acme",
            )
            assert tx.list_payment_methods("acme", "cust-1") == []
            _assert_not_found(
                lambda: tx.remove_payment_method("acme", "pm-1"),
                key="pm-1",
                account="acme",
            )

    def test_payment_method_of_another_account_is_not_found(
        self, storage: Storage
    ) -> None:
        _world(storage)
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: tx.get_payment_method("acme", "pm-beta"),
                key="pm-beta",
                account="acme",
            )
            _assert_not_found(
                lambda: tx.remove_payment_method("acme", "pm-beta"),
                key="pm-beta",
                account="acme",
            )
            tx.commit()
        assert _read(storage, lambda tx: tx.get_payment_method("beta", "pm-beta"))

    def test_payment_method_for_a_customer_of_another_account_is_refused(
        self, storage: Storage
    ) -> None:
        _world(storage)
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: tx.add_payment_method(
                    make_payment_method("pm-x", customer_id="beta-1")
                ),
                key="beta-1",
                account="acme",
            )

    def test_duplicate_payment_method_id_conflicts(self, storage: Storage) -> None:
        _world(storage)
        with storage.transaction() as tx, pytest.raises(ConflictError):
            tx.add_payment_method(make_payment_method("pm-1", last4="1111"))

    # -- templates -------------------------------------------------------------

    def test_template_round_trip(self, storage: Storage) -> None:
        _world(storage)
        template = make_template(
            "tpl-2",
            customer_id="cust-2",
            currency="KWD",
            lines=(
                InvoiceLine(
                    description="Consulting",
                    quantity=Decimal("-1.125"),
                    unit_price=Decimal("1234.567890123456789"),
                    base_quantity=Decimal("0.5"),
                    vat_rate=Decimal("25"),
                    allowances=(
                        AllowanceCharge(
                            is_charge=False, percentage=10, base_amount="1234.567"
                        ),
                    ),
                    line_id="L1",
                ),
                InvoiceLine(
                    description="Export",
                    quantity=3,
                    unit_price="0.001",
                    vat_category=VatCategory.EXEMPT,
                    exemption_reason="Exempt health care",
                ),
            ),
            schedule=Schedule(
                start=date(2025, 1, 31),
                period="quarter",
                every=2,
                end=date(2030, 12, 31),
                max_count=12,
                month_end=True,
                pauses=(
                    Pause(date(2025, 3, 1), date(2025, 9, 1)),
                    Pause(date(2026, 1, 1)),
                ),
            ),
            memo="Quarterly retainer",
            **_document_items(),
            status=TemplateStatus.FINISHED,
            next_index=7,
            next_due_at=datetime(2026, 7, 31, 6, 15, tzinfo=_PLUS_TWO),
            created_at=datetime(2024, 12, 24, 23, 59, 59, 999999, tzinfo=_OSLO),
            created_with="7e" * 32,
        )
        _add(storage, template)
        got = _read(storage, lambda tx: tx.get_template("acme", "tpl-2"))
        assert got == template
        assert got.next_due_at == datetime(2026, 7, 31, 4, 15, tzinfo=timezone.utc)
        assert [a.to_dict() for a in got.allowances + got.charges] == [
            a.to_dict() for a in template.allowances + template.charges
        ]  # digit for digit

    def test_template_without_next_due_at_round_trips(self, storage: Storage) -> None:
        _world(storage)
        template = make_template("tpl-2", next_due_at=None)
        _add(storage, template)
        assert _read(storage, lambda tx: tx.get_template("acme", "tpl-2")) == template

    def test_template_update(self, storage: Storage) -> None:
        _world(storage)
        schedule = Schedule(
            start=date(2025, 2, 1),
            period="month",
            pauses=(Pause(date(2025, 4, 1), date(2025, 6, 1)),),
        )
        changed = make_template(
            "tpl-1",
            schedule=schedule,
            next_index=3,
            next_due_at=datetime(2025, 6, 1, 6, 15, tzinfo=timezone.utc),
            **_document_items(),
        )
        with storage.transaction() as tx:
            tx.get_template("acme", "tpl-1", for_update=True)
            tx.update_template(changed)
            tx.commit()
        assert _read(storage, lambda tx: tx.get_template("acme", "tpl-1")) == changed
        without = attrs.evolve(changed, allowances=(), charges=())
        with storage.transaction() as tx:
            tx.update_template(without)
            tx.commit()
        assert _read(storage, lambda tx: tx.get_template("acme", "tpl-1")) == without

    def test_templates_are_listed_by_id_with_customer_filter(
        self, storage: Storage
    ) -> None:
        _world(storage)
        _add(
            storage,
            make_template("tpl-0", customer_id="cust-2"),
            make_template("tpl-2"),
        )
        all_of_acme = _read(storage, lambda tx: tx.list_templates("acme"))
        assert _ids(all_of_acme) == ["tpl-0", "tpl-1", "tpl-2"]
        of_cust_1 = _read(
            storage, lambda tx: tx.list_templates("acme", customer_id="cust-1")
        )
        assert _ids(of_cust_1) == ["tpl-1", "tpl-2"]
        of_beta_customer = _read(
            storage, lambda tx: tx.list_templates("acme", customer_id="beta-1")
        )
        assert of_beta_customer == []

    def test_templates_are_listed_a_page_at_a_time(self, storage: Storage) -> None:
        """``after`` and ``limit`` page through the templates by id, as
        Python sorts ids (by code point); another account's are never listed."""
        _world(storage)
        others = ["tpl-é", "tpl-Z", "tpl-a", "tpl-0", "tpl-z", "tpl-A"]
        _add(
            storage,
            *(
                make_template(i, customer_id=f"cust-{n % 2 + 1}")
                for n, i in enumerate(others)
            ),
        )
        every = sorted(["tpl-1", *others])
        with storage.transaction(read_only=True) as tx:
            assert _ids(tx.list_templates("acme")) == every
            first = tx.list_templates("acme", limit=3)
            second = tx.list_templates("acme", after=first[-1].id, limit=3)
            third = tx.list_templates("acme", after=second[-1].id, limit=3)
            assert [_ids(first), _ids(second), _ids(third)] == [
                every[:3],
                every[3:6],
                every[6:],
            ]
            assert _ids(tx.list_templates("acme", after="tpl-1z")) == every[2:]
            assert tx.list_templates("acme", after="tpl-é") == []
            assert _ids(tx.list_templates("acme", after="tpl", limit=99)) == every
            of_cust_2 = tx.list_templates("acme", customer_id="cust-2", after="tpl-0")
            assert _ids(of_cust_2) == ["tpl-A", "tpl-Z"]
            assert (
                tx.list_templates("acme", customer_id="cust-2", after="tpl-0", limit=1)
                == of_cust_2[:1]
            )
            assert _ids(tx.list_templates("beta", after="tpl-", limit=1)) == [
                "tpl-beta"
            ]

    def test_template_of_another_account_is_not_found(self, storage: Storage) -> None:
        _world(storage)
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: tx.get_template("acme", "tpl-beta", for_update=True),
                key="tpl-beta",
                account="acme",
            )
            _assert_not_found(
                lambda: tx.update_template(make_template("tpl-beta", memo="x")),
                key="tpl-beta",
                account="acme",
            )
            tx.commit()
        kept = _read(storage, lambda tx: tx.get_template("beta", "tpl-beta"))
        assert kept.memo == ""

    def test_template_for_a_customer_of_another_account_is_refused(
        self, storage: Storage
    ) -> None:
        _world(storage)
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: tx.add_template(make_template("tpl-x", customer_id="beta-1")),
                key="beta-1",
                account="acme",
            )

    def test_duplicate_template_id_conflicts(self, storage: Storage) -> None:
        _world(storage)
        with storage.transaction() as tx, pytest.raises(ConflictError):
            tx.add_template(make_template("tpl-1"))

    def test_template_id_of_another_account_conflicts(self, storage: Storage) -> None:
        _world(storage)
        with storage.transaction() as tx:
            with pytest.raises(ConflictError) as info:
                tx.add_template(
                    make_template("tpl-1", account_id="beta", customer_id="beta-1")
                )
            _assert_id_in_use(info.value, "template id 'tpl-1'")
            assert "acme" not in str(info.value)  # nor which account holds it
            assert [t.id for t in tx.list_templates("beta")] == ["tpl-beta"]

    # -- due templates ------------------------------------------------------

    def test_due_templates_streams_each_due_template_once(
        self, storage: Storage
    ) -> None:
        _world(storage)
        as_of = datetime(2025, 3, 1, 6, 15, tzinfo=timezone.utc)
        due = ["tpl-1", "tpl-beta"]  # from _world
        default_due = datetime(2025, 2, 1, 6, 15, tzinfo=timezone.utc)  # make_template
        due_at = dict.fromkeys(due, default_due)
        templates: list[RecurringTemplate] = []
        for n in range(1234):
            template_id = f"t{n:05d}"
            account, customer = ("beta", "beta-1") if n % 3 == 0 else ("acme", "cust-1")
            kind = n % 5
            if kind == 0:
                when: datetime | None = as_of - timedelta(days=n % 40)
            elif kind == 1:
                when = as_of  # due exactly now
            elif kind == 2:
                when = as_of + timedelta(microseconds=1)  # not yet due
            else:
                when = None if kind == 3 else as_of - timedelta(days=1)
            if when is not None and n % 2:
                when = when.astimezone(_OSLO)  # the same instant, another offset
            status = TemplateStatus.FINISHED if kind == 4 else TemplateStatus.ACTIVE
            if when is not None and kind in (0, 1):
                due.append(template_id)
                due_at[template_id] = when
            templates.append(
                make_template(
                    template_id,
                    account_id=account,
                    customer_id=customer,
                    next_due_at=when,
                    status=status,
                )
            )
        random.Random(1234).shuffle(templates)
        _add(storage, *templates)

        streamed: list[str] = []
        after: tuple[datetime, str] | None = None
        with storage.transaction() as tx:
            while chunk := tx.due_templates(as_of, after=after, limit=100):
                assert len(chunk) <= 100
                streamed.extend(_ids(chunk))
                after = _cursor(chunk[-1])
        assert streamed == sorted(due, key=lambda i: (due_at[i], i))

    def test_due_templates_compares_instants(self, storage: Storage) -> None:
        _world(storage)
        oslo_morning = datetime(2025, 3, 1, 7, 15, tzinfo=_OSLO)  # 06:15 UTC
        _add(storage, make_template("tpl-2", next_due_at=oslo_morning))
        at = datetime(2025, 3, 1, 6, 15, tzinfo=timezone.utc)
        just_before = at - timedelta(microseconds=1)
        with storage.transaction() as tx:
            due_now = tx.due_templates(at, account_ids=["acme"])
            due_before = tx.due_templates(just_before, account_ids=["acme"])
        assert "tpl-2" in _ids(due_now)
        assert "tpl-2" not in _ids(due_before)

    def test_due_templates_filters_by_account(self, storage: Storage) -> None:
        _world(storage)
        as_of = datetime(2025, 3, 1, tzinfo=timezone.utc)
        with storage.transaction() as tx:
            assert _ids(tx.due_templates(as_of)) == ["tpl-1", "tpl-beta"]
            assert _ids(tx.due_templates(as_of, account_ids=["beta"])) == ["tpl-beta"]
            assert _ids(tx.due_templates(as_of, account_ids=["acme", "beta"])) == [
                "tpl-1",
                "tpl-beta",
            ]
            assert tx.due_templates(as_of, account_ids=[]) == []

    def test_due_templates_leave_out_the_ids_to_skip(self, storage: Storage) -> None:
        _world(storage)
        _add(storage, make_template("tpl-2"), make_template("tpl-3"))
        as_of = datetime(2025, 3, 1, tzinfo=timezone.utc)
        with storage.transaction() as tx:
            every = _ids(tx.due_templates(as_of))
            assert every == ["tpl-1", "tpl-2", "tpl-3", "tpl-beta"]
            skipped = tx.due_templates(as_of, skip_ids=["tpl-2", "tpl-beta", "nope"])
            assert _ids(skipped) == ["tpl-1", "tpl-3"]
            first = tx.due_templates(as_of, skip_ids=("tpl-1",), limit=1)
            assert _ids(first) == ["tpl-2"]  # the limit counts what is returned
            assert _ids(tx.due_templates(as_of, skip_ids=[])) == every
            odd = ["", "x" * 300]  # ids a row recurbill did not write may hold
            assert _ids(tx.due_templates(as_of, skip_ids=odd)) == every

    def test_due_templates_start_after_the_cursor_and_stop_at_limit(
        self, storage: Storage
    ) -> None:
        _world(storage)
        due = make_template().next_due_at
        assert due is not None
        _add(
            storage,
            *(make_template(f"tpl-{c}") for c in "abcde"),
            make_template("tpl-z0", next_due_at=due - timedelta(seconds=1)),
            make_template("tpl-0", next_due_at=due + timedelta(seconds=1)),
        )
        as_of = datetime(2025, 3, 1, tzinfo=timezone.utc)
        with storage.transaction() as tx:
            first = tx.due_templates(as_of, account_ids=["acme"], limit=2)
            rest = tx.due_templates(
                as_of, account_ids=["acme"], after=(due, "tpl-b"), limit=10
            )
            in_oslo = tx.due_templates(
                as_of, account_ids=["acme"], after=(due.astimezone(_OSLO), "tpl-b")
            )
            last = tx.due_templates(as_of, after=(due, "tpl-e"))
        assert _ids(first) == ["tpl-z0", "tpl-1"]  # earliest due first, then by id
        assert _ids(rest) == ["tpl-c", "tpl-d", "tpl-e", "tpl-0"]
        assert in_oslo == rest
        assert _ids(last) == ["tpl-0"]

    def test_bad_filters_limits_and_ids_are_refused_alike(
        self, storage: Storage
    ) -> None:
        """Every backend refuses what one of them could not store or query."""
        _world(storage)
        as_of = datetime(2025, 3, 1, tzinfo=timezone.utc)
        calls: list[Callable[[Transaction], object]] = [
            lambda tx: tx.list_invoices("acme", status="bogus"),  # type: ignore[arg-type]
            lambda tx: tx.list_invoices("acme", customer_id=5),  # type: ignore[arg-type]
            lambda tx: tx.list_invoices("acme", template_id="t\x00"),
            lambda tx: tx.list_templates("acme", customer_id=""),
            lambda tx: tx.list_templates("acme", after=""),
            lambda tx: tx.list_templates("acme", after=5),  # type: ignore[arg-type]
            lambda tx: tx.list_templates("acme", limit=0),
            lambda tx: tx.list_templates("acme", limit=True),
            lambda tx: tx.list_templates("acme", limit=2**31),
            lambda tx: tx.list_settlements("acme", customer_id=5),  # type: ignore[arg-type]
            lambda tx: tx.list_payments(""),
            lambda tx: tx.list_payments(123),  # type: ignore[arg-type]
            lambda tx: tx.list_payments("acme", statuses="pending"),  # type: ignore[arg-type]
            lambda tx: tx.list_payments("acme", statuses=["bogus"]),  # type: ignore[list-item]
            lambda tx: tx.pending_notifications(limit=2**63),
            lambda tx: tx.due_templates(as_of, limit=2**31),
            lambda tx: tx.get_customer("acme", "c" * 201),
            lambda tx: tx.get_customer("acme", "c\ud800"),
            lambda tx: tx.allocate_invoice_numbers("acme", "INV", count=2**31),
        ]
        with storage.transaction() as tx:
            for call in calls:
                with pytest.raises(InvalidInputError):
                    call(tx)
            assert tx.get_customer("acme", "cust-1").id == "cust-1"  # still usable

    def test_instants_at_the_ends_of_the_calendar_read_back(
        self, storage: Storage
    ) -> None:
        _world(storage)
        first = datetime(2, 1, 1, tzinfo=timezone.utc)
        last = datetime(9998, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=5)))
        early = make_template("t-early", created_at=first, next_due_at=None)
        late = make_template("t-late", created_at=last, next_due_at=last)
        _add(storage, early, late)
        with storage.transaction() as tx:
            assert tx.get_template("acme", "t-early").created_at == first
            read = tx.get_template("acme", "t-late")
        assert (read.created_at, read.next_due_at) == (last, last)

    def test_due_templates_refuse_a_bad_cursor_or_account_list(
        self, storage: Storage
    ) -> None:
        _world(storage)
        as_of = datetime(2025, 3, 1, tzinfo=timezone.utc)
        due = make_template().next_due_at
        bad: list[dict[str, Any]] = [
            {"after": "tpl-1"},
            {"after": (due,)},
            {"after": (due, "tpl-1", 1)},
            {"after": ["tpl-1", due]},
            {"after": (datetime(2025, 2, 1), "tpl-1")},  # noqa: DTZ001 naive
            {"after": (due, "")},
            {"account_ids": "acme"},
            {"account_ids": ["acme", 7]},
            {"skip_ids": "tpl-1"},
            {"skip_ids": ["tpl-1", None]},
        ]
        with storage.transaction() as tx:
            for call in bad:
                with pytest.raises(InvalidInputError):
                    tx.due_templates(as_of, **call)
            for end in (datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),
                        datetime(9999, 12, 31, 23, tzinfo=timezone.utc)):  # fmt: skip
                with pytest.raises(InvalidInputError, match="years 2 to 9998"):
                    tx.due_templates(end)

    def test_ids_sort_and_page_by_code_point(self, storage: Storage) -> None:
        _world(storage)
        tricky = ["a-b", "B", "ab", "a_c", "Z9", "a", "ø", "A b"]
        _add(storage, *(make_template(f"x{t}", customer_id="cust-2") for t in tricky))
        expected = sorted(f"x{t}" for t in tricky)
        as_of = datetime(2025, 3, 1, tzinfo=timezone.utc)
        paged: list[str] = []
        with storage.transaction() as tx:
            listed = tx.list_templates("acme", customer_id="cust-2")
            after: tuple[datetime, str] | None = None
            while chunk := tx.due_templates(
                as_of, account_ids=["acme"], after=after, limit=3
            ):
                paged.extend(i for i in _ids(chunk) if i.startswith("x"))
                after = _cursor(chunk[-1])
        assert _ids(listed) == expected
        assert paged == expected

    def test_due_templates_see_the_transactions_own_updates(
        self, storage: Storage
    ) -> None:
        _world(storage)
        as_of = datetime(2025, 3, 1, tzinfo=timezone.utc)
        with storage.transaction() as tx:
            template = tx.get_template("acme", "tpl-1")
            tx.update_template(
                make_template("tpl-1", next_due_at=as_of + timedelta(days=31))
            )
            assert tx.due_templates(as_of, account_ids=["acme"]) == []
            tx.update_template(template)
            assert _ids(tx.due_templates(as_of, account_ids=["acme"])) == ["tpl-1"]

    # -- occurrences ---------------------------------------------------------

    def test_occurrences_round_trip_sorted_by_index(self, storage: Storage) -> None:
        _world(storage)
        later = _occurrence(2, invoice_id="inv-1")
        skipped = _occurrence(0)
        middle = _occurrence(1, invoice_id="inv-1")
        with storage.transaction() as tx:
            tx.add_occurrences([later, skipped])
            tx.add_occurrences([middle])
            tx.commit()
        listed = _read(storage, lambda tx: tx.list_occurrences("acme", "tpl-1"))
        assert listed == [skipped, middle, later]

    def test_duplicate_occurrence_conflicts(self, storage: Storage) -> None:
        _world(storage)
        _add(storage, _occurrence(0))
        with storage.transaction() as tx, pytest.raises(ConflictError):
            tx.add_occurrences([_occurrence(0, invoice_id="inv-1")])

    def test_occurrence_batch_with_a_duplicate_writes_nothing(
        self, storage: Storage
    ) -> None:
        _world(storage)
        _add(storage, _occurrence(3))
        with storage.transaction() as tx:
            with pytest.raises(ConflictError):
                tx.add_occurrences([_occurrence(1), _occurrence(2), _occurrence(3)])
            tx.commit()
        listed = _read(storage, lambda tx: tx.list_occurrences("acme", "tpl-1"))
        assert [o.index for o in listed] == [3]

    def test_same_index_of_another_template_is_allowed(self, storage: Storage) -> None:
        _world(storage)
        _add(storage, make_template("tpl-2"), _occurrence(0))
        _add(storage, _occurrence(0, template_id="tpl-2"))
        listed = _read(storage, lambda tx: tx.list_occurrences("acme", "tpl-2"))
        assert [o.index for o in listed] == [0]

    def test_occurrences_of_another_accounts_template_are_invisible(
        self, storage: Storage
    ) -> None:
        _world(storage)
        _add(storage, _occurrence(0, template_id="tpl-beta", account_id="beta"))
        with storage.transaction() as tx:
            assert tx.list_occurrences("acme", "tpl-beta") == []
            _assert_not_found(
                lambda: tx.add_occurrences([_occurrence(1, template_id="tpl-beta")]),
                key="tpl-beta",
                account="acme",
            )

    # -- invoice numbers -----------------------------------------------------

    def test_invoice_numbers_start_at_one_and_are_consecutive(
        self, storage: Storage
    ) -> None:
        _world(storage)
        with storage.transaction() as tx:
            assert tx.allocate_invoice_numbers("acme", "INV") == 1
            assert tx.allocate_invoice_numbers("acme", "INV", count=3) == 2
            assert tx.allocate_invoice_numbers("acme", "INV") == 5
            tx.commit()

    def test_invoice_numbers_are_gapless_across_transactions(
        self, storage: Storage
    ) -> None:
        _world(storage)
        firsts = []
        for count in (3, 1, 5, 2):
            with storage.transaction() as tx:
                firsts.append(tx.allocate_invoice_numbers("acme", "INV", count=count))
                tx.commit()
        assert firsts == [1, 4, 5, 10]

    def test_rolled_back_numbers_are_given_back(self, storage: Storage) -> None:
        _world(storage)
        with storage.transaction() as tx:
            assert tx.allocate_invoice_numbers("acme", "INV", count=2) == 1
            tx.commit()
        with storage.transaction() as tx:
            assert tx.allocate_invoice_numbers("acme", "INV", count=5) == 3

        def crash() -> None:
            with storage.transaction() as tx:
                assert tx.allocate_invoice_numbers("acme", "INV", count=4) == 3
                raise RuntimeError("crash before commit")

        with pytest.raises(RuntimeError, match="crash before commit"):
            crash()
        with storage.transaction() as tx:
            assert tx.allocate_invoice_numbers("acme", "INV") == 3
            tx.commit()

    def test_invoice_number_series_are_independent(self, storage: Storage) -> None:
        _world(storage)
        with storage.transaction() as tx:
            assert tx.allocate_invoice_numbers("acme", "INV", count=10) == 1
            assert tx.allocate_invoice_numbers("acme", "CN") == 1
            assert tx.allocate_invoice_numbers("beta", "INV") == 1
            assert tx.allocate_invoice_numbers("acme", "INV") == 11
            tx.commit()

    def test_invoice_numbers_of_an_unknown_account_are_refused(
        self, storage: Storage
    ) -> None:
        _world(storage)
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: tx.allocate_invoice_numbers("nope", "INV"),
                key="nope",
                account="nope",
            )

    def test_locking_invoice_numbers_reserves_none(self, storage: Storage) -> None:
        _world(storage)
        with storage.transaction() as tx:
            assert tx.lock_invoice_numbers("acme", "INV") == 1  # a new series
            tx.commit()
        with storage.transaction() as tx:
            assert tx.allocate_invoice_numbers("acme", "INV", count=3) == 1
            assert tx.lock_invoice_numbers("acme", "INV") == 4  # its own, too
            tx.commit()
        with storage.transaction() as tx:
            assert tx.lock_invoice_numbers("acme", "INV") == 4
            assert tx.lock_invoice_numbers("acme", "INV") == 4
            assert tx.allocate_invoice_numbers("acme", "INV") == 4
        with storage.transaction() as tx:
            assert tx.lock_invoice_numbers("acme", "CN") == 1
            assert tx.lock_invoice_numbers("acme", "INV") == 4
            _assert_not_found(
                lambda: tx.lock_invoice_numbers("nope", "INV"),
                key="nope",
                account="nope",
            )

    @settings(
        max_examples=25,
        deadline=None,
        # One storage serves every example (fresh series each), and each
        # backend's subclass runs this same method: both are intended.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    @given(
        steps=st.lists(
            st.tuples(st.integers(1, 5), st.booleans()), min_size=1, max_size=8
        )
    )
    def test_committed_numbers_are_exactly_one_to_n(
        self, storage: Storage, steps: list[tuple[int, bool]]
    ) -> None:
        if not _read(storage, lambda tx: tx.list_account_ids()):
            _world(storage)
        series = f"S{next(_series_numbers)}"  # fresh per example
        committed: list[int] = []
        for count, commit in steps:
            with storage.transaction() as tx:
                first = tx.allocate_invoice_numbers("acme", series, count=count)
                assert first == len(committed) + 1
                if commit:
                    tx.commit()
                    committed.extend(range(first, first + count))
        assert committed == list(range(1, len(committed) + 1))

    @pytest.mark.parametrize("count", [0, -1])
    def test_allocating_fewer_than_one_number_is_refused(
        self, storage: Storage, count: int
    ) -> None:
        _world(storage)
        with storage.transaction() as tx, pytest.raises(InvalidInputError):
            tx.allocate_invoice_numbers("acme", "INV", count=count)

    # -- invoices --------------------------------------------------------------

    def test_invoice_round_trip(self, storage: Storage) -> None:
        _world(storage)

        def nok(amount: str) -> Money:
            return Money(amount, "NOK")

        invoice = make_invoice(
            "inv-2",
            customer_id="cust-2",
            series="F",
            number=123456,
            status=InvoiceStatus.PAID,
            issue_date=date(2025, 2, 28),
            due_date=date(2025, 3, 14),
            lines=(
                InvoiceLine(
                    description="Timer",
                    quantity=Decimal("1.333333333333333333"),
                    unit_price=Decimal("987654321.123456789"),
                    vat_rate=Decimal("12.5"),
                ),
                _line("0.10"),
            ),
            net_total=nok("1316872428.16"),
            vat_total=nok("164609053.52"),
            total=nok("1481481481.68"),
            paid=nok("1481481481.680000000000000001"),
            credited=nok("-0.000000000000000001"),
            payment_reference="12345678903",
            template_id="tpl-1",
            occurrence_index=4,
            memo="Multi-line\nmemo with ÆØÅ",
            created_at=datetime(2025, 2, 28, 6, 15, 0, 123456, tzinfo=_OSLO),
            paid_at=datetime(2025, 3, 1, 23, 30, tzinfo=_PLUS_TWO),
            **_document_items(),
        )
        _add(storage, invoice)
        got = _read(storage, lambda tx: tx.get_invoice("acme", "inv-2"))
        assert got == invoice
        assert [a.to_dict() for a in got.allowances + got.charges] == [
            a.to_dict() for a in invoice.allowances + invoice.charges
        ]  # digit for digit
        assert got.paid.amount == Decimal("1481481481.680000000000000001")

    def test_allowances_and_charges_alone_round_trip(self, storage: Storage) -> None:
        _world(storage)
        items = _document_items()
        only_charges = make_invoice("inv-c", number=7, charges=items["charges"])
        only_allowances = make_invoice(
            "inv-a", number=8, allowances=items["allowances"][1:]
        )
        _add(storage, only_charges, only_allowances)
        with storage.transaction() as tx:
            got = tx.get_invoices("acme", ["inv-c", "inv-a", "inv-1"])
        assert got == [only_charges, only_allowances, make_invoice()]
        assert (got[0].allowances, got[1].charges) == ((), ())
        assert (got[2].allowances, got[2].charges) == ((), ())

    def test_invoice_amounts_keep_every_currency(self, storage: Storage) -> None:
        _world(storage)
        invoice = make_invoice(
            "inv-isk",
            number=2,
            currency="ISK",
            net_total=Money(1000, "ISK"),
            vat_total=Money(240, "ISK"),
            total=Money(1240, "ISK"),
            paid=Money(0, "ISK"),
            credited=Money(0, "ISK"),
        )
        _add(storage, invoice)
        assert _read(storage, lambda tx: tx.get_invoice("acme", "inv-isk")) == invoice

    def test_invoice_update(self, storage: Storage) -> None:
        _world(storage)
        paid_at = datetime(2025, 1, 5, 12, tzinfo=timezone.utc)
        changed = make_invoice(
            "inv-1",
            status=InvoiceStatus.PAID,
            paid=Money("125.00", "NOK"),
            paid_at=paid_at,
        )
        with storage.transaction() as tx:
            assert tx.get_invoice("acme", "inv-1", for_update=True) == make_invoice()
            tx.update_invoice(changed)
            tx.commit()
        assert _read(storage, lambda tx: tx.get_invoice("acme", "inv-1")) == changed

    def test_duplicate_invoice_number_conflicts(self, storage: Storage) -> None:
        _world(storage)
        with storage.transaction() as tx, pytest.raises(ConflictError):
            tx.add_invoices([make_invoice("inv-2", number=1)])

    def test_same_number_in_another_series_or_account_is_allowed(
        self, storage: Storage
    ) -> None:
        _world(storage)
        _add(
            storage,
            make_invoice("inv-2", number=1, series="OTHER"),
            make_invoice("beta-2", account_id="beta", customer_id="beta-1", number=2),
            make_invoice("inv-3", number=2),
        )
        invoices = _read(storage, lambda tx: tx.list_invoices("acme"))
        assert sorted(_ids(invoices)) == ["inv-1", "inv-2", "inv-3"]

    def test_duplicate_invoice_id_conflicts(self, storage: Storage) -> None:
        _world(storage)
        with storage.transaction() as tx, pytest.raises(ConflictError):
            tx.add_invoices([make_invoice("inv-1", number=2)])

    def test_second_invoice_for_one_occurrence_conflicts(
        self, storage: Storage
    ) -> None:
        _world(storage)
        _add(
            storage,
            make_invoice("inv-2", number=2, template_id="tpl-1", occurrence_index=0),
        )
        with storage.transaction() as tx, pytest.raises(ConflictError):
            tx.add_invoices(
                [
                    make_invoice(
                        "inv-3", number=3, template_id="tpl-1", occurrence_index=0
                    )
                ]
            )

    def test_updating_to_a_taken_number_conflicts(self, storage: Storage) -> None:
        _world(storage)
        _add(storage, make_invoice("inv-2", number=2))
        with storage.transaction() as tx:
            with pytest.raises(ConflictError):
                tx.update_invoice(make_invoice("inv-2", number=1))
            tx.commit()
        assert _read(storage, lambda tx: tx.get_invoice("acme", "inv-2")).number == 2

    def test_a_renumbered_invoice_frees_its_old_number(self, storage: Storage) -> None:
        _world(storage)
        with storage.transaction() as tx:
            tx.update_invoice(make_invoice("inv-1", number=7))
            tx.add_invoices([make_invoice("inv-2", number=1)])
            tx.commit()
        numbers = [
            i.number for i in _read(storage, lambda tx: tx.list_invoices("acme"))
        ]
        assert numbers == [1, 7]

    def test_invoices_are_listed_by_issue_date_then_number(
        self, storage: Storage
    ) -> None:
        _world(storage)
        _add(
            storage,
            make_invoice("inv-d", number=4, issue_date=date(2024, 12, 31)),
            make_invoice("inv-b", number=3, issue_date=date(2025, 1, 1)),
            make_invoice("inv-a", number=2, issue_date=date(2025, 2, 1)),
            make_invoice("inv-c", number=5, issue_date=date(2025, 1, 1)),
        )
        listed = _read(storage, lambda tx: tx.list_invoices("acme"))
        assert _ids(listed) == ["inv-d", "inv-1", "inv-b", "inv-c", "inv-a"]

    def test_invoices_are_filtered(self, storage: Storage) -> None:
        _world(storage)
        _add(
            storage,
            make_invoice("inv-2", number=2, customer_id="cust-2"),
            make_invoice("inv-3", number=3, status=InvoiceStatus.PAID),
            make_invoice("inv-4", number=4, template_id="tpl-1", occurrence_index=0),
        )
        with storage.transaction() as tx:
            assert _ids(tx.list_invoices("acme", customer_id="cust-2")) == ["inv-2"]
            assert _ids(tx.list_invoices("acme", status=InvoiceStatus.PAID)) == [
                "inv-3"
            ]
            assert _ids(tx.list_invoices("acme", template_id="tpl-1")) == ["inv-4"]
            open_of_cust_1 = tx.list_invoices(
                "acme", customer_id="cust-1", status=InvoiceStatus.OPEN
            )
            assert _ids(open_of_cust_1) == ["inv-1", "inv-4"]
            assert tx.list_invoices("acme", customer_id="beta-1") == []
            assert tx.list_invoices("acme", template_id="tpl-beta") == []

    def test_invoice_of_another_account_is_not_found(self, storage: Storage) -> None:
        _world(storage)
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: tx.get_invoice("acme", "inv-beta", for_update=True),
                key="inv-beta",
                account="acme",
            )
            _assert_not_found(
                lambda: tx.update_invoice(make_invoice("inv-beta", number=99)),
                key="inv-beta",
                account="acme",
            )
            assert _ids(tx.list_invoices("acme")) == ["inv-1"]
            tx.commit()
        kept = _read(storage, lambda tx: tx.get_invoice("beta", "inv-beta"))
        assert kept.number == 1

    def test_invoice_for_a_customer_of_another_account_is_refused(
        self, storage: Storage
    ) -> None:
        _world(storage)
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: tx.add_invoices(
                    [make_invoice("inv-x", number=9, customer_id="beta-1")]
                ),
                key="beta-1",
                account="acme",
            )

    # -- payments --------------------------------------------------------------

    def test_payment_round_trip(self, storage: Storage) -> None:
        _world(storage)
        payment = make_payment(
            "pay-2",
            customer_id="cust-2",
            idempotency_key="recurbill-pay-2-attempt-3",
            amount=Money("1234.5678", "NOK"),
            payment_method_id="pm-9",
            invoice_ids=("inv-1", "inv-7", "inv-3"),
            status=PaymentStatus.REQUIRES_ACTION,
            off_session=False,
            attempt=3,
            settlement_id="set-1",
            charge_id="pi_123",
            decline_code="authentication_required",
            error_code="card_declined",
            client_secret="pi_123_secret_abc",
            refunded=Money("0.01", "NOK"),
            created_at=datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=_OSLO),
            updated_at=datetime(2025, 1, 2, 3, 4, 6, tzinfo=_PLUS_TWO),
        )
        _add(storage, payment)
        assert _read(storage, lambda tx: tx.get_payment("acme", "pay-2")) == payment

    def test_payment_update(self, storage: Storage) -> None:
        _world(storage)
        changed = make_payment(
            "pay-1",
            status=PaymentStatus.SUCCEEDED,
            charge_id="ch_1",
            updated_at=_T0 + timedelta(seconds=2),
        )
        with storage.transaction() as tx:
            tx.update_payment(changed)
            tx.commit()
        assert _read(storage, lambda tx: tx.get_payment("acme", "pay-1")) == changed

    def test_duplicate_idempotency_key_conflicts(self, storage: Storage) -> None:
        _world(storage)
        with storage.transaction() as tx, pytest.raises(ConflictError):
            tx.add_payment(make_payment("pay-2", idempotency_key="recurbill-pay-1"))

    def test_updating_to_a_taken_idempotency_key_conflicts(
        self, storage: Storage
    ) -> None:
        _world(storage)
        _add(storage, make_payment("pay-2"))
        with storage.transaction() as tx, pytest.raises(ConflictError):
            tx.update_payment(make_payment("pay-2", idempotency_key="recurbill-pay-1"))

    def test_duplicate_payment_id_conflicts(self, storage: Storage) -> None:
        _world(storage)
        with storage.transaction() as tx, pytest.raises(ConflictError):
            tx.add_payment(make_payment("pay-1", idempotency_key="fresh"))

    def test_payments_are_listed_oldest_first_and_filtered(
        self, storage: Storage
    ) -> None:
        _world(storage)
        _add(
            storage,
            make_payment(
                "pay-0",
                customer_id="cust-2",
                status=PaymentStatus.FAILED_UNKNOWN,
                created_at=datetime(2025, 1, 1, 9, 30, tzinfo=_PLUS_TWO),  # 07:30 UTC
            ),
            make_payment(
                "pay-2",
                status=PaymentStatus.SUCCEEDED,
                created_at=_T0 + timedelta(hours=1),
            ),
        )
        with storage.transaction() as tx:
            assert _ids(tx.list_payments("acme")) == ["pay-0", "pay-1", "pay-2"]
            assert sorted(_ids(tx.list_payments())) == [
                "pay-0",
                "pay-1",
                "pay-2",
                "pay-beta",
            ]
            assert _ids(tx.list_payments("acme", customer_id="cust-1")) == [
                "pay-1",
                "pay-2",
            ]
            unsettled = tx.list_payments(
                statuses=[PaymentStatus.PENDING, PaymentStatus.FAILED_UNKNOWN]
            )
            assert sorted(_ids(unsettled)) == ["pay-0", "pay-1", "pay-beta"]
            assert tx.list_payments("acme", customer_id="beta-1") == []
            assert tx.list_payments("acme", statuses=[]) == []

    def test_payments_leave_out_the_ids_to_skip(self, storage: Storage) -> None:
        _world(storage)
        _add(
            storage,
            make_payment("pay-2", created_at=_T0 + timedelta(hours=1)),
            make_payment(
                "pay-3",
                status=PaymentStatus.DECLINED,
                created_at=_T0 + timedelta(hours=2),
            ),
        )
        with storage.transaction() as tx:
            every = _ids(tx.list_payments("acme"))
            assert every == ["pay-1", "pay-2", "pay-3"]
            skipped = tx.list_payments("acme", skip_ids=["pay-2", "pay-beta", "nope"])
            assert _ids(skipped) == ["pay-1", "pay-3"]
            pending = tx.list_payments(
                "acme", statuses=[PaymentStatus.PENDING], skip_ids=("pay-1",)
            )
            assert _ids(pending) == ["pay-2"]
            assert sorted(_ids(tx.list_payments(skip_ids=["pay-1"]))) == [
                "pay-2",
                "pay-3",
                "pay-beta",
            ]
            assert _ids(tx.list_payments("acme", skip_ids=[])) == every
            odd = ["", "x" * 300]  # ids a row recurbill did not write may hold
            assert _ids(tx.list_payments("acme", skip_ids=odd)) == every
            for bad in ("pay-1", ["pay-1", None], 7):
                with pytest.raises(InvalidInputError, match="skip_ids"):
                    tx.list_payments("acme", skip_ids=bad)  # type: ignore[arg-type]

    def test_payments_of_an_invoice_are_those_that_include_it(
        self, storage: Storage
    ) -> None:
        """Its automatic charges and retries, the customer's own payment and
        a mass payment that settles it among others; oldest first (as
        instants), filtered like the other reads, in its account only."""
        _many_world(storage)
        _add(
            storage,
            make_payment(
                "pay-0",
                status=PaymentStatus.DECLINED,
                created_at=datetime(2025, 1, 1, 9, 30, tzinfo=_PLUS_TWO),  # 07:30 UTC
            ),
            make_payment(
                "pay-retry",
                attempt=2,
                status=PaymentStatus.DECLINED,
                created_at=_T0 + timedelta(days=3),
            ),
            make_payment(
                "pay-own",
                off_session=False,
                status=PaymentStatus.SUCCEEDED,
                created_at=_T0 + timedelta(days=4),
            ),
            make_payment(
                "pay-mass",
                invoice_ids=("inv-2", "inv-1", "inv-9"),
                settlement_id="set-1",
                created_at=_T0 + timedelta(days=5),
            ),
            make_payment(
                "pay-beta-2",
                account_id="beta",
                customer_id="beta-1",
                invoice_ids=("inv-beta",),
                created_at=_T0 + timedelta(days=6),
            ),
        )
        with storage.transaction() as tx:
            of_inv_1 = ["pay-0", "pay-1", "pay-retry", "pay-own", "pay-mass"]
            assert _ids(tx.list_payments("acme", invoice_id="inv-1")) == of_inv_1
            every = tx.list_payments("acme")
            assert tx.list_payments("acme", invoice_id="inv-1") == [
                p for p in every if "inv-1" in p.invoice_ids
            ]
            assert _ids(tx.list_payments("acme", invoice_id="inv-2")) == [
                "pay-2",
                "pay-mass",
            ]
            assert _ids(tx.list_payments("acme", invoice_id="inv-9")) == ["pay-mass"]
            declined = tx.list_payments(
                "acme", invoice_id="inv-1", statuses=[PaymentStatus.DECLINED]
            )
            assert _ids(declined) == ["pay-0", "pay-retry"]
            skipped = tx.list_payments(
                "acme", invoice_id="inv-1", skip_ids=["pay-1", "pay-own", "nope"]
            )
            assert _ids(skipped) == ["pay-0", "pay-retry", "pay-mass"]
            of_cust_1 = tx.list_payments(
                "acme", customer_id="cust-1", invoice_id="inv-2"
            )
            assert _ids(of_cust_1) == ["pay-mass"]
            of_cust_2 = tx.list_payments(
                "acme", customer_id="cust-2", invoice_id="inv-1"
            )
            assert of_cust_2 == []
            assert tx.list_payments("acme", invoice_id="inv-beta") == []
            assert tx.list_payments("beta", invoice_id="inv-1") == []
            assert _ids(tx.list_payments("beta", invoice_id="inv-beta")) == [
                "pay-beta",
                "pay-beta-2",
            ]
            assert tx.list_payments("acme", invoice_id="nope") == []
            assert tx.list_payments("acme", invoice_id="inv-1", statuses=[]) == []

    def test_payments_of_an_invoice_need_its_account_and_an_id(
        self, storage: Storage
    ) -> None:
        _world(storage)
        with storage.transaction() as tx:
            with pytest.raises(InvalidInputError, match="without account_id"):
                tx.list_payments(invoice_id="inv-1")
            with pytest.raises(InvalidInputError, match="without account_id"):
                tx.list_payments(customer_id="cust-1", invoice_id="inv-1")
            for bad in ("", "inv\x00-1", 7, ["inv-1"]):
                with pytest.raises(InvalidInputError, match="invoice_id"):
                    tx.list_payments("acme", invoice_id=bad)  # type: ignore[arg-type]

    def test_payments_of_an_invoice_follow_every_write(self, storage: Storage) -> None:
        """Added one by one or in a batch, changed to include other invoices,
        rolled back: the read by invoice always agrees with the payments."""
        _many_world(storage)
        with storage.transaction() as tx:
            tx.add_payments(
                [
                    make_payment("pay-3", invoice_ids=("inv-1", "inv-1")),
                    make_payment("pay-4", invoice_ids=("inv-2", "inv-1")),
                ]
            )
            tx.update_payments(
                [make_payment("pay-1", invoice_ids=("inv-2",), charge_id="ch_1")]
            )
            assert _ids(tx.list_payments("acme", invoice_id="inv-1")) == [
                "pay-3",
                "pay-4",
            ]
            tx.commit()
        with storage.transaction() as tx:
            assert _ids(tx.list_payments("acme", invoice_id="inv-2")) == [
                "pay-1",
                "pay-2",
                "pay-4",
            ]
            tx.update_payment(make_payment("pay-4", invoice_ids=("inv-7",)))
            tx.update_payments(
                [
                    make_payment("pay-3", invoice_ids=("inv-2",)),
                    make_payment("pay-3", invoice_ids=("inv-1", "inv-2")),
                ]
            )
            assert _ids(tx.list_payments("acme", invoice_id="inv-7")) == ["pay-4"]
            assert _ids(tx.list_payments("acme", invoice_id="inv-1")) == ["pay-3"]
            # left without commit: rolled back
        with storage.transaction() as tx:
            assert _ids(tx.list_payments("acme", invoice_id="inv-7")) == []
            assert _ids(tx.list_payments("acme", invoice_id="inv-1")) == [
                "pay-3",
                "pay-4",
            ]
            with pytest.raises(ConflictError):  # a batch that fails writes none
                tx.add_payments(
                    [
                        make_payment("pay-5", invoice_ids=("inv-8",)),
                        make_payment("pay-6", idempotency_key="recurbill-pay-1"),
                    ]
                )
            _assert_not_found(
                lambda: tx.update_payments(
                    [
                        make_payment("pay-3", invoice_ids=("inv-8",)),
                        make_payment("nope", invoice_ids=("inv-8",)),
                    ]
                ),
                key="nope",
                account="acme",
            )
            assert tx.list_payments("acme", invoice_id="inv-8") == []
            tx.commit()
        with storage.transaction() as tx:
            for payment in tx.list_payments():
                for invoice_id in payment.invoice_ids:
                    found = tx.list_payments(payment.account_id, invoice_id=invoice_id)
                    assert payment in found

    def test_payment_of_another_account_is_not_found(self, storage: Storage) -> None:
        _world(storage)
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: tx.get_payment("acme", "pay-beta"),
                key="pay-beta",
                account="acme",
            )
            _assert_not_found(
                lambda: tx.update_payment(
                    make_payment("pay-beta", status=PaymentStatus.SUCCEEDED)
                ),
                key="pay-beta",
                account="acme",
            )
            tx.commit()
        kept = _read(storage, lambda tx: tx.get_payment("beta", "pay-beta"))
        assert kept.status is PaymentStatus.PENDING

    # -- settlements ---------------------------------------------------------

    def test_settlement_round_trip(self, storage: Storage) -> None:
        _world(storage)
        settlement = _settlement(
            items=(
                SettlementItem(
                    invoice_id="inv-1",
                    invoice_number="INV-000001",
                    amount=Money("125.00", "NOK"),
                ),
                SettlementItem(
                    invoice_id="inv-2",
                    invoice_number="INV-000002",
                    amount=Money("0.005", "NOK"),
                ),
            ),
            total=Money("125.005", "NOK"),
            status=SettlementStatus.REQUIRES_ACTION,
            payment_id="pay-1",
            receipt_id="rcpt-1",
            created_at=datetime(2025, 5, 5, 5, 5, tzinfo=_PLUS_TWO),
        )
        _add(storage, settlement)
        got = _read(storage, lambda tx: tx.get_settlement("acme", "set-1"))
        assert got == settlement

    def test_settlement_update(self, storage: Storage) -> None:
        _world(storage)
        _add(storage, _settlement())
        changed = _settlement(status=SettlementStatus.SUCCEEDED, payment_id="pay-1")
        with storage.transaction() as tx:
            tx.update_settlement(changed)
            tx.commit()
        got = _read(storage, lambda tx: tx.get_settlement("acme", "set-1"))
        assert got == changed

    def test_pending_selection_key_conflicts(self, storage: Storage) -> None:
        _world(storage)
        _add(storage, _settlement("set-1"))
        with storage.transaction() as tx, pytest.raises(ConflictError):
            tx.add_settlement(_settlement("set-2"))

    def test_selection_key_is_free_once_settlement_is_not_pending(
        self, storage: Storage
    ) -> None:
        _world(storage)
        _add(storage, _settlement("set-1"))
        with storage.transaction() as tx:
            tx.update_settlement(_settlement("set-1", status=SettlementStatus.DECLINED))
            tx.add_settlement(_settlement("set-2"))
            tx.commit()
        with storage.transaction() as tx, pytest.raises(ConflictError):
            tx.add_settlement(_settlement("set-3"))

    def test_reopening_a_settlement_with_a_taken_key_conflicts(
        self, storage: Storage
    ) -> None:
        _world(storage)
        _add(
            storage,
            _settlement("set-1", status=SettlementStatus.DECLINED),
            _settlement("set-2"),
        )
        with storage.transaction() as tx, pytest.raises(ConflictError):
            tx.update_settlement(_settlement("set-1"))

    def test_settlements_are_listed_oldest_first(self, storage: Storage) -> None:
        _world(storage)
        _add(
            storage,
            _settlement("set-b", selection_key="b", created_at=_T0),
            _settlement(
                "set-a",
                selection_key="a",
                created_at=datetime(2025, 1, 1, 10, 30, tzinfo=_PLUS_TWO),
            ),  # 08:30 UTC
            _settlement(
                "set-c",
                customer_id="cust-2",
                selection_key="c",
                created_at=_T0 + timedelta(days=1),
            ),
        )
        with storage.transaction() as tx:
            assert _ids(tx.list_settlements("acme")) == ["set-a", "set-b", "set-c"]
            of_cust_1 = tx.list_settlements("acme", customer_id="cust-1")
            assert _ids(of_cust_1) == ["set-a", "set-b"]
            assert tx.list_settlements("beta") == []

    def test_settlement_of_another_account_is_not_found(self, storage: Storage) -> None:
        _world(storage)
        _add(storage, _settlement("set-beta", account_id="beta", customer_id="beta-1"))
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: tx.get_settlement("acme", "set-beta"),
                key="set-beta",
                account="acme",
            )
            _assert_not_found(
                lambda: tx.update_settlement(
                    _settlement("set-beta", status=SettlementStatus.SUCCEEDED)
                ),
                key="set-beta",
                account="acme",
            )
            assert tx.list_settlements("acme") == []
            tx.commit()
        kept = _read(storage, lambda tx: tx.get_settlement("beta", "set-beta"))
        assert kept.status is SettlementStatus.PENDING

    # -- receipts, credit notes, refunds, credit -------------------------------

    def test_receipts_round_trip_oldest_first(self, storage: Storage) -> None:
        """Oldest issued first; each with its own ``paid_at``, the instant
        the card was charged (before it was issued: a lost answer)."""
        _world(storage)
        late = _receipt(
            "rcpt-1",
            issued_at=_T0 + timedelta(hours=1),
            paid_at=_T0 - timedelta(days=2),
        )
        early = _receipt(
            "rcpt-2",
            number="R-2",
            amount=Money("130.00", "NOK"),
            credit=Money("5.00", "NOK"),
            card_brand="amex",
            card_last4="0005",
            issued_at=datetime(2025, 1, 1, 10, 30, tzinfo=_PLUS_TWO),  # 08:30 UTC
            paid_at=datetime(2025, 1, 1, 1, 15, 30, 250, tzinfo=_PLUS_TWO),
        )
        _add(storage, late, early)
        assert _read(storage, lambda tx: tx.list_receipts("acme", "cust-1")) == [
            early,
            late,
        ]
        assert _read(storage, lambda tx: tx.list_receipts("acme", "cust-2")) == []
        assert _read(storage, lambda tx: tx.list_receipts("beta", "cust-1")) == []

    def test_a_payments_receipt_is_read_by_its_payment(self, storage: Storage) -> None:
        """By the payment alone, or with its customer; a payment without one
        (or of another account) has none: an empty list."""
        _many_world(storage)
        first = _receipt("rcpt-1")
        other = _receipt(
            "rcpt-2",
            customer_id="cust-2",
            payment_id="pay-2",
            issued_at=_T0 - timedelta(hours=1),
        )
        _add(storage, first, other)
        with storage.transaction() as tx:
            assert tx.list_receipts("acme", payment_id="pay-1") == [first]
            assert tx.list_receipts("acme", "cust-1", payment_id="pay-1") == [first]
            assert tx.list_receipts("acme", payment_id="pay-2") == [other]
            assert tx.list_receipts("acme", "cust-1", payment_id="pay-2") == []
            assert tx.list_receipts("acme") == [other, first]
            assert tx.list_receipts("beta", payment_id="pay-1") == []
            assert tx.list_receipts("acme", payment_id="pay-beta") == []
            assert tx.list_receipts("acme", payment_id="nope") == []
            tx.add_payment(make_payment("pay-3"))
            assert tx.list_receipts("acme", payment_id="pay-3") == []
            for bad in ("", 7, ["pay-1"]):
                with pytest.raises(InvalidInputError, match="payment_id"):
                    tx.list_receipts("acme", payment_id=bad)  # type: ignore[arg-type]

    def test_receipt_of_another_accounts_payment_is_refused(
        self, storage: Storage
    ) -> None:
        _world(storage)
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: tx.add_receipt(_receipt(payment_id="pay-beta")),
                key="pay-beta",
                account="acme",
            )

    def test_an_id_with_a_nul_character_is_refused(self, storage: Storage) -> None:
        _world(storage)
        with storage.transaction() as tx, pytest.raises(InvalidInputError):
            tx.get_customer("acme", "cust\x00-1")

    def test_credit_notes_round_trip_and_filter_by_invoice(
        self, storage: Storage
    ) -> None:
        _world(storage)
        _add(storage, make_invoice("inv-2", number=2))
        first = _credit_note("cn-1", **_document_items())
        second = _credit_note(
            "cn-2",
            invoice_id="inv-2",
            number=2,
            amount=Money("0.001", "NOK"),
            issue_date=date(2025, 1, 11),
            lines=(),
        )
        _add(storage, first, second)
        with storage.transaction() as tx:
            assert tx.list_credit_notes("acme") == [first, second]
            assert tx.list_credit_notes("acme", invoice_id="inv-2") == [second]
            assert tx.list_credit_notes("beta") == []

    def test_a_credit_note_number_is_used_once_per_series(
        self, storage: Storage
    ) -> None:
        _world(storage)
        _add(storage, _credit_note("cn-1"))
        with storage.transaction() as tx:
            with pytest.raises(ConflictError):
                tx.add_credit_note(_credit_note("cn-2"))
            tx.add_credit_note(_credit_note("cn-3", series="CR"))  # another series
            tx.commit()
        with storage.transaction() as tx:
            assert [n.id for n in tx.list_credit_notes("acme")] == ["cn-1", "cn-3"]

    def test_credit_note_of_another_accounts_invoice_is_refused(
        self, storage: Storage
    ) -> None:
        _world(storage)
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: tx.add_credit_note(_credit_note(invoice_id="inv-beta")),
                key="inv-beta",
                account="acme",
            )

    def test_refunds_round_trip_oldest_first(self, storage: Storage) -> None:
        _world(storage)
        late = _refund("ref-1", created_at=_T0 + timedelta(minutes=1), reopen=True)
        early = _refund(
            "ref-2",
            amount=Money("100.005", "NOK"),
            status="succeeded",
            refund_id="re_123",
            created_at=datetime(2025, 1, 1, 10, tzinfo=_PLUS_TWO),  # 08:00 UTC
            reopen=False,
        )
        unknown = _refund("ref-3", created_at=_T0 + timedelta(minutes=2))
        _add(storage, late, early, unknown)
        assert _read(storage, lambda tx: tx.list_refunds("acme", "pay-1")) == [
            early,
            late,
            unknown,
        ]
        assert [r.reopen for r in (early, late, unknown)] == [False, True, None]
        assert _read(storage, lambda tx: tx.list_refunds("beta", "pay-1")) == []

    def test_refunds_of_an_account_by_status(self, storage: Storage) -> None:
        _world(storage)
        asked = _refund("ref-1", status="requested")
        done = _refund("ref-2", status="succeeded", idempotency_key="key-2")
        _add(storage, asked, done)
        read = _read(
            storage, lambda tx: tx.list_refunds("acme", statuses=["requested"])
        )
        assert read == [asked]
        assert _read(storage, lambda tx: tx.list_refunds("acme")) == [asked, done]
        assert _read(storage, lambda tx: tx.list_refunds("beta", statuses=[])) == []

    def test_refunds_leave_out_the_ids_to_skip(self, storage: Storage) -> None:
        _world(storage)
        _add(
            storage,
            _refund("ref-1", status="requested"),
            _refund("ref-2", created_at=_T0 + timedelta(hours=1)),
            _refund("ref-3", status="requested", created_at=_T0 + timedelta(hours=2)),
            _refund("ref-beta", account_id="beta", payment_id="pay-beta"),
        )
        with storage.transaction() as tx:
            every = _ids(tx.list_refunds("acme"))
            assert every == ["ref-1", "ref-2", "ref-3"]
            skipped = tx.list_refunds("acme", skip_ids=["ref-2", "ref-beta", "nope"])
            assert _ids(skipped) == ["ref-1", "ref-3"]
            asked = tx.list_refunds("acme", statuses=["requested"], skip_ids=("ref-1",))
            assert _ids(asked) == ["ref-3"]
            of_one = tx.list_refunds("acme", "pay-1", skip_ids=["ref-3"])
            assert _ids(of_one) == ["ref-1", "ref-2"]
            assert _ids(tx.list_refunds("acme", skip_ids=[])) == every
            odd = ["", "x" * 300]  # ids a row recurbill did not write may hold
            assert _ids(tx.list_refunds("acme", skip_ids=odd)) == every
            for bad in ("ref-1", ["ref-1", None], 7):
                with pytest.raises(InvalidInputError, match="skip_ids"):
                    tx.list_refunds("acme", skip_ids=bad)  # type: ignore[arg-type]

    def test_refund_update(self, storage: Storage) -> None:
        _world(storage)
        _add(storage, _refund("ref-1"))
        changed = _refund("ref-1", status="succeeded", refund_id="re_9")
        with storage.transaction() as tx:
            tx.update_refund(changed)
            tx.commit()
        assert _read(storage, lambda tx: tx.list_refunds("acme", "pay-1")) == [changed]

    def test_refund_of_another_account_is_not_found(self, storage: Storage) -> None:
        _world(storage)
        beta_refund = _refund("ref-beta", account_id="beta", payment_id="pay-beta")
        _add(storage, beta_refund)
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: tx.update_refund(
                    _refund("ref-beta", payment_id="pay-1", status="succeeded")
                ),
                key="ref-beta",
                account="acme",
            )
            assert tx.list_refunds("acme", "pay-beta") == []
            tx.commit()
        kept = _read(storage, lambda tx: tx.list_refunds("beta", "pay-beta"))
        assert kept == [beta_refund]

    def test_duplicate_refund_idempotency_key_conflicts(self, storage: Storage) -> None:
        _world(storage)
        _add(storage, _refund("ref-1", idempotency_key="refund-key"))
        with storage.transaction() as tx, pytest.raises(ConflictError):
            tx.add_refund(_refund("ref-2", idempotency_key="refund-key"))

    def test_duplicate_refund_id_conflicts_and_keeps_the_first(
        self, storage: Storage
    ) -> None:
        """What ``Billing.refund(refund_id=...)`` relies on when the same
        refund_id is given for another payment: its derived id is refused."""
        _world(storage)
        _add(storage, make_payment("pay-2"))
        first = _refund("ref-1", reopen=True)
        _add(storage, first)
        with storage.transaction() as tx, pytest.raises(ConflictError):
            tx.add_refund(
                _refund(
                    "ref-1", payment_id="pay-2", idempotency_key="other", reopen=False
                )
            )
        assert _read(storage, lambda tx: tx.list_refunds("acme")) == [first]

    def test_refund_of_another_accounts_payment_is_refused(
        self, storage: Storage
    ) -> None:
        _world(storage)
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: tx.add_refund(_refund(payment_id="pay-beta")),
                key="pay-beta",
                account="acme",
            )

    def test_credit_entries_round_trip_oldest_first(self, storage: Storage) -> None:
        _world(storage)
        late = _credit_entry("cred-1", created_at=_T0 + timedelta(seconds=1))
        early = _credit_entry(
            "cred-2",
            amount=Money("-3.333", "NOK"),
            reason="applied to INV-000002",
            source_id="inv-2",
            created_at=datetime(2025, 1, 1, 10, 59, tzinfo=_PLUS_TWO),  # 08:59 UTC
        )
        _add(storage, late, early)
        got = _read(storage, lambda tx: tx.list_credit_entries("acme", "cust-1"))
        assert got == [early, late]
        assert _read(storage, lambda tx: tx.list_credit_entries("beta", "cust-1")) == []

    def test_a_credit_entry_is_read_by_id_within_its_account(
        self, storage: Storage
    ) -> None:
        _world(storage)
        entry = _credit_entry("cred-2", customer_id="cust-2")
        _add(storage, entry)
        assert _read(storage, lambda tx: tx.get_credit_entry("acme", "cred-2")) == entry
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: tx.get_credit_entry("beta", "cred-2"),
                key="cred-2",
                account="beta",
            )
            _assert_not_found(
                lambda: tx.get_credit_entry("acme", "nope"), key="nope", account="acme"
            )

    def test_credit_entry_for_a_customer_of_another_account_is_refused(
        self, storage: Storage
    ) -> None:
        _world(storage)
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: tx.add_credit_entry(_credit_entry(customer_id="beta-1")),
                key="beta-1",
                account="acme",
            )

    # -- notifications -------------------------------------------------------

    def test_notification_round_trip(self, storage: Storage) -> None:
        _world(storage)
        notification = make_notification(
            "note-2",
            kind="receipt",
            recipient="Kari Nordmann <kari@example.no>",
            subject="Kvittering – 1 234,50 kr",
            text="Takk for betalingen.\n",
            html="<p>Takk for betalingen.</p>",
            status=NotificationStatus.FAILED,
            attempts=2,
            last_error="550 mailbox unavailable",
            headers={"Reply-To": "billing@acme.example", "X-Recurbill-Kind": "receipt"},
            created_at=datetime(2025, 1, 1, 11, tzinfo=_PLUS_TWO),
        )
        _add(storage, notification)
        assert _read(storage, lambda tx: tx.pending_notifications()) == [notification]
        with storage.transaction() as tx:
            assert tx.get_notification("acme", "note-2") == notification
            assert (
                tx.get_notification("acme", "note-2", for_update=True) == notification
            )

    def test_summary_lines_are_taken_once_oldest_first(self, storage: Storage) -> None:
        _world(storage)
        late, early, beta = (
            SummaryLines(id=i, account_id=a, lines=f'{{"n":"{i}"}}', created_at=t)
            for i, a, t in (
                ("sml-late", "acme", _T0 + timedelta(hours=1)),
                ("sml-early", "acme", _T0),
                ("sml-beta", "beta", _T0),
            )
        )
        with storage.transaction() as tx:
            tx.add_summary_lines([late, early, beta])
            tx.commit()
        with storage.transaction() as tx:  # rolled back: still stored
            assert tx.take_summary_lines(["acme"]) == [early, late]
        with storage.transaction() as tx:
            assert tx.take_summary_lines(["acme", "beta"]) == [beta, early, late]
            tx.commit()
        with storage.transaction() as tx:
            assert tx.take_summary_lines(["acme", "beta"]) == []
            with pytest.raises(ConflictError):
                tx.add_summary_lines([early, early])

    def test_pending_notifications_oldest_first_with_limit(
        self, storage: Storage
    ) -> None:
        _world(storage)
        _add(
            storage,
            make_notification("n-late", created_at=_T0 + timedelta(hours=1)),
            make_notification(
                "n-early",
                account_id="beta",
                created_at=datetime(2025, 1, 1, 10, tzinfo=_PLUS_TWO),  # 08:00 UTC
            ),
            make_notification("n-mid", status=NotificationStatus.FAILED),
            make_notification(
                "n-sent", status=NotificationStatus.SENT, sent_at=_T0, created_at=_T0
            ),
        )
        with storage.transaction() as tx:
            assert _ids(tx.pending_notifications()) == ["n-early", "n-mid", "n-late"]
            assert _ids(tx.pending_notifications(limit=2)) == ["n-early", "n-mid"]
            assert _ids(tx.pending_notifications(limit=1)) == ["n-early"]

    def test_pending_notifications_leave_out_the_ids_to_skip(
        self, storage: Storage
    ) -> None:
        _world(storage)
        _add(
            storage,
            *(
                make_notification(f"n-{n}", created_at=_T0 + timedelta(minutes=n))
                for n in range(4)
            ),
            make_notification(
                "n-beta", account_id="beta", created_at=_T0 - timedelta(minutes=1)
            ),
        )
        with storage.transaction() as tx:
            every = _ids(tx.pending_notifications())
            assert every == ["n-beta", "n-0", "n-1", "n-2", "n-3"]
            skipped = tx.pending_notifications(skip_ids=["n-1", "n-beta", "nope"])
            assert _ids(skipped) == ["n-0", "n-2", "n-3"]
            first = tx.pending_notifications(skip_ids=("n-beta", "n-0"), limit=2)
            assert _ids(first) == ["n-1", "n-2"]  # the limit counts what is returned
            assert _ids(tx.pending_notifications(skip_ids=[])) == every
            odd = ["", "x" * 300]  # ids a row recurbill did not write may hold
            assert _ids(tx.pending_notifications(skip_ids=odd)) == every
            for bad in ("n-1", ["n-1", None], 7):
                with pytest.raises(InvalidInputError, match="skip_ids"):
                    tx.pending_notifications(skip_ids=bad)  # type: ignore[arg-type]

    def test_sent_notification_leaves_the_queue(self, storage: Storage) -> None:
        _world(storage)
        _add(storage, make_notification("note-1"))
        sent = make_notification(
            "note-1", status=NotificationStatus.SENT, attempts=1, sent_at=_T0
        )
        with storage.transaction() as tx:
            tx.update_notification(sent)
            tx.commit()
        assert _read(storage, lambda tx: tx.pending_notifications()) == []

    def test_withdrawn_notification_leaves_the_queue(self, storage: Storage) -> None:
        _world(storage)
        _add(storage, make_notification("note-1"), make_notification("note-2"))
        withdrawn = make_notification(
            "note-1", status=NotificationStatus.WITHDRAWN, attempts=1
        )
        with storage.transaction() as tx:
            tx.update_notification(withdrawn)
            tx.commit()
        with storage.transaction() as tx:
            assert _ids(tx.pending_notifications()) == ["note-2"]
            assert tx.get_notification("acme", "note-1") == withdrawn

    def test_notification_of_another_account_is_not_found(
        self, storage: Storage
    ) -> None:
        _world(storage)
        _add(storage, make_notification("note-beta", account_id="beta"))
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: tx.update_notification(
                    make_notification("note-beta", status=NotificationStatus.SENT)
                ),
                key="note-beta",
                account="acme",
            )
            _assert_not_found(
                lambda: tx.get_notification("acme", "note-beta"),
                key="note-beta",
                account="acme",
            )
            tx.commit()
        pending = _read(storage, lambda tx: tx.pending_notifications())
        assert _ids(pending) == ["note-beta"]

    def test_duplicate_notification_id_conflicts(self, storage: Storage) -> None:
        _world(storage)
        _add(storage, make_notification("note-1"))
        with storage.transaction() as tx, pytest.raises(ConflictError):
            tx.add_notifications([make_notification("note-1")])

    def test_stored_headers_do_not_follow_the_callers_dict(
        self, storage: Storage
    ) -> None:
        _world(storage)
        headers = {"Reply-To": "billing@acme.example"}
        with storage.transaction() as tx:
            tx.add_notifications([make_notification("note-1", headers=headers)])
            tx.commit()
        headers["Reply-To"] = "attacker@example.com"
        stored = _read(storage, lambda tx: tx.pending_notifications())
        assert dict(stored[0].headers) == {"Reply-To": "billing@acme.example"}

    def test_pending_notifications_limit_below_one_is_refused(
        self, storage: Storage
    ) -> None:
        with storage.transaction() as tx, pytest.raises(InvalidInputError):
            tx.pending_notifications(limit=0)

    # -- webhook events ------------------------------------------------------

    def test_webhook_event_is_recorded_once(self, storage: Storage) -> None:
        with storage.transaction() as tx:
            assert tx.record_webhook_event("evt_1") is True
            assert tx.record_webhook_event("evt_1") is False
            assert tx.record_webhook_event("evt_2") is True
            tx.commit()
        with storage.transaction() as tx:
            assert tx.record_webhook_event("evt_1") is False

    def test_rolled_back_webhook_event_is_forgotten(self, storage: Storage) -> None:
        with storage.transaction() as tx:
            assert tx.record_webhook_event("evt_1") is True
        with storage.transaction() as tx:
            assert tx.record_webhook_event("evt_1") is True

    # -- many records at once --------------------------------------------------

    @pytest.mark.parametrize("read", sorted(_MANY_READS))
    def test_many_reads_return_records_in_the_order_asked(
        self, storage: Storage, read: str
    ) -> None:
        _many_world(storage)
        many, one, first, second, _ = _MANY_READS[read]
        with storage.transaction() as tx:
            got = many(tx, "acme", [second, first, second])
            assert _ids(got) == [second, first, second]
            assert got == [one(tx, "acme", key) for key in (second, first, second)]
            assert many(tx, "acme", (first,)) == [one(tx, "acme", first)]
            assert many(tx, "acme", []) == []
            assert many(tx, "acme", ()) == []

    @pytest.mark.parametrize("read", sorted(_MANY_READS))
    def test_many_reads_raise_for_the_first_missing_id(
        self, storage: Storage, read: str
    ) -> None:
        _many_world(storage)
        many, one, first, _, of_beta = _MANY_READS[read]
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: many(tx, "acme", [first, of_beta, "nope"]),
                key=of_beta,
                account="acme",
            )
            _assert_not_found(
                lambda: many(tx, "acme", [first, "nope", of_beta]),
                key="nope",
                account="acme",
            )
            _assert_not_found(
                lambda: many(tx, "beta", [of_beta, first]), key=first, account="beta"
            )
            assert many(tx, "beta", [of_beta]) == [one(tx, "beta", of_beta)]

    @pytest.mark.parametrize("read", sorted(_MANY_READS))
    def test_many_reads_refuse_what_is_not_a_list_of_ids(
        self, storage: Storage, read: str
    ) -> None:
        _many_world(storage)
        many, _, first, _, _ = _MANY_READS[read]
        with storage.transaction() as tx:
            for ids in _NOT_IDS.values():
                with pytest.raises(InvalidInputError):
                    many(tx, "acme", ids)
            bad_accounts: tuple[Any, ...] = ("", "ac\x00me", None)
            for account_id in bad_accounts:
                with pytest.raises(InvalidInputError):
                    many(tx, account_id, [first])
            assert _ids(many(tx, "acme", [first])) == [first]  # still usable

    def test_many_reads_and_writes_span_more_than_one_query(
        self, storage: Storage
    ) -> None:
        _world(storage)
        payments = [make_payment(f"pay-{n:04d}") for n in range(1234)]
        wanted = [p.id for p in reversed(payments)] + ["pay-0007", "pay-1"]
        paid = [
            make_payment(p.id, status=PaymentStatus.SUCCEEDED, charge_id=f"ch-{p.id}")
            for p in payments
        ]
        with storage.transaction() as tx:
            tx.add_payments(payments)
            tx.commit()
        with storage.transaction() as tx:
            got = tx.get_payments("acme", wanted)
            assert _ids(got) == wanted
            assert got[:-2] == payments[::-1]
            tx.update_payments(paid)
            tx.commit()
        with storage.transaction() as tx:
            assert tx.get_payments("acme", _ids(paid)) == paid
            _assert_not_found(
                lambda: tx.get_payments("acme", [*_ids(paid), "pay-beta"]),
                key="pay-beta",
                account="acme",
            )

    @pytest.mark.parametrize("write", sorted(_MANY_WRITES))
    def test_many_writes_of_nothing_write_nothing(
        self, storage: Storage, write: str
    ) -> None:
        _many_world(storage)
        _add(storage, _receipt("rcpt-1"))
        before = _snapshot(storage)
        call = _MANY_WRITES[write][0]
        with storage.transaction() as tx:
            call(tx, [])
            call(tx, ())
            tx.commit()
        assert _snapshot(storage) == before

    @pytest.mark.parametrize("write", sorted(_MANY_WRITES))
    def test_many_writes_refuse_what_is_not_a_list_of_records(
        self, storage: Storage, write: str
    ) -> None:
        _many_world(storage)
        before = _snapshot(storage)
        call, record = _MANY_WRITES[write]
        other = make_account("zeta") if write != "add_receipts" else make_payment()
        with storage.transaction() as tx:
            for records in ("pay-2", None, record, [record, other], {record}):
                with pytest.raises(InvalidInputError):
                    call(tx, records)
            tx.commit()
        assert _snapshot(storage) == before

    def test_update_templates_round_trip(self, storage: Storage) -> None:
        _world(storage)
        _add(storage, make_template("tpl-2", customer_id="cust-2"))
        as_of = datetime(2025, 3, 1, tzinfo=timezone.utc)
        later = make_template(
            "tpl-1",
            next_index=1,
            next_due_at=datetime(2025, 3, 1, 7, 15, tzinfo=_OSLO) + timedelta(days=31),
        )
        finished = make_template(
            "tpl-2",
            customer_id="cust-2",
            memo="Ended ÆØÅ",
            status=TemplateStatus.FINISHED,
            next_index=4,
            next_due_at=None,
            lines=(_line("0.001"), _line("99.99")),
            charges=_document_items()["charges"],
        )
        with storage.transaction() as tx:
            assert _ids(tx.due_templates(as_of, account_ids=["acme"])) == [
                "tpl-1",
                "tpl-2",
            ]
            tx.update_templates([finished, later])
            assert tx.due_templates(as_of, account_ids=["acme"]) == []
            tx.commit()
        with storage.transaction() as tx:
            assert tx.list_templates("acme") == [later, finished]
            assert tx.due_templates(as_of, account_ids=["acme"]) == []
            assert tx.get_template("beta", "tpl-beta") == make_template(
                "tpl-beta", account_id="beta", customer_id="beta-1"
            )

    def test_update_templates_is_all_or_none(self, storage: Storage) -> None:
        _world(storage)
        before = _snapshot(storage)
        changed = make_template("tpl-1", memo="changed")
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: tx.update_templates(
                    [changed, make_template("tpl-beta", memo="x")]
                ),
                key="tpl-beta",
                account="acme",
            )
            _assert_not_found(
                lambda: tx.update_templates([changed, make_template("nope")]),
                key="nope",
                account="acme",
            )
            _assert_not_found(  # the same id again, as if of another account
                lambda: tx.update_templates(
                    [
                        changed,
                        make_template("tpl-1", account_id="beta", customer_id="beta-1"),
                    ]
                ),
                key="tpl-1",
                account="beta",
            )
            _assert_not_found(
                lambda: tx.update_templates(
                    [changed, make_template("tpl-1", customer_id="beta-1")]
                ),
                key="beta-1",
                account="acme",
            )
            assert tx.get_template("acme", "tpl-1").memo == ""
            tx.commit()
        assert _snapshot(storage) == before

    def test_update_invoices_round_trip(self, storage: Storage) -> None:
        _many_world(storage)
        paid = make_invoice(
            "inv-1",
            status=InvoiceStatus.PAID,
            paid=Money("125.000000000000000001", "NOK"),
            paid_at=datetime(2025, 1, 5, 12, tzinfo=_PLUS_TWO),
            memo="Betalt – takk",
        )
        renumbered = make_invoice(
            "inv-2",
            customer_id="cust-2",
            series="F",
            number=2,
            credited=Money("-0.01", "NOK"),
            due_date=date(2025, 2, 1),
            **_document_items(),
        )
        with storage.transaction() as tx:
            tx.update_invoices([renumbered, paid])
            assert tx.get_invoices("acme", ["inv-1", "inv-2"]) == [paid, renumbered]
            tx.commit()
        with storage.transaction() as tx:
            assert tx.get_invoices("acme", ["inv-1", "inv-2"]) == [paid, renumbered]
            assert tx.get_invoice("beta", "inv-beta") == make_invoice(
                "inv-beta", account_id="beta", customer_id="beta-1"
            )

    def test_update_invoices_with_an_unknown_id_changes_none(
        self, storage: Storage
    ) -> None:
        _many_world(storage)
        before = _snapshot(storage)
        changed = make_invoice("inv-1", memo="changed", number=10)
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: tx.update_invoices([changed, make_invoice("nope", number=50)]),
                key="nope",
                account="acme",
            )
            _assert_not_found(
                lambda: tx.update_invoices(
                    [changed, make_invoice("inv-beta", number=99, memo="stolen")]
                ),
                key="inv-beta",
                account="acme",
            )
            _assert_not_found(
                lambda: tx.update_invoices(
                    [changed, make_invoice("inv-2", number=2, customer_id="beta-1")]
                ),
                key="beta-1",
                account="acme",
            )
            assert tx.get_invoice("acme", "inv-1") == make_invoice("inv-1")
            tx.add_invoices([make_invoice("inv-3", number=10)])  # 10 is still free
            tx.commit()
        after = _snapshot(storage)
        assert _ids(after.pop("invoices")) == ["inv-1", "inv-2", "inv-3", "inv-beta"]
        before.pop("invoices")
        assert after == before

    def test_update_invoices_that_would_duplicate_a_number_conflict(
        self, storage: Storage
    ) -> None:
        _many_world(storage)
        _add(storage, make_invoice("inv-3", number=3))
        before = _snapshot(storage)
        with storage.transaction() as tx:
            with pytest.raises(ConflictError):  # a number taken in the database
                tx.update_invoices(
                    [make_invoice("inv-3", memo="x"), make_invoice("inv-2", number=1)]
                )
            with pytest.raises(ConflictError):  # one number twice in the batch
                tx.update_invoices(
                    [make_invoice("inv-2", number=7), make_invoice("inv-3", number=7)]
                )
            assert [i.number for i in tx.list_invoices("acme")] == [1, 2, 3]
            assert tx.get_invoice("acme", "inv-3").memo == ""
            tx.commit()
        assert _snapshot(storage) == before
        with storage.transaction() as tx:  # the transaction stays usable
            with pytest.raises(ConflictError):
                tx.update_invoices([make_invoice("inv-3", number=2)])
            tx.update_invoices([make_invoice("inv-3", number=3, memo="kept")])
            tx.commit()
        assert _read(storage, lambda tx: tx.get_invoice("acme", "inv-3")).memo == "kept"

    def test_update_invoices_in_order_may_reuse_a_number_the_batch_frees(
        self, storage: Storage
    ) -> None:
        _many_world(storage)
        moved = make_invoice("inv-1", number=9)
        taken = make_invoice("inv-2", customer_id="cust-2", number=1)
        with storage.transaction() as tx:
            tx.update_invoices([moved, taken])
            tx.commit()
        got = _read(storage, lambda tx: tx.get_invoices("acme", ["inv-1", "inv-2"]))
        assert got == [moved, taken]

    def test_update_invoices_for_one_occurrence_twice_conflicts(
        self, storage: Storage
    ) -> None:
        _many_world(storage)
        _add(
            storage,
            make_invoice("inv-3", number=3, template_id="tpl-1", occurrence_index=0),
        )
        before = _snapshot(storage)
        with storage.transaction() as tx:
            with pytest.raises(ConflictError):
                tx.update_invoices(
                    [
                        make_invoice("inv-1", memo="x"),
                        make_invoice(
                            "inv-2", number=2, template_id="tpl-1", occurrence_index=0
                        ),
                    ]
                )
            tx.commit()
        assert _snapshot(storage) == before

    def test_add_payments_round_trip(self, storage: Storage) -> None:
        _world(storage)
        rich = make_payment(
            "pay-3",
            customer_id="cust-2",
            amount=Money("1234.5678", "NOK"),
            payment_method_id="pm-9",
            invoice_ids=("inv-1", "inv-7"),
            status=PaymentStatus.REQUIRES_ACTION,
            off_session=False,
            attempt=2,
            settlement_id="set-1",
            charge_id="pi_123",
            decline_code="authentication_required",
            client_secret="pi_123_secret_abc",
            refunded=Money("0.01", "NOK"),
            created_at=datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=_OSLO),
        )
        plain = make_payment("pay-2")
        with storage.transaction() as tx:
            tx.add_payments([rich, plain])
            tx.commit()
        with storage.transaction() as tx:
            assert tx.get_payments("acme", ["pay-2", "pay-3"]) == [plain, rich]
            assert _ids(tx.list_payments("acme")) == ["pay-1", "pay-2", "pay-3"]

    def test_add_payments_is_all_or_none(self, storage: Storage) -> None:
        _world(storage)
        batch = [make_payment("pay-2"), make_payment("pay-3")]
        with storage.transaction() as tx:
            with pytest.raises(ConflictError):  # the 3rd has a key stored already
                tx.add_payments(
                    [*batch, make_payment("pay-4", idempotency_key="recurbill-pay-1")]
                )
            with pytest.raises(ConflictError):  # one key twice in the batch
                tx.add_payments(
                    [*batch, make_payment("pay-4", idempotency_key="recurbill-pay-2")]
                )
            with pytest.raises(ConflictError):  # an id stored already
                tx.add_payments([*batch, make_payment("pay-1", idempotency_key="k")])
            _assert_not_found(
                lambda: tx.add_payments(
                    [*batch, make_payment("pay-4", customer_id="beta-1")]
                ),
                key="beta-1",
                account="acme",
            )
            _assert_not_found(
                lambda: tx.get_payments("acme", ["pay-1", "pay-2"]),
                key="pay-2",
                account="acme",
            )
            tx.add_payments([make_payment("pay-5")])  # still usable
            tx.commit()
        with storage.transaction() as tx:
            assert _ids(tx.list_payments("acme")) == ["pay-1", "pay-5"]
            assert tx.list_payments("beta") == [
                make_payment(
                    "pay-beta",
                    account_id="beta",
                    customer_id="beta-1",
                    payment_method_id="pm-beta",
                    invoice_ids=("inv-beta",),
                )
            ]

    def test_update_payments_round_trip(self, storage: Storage) -> None:
        _many_world(storage)
        succeeded = make_payment(
            "pay-1",
            status=PaymentStatus.SUCCEEDED,
            charge_id="ch_1",
            updated_at=_T0 + timedelta(seconds=2),
        )
        retried = make_payment(
            "pay-2",
            customer_id="cust-2",
            invoice_ids=("inv-2",),
            idempotency_key="recurbill-pay-2-attempt-2",
            attempt=2,
            status=PaymentStatus.FAILED_UNKNOWN,
            error_code="timeout",
        )
        with storage.transaction() as tx:
            tx.update_payments([retried, succeeded])
            tx.commit()
        with storage.transaction() as tx:
            assert tx.get_payments("acme", ["pay-1", "pay-2"]) == [succeeded, retried]
            tx.add_payments([make_payment("pay-3", idempotency_key="recurbill-pay-2")])
            tx.commit()  # the old key of pay-2 is free again

    def test_update_payments_is_all_or_none(self, storage: Storage) -> None:
        _many_world(storage)
        before = _snapshot(storage)
        changed = make_payment("pay-1", status=PaymentStatus.SUCCEEDED)
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: tx.update_payments(
                    [changed, make_payment("pay-beta", status=PaymentStatus.SUCCEEDED)]
                ),
                key="pay-beta",
                account="acme",
            )
            _assert_not_found(
                lambda: tx.update_payments([changed, make_payment("nope")]),
                key="nope",
                account="acme",
            )
            with pytest.raises(ConflictError):  # a key another payment holds
                tx.update_payments(
                    [
                        changed,
                        make_payment(
                            "pay-2",
                            customer_id="cust-2",
                            invoice_ids=("inv-2",),
                            idempotency_key="recurbill-pay-1",
                        ),
                    ]
                )
            assert tx.get_payment("acme", "pay-1").status is PaymentStatus.PENDING
            tx.commit()
        assert _snapshot(storage) == before

    def test_add_receipts_round_trip(self, storage: Storage) -> None:
        _many_world(storage)
        late = _receipt(
            "rcpt-1",
            issued_at=_T0 + timedelta(hours=1),
            paid_at=_T0 - timedelta(days=2),
        )
        early = _receipt(
            "rcpt-2",
            number="R-2",
            amount=Money("130.00", "NOK"),
            credit=Money("5.00", "NOK"),
            issued_at=datetime(2025, 1, 1, 10, 30, tzinfo=_PLUS_TWO),  # 08:30 UTC
            paid_at=datetime(2025, 1, 1, 1, 15, 30, 250, tzinfo=_PLUS_TWO),
        )
        other = _receipt("rcpt-3", customer_id="cust-2", payment_id="pay-2")
        with storage.transaction() as tx:
            tx.add_receipts([late, other, early])
            tx.commit()
        with storage.transaction() as tx:
            assert tx.list_receipts("acme", "cust-1") == [early, late]
            assert tx.list_receipts("acme", "cust-2") == [other]

    def test_add_receipts_is_all_or_none(self, storage: Storage) -> None:
        _many_world(storage)
        _add(storage, _receipt("rcpt-1"))
        before = _snapshot(storage)
        fresh = _receipt("rcpt-2", number="R-2")
        with storage.transaction() as tx:
            _assert_not_found(
                lambda: tx.add_receipts([fresh, _receipt("rcpt-3", payment_id="nope")]),
                key="nope",
                account="acme",
            )
            _assert_not_found(
                lambda: tx.add_receipts(
                    [fresh, _receipt("rcpt-3", payment_id="pay-beta")]
                ),
                key="pay-beta",
                account="acme",
            )
            _assert_not_found(
                lambda: tx.add_receipts(
                    [fresh, _receipt("rcpt-3", customer_id="beta-1")]
                ),
                key="beta-1",
                account="acme",
            )
            with pytest.raises(ConflictError):  # an id stored already
                tx.add_receipts([fresh, _receipt("rcpt-1")])
            with pytest.raises(ConflictError):  # one id twice in the batch
                tx.add_receipts([fresh, _receipt("rcpt-2", number="R-3")])
            assert tx.list_receipts("acme", "cust-1") == [_receipt("rcpt-1")]
            tx.commit()
        assert _snapshot(storage) == before

    def test_due_templates_for_update_returns_the_same(self, storage: Storage) -> None:
        _world(storage)
        as_of = datetime(2025, 3, 1, tzinfo=timezone.utc)
        _add(
            storage,
            *(make_template(f"tpl-{c}") for c in "abcde"),
            make_template("tpl-later", next_due_at=as_of + timedelta(seconds=1)),
            make_template("tpl-done", status=TemplateStatus.FINISHED),
        )
        calls: list[dict[str, Any]] = [
            {},
            {"account_ids": ["acme"]},
            {"account_ids": ["beta"], "limit": 1},
            {"account_ids": []},
            {"after": (make_template().next_due_at, "tpl-b"), "limit": 2},
            {"after": (make_template().next_due_at, "tpl-z")},
        ]
        with storage.transaction() as tx:
            for call in calls:
                plain = tx.due_templates(as_of, **call)
                locked = tx.due_templates(as_of, for_update=True, **call)
                assert locked == plain, call
                assert tx.due_templates(as_of, for_update=True, **call) == plain
                skipping = tx.due_templates(
                    as_of, for_update=True, skip_locked=True, **call
                )
                assert skipping == plain, call  # its own locks are not skipped
            streamed: list[str] = []
            after: tuple[datetime, str] | None = None
            while chunk := tx.due_templates(
                as_of, after=after, limit=2, for_update=True
            ):
                streamed.extend(_ids(chunk))
                after = _cursor(chunk[-1])
        assert streamed == sorted([*(f"tpl-{c}" for c in "1abcde"), "tpl-beta"])

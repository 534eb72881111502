"""``InMemoryStorage``: the storage port in a Python process, for tests.

It keeps the promises of :mod:`recurbill.storage.protocol` exactly, so tests
written against it hold against a database too:

- One lock, held by a transaction from ``with`` to the end of the block (like
  SQLite's write lock): transactions run one after another, which also keeps
  invoice numbers gapless.
- Writes are applied as they are made and undone (newest first) unless
  ``commit()`` was called, so a transaction reads its own writes and a rolled
  back one leaves no trace, allocated invoice numbers included.
- Each write call is atomic: when it raises (``ConflictError``,
  ``NotFoundError``), nothing of that call was written and the transaction
  stays usable.
- Every read and write is scoped by account; ids of another account are
  ``NotFoundError``. Ids, payment and refund idempotency keys and webhook
  event ids are unique across all accounts.

>>> storage = InMemoryStorage()
>>> with storage.transaction() as tx:
...     tx.list_account_ids()
[]
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from types import MappingProxyType
from typing import Any, TypeVar

import attrs

from recurbill.errors import (
    ConflictError,
    NotFoundError,
    StateError,
)
from recurbill.records import (
    UNSENT,
    Account,
    CreditEntry,
    CreditNoteRecord,
    Customer,
    Invoice,
    InvoiceStatus,
    Notification,
    OccurrenceRecord,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Receipt,
    RecurringTemplate,
    Refund,
    Settlement,
    SettlementStatus,
    SummaryLines,
    TemplateStatus,
)
from recurbill.storage.checks import account_ids as _account_ids
from recurbill.storage.checks import aware as _aware
from recurbill.storage.checks import due_after as _due_after
from recurbill.storage.checks import flag as _flag
from recurbill.storage.checks import id_in_use as _id_in_use
from recurbill.storage.checks import ids as _ids
from recurbill.storage.checks import invoice_of_account as _invoice_of_account
from recurbill.storage.checks import invoice_status as _invoice_status
from recurbill.storage.checks import optional_text as _optional_text
from recurbill.storage.checks import payment_statuses as _payment_statuses
from recurbill.storage.checks import positive as _positive
from recurbill.storage.checks import record as _record
from recurbill.storage.checks import records as _records
from recurbill.storage.checks import stored_ids as _stored_ids
from recurbill.storage.checks import text as _text
from recurbill.storage.checks import unlocked as _unlocked
from recurbill.storage.checks import writes
from recurbill.storage.protocol import Transaction

__all__ = ["InMemoryStorage"]

_R = TypeVar("_R")
_K = TypeVar("_K")
_V = TypeVar("_V")
_MISSING: Any = object()


def _frozen(record: _R) -> _R:
    """*record* with list fields as tuples and mapping fields as read-only copies.

    Records are frozen, but a caller may still hand in a list or a dict it
    keeps changing; what storage keeps must not alias it.
    """
    changes: dict[str, object] = {}
    for field in attrs.fields(type(record)):  # type: ignore[arg-type]
        if not field.init:
            continue
        value = getattr(record, field.name)
        if isinstance(value, list):
            changes[field.alias] = tuple(value)
        elif isinstance(value, Mapping) and not isinstance(value, MappingProxyType):
            changes[field.alias] = MappingProxyType(dict(value))
    return attrs.evolve(record, **changes) if changes else record  # type: ignore[misc]


def _conflict(problem: str, allowed: str) -> ConflictError:
    return ConflictError(problem=f"{problem} (nothing was written)", allowed=allowed)


class _State:
    """The committed tables and the indexes that enforce uniqueness."""

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.customers: dict[str, Customer] = {}
        self.methods: dict[str, PaymentMethod] = {}
        self.templates: dict[str, RecurringTemplate] = {}
        self.occurrences: dict[tuple[str, int], OccurrenceRecord] = {}
        self.invoices: dict[str, Invoice] = {}
        self.invoice_numbers: dict[tuple[str, str, int], str] = {}
        self.invoice_occurrences: dict[tuple[str, int], str] = {}
        self.counters: dict[tuple[str, str], int] = {}
        self.payments: dict[str, Payment] = {}
        self.payment_keys: dict[str, str] = {}
        self.settlements: dict[str, Settlement] = {}
        self.pending_selections: dict[tuple[str, str], str] = {}
        self.receipts: dict[str, Receipt] = {}
        self.credit_notes: dict[str, CreditNoteRecord] = {}
        self.refunds: dict[str, Refund] = {}
        self.refund_keys: dict[str, str] = {}
        self.credit_entries: dict[str, CreditEntry] = {}
        self.notifications: dict[str, Notification] = {}
        self.webhook_events: dict[str, None] = {}
        self.summary_lines: dict[str, SummaryLines] = {}


class InMemoryStorage:
    """The storage port kept in memory: one lock, real unit-of-work semantics.

    For tests: recurbill's own and yours. Safe to share between threads;
    transactions run one at a time. Opening a second transaction in a thread
    that already holds one raises :class:`~recurbill.errors.StateError` (it
    would wait for itself forever).
    """

    def __init__(self) -> None:
        self._state = _State()
        self._lock = threading.Lock()
        self._owner: int | None = None

    def transaction(
        self, *, read_only: bool = False
    ) -> AbstractContextManager[Transaction]:
        """Open a unit of work; leaving it without ``commit()`` rolls back.

        ``read_only=True``: write calls and locking reads raise
        ``StateError`` (one unit of work runs at a time here all the same).
        """
        return self._transaction(_flag("read_only", read_only))

    @contextmanager
    def _transaction(self, read_only: bool) -> Iterator[Transaction]:
        me = threading.get_ident()
        if self._owner == me:
            raise StateError(
                problem="a transaction is already open in this thread",
                allowed="finish it before opening another (they would deadlock)",
            )
        with self._lock:
            self._owner = me
            tx = _MemoryTransaction(self._state, read_only=read_only)
            try:
                yield tx
            finally:
                tx._close()
                self._owner = None


class _MemoryTransaction:
    """One unit of work: writes go straight to the tables with an undo log."""

    def __init__(self, state: _State, *, read_only: bool) -> None:
        self._s = state
        self._undo: list[Callable[[], None]] = []
        self._open = True
        self._read_only = read_only

    @property
    def read_only(self) -> bool:
        """Whether this unit of work was opened ``read_only``."""
        return self._read_only

    # -- machinery ---------------------------------------------------------

    def _close(self) -> None:
        self._rollback_to(0)
        self._open = False

    def _rollback_to(self, mark: int) -> None:
        while len(self._undo) > mark:
            self._undo.pop()()

    def _check_open(self) -> None:
        if not self._open:
            raise StateError(
                problem="the transaction is closed",
                allowed="use a transaction only inside its with block",
            )

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One atomic write call: on any error, undo what it did so far."""
        self._check_open()
        mark = len(self._undo)
        try:
            yield
        except BaseException:
            self._rollback_to(mark)
            raise

    def _put(self, table: dict[_K, _V], key: _K, value: _V) -> None:
        old = table.get(key, _MISSING)
        table[key] = value
        if old is _MISSING:
            self._undo.append(lambda: table.__delitem__(key))
        else:
            self._undo.append(lambda: table.__setitem__(key, old))

    def _pop(self, table: dict[_K, _V], key: _K) -> None:
        old = table.pop(key)
        self._undo.append(lambda: table.__setitem__(key, old))

    def _scoped(self, table: dict[str, _R], kind: str, account_id: str, key: str) -> _R:
        _text("account_id", account_id)
        _text(f"{kind} id", key)
        record = table.get(key)
        if record is None or getattr(record, "account_id") != account_id:  # noqa: B009
            raise NotFoundError(kind=kind, key=key, account=account_id)
        return record

    def _scoped_many(
        self, table: dict[str, _R], kind: str, account_id: str, keys: object
    ) -> list[_R]:
        self._check_open()
        _text("account_id", account_id)
        return [
            self._scoped(table, kind, account_id, key)
            for key in _ids(f"{kind} ids", keys)
        ]

    def _each(
        self, name: str, values: object, kind: type[_R], write: Callable[[_R], None]
    ) -> None:
        """*write* each record of *values*, all or none (one atomic call)."""
        records = _records(name, values, kind)
        with self._write():
            for record in records:
                write(record)

    def _need_account(self, account_id: str) -> None:
        if account_id not in self._s.accounts:
            raise NotFoundError(kind="account", key=account_id, account=account_id)

    def _need_customer(self, account_id: str, customer_id: str) -> None:
        self._need_account(account_id)
        self._scoped(self._s.customers, "customer", account_id, customer_id)

    def _new_id(self, table: Mapping[str, object], kind: str, key: str) -> None:
        if key in table:
            raise _conflict(
                f"{kind} id {key!r} exists already", "give each new record an unused id"
            )

    def _new_chosen_id(self, table: Mapping[str, object], kind: str, key: str) -> None:
        """Refuse an account, customer or template id in use in any account."""
        if key in table:
            raise _id_in_use(kind, key)

    def commit(self) -> None:
        """Make every write so far durable; later writes need another commit."""
        self._check_open()
        self._undo.clear()

    # -- accounts ------------------------------------------------------------

    @writes
    def add_account(self, account: Account) -> None:
        """Store a new account (ConflictError if the id exists)."""
        account = _frozen(_record("account", account, Account))
        with self._write():
            self._new_chosen_id(self._s.accounts, "account", account.id)
            self._put(self._s.accounts, account.id, account)

    def get_account(self, account_id: str, *, for_update: bool = False) -> Account:
        """The account with this id (every transaction holds the lock)."""
        _unlocked(self, for_update)
        self._check_open()
        _text("account_id", account_id)
        self._need_account(account_id)
        return self._s.accounts[account_id]

    @writes
    def update_account(self, account: Account) -> None:
        """Replace a stored account."""
        account = _frozen(_record("account", account, Account))
        with self._write():
            self._need_account(account.id)
            self._put(self._s.accounts, account.id, account)

    def list_account_ids(self) -> list[str]:
        """Ids of every account, sorted."""
        self._check_open()
        return sorted(self._s.accounts)

    # -- customers -----------------------------------------------------------

    @writes
    def add_customer(self, customer: Customer) -> None:
        """Store a new customer of ``customer.account_id``."""
        customer = _frozen(_record("customer", customer, Customer))
        with self._write():
            self._need_account(customer.account_id)
            self._new_chosen_id(self._s.customers, "customer", customer.id)
            self._put(self._s.customers, customer.id, customer)

    def get_customer(
        self, account_id: str, customer_id: str, *, for_update: bool = False
    ) -> Customer:
        """A customer of this account (every transaction holds the lock)."""
        _unlocked(self, for_update)
        self._check_open()
        return self._scoped(self._s.customers, "customer", account_id, customer_id)

    def get_customers(
        self, account_id: str, customer_ids: Sequence[str]
    ) -> list[Customer]:
        """Customers of this account, in the order of *customer_ids*."""
        return self._scoped_many(
            self._s.customers, "customer", account_id, customer_ids
        )

    @writes
    def update_customer(self, customer: Customer) -> None:
        """Replace a stored customer."""
        customer = _frozen(_record("customer", customer, Customer))
        with self._write():
            self._need_customer(customer.account_id, customer.id)
            self._put(self._s.customers, customer.id, customer)

    def list_customers(self, account_id: str) -> list[Customer]:
        """Every customer of this account, sorted by id."""
        self._check_open()
        _text("account_id", account_id)
        found = [c for c in self._s.customers.values() if c.account_id == account_id]
        return sorted(found, key=lambda c: c.id)

    # -- payment methods -----------------------------------------------------

    @writes
    def add_payment_method(self, method: PaymentMethod) -> None:
        """Store a saved card (token and display facts only)."""
        method = _frozen(_record("method", method, PaymentMethod))
        with self._write():
            self._need_customer(method.account_id, method.customer_id)
            self._new_id(self._s.methods, "payment method", method.id)
            self._put(self._s.methods, method.id, method)

    def get_payment_method(self, account_id: str, method_id: str) -> PaymentMethod:
        """A saved card of this account."""
        self._check_open()
        return self._scoped(self._s.methods, "payment method", account_id, method_id)

    def get_payment_methods(
        self, account_id: str, method_ids: Sequence[str]
    ) -> list[PaymentMethod]:
        """Saved cards of this account, in the order of *method_ids*."""
        return self._scoped_many(
            self._s.methods, "payment method", account_id, method_ids
        )

    def list_payment_methods(
        self, account_id: str, customer_id: str
    ) -> list[PaymentMethod]:
        """The customer's saved cards, sorted by id."""
        self._check_open()
        _text("account_id", account_id)
        _text("customer_id", customer_id)
        found = [
            m
            for m in self._s.methods.values()
            if m.account_id == account_id and m.customer_id == customer_id
        ]
        return sorted(found, key=lambda m: m.id)

    @writes
    def remove_payment_method(self, account_id: str, method_id: str) -> None:
        """Forget a saved card."""
        with self._write():
            self._scoped(self._s.methods, "payment method", account_id, method_id)
            self._pop(self._s.methods, method_id)

    # -- recurring templates -------------------------------------------------

    @writes
    def add_template(self, template: RecurringTemplate) -> None:
        """Store a new recurring template."""
        template = _frozen(_record("template", template, RecurringTemplate))
        with self._write():
            self._need_customer(template.account_id, template.customer_id)
            self._new_chosen_id(self._s.templates, "template", template.id)
            self._put(self._s.templates, template.id, template)

    def get_template(
        self, account_id: str, template_id: str, *, for_update: bool = False
    ) -> RecurringTemplate:
        """A template; ``for_update`` locks it (every transaction holds the lock)."""
        _unlocked(self, for_update)
        self._check_open()
        return self._scoped(self._s.templates, "template", account_id, template_id)

    @writes
    def update_template(self, template: RecurringTemplate) -> None:
        """Replace a stored template."""
        template = _frozen(_record("template", template, RecurringTemplate))
        with self._write():
            self._scoped(
                self._s.templates, "template", template.account_id, template.id
            )
            self._need_customer(template.account_id, template.customer_id)
            self._put(self._s.templates, template.id, template)

    @writes
    def update_templates(self, templates: Sequence[RecurringTemplate]) -> None:
        """Replace stored templates, all or none."""
        self._each("templates", templates, RecurringTemplate, self.update_template)

    def list_templates(
        self,
        account_id: str,
        *,
        customer_id: str | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> list[RecurringTemplate]:
        """Templates of an account (optionally of one customer), sorted by id;
        with ``after`` only those whose id sorts after it, at most ``limit``."""
        self._check_open()
        _text("account_id", account_id)
        customer_id = _optional_text("customer_id", customer_id)
        after = _optional_text("after", after)
        limit = None if limit is None else _positive("limit", limit)
        found = sorted(
            (
                t
                for t in self._s.templates.values()
                if t.account_id == account_id
                and (customer_id is None or t.customer_id == customer_id)
                and (after is None or t.id > after)
            ),
            key=lambda t: t.id,
        )
        return found[:limit]

    def due_templates(
        self,
        as_of: datetime,
        *,
        account_ids: Sequence[str] | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 500,
        for_update: bool = False,
        skip_locked: bool = False,
        skip_ids: Sequence[str] = (),
    ) -> list[RecurringTemplate]:
        """One chunk of active templates with ``next_due_at <= as_of``.

        Sorted by ``(next_due_at, id)`` and starting after ``after`` (that
        pair of the previous chunk's last template), at most ``limit`` of
        them, none of ``skip_ids``. Every transaction holds the lock, so
        ``for_update`` and ``skip_locked`` change nothing here.
        """
        _unlocked(self, for_update)
        self._check_open()
        _aware("as_of", as_of)
        _positive("limit", limit)
        accounts = _account_ids(account_ids)
        start = _due_after(after)
        skipped = set(_stored_ids("skip_ids", skip_ids))
        due = [
            template
            for template in self._s.templates.values()
            if template.status is TemplateStatus.ACTIVE
            and template.next_due_at is not None
            and template.next_due_at <= as_of
            and (accounts is None or template.account_id in accounts)
            and (start is None or (template.next_due_at, template.id) > start)
            and template.id not in skipped
        ]
        return heapq.nsmallest(limit, due, key=lambda t: (t.next_due_at, t.id))

    # -- occurrences ---------------------------------------------------------

    @writes
    def add_occurrences(self, occurrences: Sequence[OccurrenceRecord]) -> None:
        """Store handled occurrences; ConflictError if (template, index) exists."""
        records = _records("occurrences", occurrences, OccurrenceRecord)
        with self._write():
            for record in records:
                self._scoped(
                    self._s.templates, "template", record.account_id, record.template_id
                )
                key = (record.template_id, record.index)
                if key in self._s.occurrences:
                    raise _conflict(
                        f"occurrence {record.index} of template "
                        f"{record.template_id!r} is recorded already",
                        "record each occurrence of a template once (another run "
                        "handled it: roll back and move on)",
                    )
                self._put(self._s.occurrences, key, _frozen(record))

    def list_occurrences(
        self, account_id: str, template_id: str
    ) -> list[OccurrenceRecord]:
        """What the runs did with a template's occurrences, by index."""
        self._check_open()
        _text("account_id", account_id)
        _text("template_id", template_id)
        found = [
            o
            for (tid, _), o in self._s.occurrences.items()
            if tid == template_id and o.account_id == account_id
        ]
        return sorted(found, key=lambda o: o.index)

    # -- invoices ------------------------------------------------------------

    @writes
    def allocate_invoice_numbers(
        self, account_id: str, series: str, *, count: int = 1
    ) -> int:
        """Reserve ``count`` consecutive numbers of a series; return the first.

        Numbers start at 1. A rolled-back transaction gives its numbers back.
        """
        _text("account_id", account_id)
        _text("series", series)
        _positive("count", count)
        with self._write():
            self._need_account(account_id)
            key = (account_id, series)
            first = self._s.counters.get(key, 0) + 1
            self._put(self._s.counters, key, first + count - 1)
        return first

    @writes
    def lock_invoice_numbers(self, account_id: str, series: str) -> int:
        """The number the series' next allocation returns, reserving none
        (the transaction holds the one lock already)."""
        _text("account_id", account_id)
        _text("series", series)
        self._check_open()
        self._need_account(account_id)
        return self._s.counters.get((account_id, series), 0) + 1

    def _check_invoice(self, invoice: Invoice) -> None:
        self._need_customer(invoice.account_id, invoice.customer_id)
        if invoice.template_id is not None:
            self._scoped(
                self._s.templates, "template", invoice.account_id, invoice.template_id
            )
        number = (invoice.account_id, invoice.series, invoice.number)
        holder = self._s.invoice_numbers.get(number)
        if holder is not None and holder != invoice.id:
            raise _conflict(
                f"invoice number {invoice.series}-{invoice.number} of account "
                f"{invoice.account_id!r} is taken",
                "take numbers from allocate_invoice_numbers() in the same transaction",
            )
        if invoice.template_id is not None and invoice.occurrence_index is not None:
            occurrence = (invoice.template_id, invoice.occurrence_index)
            holder = self._s.invoice_occurrences.get(occurrence)
            if holder is not None and holder != invoice.id:
                raise _conflict(
                    f"occurrence {invoice.occurrence_index} of template "
                    f"{invoice.template_id!r} has an invoice already",
                    "issue one invoice per occurrence of a template",
                )

    def _index_invoice(self, invoice: Invoice, *, old: Invoice | None) -> None:
        if old is not None:
            self._pop(self._s.invoice_numbers, (old.account_id, old.series, old.number))
            if old.template_id is not None and old.occurrence_index is not None:
                self._pop(
                    self._s.invoice_occurrences,
                    (old.template_id, old.occurrence_index),
                )
        number = (invoice.account_id, invoice.series, invoice.number)
        self._put(self._s.invoice_numbers, number, invoice.id)
        if invoice.template_id is not None and invoice.occurrence_index is not None:
            occurrence = (invoice.template_id, invoice.occurrence_index)
            self._put(self._s.invoice_occurrences, occurrence, invoice.id)
        self._put(self._s.invoices, invoice.id, invoice)

    @writes
    def add_invoices(self, invoices: Sequence[Invoice]) -> None:
        """Store new invoices; ConflictError on a duplicate id, (series, number)
        or (template, occurrence index)."""
        records = [_frozen(i) for i in _records("invoices", invoices, Invoice)]
        with self._write():
            for invoice in records:
                self._new_id(self._s.invoices, "invoice", invoice.id)
                self._check_invoice(invoice)
                self._index_invoice(invoice, old=None)

    def get_invoice(
        self, account_id: str, invoice_id: str, *, for_update: bool = False
    ) -> Invoice:
        """An invoice; ``for_update`` locks it (every transaction holds the lock)."""
        _unlocked(self, for_update)
        self._check_open()
        return self._scoped(self._s.invoices, "invoice", account_id, invoice_id)

    def get_invoices(
        self,
        account_id: str,
        invoice_ids: Sequence[str],
        *,
        for_update: bool = False,
    ) -> list[Invoice]:
        """Invoices of this account, in the order of *invoice_ids*."""
        _unlocked(self, for_update)
        return self._scoped_many(self._s.invoices, "invoice", account_id, invoice_ids)

    @writes
    def update_invoices(self, invoices: Sequence[Invoice]) -> None:
        """Replace stored invoices, all or none."""
        self._each("invoices", invoices, Invoice, self.update_invoice)

    @writes
    def update_invoice(self, invoice: Invoice) -> None:
        """Replace a stored invoice (the same uniqueness rules as adding)."""
        invoice = _frozen(_record("invoice", invoice, Invoice))
        with self._write():
            old = self._scoped(
                self._s.invoices, "invoice", invoice.account_id, invoice.id
            )
            self._check_invoice(invoice)
            self._index_invoice(invoice, old=old)

    def list_invoices(
        self,
        account_id: str,
        *,
        customer_id: str | None = None,
        status: InvoiceStatus | None = None,
        template_id: str | None = None,
    ) -> list[Invoice]:
        """Invoices of an account, filtered, sorted by (issue date, number, id)."""
        self._check_open()
        _text("account_id", account_id)
        customer_id = _optional_text("customer_id", customer_id)
        template_id = _optional_text("template_id", template_id)
        status = _invoice_status(status)
        found = [
            i
            for i in self._s.invoices.values()
            if i.account_id == account_id
            and (customer_id is None or i.customer_id == customer_id)
            and (status is None or i.status == status)
            and (template_id is None or i.template_id == template_id)
        ]
        return sorted(found, key=lambda i: (i.issue_date, i.number, i.id))

    # -- payments ------------------------------------------------------------

    @writes
    def add_payment(self, payment: Payment) -> None:
        """Store a payment attempt; ConflictError if its idempotency key exists."""
        payment = _frozen(_record("payment", payment, Payment))
        with self._write():
            self._new_id(self._s.payments, "payment", payment.id)
            self._need_customer(payment.account_id, payment.customer_id)
            self._claim_key(self._s.payment_keys, "payment", payment)
            self._put(self._s.payments, payment.id, payment)

    @writes
    def add_payments(self, payments: Sequence[Payment]) -> None:
        """Store payment attempts, all or none."""
        self._each("payments", payments, Payment, self.add_payment)

    def get_payments(
        self, account_id: str, payment_ids: Sequence[str]
    ) -> list[Payment]:
        """Payments of this account, in the order of *payment_ids*."""
        return self._scoped_many(self._s.payments, "payment", account_id, payment_ids)

    @writes
    def update_payments(self, payments: Sequence[Payment]) -> None:
        """Replace stored payments, all or none."""
        self._each("payments", payments, Payment, self.update_payment)

    def _claim_key(
        self, keys: dict[str, str], kind: str, record: Payment | Refund
    ) -> None:
        holder = keys.get(record.idempotency_key)
        if holder is not None and holder != record.id:
            raise _conflict(
                f"{kind} idempotency key {record.idempotency_key!r} is used already",
                "a key names one attempt: reuse the stored record instead",
            )
        self._put(keys, record.idempotency_key, record.id)

    def get_payment(
        self, account_id: str, payment_id: str, *, for_update: bool = False
    ) -> Payment:
        """A payment; ``for_update`` locks it (every transaction holds the lock)."""
        _unlocked(self, for_update)
        self._check_open()
        return self._scoped(self._s.payments, "payment", account_id, payment_id)

    @writes
    def update_payment(self, payment: Payment) -> None:
        """Replace a stored payment."""
        payment = _frozen(_record("payment", payment, Payment))
        with self._write():
            old = self._scoped(
                self._s.payments, "payment", payment.account_id, payment.id
            )
            self._need_customer(payment.account_id, payment.customer_id)
            if old.idempotency_key != payment.idempotency_key:
                self._claim_key(self._s.payment_keys, "payment", payment)
                self._pop(self._s.payment_keys, old.idempotency_key)
            self._put(self._s.payments, payment.id, payment)

    def list_payments(
        self,
        account_id: str | None = None,
        *,
        customer_id: str | None = None,
        invoice_id: str | None = None,
        statuses: Sequence[PaymentStatus] | None = None,
        skip_ids: Sequence[str] = (),
    ) -> list[Payment]:
        """Payments, optionally of one account / customer / invoice / in some
        states, none of ``skip_ids``.

        Oldest first (``created_at``, then id).
        """
        self._check_open()
        account_id = _optional_text("account_id", account_id)
        customer_id = _optional_text("customer_id", customer_id)
        invoice_id = _invoice_of_account(account_id, invoice_id)
        wanted = _payment_statuses(statuses)
        skipped = set(_stored_ids("skip_ids", skip_ids))
        found = [
            p
            for p in self._s.payments.values()
            if (account_id is None or p.account_id == account_id)
            and (customer_id is None or p.customer_id == customer_id)
            and (invoice_id is None or invoice_id in p.invoice_ids)
            and (wanted is None or p.status in wanted)
            and p.id not in skipped
        ]
        return sorted(found, key=lambda p: (p.created_at, p.id))

    # -- settlements, receipts, credit notes, refunds, credit ---------------

    def _claim_selection(self, settlement: Settlement) -> None:
        key = (settlement.account_id, settlement.selection_key)
        holder = self._s.pending_selections.get(key)
        if holder is not None and holder != settlement.id:
            raise _conflict(
                f"a pending settlement ({holder!r}) has the selection key "
                f"{settlement.selection_key!r}",
                "submit a selection once; wait for the pending settlement to end",
            )
        self._put(self._s.pending_selections, key, settlement.id)

    @writes
    def add_settlement(self, settlement: Settlement) -> None:
        """Store a mass payment; ConflictError if a pending one has its key."""
        settlement = _frozen(_record("settlement", settlement, Settlement))
        with self._write():
            self._new_id(self._s.settlements, "settlement", settlement.id)
            self._need_customer(settlement.account_id, settlement.customer_id)
            if settlement.status is SettlementStatus.PENDING:
                self._claim_selection(settlement)
            self._put(self._s.settlements, settlement.id, settlement)

    def get_settlement(self, account_id: str, settlement_id: str) -> Settlement:
        """A settlement of this account."""
        self._check_open()
        return self._scoped(
            self._s.settlements, "settlement", account_id, settlement_id
        )

    @writes
    def update_settlement(self, settlement: Settlement) -> None:
        """Replace a stored settlement (its key is free again once not pending)."""
        settlement = _frozen(_record("settlement", settlement, Settlement))
        with self._write():
            old = self._scoped(
                self._s.settlements, "settlement", settlement.account_id, settlement.id
            )
            self._need_customer(settlement.account_id, settlement.customer_id)
            old_key = (old.account_id, old.selection_key)
            if self._s.pending_selections.get(old_key) == old.id:
                self._pop(self._s.pending_selections, old_key)
            if settlement.status is SettlementStatus.PENDING:
                self._claim_selection(settlement)
            self._put(self._s.settlements, settlement.id, settlement)

    def list_settlements(
        self, account_id: str, *, customer_id: str | None = None
    ) -> list[Settlement]:
        """Settlements of an account (optionally one customer), oldest first."""
        self._check_open()
        _text("account_id", account_id)
        customer_id = _optional_text("customer_id", customer_id)
        found = [
            s
            for s in self._s.settlements.values()
            if s.account_id == account_id
            and (customer_id is None or s.customer_id == customer_id)
        ]
        return sorted(found, key=lambda s: (s.created_at, s.id))

    @writes
    def add_receipt(self, receipt: Receipt) -> None:
        """Store a receipt of a payment of this account."""
        receipt = _frozen(_record("receipt", receipt, Receipt))
        with self._write():
            self._new_id(self._s.receipts, "receipt", receipt.id)
            self._need_customer(receipt.account_id, receipt.customer_id)
            self._scoped(
                self._s.payments, "payment", receipt.account_id, receipt.payment_id
            )
            self._put(self._s.receipts, receipt.id, receipt)

    @writes
    def add_receipts(self, receipts: Sequence[Receipt]) -> None:
        """Store receipts, all or none."""
        self._each("receipts", receipts, Receipt, self.add_receipt)

    def list_receipts(
        self,
        account_id: str,
        customer_id: str | None = None,
        *,
        payment_id: str | None = None,
    ) -> list[Receipt]:
        """Receipts of an account (of one customer, of one payment), oldest
        first (``issued_at``, then id)."""
        self._check_open()
        _text("account_id", account_id)
        customer_id = _optional_text("customer_id", customer_id)
        payment_id = _optional_text("payment_id", payment_id)
        found = [
            r
            for r in self._s.receipts.values()
            if r.account_id == account_id
            and (customer_id is None or r.customer_id == customer_id)
            and (payment_id is None or r.payment_id == payment_id)
        ]
        return sorted(found, key=lambda r: (r.issued_at, r.id))

    @writes
    def add_credit_note(self, note: CreditNoteRecord) -> None:
        """Store a credit note; ConflictError on a duplicate (series, number)."""
        note = _frozen(_record("note", note, CreditNoteRecord))
        with self._write():
            self._new_id(self._s.credit_notes, "credit note", note.id)
            self._need_customer(note.account_id, note.customer_id)
            self._scoped(self._s.invoices, "invoice", note.account_id, note.invoice_id)
            if any(
                (n.account_id, n.series, n.number)
                == (note.account_id, note.series, note.number)
                for n in self._s.credit_notes.values()
            ):
                raise _conflict(
                    f"credit note {note.series}-{note.number} exists in account "
                    f"{note.account_id!r}",
                    "allocate a new number with allocate_invoice_numbers",
                )
            self._put(self._s.credit_notes, note.id, note)

    def list_credit_notes(
        self, account_id: str, *, invoice_id: str | None = None
    ) -> list[CreditNoteRecord]:
        """Credit notes of an account (optionally of one invoice).

        Sorted by (issue date, number, id).
        """
        self._check_open()
        _text("account_id", account_id)
        found = [
            n
            for n in self._s.credit_notes.values()
            if n.account_id == account_id
            and (invoice_id is None or n.invoice_id == invoice_id)
        ]
        return sorted(found, key=lambda n: (n.issue_date, n.number, n.id))

    @writes
    def add_refund(self, refund: Refund) -> None:
        """Store a refund; ConflictError if its idempotency key exists."""
        refund = _frozen(_record("refund", refund, Refund))
        with self._write():
            self._new_id(self._s.refunds, "refund", refund.id)
            self._scoped(
                self._s.payments, "payment", refund.account_id, refund.payment_id
            )
            self._claim_key(self._s.refund_keys, "refund", refund)
            self._put(self._s.refunds, refund.id, refund)

    @writes
    def update_refund(self, refund: Refund) -> None:
        """Replace a stored refund (its outcome, once the gateway answered)."""
        refund = _frozen(_record("refund", refund, Refund))
        with self._write():
            old = self._scoped(self._s.refunds, "refund", refund.account_id, refund.id)
            self._scoped(
                self._s.payments, "payment", refund.account_id, refund.payment_id
            )
            if old.idempotency_key != refund.idempotency_key:
                self._claim_key(self._s.refund_keys, "refund", refund)
                self._pop(self._s.refund_keys, old.idempotency_key)
            self._put(self._s.refunds, refund.id, refund)

    def list_refunds(
        self,
        account_id: str,
        payment_id: str | None = None,
        *,
        statuses: Sequence[str] | None = None,
        skip_ids: Sequence[str] = (),
    ) -> list[Refund]:
        """Refunds of an account (of one payment, in some states), oldest
        first, none of ``skip_ids``."""
        self._check_open()
        _text("account_id", account_id)
        if payment_id is not None:
            _text("payment_id", payment_id)
        wanted = None if statuses is None else set(statuses)
        skipped = set(_stored_ids("skip_ids", skip_ids))
        found = [
            r
            for r in self._s.refunds.values()
            if r.account_id == account_id
            and (payment_id is None or r.payment_id == payment_id)
            and (wanted is None or r.status in wanted)
            and r.id not in skipped
        ]
        return sorted(found, key=lambda r: (r.created_at, r.id))

    @writes
    def add_credit_entry(self, entry: CreditEntry) -> None:
        """Store a movement of a customer's credit balance."""
        entry = _frozen(_record("entry", entry, CreditEntry))
        with self._write():
            self._new_id(self._s.credit_entries, "credit entry", entry.id)
            self._need_customer(entry.account_id, entry.customer_id)
            self._put(self._s.credit_entries, entry.id, entry)

    def get_credit_entry(self, account_id: str, entry_id: str) -> CreditEntry:
        """A credit movement of this account, of any of its customers."""
        self._check_open()
        return self._scoped(
            self._s.credit_entries, "credit entry", account_id, entry_id
        )

    def list_credit_entries(
        self, account_id: str, customer_id: str
    ) -> list[CreditEntry]:
        """A customer's credit movements, oldest first."""
        self._check_open()
        _text("account_id", account_id)
        _text("customer_id", customer_id)
        found = [
            e
            for e in self._s.credit_entries.values()
            if e.account_id == account_id and e.customer_id == customer_id
        ]
        return sorted(found, key=lambda e: (e.created_at, e.id))

    # -- outbox and webhooks -------------------------------------------------

    @writes
    def add_notifications(self, notifications: Sequence[Notification]) -> None:
        """Queue outbox messages (sent after commit)."""
        records = [
            _frozen(n) for n in _records("notifications", notifications, Notification)
        ]
        with self._write():
            for notification in records:
                self._need_account(notification.account_id)
                self._new_id(self._s.notifications, "notification", notification.id)
                self._put(self._s.notifications, notification.id, notification)

    def pending_notifications(
        self, *, limit: int = 100, skip_ids: Sequence[str] = ()
    ) -> list[Notification]:
        """Messages not sent yet (pending or failed), oldest first, none of
        ``skip_ids``."""
        self._check_open()
        _positive("limit", limit)
        skipped = set(_stored_ids("skip_ids", skip_ids))
        found = [
            n
            for n in self._s.notifications.values()
            if n.status in UNSENT and n.id not in skipped
        ]
        return sorted(found, key=lambda n: (n.created_at, n.id))[:limit]

    def get_notification(
        self, account_id: str, notification_id: str, *, for_update: bool = False
    ) -> Notification:
        """An outbox message; ``for_update`` locks it (every transaction does)."""
        _unlocked(self, for_update)
        self._check_open()
        return self._scoped(
            self._s.notifications, "notification", account_id, notification_id
        )

    @writes
    def update_notification(self, notification: Notification) -> None:
        """Replace a stored outbox message."""
        notification = _frozen(_record("notification", notification, Notification))
        with self._write():
            self._scoped(
                self._s.notifications,
                "notification",
                notification.account_id,
                notification.id,
            )
            self._put(self._s.notifications, notification.id, notification)

    @writes
    def record_webhook_event(self, event_id: str) -> bool:
        """Remember a processed webhook event; False if it was seen before."""
        _text("event_id", event_id)
        with self._write():
            if event_id in self._s.webhook_events:
                return False
            self._put(self._s.webhook_events, event_id, None)
        return True

    # -- daily summaries -----------------------------------------------------

    @writes
    def add_summary_lines(self, lines: Sequence[SummaryLines]) -> None:
        """Store lines of daily summaries to come."""
        records = _records("summary lines", lines, SummaryLines)
        with self._write():
            for record in records:
                self._need_account(record.account_id)
                self._new_id(self._s.summary_lines, "summary lines", record.id)
                self._put(self._s.summary_lines, record.id, record)

    @writes
    def take_summary_lines(self, account_ids: Sequence[str]) -> list[SummaryLines]:
        """Remove and return these accounts' summary lines, oldest first."""
        wanted = set(_stored_ids("account_ids", account_ids))
        with self._write():
            found = sorted(
                (r for r in self._s.summary_lines.values() if r.account_id in wanted),
                key=lambda r: (r.created_at, r.id),
            )
            for record in found:
                self._pop(self._s.summary_lines, record.id)
        return found

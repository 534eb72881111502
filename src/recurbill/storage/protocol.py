"""The storage port: a unit of work over recurbill's records.

``Storage.transaction()`` opens a unit of work. Everything written inside it
becomes visible together when ``commit()`` is called; leaving the ``with`` block
without ``commit()`` (or by an exception) rolls everything back::

    with storage.transaction() as tx:
        number = tx.allocate_invoice_numbers("acme", "INV", count=1)
        tx.add_invoices([invoice])
        tx.commit()

``storage.transaction(read_only=True)`` opens a unit of work that only reads
(the customer's overview, a template's history): it never waits for a writer on
SQLite, and a write call in it raises
:class:`~recurbill.errors.StateError`.

Every read and write is scoped by account: an id of another account is
:class:`~recurbill.errors.NotFoundError`, never returned or changed.
Uniqueness that makes exactly-once hold is enforced by the backend and raised
as :class:`~recurbill.errors.ConflictError`: (template, occurrence index);
(account, series, invoice number); a payment's idempotency key; a webhook
event id; a settlement's selection key while it is pending.

A backend that stores rows (``SqlStorage``) raises
:class:`~recurbill.errors.UnreadableRecordError` from any read that meets a
row it cannot read back as its record (one changed by hand or by another
program): it names the record, its account, the column when known and why,
and the read returns nothing. ``InMemoryStorage`` keeps the records
themselves and never raises it.

Methods named in the plural (``get_invoices``, ``update_payments`` …) do what
their singular does for many records at once, all or none: the daily run
stores a chunk of templates' invoices, payments and receipts with one call
each. Reading many ids returns the records in the order asked for and raises
``NotFoundError`` for the first id that is missing.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, ParamSpec, Protocol, TypeVar

from recurbill.errors import NotFoundError
from recurbill.records import (
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
    SummaryLines,
)

__all__ = [
    "Storage",
    "Transaction",
    "invoice_payments",
    "payment_receipts",
    "skipping",
    "stored_or_none",
]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def stored_or_none(
    read: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs
) -> _R | None:
    """*read* (a ``get_...`` of a transaction) of one record; None when it is
    not found (``NotFoundError``): for calls that add it if it is not there."""
    try:
        return read(*args, **kwargs)
    except NotFoundError:
        return None


def skipping(ids: Iterable[str]) -> dict[str, Any]:
    """The ``skip_ids=`` argument of a read, sorted, and only when there are
    ids to skip: adapters written before it was added lack it."""
    skip = sorted(set(ids))
    return {"skip_ids": skip} if skip else {}


def _takes(read: Callable[..., object], name: str) -> bool:
    """Whether *read* (a method of a transaction) takes the keyword *name*:
    an adapter written before it was added lacks it."""
    try:
        parameters = inspect.signature(read).parameters
    except (TypeError, ValueError):  # no signature to inspect: assume it
        return True
    return name in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )


def invoice_payments(
    tx: Transaction,
    account_id: str,
    customer_id: str,
    invoice_id: str,
    *,
    statuses: Sequence[PaymentStatus] | None = None,
) -> list[Payment]:
    """The customer's payments (in *statuses*) that include *invoice_id*,
    oldest first: ``list_payments(..., invoice_id=...)``, or the customer's
    payments filtered here when the adapter was written before that read."""
    if _takes(tx.list_payments, "invoice_id"):
        listed = tx.list_payments(
            account_id,
            customer_id=customer_id,
            invoice_id=invoice_id,
            statuses=statuses,
        )
    else:
        listed = tx.list_payments(
            account_id, customer_id=customer_id, statuses=statuses
        )
    # kept here too: an adapter taking **filters may not know invoice_id
    return [p for p in listed if invoice_id in p.invoice_ids]


def payment_receipts(
    tx: Transaction, account_id: str, customer_id: str, payment_id: str
) -> list[Receipt]:
    """The receipts of the customer's payment *payment_id* (recurbill issues
    one for a succeeded payment), oldest first: ``list_receipts(...,
    payment_id=...)``, or the customer's receipts filtered here when the
    adapter was written before that read."""
    if _takes(tx.list_receipts, "payment_id"):
        listed = tx.list_receipts(account_id, payment_id=payment_id)
    else:
        listed = tx.list_receipts(account_id, customer_id)
    # kept here whatever the read did: the customer's, and this payment's
    return [
        r for r in listed if r.customer_id == customer_id and r.payment_id == payment_id
    ]


class Transaction(Protocol):
    """One unit of work. Methods raise ``NotFoundError`` / ``ConflictError``."""

    def commit(self) -> None:
        """Make every write of this unit of work durable and visible at once."""

    # accounts -----------------------------------------------------------
    def add_account(self, account: Account) -> None:
        """Store a new account; ConflictError if its id is in use.

        The ids of accounts, customers and templates are unique across the
        database: the error does not say which account holds one.
        """

    def get_account(self, account_id: str, *, for_update: bool = False) -> Account:
        """The account with this id; ``for_update`` locks it until the end of
        the transaction (another locker waits; readers do not)."""

    def update_account(self, account: Account) -> None:
        """Replace a stored account."""

    def list_account_ids(self) -> list[str]:
        """Ids of every account, sorted."""

    # customers ----------------------------------------------------------
    def add_customer(self, customer: Customer) -> None:
        """Store a new customer of ``customer.account_id``; ConflictError if
        its id is in use, in any account (see :meth:`add_account`)."""

    def get_customer(
        self, account_id: str, customer_id: str, *, for_update: bool = False
    ) -> Customer:
        """A customer of this account; ``for_update`` locks it as ``get_account``
        does."""

    def get_customers(
        self, account_id: str, customer_ids: Sequence[str]
    ) -> list[Customer]:
        """Customers of this account, in the order of *customer_ids*."""

    def update_customer(self, customer: Customer) -> None:
        """Replace a stored customer."""

    def list_customers(self, account_id: str) -> list[Customer]:
        """Every customer of this account, sorted by id."""

    # payment methods ----------------------------------------------------
    def add_payment_method(self, method: PaymentMethod) -> None:
        """Store a saved card (token and display facts only)."""

    def get_payment_method(self, account_id: str, method_id: str) -> PaymentMethod:
        """A saved card of this account."""

    def get_payment_methods(
        self, account_id: str, method_ids: Sequence[str]
    ) -> list[PaymentMethod]:
        """Saved cards of this account, in the order of *method_ids*."""

    def list_payment_methods(
        self, account_id: str, customer_id: str
    ) -> list[PaymentMethod]:
        """The customer's saved cards, sorted by id."""

    def remove_payment_method(self, account_id: str, method_id: str) -> None:
        """Forget a saved card."""

    # recurring templates ------------------------------------------------
    def add_template(self, template: RecurringTemplate) -> None:
        """Store a new recurring template; ConflictError if its id is in use,
        in any account (see :meth:`add_account`)."""

    def get_template(
        self, account_id: str, template_id: str, *, for_update: bool = False
    ) -> RecurringTemplate:
        """A template; ``for_update`` locks it until the end of the transaction."""

    def update_template(self, template: RecurringTemplate) -> None:
        """Replace a stored template."""

    def update_templates(self, templates: Sequence[RecurringTemplate]) -> None:
        """Replace stored templates, all or none."""

    def list_templates(
        self,
        account_id: str,
        *,
        customer_id: str | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> list[RecurringTemplate]:
        """Templates of an account (optionally of one customer), sorted by id.

        ``after`` (the last id of the previous page) leaves out the templates
        whose id does not sort after it, and ``limit`` returns at most that
        many: a caller pages through an account's templates in bounded
        memory. Ids sort by code point, as Python sorts them.
        """

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
        them, so a caller streams every due template in bounded memory (on
        an index of those columns a chunk reads only its own rows). With
        ``for_update`` the chunk is locked until the end of the transaction;
        templates another transaction holds are waited for, or with
        ``skip_locked`` left out (so an empty chunk then means only that
        nothing due is left that nobody else holds). Templates whose ids are
        in ``skip_ids`` are left out too (the run's unreadable ones).

        A backend that stores rows raises
        :class:`~recurbill.errors.UnreadableRecordError` for the first one, in
        that order, that it cannot read back as a template: ``read`` holds the
        chunk's templates before it (locked like the chunk), so the caller
        can go on with them and then ask again with that row's id in
        ``skip_ids``. ``InMemoryStorage`` keeps the records themselves and
        never raises it.
        """

    # occurrences --------------------------------------------------------
    def add_occurrences(self, occurrences: Sequence[OccurrenceRecord]) -> None:
        """Store handled occurrences; ConflictError if (template, index) exists."""

    def list_occurrences(
        self, account_id: str, template_id: str
    ) -> list[OccurrenceRecord]:
        """What the runs did with a template's occurrences, by index."""

    # invoices -----------------------------------------------------------
    def allocate_invoice_numbers(
        self, account_id: str, series: str, *, count: int = 1
    ) -> int:
        """Reserve ``count`` consecutive numbers of a series; return the first.

        The counter is locked until the transaction ends, so numbers stay
        gapless: a rolled-back transaction gives its numbers back.
        """

    def lock_invoice_numbers(self, account_id: str, series: str) -> int:
        """The number the series' next allocation returns, reserving none.

        The counter is locked until the transaction ends, as
        ``allocate_invoice_numbers`` locks it: what is checked against this
        number holds until then (``change_account`` checks a new reference
        scheme so, and the invoice writers read the account's scheme after
        taking their numbers).
        """

    def add_invoices(self, invoices: Sequence[Invoice]) -> None:
        """Store new invoices; ConflictError on a duplicate (series, number)."""

    def get_invoice(
        self, account_id: str, invoice_id: str, *, for_update: bool = False
    ) -> Invoice:
        """An invoice; ``for_update`` locks it until the end of the transaction."""

    def get_invoices(
        self,
        account_id: str,
        invoice_ids: Sequence[str],
        *,
        for_update: bool = False,
    ) -> list[Invoice]:
        """Invoices of this account, in the order of *invoice_ids* (locked
        with ``for_update``)."""

    def update_invoice(self, invoice: Invoice) -> None:
        """Replace a stored invoice."""

    def update_invoices(self, invoices: Sequence[Invoice]) -> None:
        """Replace stored invoices, all or none."""

    def list_invoices(
        self,
        account_id: str,
        *,
        customer_id: str | None = None,
        status: InvoiceStatus | None = None,
        template_id: str | None = None,
    ) -> list[Invoice]:
        """Invoices of an account, filtered, sorted by (issue date, number)."""

    # payments -----------------------------------------------------------
    def add_payment(self, payment: Payment) -> None:
        """Store a payment attempt; ConflictError if its idempotency key exists."""

    def add_payments(self, payments: Sequence[Payment]) -> None:
        """Store payment attempts, all or none (ConflictError as one would)."""

    def get_payment(
        self, account_id: str, payment_id: str, *, for_update: bool = False
    ) -> Payment:
        """A payment; ``for_update`` locks it until the end of the transaction."""

    def get_payments(
        self, account_id: str, payment_ids: Sequence[str]
    ) -> list[Payment]:
        """Payments of this account, in the order of *payment_ids*."""

    def update_payment(self, payment: Payment) -> None:
        """Replace a stored payment."""

    def update_payments(self, payments: Sequence[Payment]) -> None:
        """Replace stored payments, all or none."""

    def list_payments(
        self,
        account_id: str | None = None,
        *,
        customer_id: str | None = None,
        invoice_id: str | None = None,
        statuses: Sequence[PaymentStatus] | None = None,
        skip_ids: Sequence[str] = (),
    ) -> list[Payment]:
        """Payments, optionally of one account / customer / in some states,
        none of ``skip_ids`` (the daily run's unreadable ones), oldest first
        (``created_at``, then id).

        ``invoice_id`` (given with its ``account_id``, else
        ``InvalidInputError``) keeps the payments whose ``invoice_ids``
        include it: its automatic charges and their retries, the customer's
        own payments of it and the mass payments that settle it among
        others. A backend should find them without reading the customer's
        other payments (``SqlStorage`` keeps an index of each payment's
        invoices): paying an invoice, its outcome and its retries read them.

        A backend that stores rows raises
        :class:`~recurbill.errors.UnreadableRecordError` for a row it cannot
        read back as a payment (``key`` is its id), so the caller can ask
        again with that id in ``skip_ids``. ``InMemoryStorage`` keeps the
        records themselves and never raises it.
        """

    # settlements, receipts, credit notes, refunds, credit ----------------
    def add_settlement(self, settlement: Settlement) -> None:
        """Store a mass payment; ConflictError if a pending one has its key."""

    def get_settlement(self, account_id: str, settlement_id: str) -> Settlement:
        """A settlement of this account."""

    def update_settlement(self, settlement: Settlement) -> None:
        """Replace a stored settlement."""

    def list_settlements(
        self, account_id: str, *, customer_id: str | None = None
    ) -> list[Settlement]:
        """Settlements of an account (optionally one customer), oldest first."""

    def add_receipt(self, receipt: Receipt) -> None:
        """Store a receipt."""

    def add_receipts(self, receipts: Sequence[Receipt]) -> None:
        """Store receipts, all or none."""

    def list_receipts(
        self,
        account_id: str,
        customer_id: str | None = None,
        *,
        payment_id: str | None = None,
    ) -> list[Receipt]:
        """Receipts of an account, optionally of one customer and of one
        payment, oldest first (``issued_at``, then id).

        ``payment_id`` gives that payment's receipt (recurbill issues one
        for a succeeded payment), or an empty list while it has none; a
        backend should find it without reading the customer's other
        receipts."""

    def add_credit_note(self, note: CreditNoteRecord) -> None:
        """Store a credit note."""

    def list_credit_notes(
        self, account_id: str, *, invoice_id: str | None = None
    ) -> list[CreditNoteRecord]:
        """Credit notes of an account (optionally of one invoice)."""

    def add_refund(self, refund: Refund) -> None:
        """Store a refund; ConflictError if its idempotency key exists."""

    def update_refund(self, refund: Refund) -> None:
        """Replace a stored refund (its outcome, once the gateway answered)."""

    def list_refunds(
        self,
        account_id: str,
        payment_id: str | None = None,
        *,
        statuses: Sequence[str] | None = None,
        skip_ids: Sequence[str] = (),
    ) -> list[Refund]:
        """Refunds of an account (of one payment, in some states), oldest
        first, none of ``skip_ids`` (the daily run's unreadable ones).

        A backend that stores rows raises
        :class:`~recurbill.errors.UnreadableRecordError` for a row it cannot
        read back as a refund (``key`` is its id), so the caller can ask
        again with that id in ``skip_ids``. ``InMemoryStorage`` keeps the
        records themselves and never raises it.
        """

    def add_credit_entry(self, entry: CreditEntry) -> None:
        """Store a movement of a customer's credit balance."""

    def get_credit_entry(self, account_id: str, entry_id: str) -> CreditEntry:
        """A credit movement of this account, of any of its customers."""

    def list_credit_entries(
        self, account_id: str, customer_id: str
    ) -> list[CreditEntry]:
        """A customer's credit movements, oldest first."""

    # outbox and webhooks --------------------------------------------------
    def add_notifications(self, notifications: Sequence[Notification]) -> None:
        """Queue outbox messages (sent after commit)."""

    def pending_notifications(
        self, *, limit: int = 100, skip_ids: Sequence[str] = ()
    ) -> list[Notification]:
        """Up to ``limit`` messages not sent yet (pending or failed: never a
        sent or withdrawn one), oldest first, none of ``skip_ids`` (ids as
        stored: delivery's unreadable ones).

        A backend that stores rows raises
        :class:`~recurbill.errors.UnreadableRecordError` for a row it cannot
        read back as a message (``key`` is its id), so the caller can ask
        again with that id in ``skip_ids``. ``InMemoryStorage`` keeps the
        records themselves and never raises it.
        """

    def get_notification(
        self, account_id: str, notification_id: str, *, for_update: bool = False
    ) -> Notification:
        """An outbox message of this account; ``for_update`` locks it."""

    def update_notification(self, notification: Notification) -> None:
        """Replace a stored outbox message."""

    def record_webhook_event(self, event_id: str) -> bool:
        """Remember a processed webhook event; False if it was seen before."""

    # daily summaries ----------------------------------------------------
    def add_summary_lines(self, lines: Sequence[SummaryLines]) -> None:
        """Store lines of daily summaries to come."""

    def take_summary_lines(self, account_ids: Sequence[str]) -> list[SummaryLines]:
        """Remove and return these accounts' stored summary lines, oldest
        first (``created_at``, then id). Lines another transaction is taking
        are waited for, then not returned: each is taken once."""


class Storage(Protocol):
    """Where recurbill keeps its records."""

    def transaction(
        self, *, read_only: bool = False
    ) -> AbstractContextManager[Transaction]:
        """Open a unit of work; leaving it without ``commit()`` rolls back.

        ``read_only=True`` opens one for reading only: its reads see one
        consistent state of the records, and it does not wait for a writer
        where the backend can avoid it (SQLite in WAL mode reads a snapshot
        while the daily run holds the write lock). Every write call and every
        locking read (``for_update=True``) in it raises ``StateError`` before
        doing anything.
        """

"""Versioned schema steps for :class:`~recurbill.storage.sql.SqlStorage`.

The ``schema_version`` table holds one row: the version of the schema in the
database. :func:`upgrade` runs every step above it, in order, in one
transaction, and records the new version; running it again does nothing.

- Version 1: the base schema (every table, its constraints and indexes).
- Version 2: the ``ix_templates_due`` index on (status, next_due_at, id), so
  the daily run finds due templates without scanning them all.
- Version 3: the unique ``ux_credit_notes_number`` index on (account_id,
  series, number): a credit note number is used once, as invoice numbers are.
- Version 4: the account's payment reference scheme, ``reference_method``
  and ``reference_length`` on ``accounts``; an existing account keeps the
  references versions 1-3 gave it (a MOD10 KID in NOK, an OCR with length
  digit in SEK, the invoice number otherwise; no fixed length).
- Version 5: document-level allowances and charges, ``allowance_charges``
  (a JSON list) on ``templates``, ``invoices`` and ``credit_notes``; rows
  that exist get its server default ``[]``: none.
- Version 6: ``added_with`` on ``customers``, the digest of the arguments
  ``Billing.add_customer`` added the customer with; NULL (unknown) for the
  customers that exist, whose repeated ``add_customer`` must give their
  details as they are.
- Version 7: ``created_with`` on ``templates``, the digest of the arguments
  ``Billing.create_template`` created the template with; NULL (unknown) for
  the templates that exist, whose repeated ``create_template`` must give
  their details as they are.
- Version 8: the account's payee account (``payee_kind``,
  ``payee_number``, ``payee_bic``) and ``vat_number`` on ``accounts``;
  NULL (none) for the accounts that exist, whose invoices show neither, as
  before.
- Version 9: the ``summary_lines`` table, the lines of daily summaries to
  come, stored in the transaction of the work they report and removed in the
  one that queues the summary; empty at first (the summaries of runs before
  it were queued).
- Version 10: ``paid_at`` on ``receipts``, when the card was charged (the
  receipt e-mail's payment date). A receipt that exists gets the earliest
  ``paid_at``, at or before its ``issued_at``, of the invoices it applied
  money to (an invoice its payment settled was paid at the moment the card
  was charged; a later one was paid again after a refund), else its
  ``issued_at``. Payments keep no time of their charge, and invoices it
  applied nothing to were paid another way. A stored time that cannot be
  read (edited by hand) does not stop the upgrade: an invoice's is left
  out, and a receipt whose own ``issued_at`` cannot be read keeps ``paid_at``
  empty, so it still reads as the unreadable row it was.
- Version 11: ``reopen`` on ``refunds``, the choice a refund was asked with
  (the invoices owe it again, or are credited), so a repeated
  ``Billing.refund`` with the same ``refund_id`` is compared with it. A
  refund that exists and waits for the gateway's answer gets the choice its
  status holds (``requested``: reopen, ``requested_credit``: credit); one
  answered already keeps NULL (unknown).
- Version 12: the ``payment_invoices`` table, one row per invoice a payment
  includes (its ``invoice_ids``), with the ``ix_payment_invoices_invoice``
  index on (account_id, invoice_id), and the ``ix_receipts_payment`` index on
  (account_id, payment_id) of ``receipts``: the payments of one invoice, and
  a payment's receipt, are read without a customer's others. The step fills
  the table from the payments there are. A payment whose stored
  ``invoice_ids`` cannot be read (edited by hand) does not stop the upgrade:
  it gets a row for every invoice of its customer, so a read of any of their
  payments meets it and raises for it, as reading the customer's payments
  did (an id in the list that no invoice can have, too long or not text, is
  left out).
  It also adds the ``ix_templates_account_id`` index on (account_id, id,
  customer_id), so an account's templates are read a page at a time by id
  (the template list of ``recurbill preview``) without sorting them all for
  each page.
- Version 13: no new column; ``refunded`` on ``payments``, which no
  earlier version wrote, is filled from the refunds there are: the sum of
  a payment's refunds the gateway accepted (``pending``,
  ``requires_action``, ``succeeded``, and ``failed_to_credit``: one that
  failed after that), NULL when it has none. A payment one of whose such
  refunds has an amount that cannot be read (edited by hand) keeps NULL:
  its sum is not known.

A released step never changes: a new column or index is a new step, and the
table definitions in ``schema`` carry the latest shape. Indexes and columns
record the version that introduced them in ``info["since"]`` (1 when absent):
version 1 creates each table with its version-1 columns only, and the step of
a later column adds it with ``ALTER TABLE ... ADD COLUMN``, rendered from its
definition (type, nullability, server default) so that a database upgraded
step by step and one created from ``schema`` have the same shape. A step
writes out the data it needs as constants, never through code that may change
after it is released.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from recurbill.errors import InvalidInputError, SchemaVersionError
from recurbill.storage import schema

__all__ = ["STEPS", "current_version", "upgrade"]


def _since(item: sa.Index | sa.Column[Any] | sa.Table) -> int:
    since: int = item.info.get("since", 1)
    return since


def _indexes_since(version: int) -> list[sa.Index]:
    return [
        index
        for table in schema.metadata.sorted_tables
        for index in sorted(table.indexes, key=lambda i: str(i.name))
        if _since(index) == version
    ]


def _add_columns_since(conn: sa.Connection, version: int) -> None:
    """Add the columns introduced in *version*, in table and column order."""
    dialect = conn.dialect
    added = [
        (table, column)
        for table in schema.metadata.sorted_tables
        for column in table.columns
        if _since(column) == version
    ]
    for table, column in added:
        name = dialect.identifier_preparer.format_table(table)
        definition = sa.schema.CreateColumn(column).compile(dialect=dialect)
        conn.exec_driver_sql(f"ALTER TABLE {name} ADD COLUMN {definition}")


_BATCH = 500
"""Rows a step reads (versions 10 and 12), and ids it looks up, at a time."""


def _create_since(conn: sa.Connection, version: int) -> None:
    """Create the tables and then the indexes introduced in *version*."""
    for table in schema.metadata.sorted_tables:
        if _since(table) == version:
            conn.execute(sa.schema.CreateTable(table))
    for index in _indexes_since(version):
        conn.execute(sa.schema.CreateIndex(index))


def _pages(
    conn: sa.Connection, query: sa.Select[Any], key: sa.ColumnElement[str]
) -> Iterator[Sequence[Any]]:
    """The rows of *query* (ordered by *key*, a unique column it selects
    first), :data:`_BATCH` at a time, each page read after the last key of
    the one before."""
    after: str | None = None
    while True:
        page = query if after is None else query.where(key > after)
        rows = conn.execute(page.limit(_BATCH)).all()
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def _version_1(conn: sa.Connection) -> None:
    """The base schema: every table with its constraints, first columns and
    first indexes."""
    for table in schema.metadata.sorted_tables:
        if _since(table) != 1:
            continue  # a later step creates it
        create = sa.schema.CreateTable(table)
        create.columns = [c for c in create.columns if _since(c.element) == 1]
        conn.execute(create)
    for index in _indexes_since(1):
        conn.execute(sa.schema.CreateIndex(index))


def _version_2(conn: sa.Connection) -> None:
    """An index for the daily run's query of due templates."""
    for index in _indexes_since(2):
        conn.execute(sa.schema.CreateIndex(index))


def _version_3(conn: sa.Connection) -> None:
    """Credit note numbers unique per account and series."""
    for index in _indexes_since(3):
        conn.execute(sa.schema.CreateIndex(index))


# How versions 1-3 made every account's payment reference, by currency.
_VERSION_3_REFERENCE_METHODS = {"NOK": "kid_mod10", "SEK": "ocr_length_digit"}


def _version_4(conn: sa.Connection) -> None:
    """The account's payment reference scheme; existing accounts keep theirs.

    The new ``reference_method`` column is filled with its server default
    (``invoice_number``), then set to the method versions 1-3 used for the
    account's currency. ``reference_length`` stays NULL: no fixed length.
    """
    _add_columns_since(conn, 4)
    accounts = schema.accounts
    for currency, method in _VERSION_3_REFERENCE_METHODS.items():
        conn.execute(
            sa.update(accounts)
            .where(accounts.c.currency == currency)
            .values(reference_method=method)
        )


def _version_5(conn: sa.Connection) -> None:
    """Document-level allowances and charges; existing rows have none."""
    _add_columns_since(conn, 5)


def _version_6(conn: sa.Connection) -> None:
    """The digest of a customer's add_customer arguments; unknown for existing
    customers."""
    _add_columns_since(conn, 6)


def _version_7(conn: sa.Connection) -> None:
    """The digest of a template's create_template arguments; unknown for
    existing templates."""
    _add_columns_since(conn, 7)


def _version_8(conn: sa.Connection) -> None:
    """The account's payee account and VAT number; existing accounts have
    neither."""
    _add_columns_since(conn, 8)


def _version_9(conn: sa.Connection) -> None:
    """The lines of daily summaries to come; none are stored yet."""
    _create_since(conn, 9)


def _version_10(conn: sa.Connection) -> None:
    """When each receipt's card was charged: the best time stored, else when
    the receipt was issued (see the module's docstring)."""
    _add_columns_since(conn, 10)
    receipts = schema.receipts
    query = sa.select(
        receipts.c.id,
        receipts.c["items"],
        _raw(receipts.c.issued_at),
    ).order_by(receipts.c.id)
    for rows in _pages(conn, query, receipts.c.id):
        # a receipt whose issued_at cannot be read keeps paid_at NULL: it
        # reads as unreadable, as it did (its issued_at) before this step
        batch = [
            (key, items, issued_at)
            for key, items, stored in rows
            if (issued_at := _instant(stored)) is not None
        ]
        _date_receipts(conn, batch)


def _date_receipts(
    conn: sa.Connection, batch: Sequence[tuple[str, str, datetime]]
) -> None:
    """Set ``paid_at`` of the receipts in *batch*, each (id, items,
    issued_at) (version 10)."""
    applied = {key: _applied_to(items) for key, items, _ in batch}
    paid = _paid_at(conn, {i for ids in applied.values() for i in ids})
    values = []
    for key, _, issued_at in batch:
        found = [
            when
            for invoice_id in applied[key]
            if (when := paid.get(invoice_id)) is not None and when <= issued_at
        ]
        values.append({"key": key, "when": min(found, default=issued_at)})
    receipts = schema.receipts
    conn.execute(
        sa.update(receipts)
        .where(receipts.c.id == sa.bindparam("key"))
        .values(paid_at=sa.bindparam("when")),
        values,
    )


def _applied_to(items: str) -> tuple[str, ...]:
    """The invoices a receipt's stored *items* applied money to; none when
    the text is not what recurbill wrote."""
    try:
        return tuple(
            item["invoice_id"]
            for item in json.loads(items)
            if Decimal(item["amount"]) > 0
        )
    except (ValueError, TypeError, LookupError, ArithmeticError):
        return ()


def _paid_at(conn: sa.Connection, ids: set[str]) -> dict[str, datetime]:
    """The ``paid_at`` of the invoices with these *ids* that have one, by id."""
    invoices = schema.invoices
    found: dict[str, datetime] = {}
    chosen = sorted(ids)
    for start in range(0, len(chosen), _BATCH):
        query = sa.select(invoices.c.id, _raw(invoices.c.paid_at)).where(
            invoices.c.id.in_(chosen[start : start + _BATCH]),
            invoices.c.paid_at.is_not(None),
        )
        found.update(
            (key, when)
            for key, stored in conn.execute(query)
            if (when := _instant(stored)) is not None  # unreadable: left out
        )
    return found


def _raw(column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    """*column* as the driver returns it, without the column type's
    conversion (which raises on text recurbill never wrote)."""
    return sa.type_coerce(column, sa.String)


def _instant(stored: object) -> datetime | None:
    """A stored instant (the driver's datetime, or SQLite's UTC text) as an
    aware datetime; None for a value recurbill never writes."""
    if isinstance(stored, str):
        try:
            stored = datetime.fromisoformat(stored)
        except ValueError:
            return None
    if isinstance(stored, datetime) and stored.utcoffset() is not None:
        return stored
    return None


# The statuses of a refund waiting for its answer, and the choice each holds.
_ASKED_REOPEN = {"requested": True, "requested_credit": False}


def _version_11(conn: sa.Connection) -> None:
    """The choice each refund was asked with; known of a refund not answered
    yet from its status, unknown of one answered."""
    _add_columns_since(conn, 11)
    refunds = schema.refunds
    for status, reopen in _ASKED_REOPEN.items():
        conn.execute(
            sa.update(refunds).where(refunds.c.status == status).values(reopen=reopen)
        )


def _version_12(conn: sa.Connection) -> None:
    """The invoices each payment includes, and the indexes to read a
    payment's receipt and an invoice's payments (see the module's docstring)."""
    _create_since(conn, 12)
    payments = schema.payments
    query = sa.select(
        payments.c.id,
        payments.c.account_id,
        payments.c.customer_id,
        payments.c.invoice_ids,
    ).order_by(payments.c.id)
    for found in _pages(conn, query, payments.c.id):
        links = [
            {"account_id": account, "payment_id": key, "invoice_id": invoice_id}
            for key, account, customer, stored in found
            for invoice_id in _included(conn, account, customer, stored)
        ]
        if links:
            conn.execute(sa.insert(schema.payment_invoices), links)


_ID_LENGTH = 200
"""The longest id the schema keeps (version 12)."""


def _included(
    conn: sa.Connection, account_id: str, customer_id: str, stored: str
) -> list[str]:
    """The invoices a payment's stored *invoice_ids* name, each once; every
    invoice of its customer when the text is not what recurbill wrote."""
    try:
        named = tuple(json.loads(stored))
    except (ValueError, TypeError):
        invoices = schema.invoices
        query = sa.select(invoices.c.id).where(
            invoices.c.account_id == account_id,
            invoices.c.customer_id == customer_id,
        )
        return sorted(conn.execute(query).scalars())
    return [key for key in dict.fromkeys(named) if _is_id(key)]


def _is_id(value: object) -> bool:
    """Whether *value* can be an invoice's id (text the id columns keep)."""
    if not isinstance(value, str) or not 0 < len(value) <= _ID_LENGTH:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return "\x00" not in value


# The statuses of refunds the gateway accepted, which payments count.
_TAKEN_BACK = ("pending", "requires_action", "succeeded", "failed_to_credit")


def _version_13(conn: sa.Connection) -> None:
    """Each payment's ``refunded``: the sum of its refunds the gateway
    accepted (see the module's docstring)."""
    refunds = schema.refunds
    query = sa.select(
        refunds.c.account_id, refunds.c.payment_id, _raw(refunds.c.amount)
    ).where(refunds.c.status.in_(_TAKEN_BACK))
    sums: dict[tuple[str, str], Decimal | None] = {}
    for account_id, payment_id, stored in conn.execute(query):
        key = (account_id, payment_id)
        amount = _decimal(stored)
        before = sums.get(key, Decimal(0))
        sums[key] = None if amount is None or before is None else before + amount
    payments = schema.payments
    for (account_id, payment_id), total in sorted(sums.items()):
        if total is None:
            continue  # an amount that cannot be read: not known
        conn.execute(
            sa.update(payments)
            .where(payments.c.account_id == account_id, payments.c.id == payment_id)
            .values(refunded=total)
        )


def _decimal(stored: object) -> Decimal | None:
    """A stored amount (the driver's Decimal, or SQLite's text) as a finite
    Decimal; None for a value recurbill never writes."""
    try:
        amount = Decimal(str(stored))
    except ArithmeticError:
        return None
    return amount if amount.is_finite() and stored is not None else None


STEPS: dict[int, Callable[[sa.Connection], None]] = {
    1: _version_1,
    2: _version_2,
    3: _version_3,
    4: _version_4,
    5: _version_5,
    6: _version_6,
    7: _version_7,
    8: _version_8,
    9: _version_9,
    10: _version_10,
    11: _version_11,
    12: _version_12,
    13: _version_13,
}
"""Schema version -> the step that upgrades the version below it to it."""


def current_version(conn: sa.Connection) -> int:
    """The schema version of the database; 0 when it has no recurbill schema."""
    if not sa.inspect(conn).has_table(schema.schema_version.name):
        return 0
    found = conn.execute(sa.select(sa.func.max(schema.schema_version.c.version)))
    return int(found.scalar_one() or 0)


def upgrade(conn: sa.Connection, *, target: int = schema.LATEST_VERSION) -> int:
    """Run the steps from the database's version up to *target*; return it.

    *conn* must be inside a transaction the caller commits. Refuses a database
    newer than this recurbill with :class:`SchemaVersionError`.
    """
    if target not in STEPS:
        raise InvalidInputError(
            problem=f"schema version {target!r} is unknown",
            allowed=f"a version from 1 to {schema.LATEST_VERSION}",
        )
    found = current_version(conn)
    if found > schema.LATEST_VERSION:
        raise SchemaVersionError(found=found, supported=schema.LATEST_VERSION)
    for version in range(found + 1, target + 1):
        STEPS[version](conn)
    if target > found:
        conn.execute(sa.delete(schema.schema_version))
        conn.execute(sa.insert(schema.schema_version).values(version=target))
    return max(found, target)

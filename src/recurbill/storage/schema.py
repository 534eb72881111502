"""The SQL schema of :class:`~recurbill.storage.sql.SqlStorage` (SQLAlchemy Core).

One table per record kind, every row carrying its ``account_id``. Ids are
opaque strings chosen by the service and unique per kind, so they are the
primary keys. Amounts are exact: ``NUMERIC`` on PostgreSQL, decimal text on
SQLite (whose ``NUMERIC`` affinity would turn them into floats); the currency
code sits in the row beside them. Instants are ``TIMESTAMPTZ`` on PostgreSQL
and fixed-width UTC text on SQLite, so they sort and compare as instants on
both. Invoice lines, document allowances and charges, schedules and other
small value lists are JSON text.

Every uniqueness rule of the storage protocol is a constraint here, so the
database enforces it even between processes. Each index, and each column
added after version 1, records in ``info["since"]`` the schema version that
introduced it (see ``migrations``); a later column goes at the end of its
table, where ``ALTER TABLE ... ADD COLUMN`` puts it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

__all__ = [
    "LATEST_VERSION",
    "UNCONVERTIBLE",
    "Converted",
    "ExactDecimal",
    "IsoDate",
    "UtcDateTime",
    "accounts",
    "counters",
    "credit_entries",
    "credit_notes",
    "customers",
    "invoices",
    "metadata",
    "notifications",
    "occurrences",
    "payment_invoices",
    "payment_methods",
    "payments",
    "receipts",
    "refunds",
    "schema_version",
    "settlements",
    "summary_lines",
    "templates",
    "utc_text",
    "webhook_events",
]

LATEST_VERSION = 13
"""The schema version this recurbill creates and understands."""

_UTC = timezone.utc

UNCONVERTIBLE = (ValueError, TypeError, ArithmeticError)
"""What a column's conversion of a stored value raises for a value recurbill
never writes (SQLite text that is no instant, date, amount or flag)."""


def utc_text(value: datetime) -> str:
    """An aware instant as the fixed-width UTC text SQLite stores (sorts as time)."""
    return value.astimezone(_UTC).isoformat(sep=" ", timespec="microseconds")


def _utc_from_text(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _utc(value: datetime) -> datetime:
    return value.astimezone(_UTC)


class Converted(sa.types.TypeDecorator[Any]):
    """A type whose bind conversion is one function of a non-None value."""

    impl: Any = sa.String(40)
    cache_ok = True

    def bind_converter(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """The conversion of a non-None value for *dialect* (None: as it is)."""
        return None

    def bind_processor(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """The converter, letting None through."""
        convert = self.bind_converter(dialect)
        return None if convert is None else _optional(convert)


class ExactDecimal(Converted):
    """A Decimal stored exactly: ``NUMERIC`` on PostgreSQL, text elsewhere."""

    impl = sa.String(40)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        """NUMERIC without precision on PostgreSQL, text elsewhere."""
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.NUMERIC(asdecimal=True))
        return dialect.type_descriptor(sa.String(40))

    def bind_converter(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """Decimal as its exact text on SQLite; the driver adapts it elsewhere."""
        return None if dialect.name == "postgresql" else str

    def result_processor(
        self, dialect: Dialect, coltype: object
    ) -> Callable[[Any], Any] | None:
        """Text back to Decimal on SQLite; psycopg returns Decimal already."""
        return None if dialect.name == "postgresql" else _optional(Decimal)


class UtcDateTime(Converted):
    """An aware instant, returned in UTC: ``TIMESTAMPTZ``, or UTC text on SQLite."""

    impl = sa.String(32)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        """TIMESTAMP WITH TIME ZONE on PostgreSQL, fixed-width text elsewhere."""
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.TIMESTAMP(timezone=True))
        return dialect.type_descriptor(sa.String(32))

    def bind_converter(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """UTC text on SQLite; psycopg adapts aware datetimes itself."""
        return None if dialect.name == "postgresql" else utc_text

    def result_processor(
        self, dialect: Dialect, coltype: object
    ) -> Callable[[Any], Any] | None:
        """An aware datetime in UTC on every backend."""
        if dialect.name == "postgresql":
            return _optional(_utc)
        return _optional(_utc_from_text)


class IsoDate(Converted):
    """A calendar date: ``DATE`` on PostgreSQL, ISO text elsewhere."""

    impl = sa.String(10)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        """DATE on PostgreSQL, ISO 8601 text elsewhere."""
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.DATE())
        return dialect.type_descriptor(sa.String(10))

    def bind_converter(self, dialect: Dialect) -> Callable[[Any], Any] | None:
        """ISO text on SQLite; the driver adapts dates elsewhere."""
        return None if dialect.name == "postgresql" else date.isoformat

    def result_processor(
        self, dialect: Dialect, coltype: object
    ) -> Callable[[Any], Any] | None:
        """ISO text back to a date on SQLite."""
        return None if dialect.name == "postgresql" else _optional(date.fromisoformat)


def _optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def process(value: Any) -> Any:
        return None if value is None else convert(value)

    return process


metadata = sa.MetaData()
"""Every table of the schema at :data:`LATEST_VERSION`."""

# Ids sort by code point on every backend (as Python sorts them), whatever the
# PostgreSQL database's default collation is: keyset pagination relies on it.
_ID = sa.String(200).with_variant(postgresql.VARCHAR(200, collation="C"), "postgresql")
_CODE = sa.String(3)
_JSON = sa.Text


def _id(name: str = "id") -> sa.Column[str]:
    return sa.Column(name, _ID, primary_key=True)


def _account() -> sa.Column[str]:
    return sa.Column("account_id", _ID, sa.ForeignKey("accounts.id"), nullable=False)


def _since(version: int) -> dict[Any, Any]:
    return {"since": version}


def _allowance_charges() -> sa.Column[str]:
    """Version 5: document-level allowances and charges (EN 16931 BG-20, BG-21),
    one JSON list, allowances first; ``[]`` (none) for rows written before."""
    return sa.Column(
        "allowance_charges",
        _JSON,
        nullable=False,
        server_default="[]",
        info=_since(5),
    )


schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, nullable=False),
)

accounts = sa.Table(
    "accounts",
    metadata,
    _id(),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("currency", _CODE, nullable=False),
    sa.Column("locale", sa.String(35), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("run_time", sa.String(15), nullable=False),
    sa.Column("payment_terms_days", sa.Integer, nullable=False),
    sa.Column("invoice_series", sa.String(100), nullable=False),
    sa.Column("summary_email", sa.Text, nullable=False),
    sa.Column("rounding", sa.String(20), nullable=False),
    # Version 4: the payment reference scheme. The server default fills the
    # column of the rows that exist when it is added; that step then sets
    # each one's method from its currency, as versions 1-3 chose it.
    sa.Column(
        "reference_method",
        sa.String(20),
        nullable=False,
        server_default="invoice_number",
        info=_since(4),
    ),
    sa.Column("reference_length", sa.Integer, info=_since(4)),
    # Version 8: where customers pay and the seller's VAT number; NULL: none.
    sa.Column("payee_kind", sa.String(20), info=_since(8)),
    sa.Column("payee_number", sa.String(34), info=_since(8)),
    sa.Column("payee_bic", sa.String(11), info=_since(8)),
    sa.Column("vat_number", sa.String(40), info=_since(8)),
)

customers = sa.Table(
    "customers",
    metadata,
    _id(),
    _account(),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("locale", sa.String(35), nullable=False),
    sa.Column("collection_method", sa.String(40), nullable=False),
    sa.Column("default_payment_method_id", _ID),
    sa.Column("gateway_customer_id", _ID),
    # Version 6: the digest of the arguments add_customer added it with (hex
    # SHA-256); NULL for the customers that exist when it is added.
    sa.Column("added_with", sa.String(64), info=_since(6)),
    sa.Index("ix_customers_account", "account_id", "id", info=_since(1)),
)

payment_methods = sa.Table(
    "payment_methods",
    metadata,
    _id(),
    _account(),
    sa.Column("customer_id", _ID, nullable=False),
    sa.Column("token", sa.Text, nullable=False),
    sa.Column("brand", sa.String(40), nullable=False),
    sa.Column("last4", sa.String(4), nullable=False),
    sa.Column("exp_month", sa.Integer, nullable=False),
    sa.Column("exp_year", sa.Integer, nullable=False),
    sa.Index(
        "ix_payment_methods_customer", "account_id", "customer_id", info=_since(1)
    ),
)

templates = sa.Table(
    "templates",
    metadata,
    _id(),
    _account(),
    sa.Column("customer_id", _ID, nullable=False),
    sa.Column("currency", _CODE, nullable=False),
    sa.Column("lines", _JSON, nullable=False),
    sa.Column("schedule", _JSON, nullable=False),
    sa.Column("memo", sa.Text, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("next_index", sa.Integer, nullable=False),
    sa.Column("next_due_at", UtcDateTime()),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    _allowance_charges(),
    # Version 7: the digest of the arguments create_template created it with
    # (hex SHA-256); NULL for the templates that exist when it is added.
    sa.Column("created_with", sa.String(64), info=_since(7)),
    sa.Index("ix_templates_account", "account_id", "customer_id", info=_since(1)),
    # Version 2: the daily run's query (status, next_due_at <= T, id > after).
    sa.Index("ix_templates_due", "status", "next_due_at", "id", info=_since(2)),
    # Version 12: an account's templates a page at a time (id > after, by
    # id). customer_id too: SQLite, which keeps no statistics, takes this
    # index for one customer's templates as well, and then finds them in it.
    sa.Index(
        "ix_templates_account_id", "account_id", "id", "customer_id", info=_since(12)
    ),
)

occurrences = sa.Table(
    "occurrences",
    metadata,
    sa.Column("template_id", _ID, primary_key=True),
    sa.Column("occurrence_index", sa.Integer, primary_key=True),
    _account(),
    sa.Column("on_date", IsoDate(), nullable=False),
    sa.Column("outcome", sa.String(20), nullable=False),
    sa.Column("invoice_id", _ID),
)

counters = sa.Table(
    "invoice_counters",
    metadata,
    sa.Column("account_id", _ID, sa.ForeignKey("accounts.id"), primary_key=True),
    sa.Column("series", sa.String(100), primary_key=True),
    sa.Column("next_number", sa.Integer, nullable=False),
)

invoices = sa.Table(
    "invoices",
    metadata,
    _id(),
    _account(),
    sa.Column("customer_id", _ID, nullable=False),
    sa.Column("series", sa.String(100), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("currency", _CODE, nullable=False),
    sa.Column("issue_date", IsoDate(), nullable=False),
    sa.Column("due_date", IsoDate(), nullable=False),
    sa.Column("lines", _JSON, nullable=False),
    sa.Column("net_total", ExactDecimal(), nullable=False),
    sa.Column("vat_total", ExactDecimal(), nullable=False),
    sa.Column("total", ExactDecimal(), nullable=False),
    sa.Column("paid", ExactDecimal(), nullable=False),
    sa.Column("credited", ExactDecimal(), nullable=False),
    sa.Column("payment_reference", sa.String(100), nullable=False),
    sa.Column("template_id", _ID),
    sa.Column("occurrence_index", sa.Integer),
    sa.Column("memo", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("paid_at", UtcDateTime()),
    _allowance_charges(),
    sa.UniqueConstraint("account_id", "series", "number", name="uq_invoices_number"),
    sa.Index("ix_invoices_customer", "account_id", "customer_id", info=_since(1)),
    # At most one invoice per template occurrence (NULLs, one-off invoices, differ).
    sa.Index(
        "uq_invoices_occurrence",
        "template_id",
        "occurrence_index",
        unique=True,
        info=_since(1),
    ),
)

payments = sa.Table(
    "payments",
    metadata,
    _id(),
    _account(),
    sa.Column("customer_id", _ID, nullable=False),
    sa.Column("idempotency_key", sa.String(255), nullable=False),
    sa.Column("currency", _CODE, nullable=False),
    sa.Column("amount", ExactDecimal(), nullable=False),
    sa.Column("payment_method_id", _ID, nullable=False),
    sa.Column("invoice_ids", _JSON, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("off_session", sa.Boolean, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("settlement_id", _ID),
    sa.Column("charge_id", sa.String(255)),
    sa.Column("decline_code", sa.String(100)),
    sa.Column("error_code", sa.String(100)),
    sa.Column("client_secret", sa.Text),
    sa.Column("refunded", ExactDecimal()),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("idempotency_key", name="uq_payments_idempotency_key"),
    sa.Index("ix_payments_customer", "account_id", "customer_id", info=_since(1)),
    sa.Index("ix_payments_status", "status", info=_since(1)),
)

# Version 12: the invoices each payment includes (its invoice_ids), one row
# each, written with the payment: the payments of one invoice are found by
# the index instead of among every payment of its customer.
payment_invoices = sa.Table(
    "payment_invoices",
    metadata,
    _account(),
    sa.Column("payment_id", _ID, primary_key=True),
    sa.Column("invoice_id", _ID, primary_key=True),
    sa.Index(
        "ix_payment_invoices_invoice", "account_id", "invoice_id", info=_since(12)
    ),
    info=_since(12),
)

settlements = sa.Table(
    "settlements",
    metadata,
    _id(),
    _account(),
    sa.Column("customer_id", _ID, nullable=False),
    sa.Column("selection_key", sa.String(255), nullable=False),
    sa.Column("items", _JSON, nullable=False),
    sa.Column("currency", _CODE, nullable=False),
    sa.Column("total", ExactDecimal(), nullable=False),
    sa.Column("payment_method_id", _ID, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("payment_id", _ID),
    sa.Column("receipt_id", _ID),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Index("ix_settlements_customer", "account_id", "customer_id", info=_since(1)),
)
sa.Index(
    "uq_settlements_pending_selection",
    settlements.c.account_id,
    settlements.c.selection_key,
    unique=True,
    sqlite_where=settlements.c.status == "pending",
    postgresql_where=settlements.c.status == "pending",
    info=_since(1),
)

receipts = sa.Table(
    "receipts",
    metadata,
    _id(),
    _account(),
    sa.Column("customer_id", _ID, nullable=False),
    sa.Column("number", sa.String(100), nullable=False),
    sa.Column("payment_id", _ID, nullable=False),
    sa.Column("items", _JSON, nullable=False),
    sa.Column("currency", _CODE, nullable=False),
    sa.Column("amount", ExactDecimal(), nullable=False),
    sa.Column("credit", ExactDecimal(), nullable=False),
    sa.Column("card_brand", sa.String(40), nullable=False),
    sa.Column("card_last4", sa.String(4), nullable=False),
    sa.Column("issued_at", UtcDateTime(), nullable=False),
    # Version 10: when the card was charged. recurbill always writes it and
    # its step fills it in for the rows that exist; nullable only because
    # SQLite adds no NOT NULL column without a default (a NULL reads as an
    # unreadable receipt).
    sa.Column("paid_at", UtcDateTime(), info=_since(10)),
    sa.Index("ix_receipts_customer", "account_id", "customer_id", info=_since(1)),
    # Version 12: a payment's receipt, found without its customer's others.
    sa.Index("ix_receipts_payment", "account_id", "payment_id", info=_since(12)),
)

credit_notes = sa.Table(
    "credit_notes",
    metadata,
    _id(),
    _account(),
    sa.Column("customer_id", _ID, nullable=False),
    sa.Column("invoice_id", _ID, nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("series", sa.String(100), nullable=False),
    sa.Column("currency", _CODE, nullable=False),
    sa.Column("amount", ExactDecimal(), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("issue_date", IsoDate(), nullable=False),
    sa.Column("lines", _JSON, nullable=False),
    _allowance_charges(),
    sa.Index("ix_credit_notes_invoice", "account_id", "invoice_id", info=_since(1)),
    # Version 3: a credit note number is used once per series, like invoices'.
    sa.Index(
        "ux_credit_notes_number",
        "account_id",
        "series",
        "number",
        unique=True,
        info=_since(3),
    ),
)

refunds = sa.Table(
    "refunds",
    metadata,
    _id(),
    _account(),
    sa.Column("payment_id", _ID, nullable=False),
    sa.Column("currency", _CODE, nullable=False),
    sa.Column("amount", ExactDecimal(), nullable=False),
    sa.Column("idempotency_key", sa.String(255), nullable=False),
    sa.Column("status", sa.String(40), nullable=False),
    sa.Column("refund_id", sa.String(255)),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("reopen", sa.Boolean, info=_since(11)),
    sa.UniqueConstraint("idempotency_key", name="uq_refunds_idempotency_key"),
    sa.Index("ix_refunds_payment", "account_id", "payment_id", info=_since(1)),
)

credit_entries = sa.Table(
    "credit_entries",
    metadata,
    _id(),
    _account(),
    sa.Column("customer_id", _ID, nullable=False),
    sa.Column("currency", _CODE, nullable=False),
    sa.Column("amount", ExactDecimal(), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("source_id", _ID, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Index("ix_credit_entries_customer", "account_id", "customer_id", info=_since(1)),
)

notifications = sa.Table(
    "notifications",
    metadata,
    _id(),
    _account(),
    sa.Column("kind", sa.String(100), nullable=False),
    sa.Column("recipient", sa.Text, nullable=False),
    sa.Column("subject", sa.Text, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("html", sa.Text, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("headers", _JSON, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("sent_at", UtcDateTime()),
    sa.Index("ix_notifications_status", "status", "created_at", info=_since(1)),
)

webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("event_id", sa.String(255), primary_key=True),
)

# Version 9: lines of daily summaries to come, stored with the work they report.
summary_lines = sa.Table(
    "summary_lines",
    metadata,
    _id(),
    _account(),
    sa.Column("lines", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Index("ix_summary_lines_account", "account_id", "created_at", info=_since(9)),
    info=_since(9),
)

"""recurbill: embeddable billing for Python applications.

Recurring invoices, charging a saved card after each session, and settling many
invoices with one payment, exact with money and dates. ``SqlStorage`` and
``StripeGateway`` are imported on first use (``StripeGateway`` needs the
``stripe`` extra).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from recurbill.billing import Billing
from recurbill.collection import RetryPolicy
from recurbill.errors import (
    ChargeAmountError,
    ConflictError,
    CreditExceedsInvoiceError,
    CurrencyMismatchError,
    DeliveryError,
    FixedSettingError,
    GatewayAuthenticationError,
    GatewayConfigurationError,
    GatewayError,
    GatewayUnavailableError,
    IdempotencyKeyReuseError,
    InvalidAmountError,
    InvalidInputError,
    InvalidInvoiceError,
    InvalidPauseError,
    InvalidPayeeError,
    InvalidRecordError,
    InvalidReferenceError,
    InvalidScheduleError,
    InvalidSelectionError,
    NotFoundError,
    NotifierError,
    ProductionGuardError,
    RecurbillError,
    ReferenceLengthError,
    SchemaVersionError,
    SelectionAmountError,
    StartTooEarlyError,
    StateError,
    StorageError,
    StorageUnavailableError,
    UnknownCurrencyError,
    UnreadableRecordError,
    VatCategoryError,
    WebhookError,
)
from recurbill.invoice import (
    AllowanceCharge,
    CreditNote,
    Inconsistency,
    InvoiceLine,
    Totals,
    VatCategory,
    VatSubtotal,
    amount_owed,
    cash_rounding,
    check_consistency,
    compute_totals,
    credit_note,
    creditable_amount,
    full_credit_note,
    line_net,
    totals_from_line_nets,
)
from recurbill.mass_payment import (
    MassPaymentConfirmation,
)
from recurbill.money import (
    Currency,
    Money,
    allocate,
    format_money,
)
from recurbill.notify import (
    Message,
    Notifier,
    Outbox,
    SmtpNotifier,
    deliver_pending,
)
from recurbill.payee import PayeeAccount, PayeeKind
from recurbill.payments.memory import (
    InMemoryGateway,
)
from recurbill.payments.protocol import (
    CardDetails,
    CardSetup,
    ChargeLimits,
    ChargeResult,
    ChargeStatus,
    PaymentGateway,
    RefundResult,
    WebhookEvent,
)
from recurbill.records import (
    Account,
    CollectionMethod,
    Customer,
    Invoice,
    InvoiceStatus,
    NoChargeReason,
    NotificationStatus,
    OccurrenceOutcome,
    OccurrenceRecord,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Receipt,
    RecurringTemplate,
    RunReport,
    Settlement,
    SettlementStatus,
    TemplateStatus,
)
from recurbill.references import (
    ReferenceMethod,
    ReferenceScheme,
    kid_mod10,
    kid_mod11,
    ocr,
    reference_methods,
    validate_kid,
    validate_ocr,
)
from recurbill.schedule import (
    DEFAULT_RUN_TIME,
    Occurrence,
    OccurrenceStatus,
    Pause,
    Period,
    Schedule,
    due_at,
)
from recurbill.settlement import (
    Allocation,
    AllocationResult,
    SettlementLine,
    SettlementPlan,
    allocate_payment,
    plan_settlement,
)
from recurbill.storage.memory import (
    InMemoryStorage,
)
from recurbill.storage.protocol import (
    Storage,
    Transaction,
)
from recurbill.views import (
    CustomerOverview,
    PaymentOutcome,
    TemplateView,
    UpcomingInvoice,
)

if TYPE_CHECKING:
    from recurbill.payments.stripe import StripeGateway
    from recurbill.storage.sql import SqlStorage

__all__ = [
    "DEFAULT_RUN_TIME",
    "Account",
    "Allocation",
    "AllocationResult",
    "AllowanceCharge",
    "Billing",
    "CardDetails",
    "CardSetup",
    "ChargeAmountError",
    "ChargeLimits",
    "ChargeResult",
    "ChargeStatus",
    "CollectionMethod",
    "ConflictError",
    "CreditExceedsInvoiceError",
    "CreditNote",
    "Currency",
    "CurrencyMismatchError",
    "Customer",
    "CustomerOverview",
    "DeliveryError",
    "FixedSettingError",
    "GatewayAuthenticationError",
    "GatewayConfigurationError",
    "GatewayError",
    "GatewayUnavailableError",
    "IdempotencyKeyReuseError",
    "InMemoryGateway",
    "InMemoryStorage",
    "Inconsistency",
    "InvalidAmountError",
    "InvalidInputError",
    "InvalidInvoiceError",
    "InvalidPauseError",
    "InvalidPayeeError",
    "InvalidRecordError",
    "InvalidReferenceError",
    "InvalidScheduleError",
    "InvalidSelectionError",
    "Invoice",
    "InvoiceLine",
    "InvoiceStatus",
    "MassPaymentConfirmation",
    "Message",
    "Money",
    "NoChargeReason",
    "NotFoundError",
    "NotificationStatus",
    "Notifier",
    "NotifierError",
    "Occurrence",
    "OccurrenceOutcome",
    "OccurrenceRecord",
    "OccurrenceStatus",
    "Outbox",
    "Pause",
    "PayeeAccount",
    "PayeeKind",
    "Payment",
    "PaymentGateway",
    "PaymentMethod",
    "PaymentOutcome",
    "PaymentStatus",
    "Period",
    "ProductionGuardError",
    "Receipt",
    "RecurbillError",
    "RecurringTemplate",
    "ReferenceLengthError",
    "ReferenceMethod",
    "ReferenceScheme",
    "RefundResult",
    "RetryPolicy",
    "RunReport",
    "Schedule",
    "SchemaVersionError",
    "SelectionAmountError",
    "Settlement",
    "SettlementLine",
    "SettlementPlan",
    "SettlementStatus",
    "SmtpNotifier",
    "SqlStorage",
    "StartTooEarlyError",
    "StateError",
    "Storage",
    "StorageError",
    "StorageUnavailableError",
    "StripeGateway",
    "TemplateStatus",
    "TemplateView",
    "Totals",
    "Transaction",
    "UnknownCurrencyError",
    "UnreadableRecordError",
    "UpcomingInvoice",
    "VatCategory",
    "VatCategoryError",
    "VatSubtotal",
    "WebhookError",
    "WebhookEvent",
    "allocate",
    "allocate_payment",
    "amount_owed",
    "cash_rounding",
    "check_consistency",
    "compute_totals",
    "credit_note",
    "creditable_amount",
    "deliver_pending",
    "due_at",
    "format_money",
    "full_credit_note",
    "kid_mod10",
    "kid_mod11",
    "line_net",
    "ocr",
    "plan_settlement",
    "reference_methods",
    "totals_from_line_nets",
    "validate_kid",
    "validate_ocr",
]


def __getattr__(name: str) -> object:
    """Import the adapters with heavier dependencies on first use."""
    if name == "SqlStorage":
        from recurbill.storage.sql import SqlStorage

        return SqlStorage
    if name == "StripeGateway":
        from recurbill.payments.stripe import StripeGateway

        return StripeGateway
    raise AttributeError(f"module 'recurbill' has no attribute {name!r}")

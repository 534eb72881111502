"""Every error recurbill raises, in one tree.

Errors that resemble a built-in also subclass it, so ``except ValueError``
and ``except LookupError`` keep working in code that does not know recurbill.
Each error builds its message from keyword fields, which stay readable on the
instance as ``error.fields``::

    RecurbillError
    ├── InvalidInputError (ValueError)          bad input to a public entry point
    │   ├── InvalidAmountError                  float, NaN, bool or non-numeric amount
    │   ├── UnknownCurrencyError                not an ISO 4217 code
    │   ├── CurrencyMismatchError               two currencies in one computation
    │   ├── InvalidScheduleError                period, multiplier, end date, count
    │   │   ├── StartTooEarlyError              start is not after today
    │   │   └── InvalidPauseError               pause/resume out of order
    │   ├── InvalidInvoiceError                 lines, prices, quantities
    │   │   ├── VatCategoryError                rate or exemption reason breaks a rule
    │   │   └── CreditExceedsInvoiceError       a credit note larger than its invoice
    │   ├── InvalidReferenceError               KID or OCR payment reference
    │   │   └── ReferenceLengthError            an invoice number outgrew its length
    │   ├── ChargeAmountError                   an amount one card charge cannot take
    │   ├── InvalidSelectionError               a mass-payment selection
    │   │   └── SelectionAmountError            a total beyond one charge (see above)
    │   └── InvalidRecordError                  an account, customer or template field
    │       ├── FixedSettingError               an account setting that cannot change
    │       └── InvalidPayeeError               a payee account or seller VAT number
    ├── StateError                              the record's state forbids the action
    ├── StorageError                            the storage port
    │   ├── NotFoundError (LookupError)         no such record in this account
    │   ├── ConflictError                       a uniqueness or concurrency conflict
    │   ├── StorageUnavailableError             the database cannot be reached
    │   ├── UnreadableRecordError               a stored row that cannot be read back
    │   └── SchemaVersionError                  the schema is newer than the library
    ├── GatewayError                            the payment gateway port
    │   ├── GatewayUnavailableError             outcome unknown: retry with the same key
    │   └── GatewayConfigurationError           misuse or configuration: do not retry
    │       ├── GatewayAuthenticationError      the API key refused: fix it, then rerun
    │       ├── IdempotencyKeyReuseError        one key, other parameters
    │       └── ProductionGuardError            a test double where production is set
    ├── WebhookError (ValueError)               a webhook that cannot be trusted
    └── NotifierError                           the notifier port
        └── DeliveryError                       the message could not be delivered
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

__all__ = [
    "ChargeAmountError",
    "ConflictError",
    "CreditExceedsInvoiceError",
    "CurrencyMismatchError",
    "DeliveryError",
    "FixedSettingError",
    "GatewayAuthenticationError",
    "GatewayConfigurationError",
    "GatewayError",
    "GatewayUnavailableError",
    "IdempotencyKeyReuseError",
    "InvalidAmountError",
    "InvalidInputError",
    "InvalidInvoiceError",
    "InvalidPauseError",
    "InvalidPayeeError",
    "InvalidRecordError",
    "InvalidReferenceError",
    "InvalidScheduleError",
    "InvalidSelectionError",
    "NotFoundError",
    "NotifierError",
    "ProductionGuardError",
    "RecurbillError",
    "ReferenceLengthError",
    "SchemaVersionError",
    "SelectionAmountError",
    "StartTooEarlyError",
    "StateError",
    "StorageError",
    "StorageUnavailableError",
    "UnknownCurrencyError",
    "UnreadableRecordError",
    "VatCategoryError",
    "WebhookError",
]


class RecurbillError(Exception):
    """Root of every error recurbill raises.

    Subclasses set ``template``; the message is ``template`` formatted with
    the keyword fields given to the constructor. The generic template takes
    ``problem`` (what was wrong) and ``allowed`` (what is allowed instead).
    """

    template: ClassVar[str] = "{problem}; {allowed}"

    def __init__(self, **fields: object) -> None:
        self.fields: dict[str, object] = fields
        super().__init__(self._message(fields))

    def _message(self, fields: dict[str, object]) -> str:
        return self.template.format(**fields)

    def __reduce__(self) -> tuple[object, ...]:
        # rebuilt from its fields, so errors cross process boundaries intact,
        # with any attribute set after it was made (GatewayError.reports)
        extra = {k: v for k, v in vars(self).items() if k != "fields"}
        return (_rebuild, (type(self), self.fields), extra or None)


def _rebuild(cls: type[RecurbillError], fields: dict[str, object]) -> RecurbillError:
    return cls(**fields)


class InvalidInputError(RecurbillError, ValueError):
    """Bad input to a public entry point: says what was wrong and what is allowed."""


class InvalidAmountError(InvalidInputError):
    """An amount that is not an exact decimal (a float, NaN, a bool, text), or
    one beyond the limits of a money amount (given as ``problem`` and ``allowed``).
    """

    template = (
        "{value!r} is not a valid amount; use a Decimal, an int or a decimal "
        "string such as '12.50' (floats are refused because they are inexact)"
    )

    def _message(self, fields: dict[str, object]) -> str:
        if "problem" in fields:
            return RecurbillError.template.format(**fields)
        return super()._message(fields)


class UnknownCurrencyError(InvalidInputError):
    """A currency code that is not an active ISO 4217 code."""

    template = (
        "unknown currency {code!r}; use an active ISO 4217 code such as "
        "'NOK', 'SEK', 'ISK', 'EUR'"
    )


class CurrencyMismatchError(InvalidInputError):
    """Two currencies met in one computation, or an amount in the wrong currency.

    ``left`` is the currency expected and ``right`` the one met; given
    ``what`` and ``amount`` too, the message names the amount.
    """

    template = "cannot combine {left} with {right}; amounts must share one currency"

    def _message(self, fields: dict[str, object]) -> str:
        if "what" in fields:
            return (
                "{what} {amount} is in {right}, not {left}; give it in {left}, "
                "e.g. Money('100', '{left}')"
            ).format(**fields)
        return super()._message(fields)


class InvalidScheduleError(InvalidInputError):
    """A schedule that breaks a rule: period, multiplier, end date or count."""


class StartTooEarlyError(InvalidScheduleError):
    """A start date that is today or earlier in the account's time zone."""

    template = (
        "start date {start} is too early: invoices are produced by the daily "
        "run, so the earliest allowed start is {earliest} (tomorrow)"
    )


class InvalidPauseError(InvalidScheduleError):
    """A pause or resume that does not fit the schedule's pause history."""


class InvalidInvoiceError(InvalidInputError):
    """An invoice line, allowance, charge or total that breaks a rule."""


class VatCategoryError(InvalidInvoiceError):
    """A VAT rate or exemption reason that breaks its category's rule."""


class CreditExceedsInvoiceError(InvalidInvoiceError):
    """A credit note larger than what is left on the invoice it credits."""

    template = (
        "credit of {credit} exceeds the {remaining} still creditable on "
        "invoice {invoice}; a credit note may reverse at most that amount"
    )


class InvalidReferenceError(InvalidInputError):
    """A KID or OCR payment reference that is malformed or fails its check digit."""


class ReferenceLengthError(InvalidReferenceError):
    """An invoice number too long for the account's fixed reference length.

    Fields: ``number`` (the invoice number), ``length`` (the fixed length),
    ``scheme`` (what the reference is, e.g. ``KID (MOD11)``) and ``largest``
    (the largest invoice number that length holds).
    """

    template = (
        "invoice number {number} does not fit the account's {length}-character "
        "{scheme} reference; that length holds invoice numbers up to {largest} "
        "(a longer fixed length, agreed with the bank, holds more: set it with "
        "Billing.change_account(reference_scheme=...))"
    )


class ChargeAmountError(InvalidInputError):
    """An amount the payment gateway cannot charge in one card payment.

    Below its minimum, above its maximum, or not a whole multiple of its
    smallest unit. Besides ``problem`` and ``allowed``, ``error.fields`` holds
    ``amount`` (the Money refused), ``bound`` (``"minimum"``, ``"maximum"`` or
    ``"increment"``) and ``limit`` (that bound, as Money).
    """


class InvalidSelectionError(InvalidInputError):
    """A mass-payment selection that cannot be settled."""


class SelectionAmountError(InvalidSelectionError, ChargeAmountError):
    """A mass-payment selection whose total the gateway cannot charge at once.

    Both an :class:`InvalidSelectionError` (``reason`` is ``"amount"``,
    ``invoice_ids`` the whole selection) and a :class:`ChargeAmountError`
    (``amount`` is the total; ``bound`` says which limit it breaks).
    """


class InvalidRecordError(InvalidInputError):
    """A field of an account, customer, payment method or template that is invalid."""


class FixedSettingError(InvalidRecordError):
    """An account setting that cannot be changed safely, or a change of one
    that would clash with the invoices already issued.

    ``setting`` names it (``"timezone"``); ``problem`` says why it cannot
    change and ``allowed`` what to do instead.
    """


class InvalidPayeeError(InvalidRecordError):
    """An account's payee account (where its customers pay) or VAT number
    that is malformed, of the wrong kind, or fails its check digit."""


class StateError(RecurbillError):
    """The record's state does not allow the action (e.g. paying a paid invoice)."""


class StorageError(RecurbillError):
    """Base of the storage port's errors."""


class NotFoundError(StorageError, LookupError):
    """No such record in this account (records of other accounts are never found)."""

    template = "{kind} {key!r} not found in account {account!r}"

    def __str__(self) -> str:
        if self.fields.get("kind") == "account":  # not "... in account" itself
            return f"account {self.fields.get('key')!r} not found"
        return super().__str__()


class ConflictError(StorageError):
    """A uniqueness or concurrency conflict: the write was not made."""


class StorageUnavailableError(StorageError):
    """The database could not be reached or refused the connection."""


class UnreadableRecordError(StorageError):
    """A stored record that cannot be read back: its row holds what recurbill
    never writes (changed by hand or by another program). Nothing is changed.

    Every read of ``SqlStorage`` raises it, for any kind of record, instead
    of the error the row's content caused (bad JSON, an unknown code, text
    that is no instant, date or amount). ``kind`` and ``key`` name the record
    (``"invoice"``, ``"inv_7"``; an occurrence's key is
    ``"<template id>/<index>"``), ``account`` its account, ``reason`` the
    column when known and what is wrong with it (``"lines: ..."``). Correct
    the row to what recurbill writes, or restore it from a backup. Errors of
    the database itself (unreachable, a lock timeout) stay
    :class:`StorageUnavailableError` and :class:`ConflictError`; so does, on
    PostgreSQL, a timestamp its driver cannot hand to Python (``'infinity'``):
    a :class:`StorageError` that names the value, not the row.

    For a template, ``customer`` is its customer id and :attr:`next_due_at`
    its due instant as stored; from ``Transaction.due_templates``,
    :attr:`read` holds the chunk's templates before it. The daily run reports
    such a template, or one whose customer cannot be read, and goes on past
    it; so it does with a payment it would finish or retry and a row that
    finishing it needs, the invoice of a retry, and a refund it would finish
    or follow, its payment or an earlier refund of that payment
    (``RunReport.unreadable``). An account it cannot read is set
    aside too: the run does everything else, queues the other accounts'
    summaries, and then raises this error for that account, with the run's
    reports as :attr:`reports`. Any other row the run cannot read stops it
    with this error. ``deliver_pending`` sets aside an outbox message that
    cannot be read (``key`` is its id) and sends the others.
    """

    template = (
        "stored {kind} {key!r} of account {account!r} could not be read "
        "({reason}); correct the row to what recurbill writes, or restore it "
        "from a backup"
    )

    reports: tuple[Any, ...] = ()
    """When a daily run (``Billing.run``) raised it for an account it could
    not read: the ``RunReport`` of each account it did run; otherwise empty."""

    @property
    def next_due_at(self) -> datetime | None:
        """The template's stored due instant; None when that cannot be read."""
        due = self.fields.get("next_due_at")
        return due if isinstance(due, datetime) else None

    @property
    def read(self) -> tuple[Any, ...]:
        """The templates a due walk read before this one, in due order."""
        read = self.fields.get("read", ())
        return read if isinstance(read, tuple) else ()


class SchemaVersionError(StorageError):
    """The database schema is newer than this version of recurbill understands."""

    template = (
        "database schema version {found} is newer than the {supported} this "
        "recurbill understands; upgrade recurbill before using this database"
    )


class GatewayError(RecurbillError):
    """Base of the payment gateway port's errors (declines are results, not errors)."""

    reports: tuple[Any, ...] = ()
    """When this error stopped a daily run (``Billing.run``): the run's
    ``RunReport`` per account, of all it did before raising; otherwise empty."""


class GatewayUnavailableError(GatewayError):
    """The gateway did not answer: the outcome is unknown; retry with the same key."""


class GatewayConfigurationError(GatewayError):
    """Misuse or configuration error reported by the gateway: do not retry."""


class GatewayAuthenticationError(GatewayConfigurationError):
    """The gateway refused the credentials (the API key) or their permissions.

    Nothing was done. It concerns every request, not one payment, so the
    daily run stops on it and leaves its payments to be made once it is fixed.
    """


class IdempotencyKeyReuseError(GatewayConfigurationError):
    """An idempotency key was reused with other parameters."""

    template = (
        "idempotency key {key!r} was already used with other parameters; "
        "a key may only repeat the identical request"
    )


class ProductionGuardError(GatewayConfigurationError):
    """A test double was started where the production flag is set."""


class WebhookError(RecurbillError, ValueError):
    """A webhook whose signature, timestamp or payload cannot be trusted."""


class NotifierError(RecurbillError):
    """Base of the notifier port's errors."""


class DeliveryError(NotifierError):
    """A message could not be delivered (refused recipient, unreachable server)."""

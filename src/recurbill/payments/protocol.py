"""The payment gateway port: what billing asks of a gateway, and what it gets back.

A gateway only moves money; recurbill owns the invoices and the ledger. Every
call that moves money carries an idempotency key that billing saved *before*
the call, so a retry after a timeout cannot charge twice.

Declines are results (:class:`ChargeResult` with ``status=DECLINED``), not
errors. Only infrastructure faults raise:

- :class:`~recurbill.errors.GatewayUnavailableError`: the outcome is unknown
  (timeout, 5xx, rate limited after retries). Retry with the *same* key, or
  reconcile with :meth:`PaymentGateway.retrieve_charge`.
- :class:`~recurbill.errors.GatewayConfigurationError`: authentication, bad
  parameters, unknown ids. Do not retry.
- :class:`~recurbill.errors.IdempotencyKeyReuseError`: one key, other parameters.
- :class:`~recurbill.errors.WebhookError`: a webhook that cannot be trusted.

Card numbers and CVCs never enter the library: a payment method is a gateway
token (``pm_…``) plus display facts.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Literal, Protocol

import attrs

from recurbill.errors import CurrencyMismatchError
from recurbill.money import Currency, Money

__all__ = [
    "ACCOUNT_METADATA_KEY",
    "CUSTOMER_METADATA_KEY",
    "DECLINE_METADATA_KEY",
    "IDEMPOTENCY_METADATA_KEY",
    "PAYMENT_METADATA_KEY",
    "REFUND_METADATA_KEY",
    "CardDetails",
    "CardSetup",
    "ChargeBound",
    "ChargeLimits",
    "ChargeResult",
    "ChargeStatus",
    "PaymentGateway",
    "RefundResult",
    "WebhookEvent",
]

IDEMPOTENCY_METADATA_KEY = "recurbill_idempotency_key"
"""Metadata key under which a charge carries its idempotency key (webhooks too)."""
ACCOUNT_METADATA_KEY = "account"
"""Metadata key of the account a customer, charge or refund is for."""
CUSTOMER_METADATA_KEY = "recurbill_customer"
"""Metadata key of the customer a gateway customer is."""
PAYMENT_METADATA_KEY = "recurbill_payment"
"""Metadata key of the payment a charge (or a refund of it) belongs to."""
REFUND_METADATA_KEY = "recurbill_refund"
"""Metadata key of the refund a gateway refund is (its webhooks find it so)."""
DECLINE_METADATA_KEY = "recurbill_decline"
"""Metadata key where an adapter may keep a charge's decline across its cancel."""


class ChargeStatus(str, enum.Enum):
    """The outcome of one charge attempt."""

    SUCCEEDED = "succeeded"
    DECLINED = "declined"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    CANCELED = "canceled"


@attrs.frozen(kw_only=True)
class CardDetails:
    """A saved card: the gateway token and what may be shown to the customer.

    Never a card number or a CVC: ``last4`` is the only part of the number.
    """

    token: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@attrs.frozen(kw_only=True)
class CardSetup:
    """A started card setup (Stripe: a SetupIntent for off-session use).

    The customer's browser completes it with ``client_secret``; the card data
    goes straight to the gateway and never touches the library.
    """

    setup_id: str
    client_secret: str
    customer: str


ChargeBound = Literal["minimum", "maximum", "increment"]
"""Which limit of :class:`ChargeLimits` an amount breaks."""


@attrs.frozen(kw_only=True)
class ChargeLimits:
    """What one charge in *currency* may be, as the gateway says.

    ``minimum`` and ``maximum`` bound one charge (None: no bound is known in
    advance); every amount must be a whole multiple of ``increment``. Billing
    asks before it offers a card payment, so a customer is told that an
    amount cannot be paid by card instead of meeting a charge that fails.

    >>> limits = ChargeLimits(currency=Currency("ISK"), minimum=None,
    ...     maximum=Money(999_999, "ISK"), increment=Money(1, "ISK"))
    >>> limits.broken_by(Money(1_302_000, "ISK"))
    ('maximum', Money(amount=Decimal('999999'), currency=Currency(code='ISK')))
    >>> limits.broken_by(Money(186_000, "ISK")) is None
    True
    """

    currency: Currency
    minimum: Money | None
    maximum: Money | None
    increment: Money

    def broken_by(self, amount: Money) -> tuple[ChargeBound, Money] | None:
        """The limit *amount* breaks and its value, or None if it can be charged."""
        if amount.currency != self.currency:
            raise CurrencyMismatchError(
                left=self.currency, right=amount.currency, what="amount", amount=amount
            )
        if self.minimum is not None and amount < self.minimum:
            return "minimum", self.minimum
        if self.maximum is not None and amount > self.maximum:
            return "maximum", self.maximum
        if amount.amount % self.increment.amount:
            return "increment", self.increment
        return None


@attrs.frozen(kw_only=True)
class ChargeResult:
    """The outcome of a charge: succeeded, declined, needs action or processing.

    ``decline_code`` is the issuer's reason (``insufficient_funds``),
    ``error_code`` the gateway's (``card_declined``). ``retryable`` says whether
    the same card may succeed later without the customer doing anything.
    For ``REQUIRES_ACTION``, ``client_secret`` (and ``action_url`` when the
    gateway gives one) is what the customer needs to complete the payment.
    A ``CANCELED`` charge that was declined before it was canceled keeps
    that decline's ``decline_code`` and ``error_code`` (see
    :meth:`PaymentGateway.cancel_charge`); otherwise it has neither.
    """

    status: ChargeStatus
    charge_id: str | None
    amount: Money
    idempotency_key: str
    decline_code: str | None = None
    error_code: str | None = None
    retryable: bool = False
    action_url: str | None = None
    client_secret: str | None = None


@attrs.frozen(kw_only=True)
class RefundResult:
    """A refund of all or part of a charge; ``status`` as the gateway reports it.

    Stripe's statuses are ``pending``, ``requires_action``, ``succeeded``,
    ``failed`` and ``canceled``; a refund answered ``succeeded`` can still
    become ``failed`` later (a closed card), with ``failure_reason`` saying
    why (Stripe: ``expired_or_canceled_card``, ``lost_or_stolen_card``, …).
    """

    refund_id: str
    charge_id: str
    amount: Money
    status: str
    failure_reason: str | None = None


@attrs.frozen(kw_only=True)
class WebhookEvent:
    """A verified webhook event.

    ``event_id`` is stable across deliveries, so the billing layer can drop
    duplicates; ``created`` is unix seconds; ``data`` is the event's object
    (for Stripe, ``data.object``) as plain JSON values. ``refund`` is set for
    an event about a refund of a charge (Stripe: ``refund.created``,
    ``refund.updated``, ``refund.failed``, ``charge.refund.updated``): the
    refund as the event reports it.
    """

    event_id: str
    type: str
    created: int
    data: Mapping[str, object]
    refund: RefundResult | None = None


class PaymentGateway(Protocol):
    """What billing needs from a payment gateway (Stripe, or the in-memory one).

    Arguments after the first are keyword-only. Amounts are :class:`Money`;
    the adapter converts to and from the gateway's minor units.
    """

    def create_customer(
        self,
        *,
        email: str,
        name: str,
        metadata: Mapping[str, str] = ...,
        idempotency_key: str | None = ...,
    ) -> str:
        """Create a customer at the gateway and return its id.

        The same *idempotency_key* with the same parameters returns the
        customer made first instead of a second one (for as long as the
        gateway remembers keys: Stripe, 24 hours).
        """
        ...

    def find_customer(self, *, metadata: Mapping[str, str]) -> str | None:
        """The id of a customer whose metadata holds every pair of *metadata*.

        None if the gateway knows of none. How a customer whose creation's
        answer was lost is found again after the gateway forgot the
        idempotency key (Stripe: 24 hours). Stripe's search is eventually
        consistent: a customer created in the last minute (an hour during
        an outage) may not be found yet, so this narrows the window for a
        second customer; it does not close it.
        """
        ...

    def update_customer(self, customer: str, *, email: str, name: str) -> None:
        """Set the e-mail address and name the gateway keeps for *customer*.

        Both are sent every time, as recurbill stores them: the call sets
        values, so repeating it (after a timeout, or with values that came
        back) changes nothing more, and it needs no idempotency key.
        """
        ...

    def start_card_setup(self, customer: str) -> CardSetup:
        """Start saving a card for off-session use (Stripe: a SetupIntent)."""
        ...

    def attach_payment_method(self, customer: str, *, token: str) -> CardDetails:
        """Attach the payment method *token* to *customer*; return its details.

        A card attached to *customer* already is returned as it is (a repeat
        after a lost answer); a detached one is refused with a
        :class:`~recurbill.errors.GatewayError`, as Stripe refuses it.
        """
        ...

    def list_payment_methods(self, customer: str) -> list[CardDetails]:
        """The cards saved for *customer*."""
        ...

    def detach_payment_method(self, token: str) -> None:
        """Remove a saved card from its customer."""
        ...

    def set_default_payment_method(self, customer: str, *, token: str) -> None:
        """Make *token* the customer's default card at the gateway."""
        ...

    def charge_limits(self, currency: Currency) -> ChargeLimits:
        """The smallest, largest and finest amount one charge in *currency* takes.

        Answered without a request to the gateway: billing asks it whenever a
        payment is planned. :meth:`charge` refuses an amount outside these
        limits with :class:`~recurbill.errors.InvalidInputError`.
        """
        ...

    def charge(
        self,
        customer: str,
        *,
        payment_method: str,
        amount: Money,
        idempotency_key: str,
        off_session: bool,
        description: str = "",
        metadata: Mapping[str, str] = ...,
    ) -> ChargeResult:
        """Charge *amount* to *payment_method*; a decline is a result, not an error.

        The same key with the same parameters returns the first result and
        never charges twice; the same key with other parameters raises
        :class:`~recurbill.errors.IdempotencyKeyReuseError`.
        """
        ...

    def retrieve_charge(
        self, *, idempotency_key: str | None = None, charge_id: str | None = None
    ) -> ChargeResult | None:
        """Look up a charge by key or id (for reconciliation); None if unknown."""
        ...

    def cancel_charge(self, charge_id: str) -> ChargeResult:
        """Cancel a charge that waits for the customer or is processing, or
        was declined but could still be confirmed again (Stripe: a
        PaymentIntent in ``requires_payment_method``, whose client secret a
        customer's page may hold after a failed authentication).

        Returns the charge as it is afterwards: ``canceled``, or its outcome
        if it succeeded first (a customer who just authenticated). A charge
        that succeeded or was canceled is returned unchanged. A declined
        charge, canceled, keeps the decline's ``decline_code`` and
        ``error_code``, here and in every later :meth:`retrieve_charge`: how
        billing records the decline when the cancel's answer, or its own
        record after it, was lost. One canceled while it waited or was
        processing has neither.
        """
        ...

    def refund(
        self,
        charge_id: str,
        *,
        amount: Money | None,
        idempotency_key: str,
        metadata: Mapping[str, str] = ...,
    ) -> RefundResult:
        """Refund *amount* of a charge (None: all that is left of it).

        *metadata* is kept with the refund and comes back in its webhook
        events (as a charge's does), so an event can be traced to its refund.
        """
        ...

    def retrieve_refund(
        self, charge_id: str, *, idempotency_key: str
    ) -> RefundResult | None:
        """The refund of *charge_id* made with *idempotency_key*; None if none was.

        How a refund whose answer was lost is finished without refunding
        twice, even after the gateway has forgotten the key (Stripe: 24 hours).
        """
        ...

    def parse_webhook(
        self, payload: bytes, *, signature: str, now: int
    ) -> WebhookEvent:
        """Verify a webhook against its raw body and signature header, at *now*."""
        ...

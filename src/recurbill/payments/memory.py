"""InMemoryGateway: a deterministic, scriptable payment gateway for tests.

It ships inside the library (like ``httpx.MockTransport``) so that your own
test suite can run billing without a network. It understands Stripe's test
payment methods and behaves like Stripe's test mode:

- `pm_card_visa`, `pm_card_mastercard`, `pm_card_amex`: succeeded.
- `pm_card_visa_chargeDeclined`: declined, `card_declined` / `generic_decline`.
- `pm_card_visa_chargeDeclinedInsufficientFunds`: `insufficient_funds`.
- `pm_card_visa_chargeDeclinedLostCard`: `lost_card`;
  `pm_card_visa_chargeDeclinedStolenCard`: `stolen_card`.
- `pm_card_chargeDeclinedExpiredCard`: `expired_card`;
  `pm_card_chargeDeclinedIncorrectCvc`: `incorrect_cvc`.
- `pm_card_chargeDeclinedProcessingError`: `processing_error` (retryable).
- `pm_card_chargeCustomerFail`: attaches, then every charge is declined.
- `pm_card_authenticationRequired`: requires_action; the customer must
  authenticate with the result's `client_secret` (off-session, Stripe
  answers a card error, ``authentication_required``; the result is the same).

Unlike Stripe, which declines the ``chargeDeclined…`` cards when they are
saved, it saves every test card, so tests can play a saved card that declines
later (see the testing tutorial).

Attaching a test payment method creates a new token (``pm_mem_0001``, …) with
the card's display facts. Every request is recorded in :attr:`requests`;
succeeded charges form :attr:`ledger`; idempotency keys are honoured; faults
are injected with :meth:`fail_next`; :meth:`process_next` and :meth:`settle`
script charges that finish later, and :meth:`confirm_again` a charge
declined after authentication that the customer's page confirms once more;
:meth:`refuse_next_refund`,
:meth:`hold_next_refund`, :meth:`finish_refund` and :meth:`fail_refund`
script refunds that are refused, wait, or fail after their answer; every
outcome emits a signed webhook event (:attr:`events`, :meth:`webhook`). Ids
and event times are deterministic.

The events are Stripe's types, with the objects Stripe sends (the fields
recurbill and a webhook handler read; ``metadata`` carries the charge's or
refund's, with ``recurbill_idempotency_key``):

- ``payment_intent.succeeded``, ``.processing``, ``.payment_failed``,
  ``.canceled``: a PaymentIntent (``pi_…``: ``status``, ``amount``,
  ``currency``, ``customer``, ``last_payment_error`` with ``code`` and
  ``decline_code``, ``latest_charge``). A charge asking for authentication
  emits ``payment_intent.requires_action`` (status ``requires_action``)
  on-session, and ``payment_intent.payment_failed`` (status
  ``requires_payment_method``, error ``authentication_required``)
  off-session, as Stripe does.
- ``charge.refunded``: the Charge (``ch_…``: ``payment_intent``,
  ``amount_refunded``, ``refunded``, ``status``), for a refund that succeeded.
- ``refund.created`` for every refund, and ``refund.updated`` /
  ``refund.failed`` when one ends later: the Refund (``re_…``: ``charge``,
  ``payment_intent``, ``amount``, ``status``, ``failure_reason``).
- ``setup_intent.succeeded``: the SetupIntent of a card setup.

It refuses to start where production is declared: with ``production=True`` or
when the ``RECURBILL_PRODUCTION`` environment variable is truthy.

>>> from recurbill.money import Money
>>> gateway = InMemoryGateway(environ={})
>>> customer = gateway.create_customer(email="kari@example.no", name="Kari")
>>> card = gateway.attach_payment_method(customer, token="pm_card_visa")
>>> result = gateway.charge(customer, payment_method=card.token,
...     amount=Money("850.00", "NOK"), idempotency_key="pay-1", off_session=True)
>>> result.status.value, card.last4, len(gateway.ledger)
('succeeded', '4242', 1)
"""

from __future__ import annotations

import json
import os
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Literal, get_args

import attrs

from recurbill.errors import (
    GatewayAuthenticationError,
    GatewayConfigurationError,
    GatewayUnavailableError,
    IdempotencyKeyReuseError,
    InvalidInputError,
    ProductionGuardError,
)
from recurbill.money import Currency, Money
from recurbill.payments.checks import (
    ChargeRequest,
    check_charge,
    check_customer,
    check_id,
    check_idempotency_key,
    check_lookup,
    check_metadata,
    check_refund_amount,
    check_token,
)
from recurbill.payments.minor_units import charge_limits, to_minor_units
from recurbill.payments.protocol import (
    IDEMPOTENCY_METADATA_KEY,
    CardDetails,
    CardSetup,
    ChargeLimits,
    ChargeResult,
    ChargeStatus,
    RefundResult,
    WebhookEvent,
)
from recurbill.payments.webhooks import (
    DEFAULT_TOLERANCE,
    parse_event,
    sign_webhook,
    verify_webhook,
)

__all__ = [
    "DEFAULT_WEBHOOK_SECRET",
    "TEST_CARDS",
    "FaultKind",
    "InMemoryGateway",
    "RecordedRequest",
    "TestCard",
]

DEFAULT_WEBHOOK_SECRET = "whsec_recurbill_memory"
"""The secret :class:`InMemoryGateway` signs webhooks with unless given others."""

FaultKind = Literal["timeout_before", "timeout_after", "unavailable", "unauthorized"]
"""A fault to inject: no answer before / after the gateway acted, a 503, or a
refused API key (401)."""

_FALSY = frozenset({"", "0", "false", "no", "off"})


@attrs.frozen(kw_only=True)
class TestCard:
    """A Stripe test payment method: display facts and what a charge does."""

    brand: str
    last4: str
    decline_code: str | None = None
    error_code: str | None = None
    retryable: bool = False
    requires_action: bool = False

    __test__ = False  # not a pytest test class


def _declined(last4: str, error: str, decline: str, *, retry: bool = False) -> TestCard:
    return TestCard(
        brand="visa",
        last4=last4,
        decline_code=decline,
        error_code=error,
        retryable=retry,
    )


TEST_CARDS: Mapping[str, TestCard] = {
    "pm_card_visa": TestCard(brand="visa", last4="4242"),
    "pm_card_mastercard": TestCard(brand="mastercard", last4="4444"),
    "pm_card_amex": TestCard(brand="amex", last4="8431"),
    "pm_card_visa_chargeDeclined": _declined(
        "0002", "card_declined", "generic_decline"
    ),
    "pm_card_visa_chargeDeclinedInsufficientFunds": _declined(
        "9995", "card_declined", "insufficient_funds"
    ),
    "pm_card_visa_chargeDeclinedLostCard": _declined(
        "9987", "card_declined", "lost_card"
    ),
    "pm_card_visa_chargeDeclinedStolenCard": _declined(
        "9979", "card_declined", "stolen_card"
    ),
    "pm_card_chargeDeclinedExpiredCard": _declined(
        "0069", "expired_card", "expired_card"
    ),
    "pm_card_chargeDeclinedIncorrectCvc": _declined(
        "0127", "incorrect_cvc", "incorrect_cvc"
    ),
    "pm_card_chargeDeclinedProcessingError": _declined(
        "0119", "processing_error", "processing_error", retry=True
    ),
    "pm_card_chargeCustomerFail": _declined("0341", "card_declined", "generic_decline"),
    "pm_card_authenticationRequired": TestCard(
        brand="visa",
        last4="3184",
        decline_code="authentication_required",
        error_code="authentication_required",
        requires_action=True,
    ),
}
"""Stripe's test payment methods and their behaviour (see the module docs)."""

TEST_EXP_MONTH = 12
TEST_EXP_YEAR = 2034


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """One call made to an :class:`InMemoryGateway`, as its keyword parameters.

    ``operation`` is the method name (``"charge"``); ``params`` holds the
    arguments (Money as Money, metadata as a dict); ``idempotency_key`` is set
    for calls that move money.
    """

    operation: str
    params: Mapping[str, object]
    idempotency_key: str | None = None


@attrs.define
class _Card:
    details: CardDetails
    behaviour: TestCard
    customer: str | None
    detached: bool = False


@attrs.define
class _Charge:
    result: ChargeResult
    customer: str
    metadata: Mapping[str, str]
    refunded: Money
    off_session: bool = False
    handed_out: bool = False
    """Its client secret was given out (it asked for authentication)."""
    latest_charge: str | None = None
    """The id (``ch_…``) of its last attempt that reached the bank, if any."""


def _check_times(times: object) -> None:
    if not isinstance(times, int) or isinstance(times, bool) or times < 1:
        raise InvalidInputError(problem=f"times={times!r}", allowed="times >= 1")


def _holds(metadata: object, wanted: Mapping[str, str]) -> bool:
    """Whether *metadata* (a customer's) has every pair of *wanted*."""
    return isinstance(metadata, Mapping) and all(
        metadata.get(key) == value for key, value in wanted.items()
    )


def _environ_is_production(environ: Mapping[str, str]) -> bool:
    value = environ.get("RECURBILL_PRODUCTION", "")
    return value.strip().lower() not in _FALSY


class InMemoryGateway:
    """A payment gateway that lives in memory: deterministic, scriptable, recording.

    Arguments:
        production: True refuses to construct (:class:`ProductionGuardError`).
        environ: where ``RECURBILL_PRODUCTION`` is read, once, at construction
            (default: ``os.environ``).
        webhook_secrets: secrets accepted by :meth:`parse_webhook`; the first
            one signs :meth:`webhook` deliveries.
        epoch: the ``created`` time (unix seconds) of the first event; each
            later event is one second later.

    Thread-safe: one lock guards every call.
    """

    def __init__(
        self,
        *,
        production: bool = False,
        environ: Mapping[str, str] | None = None,
        webhook_secrets: Sequence[str] = (DEFAULT_WEBHOOK_SECRET,),
        epoch: int = 1_767_225_600,
    ) -> None:
        env = os.environ if environ is None else environ
        if production or _environ_is_production(env):
            raise ProductionGuardError(
                problem="InMemoryGateway was started where production is declared "
                "(production=True or RECURBILL_PRODUCTION is set)",
                allowed="use a real gateway such as StripeGateway in production",
            )
        if (
            isinstance(webhook_secrets, str)
            or not webhook_secrets
            or not all(isinstance(x, str) and x for x in webhook_secrets)
        ):
            raise InvalidInputError(  # the secrets themselves are never shown
                problem="webhook_secrets must be a non-empty sequence of non-empty "
                "strings",
                allowed="give e.g. ['whsec_…'] (several while rotating)",
            )
        self._secrets = tuple(webhook_secrets)
        self._epoch = epoch
        self._lock = threading.Lock()
        self._counters: dict[str, int] = {}
        self._requests: list[RecordedRequest] = []
        self._customers: dict[str, dict[str, object]] = {}
        self._defaults: dict[str, str] = {}
        self._setups: dict[str, str] = {}
        self._cards: dict[str, _Card] = {}
        self._charges: dict[str, _Charge] = {}
        self._ledger: list[ChargeResult] = []
        self._refunds: list[RefundResult] = []
        self._done: dict[str, tuple[str, Mapping[str, object], object]] = {}
        # what a charge's or refund's metadata finds, long after _done forgets
        self._charge_keys: dict[str, str] = {}
        self._refund_keys: dict[tuple[str, str], RefundResult] = {}
        self._refund_metadata: dict[str, Mapping[str, str]] = {}  # by refund id
        self._faults: dict[str, deque[FaultKind]] = {}
        self._processing_next = 0
        self._refused_refunds: deque[str] = deque()
        self._pending_refunds = 0
        self._events: list[tuple[str, bytes]] = []  # id and body, parsed on demand

    # -- what tests look at -------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, in order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def ledger(self) -> list[ChargeResult]:
        """Every charge that succeeded, in order (a copy); replays add nothing."""
        with self._lock:
            return list(self._ledger)

    @property
    def refunds(self) -> list[RefundResult]:
        """Every refund answered, in order, refused ones too (a copy)."""
        with self._lock:
            return list(self._refunds)

    @property
    def events(self) -> list[WebhookEvent]:
        """Every webhook event emitted, in order (a copy)."""
        with self._lock:
            return [parse_event(payload) for _, payload in self._events]

    def webhook(self, event_id: str, *, now: int) -> tuple[bytes, str]:
        """The raw body and signature header of an emitted event, as sent at *now*.

        Deliver it as often and in whatever order the test needs: the body is
        the same every time, so the event id is stable.
        """
        with self._lock:
            for emitted, payload in self._events:
                if emitted == event_id:
                    return payload, sign_webhook(
                        payload, secret=self._secrets[0], timestamp=now
                    )
        raise InvalidInputError(
            problem=f"no event {event_id!r} was emitted",
            allowed="use an id from InMemoryGateway.events",
        )

    def fail_next(
        self, kind: FaultKind, *, operation: str = "charge", times: int = 1
    ) -> None:
        """Make the next *times* calls of *operation* fail with *kind*.

        - ``"timeout_before"``: no answer, and the gateway did nothing.
        - ``"timeout_after"``: the gateway acted (the charge is in the ledger,
          the key remembers it) but the answer was lost.
        - ``"unavailable"``: the gateway refused to work (a 503).
        - ``"unauthorized"``: the API key was refused (a 401); nothing was done.

        The first three raise :class:`GatewayUnavailableError`, the last
        :class:`GatewayAuthenticationError`. *operation* is a method name:
        ``charge``, ``refund``, ``create_customer``, …
        """
        if kind not in get_args(FaultKind):
            raise InvalidInputError(
                problem=f"unknown fault {kind!r}",
                allowed="'timeout_before', 'timeout_after', 'unavailable' or "
                "'unauthorized'",
            )
        if not callable(getattr(self, operation, None)) or operation.startswith("_"):
            raise InvalidInputError(
                problem=f"{operation!r} is not a gateway operation",
                allowed="a PaymentGateway method name such as 'charge' or 'refund'",
            )
        _check_times(times)
        with self._lock:
            self._faults.setdefault(operation, deque()).extend([kind] * times)

    def process_next(self, *, times: int = 1) -> None:
        """Make the next *times* charges of good cards end ``PROCESSING``.

        Finish them later with :meth:`settle`, as the bank would.
        """
        _check_times(times)
        with self._lock:
            self._processing_next += times

    def refuse_next_refund(self, status: str = "failed", *, times: int = 1) -> None:
        """Answer the next *times* refunds with *status*, refunding nothing.

        ``"failed"`` (the bank refused it) or ``"canceled"``, as Stripe's
        ``Refund.status`` reports a refund that gave no money back.
        """
        if status not in ("failed", "canceled"):
            raise InvalidInputError(
                problem=f"refund status {status!r}",
                allowed="'failed' or 'canceled'",
            )
        _check_times(times)
        with self._lock:
            self._refused_refunds.extend([status] * times)

    def hold_next_refund(self, *, times: int = 1) -> None:
        """Answer the next *times* refunds ``pending``, as some banks make Stripe.

        Finish each later with :meth:`finish_refund`.
        """
        _check_times(times)
        with self._lock:
            self._pending_refunds += times

    def finish_refund(
        self, refund_id: str, status: str, *, failure_reason: str | None = None
    ) -> RefundResult:
        """End a pending refund: ``"succeeded"``, or ``"failed"`` / ``"canceled"``
        (nothing goes back to the card).

        Emits ``refund.updated`` (and ``refund.failed`` when it failed), as
        Stripe does; a failed one has *failure_reason* (default
        ``"unknown"``).
        """
        check_id(refund_id, what="refund_id")
        if status not in ("succeeded", "failed", "canceled"):
            raise InvalidInputError(
                problem=f"refund status {status!r}",
                allowed="'succeeded', 'failed' or 'canceled'",
            )
        with self._lock:
            return self._end_refund(
                refund_id, status, failure_reason, waiting=("pending",)
            )

    def fail_refund(
        self, refund_id: str, *, failure_reason: str = "expired_or_canceled_card"
    ) -> RefundResult:
        """Make a refund answered ``succeeded`` (or still pending) fail later.

        As Stripe reports a refund to a card that was closed meanwhile: the
        money comes back to the business, not to the customer. Emits
        ``refund.updated`` and ``refund.failed``; :meth:`retrieve_refund`
        then answers ``failed`` with *failure_reason*.
        """
        check_id(refund_id, what="refund_id")
        with self._lock:
            return self._end_refund(
                refund_id, "failed", failure_reason, waiting=("pending", "succeeded")
            )

    def _end_refund(
        self,
        refund_id: str,
        status: str,
        failure_reason: str | None,
        *,
        waiting: Sequence[str],
    ) -> RefundResult:
        found = [
            (key, result)
            for key, result in self._refund_keys.items()
            if result.refund_id == refund_id
        ]
        if not found or found[0][1].status not in waiting:
            raise self._missing(f"{' or '.join(waiting)} refund", refund_id)
        ((key, result),) = found
        failed = status != "succeeded"
        ended = attrs.evolve(
            result,
            status=status,
            failure_reason=(failure_reason or "unknown")
            if status == "failed"
            else None,
        )
        self._refund_keys[key] = ended
        self._refunds = [ended if r is result else r for r in self._refunds]
        done = self._done.get(key[1])
        if done is not None:
            self._done[key[1]] = (done[0], done[1], ended)
        if failed:
            charge = self._charges[result.charge_id]
            charge.refunded = charge.refunded - result.amount
        self._emit("refund.updated", self._refund_object(ended))
        if status == "failed":
            self._emit("refund.failed", self._refund_object(ended))
        return ended

    def cancel_charge(self, charge_id: str) -> ChargeResult:
        """Cancel a charge that waits for action, is processing, or was declined
        (as Stripe cancels a PaymentIntent in ``requires_payment_method``): it
        can then never be confirmed again (see :meth:`confirm_again`). One
        that was declined keeps the decline's codes."""
        check_id(charge_id, what="charge_id")
        with self._lock:
            self._begin("cancel_charge", {"charge_id": charge_id})
            charge = self._charges.get(charge_id)
            if charge is None:
                raise self._missing("charge", charge_id)
            waiting = (
                ChargeStatus.REQUIRES_ACTION,
                ChargeStatus.PROCESSING,
                ChargeStatus.DECLINED,
            )
            if charge.result.status in waiting:
                declined = charge.result.status is ChargeStatus.DECLINED
                charge.result = ChargeResult(
                    status=ChargeStatus.CANCELED,
                    charge_id=charge_id,
                    amount=charge.result.amount,
                    idempotency_key=charge.result.idempotency_key,
                    decline_code=charge.result.decline_code if declined else None,
                    error_code=charge.result.error_code if declined else None,
                )
                self._emit("payment_intent.canceled", self._intent_object(charge))
            self._after("cancel_charge")
            return charge.result

    def settle(
        self,
        charge_id: str,
        *,
        succeed: bool = True,
        decline_code: str = "generic_decline",
    ) -> ChargeResult:
        """Finish a charge that needs action or is processing, as the outside world.

        ``succeed=True`` plays the customer authenticating (or the bank
        confirming): the charge succeeds and enters the ledger. Otherwise it is
        declined with *decline_code*. Either way an event is emitted and
        :meth:`retrieve_charge` reports the new state; a replay of the original
        request still answers what it answered first, as Stripe's does.
        """
        check_id(charge_id, what="charge_id")
        with self._lock:
            charge = self._charges.get(charge_id)
            waiting = (ChargeStatus.REQUIRES_ACTION, ChargeStatus.PROCESSING)
            if charge is None or charge.result.status not in waiting:
                raise InvalidInputError(
                    problem=f"charge {charge_id!r} is not waiting for an outcome",
                    allowed="settle a charge that requires action or is processing",
                )
            return self._end_charge(charge, succeed, decline_code)

    def confirm_again(
        self,
        charge_id: str,
        *,
        succeed: bool = True,
        decline_code: str = "generic_decline",
    ) -> ChargeResult:
        """Play the customer's page confirming a declined charge once more.

        As with Stripe, a charge that asked for authentication handed its
        client secret to the customer's browser, and when it is declined
        after that (the authentication failed: a PaymentIntent back in
        ``requires_payment_method``) the browser can still confirm it, with
        the same or another card, until it is canceled. Use it to test that
        your code never leaves such a charge open beside a new payment:
        ``succeed=True`` makes it succeed (it enters the ledger), otherwise
        it is declined again with *decline_code*; either emits an event. A
        charge canceled meanwhile, or one whose secret never left, is
        refused with :class:`InvalidInputError`, as Stripe refuses it.
        """
        check_id(charge_id, what="charge_id")
        with self._lock:
            charge = self._charges.get(charge_id)
            if (
                charge is None
                or not charge.handed_out
                or charge.result.status is not ChargeStatus.DECLINED
            ):
                status = "unknown" if charge is None else charge.result.status.value
                raise InvalidInputError(
                    problem=f"charge {charge_id!r} ({status}) cannot be confirmed "
                    "again",
                    allowed="confirm again a charge declined after it asked for "
                    "authentication, and not canceled since",
                )
            return self._end_charge(charge, succeed, decline_code)

    def _end_charge(
        self, charge: _Charge, succeed: bool, decline_code: str
    ) -> ChargeResult:
        """Give *charge* its outcome, as the outside world does; emit its event."""
        first = charge.result
        assert first.charge_id is not None
        if first.status is not ChargeStatus.PROCESSING:  # a new attempt
            charge.latest_charge = self._next_id("ch")
        if succeed:
            charge.result = ChargeResult(
                status=ChargeStatus.SUCCEEDED,
                charge_id=first.charge_id,
                amount=first.amount,
                idempotency_key=first.idempotency_key,
            )
            self._ledger.append(charge.result)
            event = "payment_intent.succeeded"
        else:
            charge.result = ChargeResult(
                status=ChargeStatus.DECLINED,
                charge_id=first.charge_id,
                amount=first.amount,
                idempotency_key=first.idempotency_key,
                decline_code=decline_code,
                error_code="card_declined",
            )
            event = "payment_intent.payment_failed"
        self._emit(event, self._intent_object(charge))
        return charge.result

    def confirm_card_setup(self, setup_id: str, *, card: str = "pm_card_visa") -> str:
        """Play the customer completing a card setup with test card *card*.

        Returns the new payment method token, already attached to the setup's
        customer (as Stripe attaches it when a SetupIntent succeeds), and emits
        ``setup_intent.succeeded``.
        """
        check_id(setup_id, what="setup_id")
        with self._lock:
            customer = self._setups.get(setup_id)
            if customer is None:
                raise self._missing("setup", setup_id)
            details = self._new_card(card, customer)
            self._emit(
                "setup_intent.succeeded",
                {
                    "id": setup_id,
                    "object": "setup_intent",
                    "customer": customer,
                    "payment_method": details.token,
                    "status": "succeeded",
                    "usage": "off_session",
                },
            )
            return details.token

    # -- the PaymentGateway protocol ---------------------------------------

    def create_customer(
        self,
        *,
        email: str,
        name: str,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Create a customer; return its id (``cus_mem_0001``, …).

        The same *idempotency_key* and parameters return the first customer.
        """
        email, name = check_customer(email=email, name=name)
        params: dict[str, object] = {
            "email": email,
            "name": name,
            "metadata": check_metadata({} if metadata is None else metadata),
        }
        key = (
            None if idempotency_key is None else check_idempotency_key(idempotency_key)
        )
        with self._lock:
            self._begin("create_customer", params, key)
            replay = (
                None if key is None else self._replay("create_customer", key, params)
            )
            if replay is None:
                replay = self._next_id("cus")
                self._customers[replay] = params
                if key is not None:
                    self._done[key] = ("create_customer", params, replay)
            self._after("create_customer")
            assert isinstance(replay, str)
            return replay

    def find_customer(self, *, metadata: Mapping[str, str]) -> str | None:
        """The first customer whose metadata holds all of *metadata*, or None.

        Found at once (Stripe's search may lag; see the protocol), and after
        :meth:`forget_idempotency_keys` too.
        """
        wanted = check_metadata(metadata)
        if not wanted:
            raise InvalidInputError(
                problem="no metadata to find a customer by",
                allowed="give at least one metadata key and value",
            )
        with self._lock:
            self._begin("find_customer", {"metadata": wanted})
            found = next(
                (
                    customer
                    for customer, params in self._customers.items()
                    if _holds(params.get("metadata"), wanted)
                ),
                None,
            )
            self._after("find_customer")
            return found

    def update_customer(self, customer: str, *, email: str, name: str) -> None:
        """Set a customer's e-mail address and name (see :meth:`customer_details`)."""
        check_id(customer, what="customer")
        email, name = check_customer(email=email, name=name)
        params: dict[str, object] = {"customer": customer, "email": email, "name": name}
        with self._lock:
            self._begin("update_customer", params)
            self._customer(customer)
            self._customers[customer] = {
                **self._customers[customer],
                "email": params["email"],
                "name": params["name"],
            }
            self._after("update_customer")

    def customer_details(self, customer: str) -> Mapping[str, object]:
        """What the gateway keeps for *customer*: ``email``, ``name`` and
        ``metadata`` (a copy, for assertions)."""
        with self._lock:
            self._customer(customer)
            return dict(self._customers[customer])

    def start_card_setup(self, customer: str) -> CardSetup:
        """Start a card setup for off-session use; see :meth:`confirm_card_setup`."""
        check_id(customer, what="customer")
        with self._lock:
            self._begin("start_card_setup", {"customer": customer})
            self._customer(customer)
            setup_id = self._next_id("seti")
            self._setups[setup_id] = customer
            self._after("start_card_setup")
            return CardSetup(
                setup_id=setup_id,
                client_secret=f"{setup_id}_secret_memory",
                customer=customer,
            )

    def attach_payment_method(self, customer: str, *, token: str) -> CardDetails:
        """Attach a test payment method (a new token) or an unattached token."""
        check_id(customer, what="customer")
        check_token(token)
        with self._lock:
            self._begin("attach_payment_method", {"customer": customer, "token": token})
            self._customer(customer)
            card = self._cards.get(token)
            if card is None:
                details = self._new_card(token, customer)
            elif card.detached:
                raise self._detached(token)
            elif card.customer not in (None, customer):
                raise GatewayConfigurationError(
                    problem=f"payment method {token!r} belongs to another customer",
                    allowed="attach a payment method to one customer only",
                )
            else:
                card.customer = customer
                details = card.details
            self._after("attach_payment_method")
            return details

    def list_payment_methods(self, customer: str) -> list[CardDetails]:
        """The cards attached to *customer*, in the order they were attached."""
        check_id(customer, what="customer")
        with self._lock:
            self._begin("list_payment_methods", {"customer": customer})
            self._customer(customer)
            found = [c.details for c in self._cards.values() if c.customer == customer]
            self._after("list_payment_methods")
            return found

    def detach_payment_method(self, token: str) -> None:
        """Detach a card from its customer (it can no longer be charged)."""
        check_token(token)
        with self._lock:
            self._begin("detach_payment_method", {"token": token})
            card = self._cards.get(token)
            if card is None or card.customer is None:
                raise self._missing("attached payment method", token)
            if self._defaults.get(card.customer) == token:
                del self._defaults[card.customer]
            card.customer = None
            card.detached = True
            self._after("detach_payment_method")

    def set_default_payment_method(self, customer: str, *, token: str) -> None:
        """Make an attached card the customer's default."""
        check_id(customer, what="customer")
        check_token(token)
        with self._lock:
            self._begin(
                "set_default_payment_method", {"customer": customer, "token": token}
            )
            self._customer(customer)
            card = self._cards.get(token)
            if card is None or card.customer != customer:
                raise self._missing(f"payment method of {customer}", token)
            self._defaults[customer] = token
            self._after("set_default_payment_method")

    def default_payment_method(self, customer: str) -> str | None:
        """The customer's default card token, if one is set (for assertions)."""
        with self._lock:
            return self._defaults.get(customer)

    def charge_limits(self, currency: Currency) -> ChargeLimits:
        """Stripe's limits for one charge in *currency* (no request is made)."""
        return charge_limits(currency)

    def charge(
        self,
        customer: str,
        *,
        payment_method: str,
        amount: Money,
        idempotency_key: str,
        off_session: bool,
        description: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> ChargeResult:
        """Charge a card; declines and authentication are results, faults raise."""
        request = check_charge(
            customer,
            payment_method=payment_method,
            amount=amount,
            idempotency_key=idempotency_key,
            off_session=off_session,
            description=description,
            metadata=metadata,
        )
        key = request.idempotency_key
        params = attrs.asdict(request, recurse=False)
        del params["idempotency_key"]
        with self._lock:
            self._begin("charge", params, key)
            replay = self._replay("charge", key, params)
            if replay is None:
                replay = self._charge(request, params)
            self._after("charge")
            assert isinstance(replay, ChargeResult)
            return replay

    def retrieve_charge(
        self, *, idempotency_key: str | None = None, charge_id: str | None = None
    ) -> ChargeResult | None:
        """The charge made with *idempotency_key*, or with id *charge_id*; else None."""
        key, charge_id = check_lookup(idempotency_key, charge_id)
        with self._lock:
            if key is not None:
                self._begin("retrieve_charge", {"idempotency_key": key})
                charge_id = self._charge_keys.get(key)  # by metadata, as Stripe
            else:
                self._begin("retrieve_charge", {"charge_id": charge_id})
            charge = None if charge_id is None else self._charges.get(charge_id)
            found = None if charge is None else charge.result
            self._after("retrieve_charge")
            assert found is None or isinstance(found, ChargeResult)
            return found

    def refund(
        self,
        charge_id: str,
        *,
        amount: Money | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> RefundResult:
        """Refund all that is left of a charge (``amount=None``) or a part of it."""
        check_id(charge_id, what="charge_id")
        check_refund_amount(amount)
        key = check_idempotency_key(idempotency_key)
        params: dict[str, object] = {
            "charge_id": charge_id,
            "amount": amount,
            "metadata": check_metadata({} if metadata is None else metadata),
        }
        with self._lock:
            self._begin("refund", params, key)
            replay = self._replay("refund", key, params)
            if replay is None:
                replay = self._refund(key, params, charge_id, amount)
            self._after("refund")
            assert isinstance(replay, RefundResult)
            return replay

    def retrieve_refund(
        self, charge_id: str, *, idempotency_key: str
    ) -> RefundResult | None:
        """The refund of *charge_id* made with *idempotency_key*, or None."""
        check_id(charge_id, what="charge_id")
        key = check_idempotency_key(idempotency_key)
        with self._lock:
            self._begin("retrieve_refund", {"charge_id": charge_id}, key)
            found = self._refund_keys.get((charge_id, key))
            self._after("retrieve_refund")
            return found

    def forget_idempotency_keys(self) -> None:
        """Forget every idempotency key, as Stripe does after 24 hours.

        A key used again afterwards makes a new request (a second charge or
        refund), so tests can check that lost answers are looked up first.
        Look-ups by key (:meth:`retrieve_charge`, :meth:`retrieve_refund`)
        still find what was made: they search metadata, as with Stripe.
        """
        with self._lock:
            self._done.clear()

    def parse_webhook(
        self, payload: bytes, *, signature: str, now: int
    ) -> WebhookEvent:
        """Verify a webhook signed with one of this gateway's secrets, at *now*."""
        verify_webhook(
            payload,
            signature=signature,
            secrets=self._secrets,
            now=now,
            tolerance=DEFAULT_TOLERANCE,
        )
        return parse_event(bytes(payload))

    # -- inside the lock ----------------------------------------------------

    def _next_id(self, prefix: str) -> str:
        count = self._counters.get(prefix, 0) + 1
        self._counters[prefix] = count
        return f"{prefix}_mem_{count:04d}"

    def _missing(self, kind: str, key: str) -> GatewayConfigurationError:
        return GatewayConfigurationError(
            problem=f"no {kind} {key!r} at the gateway",
            allowed="use an id this gateway returned",
        )

    def _detached(self, token: str) -> GatewayConfigurationError:
        return GatewayConfigurationError(
            problem=f"payment method {token!r} was detached from its customer",
            allowed="a detached payment method cannot be used again; save the "
            "card anew",
        )

    def _customer(self, customer: str) -> None:
        if customer not in self._customers:
            raise self._missing("customer", customer)

    def _begin(
        self, operation: str, params: Mapping[str, object], key: str | None = None
    ) -> None:
        """Record the request, then apply a fault that strikes before any work."""
        self._requests.append(
            RecordedRequest(operation=operation, params=params, idempotency_key=key)
        )
        faults = self._faults.get(operation)
        if faults and faults[0] == "unauthorized":
            faults.popleft()
            raise GatewayAuthenticationError(
                problem=f"injected fault 'unauthorized' on {operation}",
                allowed="give a valid API key; nothing was done",
            )
        if faults and faults[0] != "timeout_after":
            kind = faults.popleft()
            raise GatewayUnavailableError(
                problem=f"injected fault {kind!r} on {operation}",
                allowed="the gateway did nothing; retry with the same idempotency key",
            )

    def _after(self, operation: str) -> None:
        """Apply a ``timeout_after`` fault: the work is done, the answer is lost."""
        faults = self._faults.get(operation)
        if faults and faults[0] == "timeout_after":
            faults.popleft()
            raise GatewayUnavailableError(
                problem=f"injected fault 'timeout_after' on {operation}",
                allowed="the outcome is unknown; retry with the same idempotency key "
                "or reconcile with retrieve_charge()",
            )

    def _replay(
        self, operation: str, key: str, params: Mapping[str, object]
    ) -> object | None:
        done = self._done.get(key)
        if done is None:
            return None
        if done[0] != operation or done[1] != params:
            raise IdempotencyKeyReuseError(key=key)
        return done[2]

    def _new_card(self, test_id: str, customer: str | None) -> CardDetails:
        behaviour = TEST_CARDS.get(test_id)
        if behaviour is None:
            raise self._missing("payment method", test_id)
        details = CardDetails(
            token=self._next_id("pm"),
            brand=behaviour.brand,
            last4=behaviour.last4,
            exp_month=TEST_EXP_MONTH,
            exp_year=TEST_EXP_YEAR,
        )
        self._cards[details.token] = _Card(
            details=details, behaviour=behaviour, customer=customer
        )
        return details

    def _behaviour(self, payment_method: str, customer: str) -> TestCard:
        card = self._cards.get(payment_method)
        if card is not None:
            if card.detached:
                raise self._detached(payment_method)
            if card.customer != customer:
                raise GatewayConfigurationError(
                    problem=f"payment method {payment_method!r} is not attached to "
                    f"customer {customer!r}",
                    allowed="charge a card attached to the customer being charged",
                )
            return card.behaviour
        behaviour = TEST_CARDS.get(payment_method)
        if behaviour is None:
            raise self._missing("payment method", payment_method)
        return behaviour

    def _charge(
        self, request: ChargeRequest, params: Mapping[str, object]
    ) -> ChargeResult:
        key, customer, amount = (
            request.idempotency_key,
            request.customer,
            request.amount,
        )
        self._customer(customer)
        card = self._behaviour(request.payment_method, customer)
        charge_id = self._next_id("pi")
        if card.requires_action:
            result = ChargeResult(
                status=ChargeStatus.REQUIRES_ACTION,
                charge_id=charge_id,
                amount=amount,
                idempotency_key=key,
                decline_code=card.decline_code,
                error_code=card.error_code,
                client_secret=f"{charge_id}_secret_memory",
            )
            # Stripe: off-session, a card error (authentication_required)
            event = (
                "payment_intent.payment_failed"
                if request.off_session
                else "payment_intent.requires_action"
            )
        elif card.decline_code is not None:
            result = ChargeResult(
                status=ChargeStatus.DECLINED,
                charge_id=charge_id,
                amount=amount,
                idempotency_key=key,
                decline_code=card.decline_code,
                error_code=card.error_code,
                retryable=card.retryable,
            )
            event = "payment_intent.payment_failed"
        elif self._processing_next:
            self._processing_next -= 1
            result = ChargeResult(
                status=ChargeStatus.PROCESSING,
                charge_id=charge_id,
                amount=amount,
                idempotency_key=key,
            )
            event = "payment_intent.processing"
        else:
            result = ChargeResult(
                status=ChargeStatus.SUCCEEDED,
                charge_id=charge_id,
                amount=amount,
                idempotency_key=key,
            )
            self._ledger.append(result)
            event = "payment_intent.succeeded"
        charge = _Charge(
            result=result,
            customer=customer,
            metadata=request.metadata,
            refunded=Money.zero(amount.currency),
            off_session=request.off_session,
            handed_out=result.client_secret is not None,
            latest_charge=None if card.requires_action else self._next_id("ch"),
        )
        self._charges[charge_id] = charge
        self._charge_keys.setdefault(key, charge_id)
        self._done[key] = ("charge", params, result)
        self._emit(event, self._intent_object(charge))
        return result

    def _refund(
        self,
        key: str,
        params: Mapping[str, object],
        charge_id: str,
        amount: Money | None,
    ) -> RefundResult:
        charge = self._charges.get(charge_id)
        if charge is None or charge.result.status is not ChargeStatus.SUCCEEDED:
            raise self._missing("succeeded charge", charge_id)
        remaining = charge.result.amount - charge.refunded
        if remaining.amount <= 0:  # Stripe: charge_already_refunded
            raise InvalidInputError(
                problem=f"charge {charge_id} is already refunded in full",
                allowed="refund a charge that has something left to refund",
            )
        if amount is None:
            amount = remaining
        if amount.currency != remaining.currency or amount > remaining:
            raise InvalidInputError(
                problem=f"refund of {amount} on charge {charge_id}",
                allowed=f"refund at most the {remaining} left of the charge",
            )
        status = "succeeded"
        if self._refused_refunds:
            status = self._refused_refunds.popleft()
        else:
            charge.refunded = charge.refunded + amount
            if self._pending_refunds:
                self._pending_refunds -= 1
                status = "pending"
        result = RefundResult(
            refund_id=self._next_id("re"),
            charge_id=charge_id,
            amount=amount,
            status=status,
        )
        self._refunds.append(result)
        self._refund_keys[(charge_id, key)] = result
        meta = params["metadata"]
        assert isinstance(meta, dict)
        self._refund_metadata[result.refund_id] = {
            **meta,
            IDEMPOTENCY_METADATA_KEY: key,
        }
        self._done[key] = ("refund", params, result)
        self._emit("refund.created", self._refund_object(result))
        if status == "succeeded":
            self._emit("charge.refunded", self._charge_object(charge))
        return result

    @staticmethod
    def _metadata(charge: _Charge) -> dict[str, str]:
        """The PaymentIntent's metadata (Stripe copies it to its Charges)."""
        key = charge.result.idempotency_key
        return {**charge.metadata, IDEMPOTENCY_METADATA_KEY: key}

    @classmethod
    def _intent_object(cls, charge: _Charge) -> dict[str, object]:
        """The charge as a Stripe-like PaymentIntent (webhook event data).

        One that asks for authentication is ``requires_action`` on-session;
        off-session Stripe answers a card error instead, and the
        PaymentIntent is ``requires_payment_method`` with that error.
        """
        result = charge.result
        waits = result.status is ChargeStatus.REQUIRES_ACTION and not charge.off_session
        status = {
            ChargeStatus.SUCCEEDED: "succeeded",
            ChargeStatus.DECLINED: "requires_payment_method",
            ChargeStatus.REQUIRES_ACTION: "requires_payment_method",
            ChargeStatus.PROCESSING: "processing",
            ChargeStatus.CANCELED: "canceled",
        }[result.status]
        return {
            "id": result.charge_id,
            "object": "payment_intent",
            "amount": to_minor_units(result.amount),
            "currency": result.amount.currency.code.lower(),
            "customer": charge.customer,
            "status": "requires_action" if waits else status,
            "latest_charge": charge.latest_charge,
            "last_payment_error": (
                None
                if result.decline_code is None or waits
                else {"code": result.error_code, "decline_code": result.decline_code}
            ),
            "metadata": cls._metadata(charge),
        }

    @classmethod
    def _charge_object(cls, charge: _Charge) -> dict[str, object]:
        """The succeeded attempt as a Stripe-like Charge (``charge.*`` events)."""
        amount = to_minor_units(charge.result.amount)
        refunded = to_minor_units(charge.refunded)
        return {
            "id": charge.latest_charge,
            "object": "charge",
            "amount": amount,
            "amount_captured": amount,
            "amount_refunded": refunded,
            "captured": True,
            "currency": charge.result.amount.currency.code.lower(),
            "customer": charge.customer,
            "paid": True,
            "payment_intent": charge.result.charge_id,
            "refunded": refunded == amount,
            "status": "succeeded",
            "metadata": cls._metadata(charge),
        }

    def _refund_object(self, refund: RefundResult) -> dict[str, object]:
        """The refund as a Stripe-like Refund (webhook event data)."""
        return {
            "id": refund.refund_id,
            "object": "refund",
            "amount": to_minor_units(refund.amount),
            "currency": refund.amount.currency.code.lower(),
            "charge": self._charges[refund.charge_id].latest_charge,
            "payment_intent": refund.charge_id,
            "status": refund.status,
            "failure_reason": refund.failure_reason,
            "metadata": dict(self._refund_metadata[refund.refund_id]),
        }

    def _emit(self, type_: str, obj: Mapping[str, object]) -> None:
        event_id = self._next_id("evt")
        created = self._epoch + len(self._events)
        body = {
            "id": event_id,
            "object": "event",
            "type": type_,
            "created": created,
            "livemode": False,
            "data": {"object": obj},
        }
        payload = json.dumps(body, sort_keys=True).encode()
        self._events.append((event_id, payload))

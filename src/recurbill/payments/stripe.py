"""StripeGateway: the payment gateway port on Stripe (the only module importing stripe).

Give it a :class:`stripe.StripeClient` (no global ``stripe.api_key``)::

    client = stripe.StripeClient(api_key=..., max_network_retries=2)
    gateway = StripeGateway(client, webhook_secrets=["whsec_new", "whsec_old"])

How it maps the port onto Stripe:

- A charge is a PaymentIntent created with ``confirm=true``, the customer, the
  payment method, card as the only allowed type, and ``off_session`` when the
  customer is away. Its id (``pi_…``) is the ``charge_id``. The idempotency key
  goes in the ``Idempotency-Key`` header and in the metadata
  (``recurbill_idempotency_key``) for reconciliation.
- Card errors are results: ``authentication_required`` becomes
  ``REQUIRES_ACTION`` with the PaymentIntent's ``client_secret`` (the customer
  confirms it on-session, passing the card's token again as
  ``payment_method``: Stripe leaves the PaymentIntent of an off-session
  charge in ``requires_payment_method``, without its card); other card
  errors become ``DECLINED`` with Stripe's ``code`` and ``decline_code``.
  Before a declined PaymentIntent is canceled, its decline goes into its
  metadata (``recurbill_decline``), since Stripe clears ``last_payment_error``
  on the update and the cancel; the canceled charge reports the decline from
  there.
- Faults raise: rate limits, connection errors and 5xx/409 answers become
  :class:`GatewayUnavailableError` (the client's own retries, with the same
  key, come first: set ``max_network_retries`` on the client); authentication,
  permission and invalid requests become :class:`GatewayConfigurationError`;
  Stripe's idempotency error becomes :class:`IdempotencyKeyReuseError`. The
  Stripe exception is not chained (no Stripe object leaves this module); its
  type, HTTP status, code and request id are in the message.
- Amounts go through :mod:`recurbill.payments.minor_units`: ISK is sent with
  two decimals in multiples of 100, three-decimal currencies need 0 as their
  last digit; anything else is refused before a request is made.
- Webhooks are verified against the raw body with every configured secret
  (rotation) and a 300 s tolerance around the ``now`` you pass. Refund
  events (``refund.updated``, ``refund.failed``, ``charge.refund.updated``)
  carry the refund in ``WebhookEvent.refund``.
- Refunds carry their idempotency key and the caller's metadata; customers
  are created with an ``Idempotency-Key`` when one is given, and updated
  (e-mail and name) without one: setting values is safe to repeat.

``retrieve_charge(idempotency_key=…)`` looks through the 100 most recent
PaymentIntents, then Stripe's search (which can lag by up to a minute). None
means no charge is known *yet*: charging again with the same key and the same
parameters is always safe.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

from recurbill.errors import (
    GatewayAuthenticationError,
    GatewayConfigurationError,
    GatewayUnavailableError,
    IdempotencyKeyReuseError,
    InvalidInputError,
    WebhookError,
)
from recurbill.money import Currency, Money
from recurbill.payments.checks import (
    check_charge,
    check_customer,
    check_id,
    check_idempotency_key,
    check_lookup,
    check_metadata,
    check_refund_amount,
    check_token,
)
from recurbill.payments.minor_units import (
    charge_limits,
    from_minor_units,
    to_minor_units,
)
from recurbill.payments.protocol import (
    DECLINE_METADATA_KEY,
    IDEMPOTENCY_METADATA_KEY,
    CardDetails,
    CardSetup,
    ChargeLimits,
    ChargeResult,
    ChargeStatus,
    RefundResult,
    WebhookEvent,
)
from recurbill.payments.webhooks import DEFAULT_TOLERANCE, parse_event, verify_webhook

try:
    import stripe
except ModuleNotFoundError:  # the optional extra is not installed
    stripe = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from stripe import PaymentIntent, PaymentMethod, Refund, StripeClient, StripeError
    from stripe.params import (
        CustomerCreateParams,
        CustomerUpdateParams,
        PaymentIntentCreateParams,
        PaymentIntentUpdateParams,
        RefundCreateParams,
    )

__all__ = ["RETRYABLE_DECLINES", "StripeGateway"]

RETRYABLE_DECLINES = frozenset(
    {
        "approve_with_id",
        "issuer_not_available",
        "processing_error",
        "reenter_transaction",
        "try_again_later",
    }
)
"""Decline codes after which the same card may succeed later."""

_DECLINE_KEY = DECLINE_METADATA_KEY
"""Metadata key under which a PaymentIntent canceled after a decline keeps it.

Stripe clears ``last_payment_error`` when a PaymentIntent is updated or
canceled, so the decline is written here first (see ``cancel_charge``).
"""

_REFUND_TOO_LARGE = frozenset({"amount_too_large", "charge_already_refunded"})
_RECENT = 100


def _refund_result(refund: Refund, charge_id: str) -> RefundResult:
    return RefundResult(
        refund_id=refund.id,
        charge_id=charge_id,
        amount=from_minor_units(refund.amount, refund.currency),
        status=refund.status or "pending",
        failure_reason=_field(refund, "failure_reason"),
    )


def _describe(exc: StripeError) -> str:
    parts = [type(exc).__name__]
    if exc.http_status is not None:
        parts.append(f"HTTP {exc.http_status}")
    if exc.code:
        parts.append(f"code {exc.code}")
    if exc.request_id:
        parts.append(f"request {exc.request_id}")
    return ", ".join(parts)


class StripeGateway:
    """The payment gateway port on Stripe's PaymentIntents API.

    Arguments:
        client: a ``stripe.StripeClient``; its API key decides test or live mode.
        webhook_secrets: the endpoint secrets (``whsec_…``) accepted by
            :meth:`parse_webhook`; give the old and the new one while rotating.
    """

    def __init__(
        self, client: StripeClient, *, webhook_secrets: Sequence[str] = ()
    ) -> None:
        if stripe is None:
            raise GatewayConfigurationError(
                problem="StripeGateway needs the stripe package, which is not "
                "installed",
                allowed="install recurbill's stripe extra: pip install '.[stripe]' "
                "in recurbill's checkout",
            )
        if not isinstance(client, stripe.StripeClient):
            raise GatewayConfigurationError(
                problem=f"client is a {type(client).__name__}, not a "
                "stripe.StripeClient",
                allowed="pass stripe.StripeClient(api_key=...); the global "
                "stripe.api_key is not used",
            )
        if isinstance(webhook_secrets, str) or not all(
            isinstance(s, str) and s for s in webhook_secrets
        ):
            raise InvalidInputError(
                problem="webhook_secrets must be a sequence of non-empty strings",
                allowed="give e.g. ['whsec_…'] (several while rotating)",
            )
        self._v1 = client.v1
        self._secrets = tuple(webhook_secrets)

    def __repr__(self) -> str:
        return f"StripeGateway(webhook_secrets=<{len(self._secrets)} hidden>)"

    # -- customers and cards -------------------------------------------------

    def create_customer(
        self,
        *,
        email: str,
        name: str,
        metadata: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Create a Stripe Customer; return its id (``cus_…``).

        With *idempotency_key* (the ``Idempotency-Key`` header) a repeated
        request within Stripe's 24 hours returns the customer made first.
        """
        email, name = check_customer(email=email, name=name)
        params: CustomerCreateParams = {"email": email, "name": name}
        meta = check_metadata({} if metadata is None else metadata)
        if meta:
            params["metadata"] = meta
        if idempotency_key is None:
            with _translated():
                customer = self._v1.customers.create(params)
        else:
            key = check_idempotency_key(idempotency_key)
            with _translated(key):
                customer = self._v1.customers.create(params, {"idempotency_key": key})
        return customer.id

    def find_customer(self, *, metadata: Mapping[str, str]) -> str | None:
        """The oldest Customer whose metadata holds all of *metadata*, or None.

        Stripe's customer search (``metadata['key']:'value'``, joined with
        ``AND``) is eventually consistent: a Customer made in the last
        minute, or an hour during an outage, may not be found yet. It
        searches by the entries without a backslash (Stripe documents no
        escape for one) and matches every entry exactly; with none to
        search by, it finds nothing.
        """
        wanted = check_metadata(metadata)
        if not wanted:
            raise InvalidInputError(
                problem="no metadata to find a customer by",
                allowed="give at least one metadata key and value",
            )
        # Stripe documents escaping a quote with a backslash, not a backslash
        # itself: search by the entries without one, then match all of them
        searchable = [
            (key, value)
            for key, value in sorted(wanted.items())
            if "\\" not in key + value
        ]
        if not searchable:
            return None
        query = " AND ".join(
            f"metadata['{_quoted(key)}']:'{_quoted(value)}'"
            for key, value in searchable
        )
        with _translated():  # every page: the search matches case-insensitively
            found = self._v1.customers.search({"query": query, "limit": _RECENT})
            matches = [
                customer
                for customer in found.auto_paging_iter()
                if all(_metadata_of(customer).get(k) == v for k, v in wanted.items())
            ]
        if not matches:
            return None
        return min(matches, key=lambda c: (_field(c, "created") or 0, c.id)).id

    def update_customer(self, customer: str, *, email: str, name: str) -> None:
        """Set the Customer's ``email`` and ``name`` (Stripe's receipts use them).

        No ``Idempotency-Key``: the update sets values, so a repeat is
        harmless, while a key derived from the values would make Stripe
        replay its first answer, without updating, when the same values come
        back within its 24 hours (A, then B, then A again). The client's own
        network retries carry a key of their own.
        """
        check_id(customer, what="customer")
        email, name = check_customer(email=email, name=name)
        params: CustomerUpdateParams = {"email": email, "name": name}
        with _translated():
            self._v1.customers.update(customer, params)

    def start_card_setup(self, customer: str) -> CardSetup:
        """Create a SetupIntent (``usage=off_session``, cards only)."""
        check_id(customer, what="customer")
        with _translated():
            intent = self._v1.setup_intents.create(
                {
                    "customer": customer,
                    "usage": "off_session",
                    "allowed_payment_method_types": ["card"],
                }
            )
        if intent.client_secret is None:
            raise GatewayConfigurationError(
                problem=f"SetupIntent {intent.id} came without a client secret",
                allowed="use a secret API key that may create SetupIntents",
            )
        return CardSetup(
            setup_id=intent.id, client_secret=intent.client_secret, customer=customer
        )

    def attach_payment_method(self, customer: str, *, token: str) -> CardDetails:
        """Attach a PaymentMethod to the customer; return the card's display facts.

        A card that Stripe declines while attaching raises
        :class:`InvalidInputError` with the decline code: there is nothing to save.
        """
        check_id(customer, what="customer")
        check_token(token)
        try:
            with _translated(cards=True):
                method = self._v1.payment_methods.attach(token, {"customer": customer})
        except _CardDeclinedError as declined:
            raise InvalidInputError(
                problem=f"the card was declined while saving it ({declined.code})",
                allowed="ask the customer for another card",
            ) from None
        return _card_details(method)

    def list_payment_methods(self, customer: str) -> list[CardDetails]:
        """Every card of the customer (a page of 100 at a time), newest first
        as Stripe lists them."""
        check_id(customer, what="customer")
        with _translated():
            methods = self._v1.customers.payment_methods.list(
                customer, {"type": "card", "limit": 100}
            )
            return [_card_details(method) for method in methods.auto_paging_iter()]

    def detach_payment_method(self, token: str) -> None:
        """Detach a PaymentMethod from its customer."""
        check_token(token)
        with _translated():
            self._v1.payment_methods.detach(token)

    def set_default_payment_method(self, customer: str, *, token: str) -> None:
        """Set ``invoice_settings.default_payment_method`` of the customer."""
        check_id(customer, what="customer")
        check_token(token)
        with _translated():
            self._v1.customers.update(
                customer, {"invoice_settings": {"default_payment_method": token}}
            )

    # -- money ---------------------------------------------------------------

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
        """Create and confirm a PaymentIntent; a decline is a result, not an error."""
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
        params: PaymentIntentCreateParams = {
            "amount": request.minor_units,
            "currency": amount.currency.code.lower(),
            "customer": customer,
            "payment_method": payment_method,
            "confirm": True,
            "allowed_payment_method_types": ["card"],
            "metadata": {**request.metadata, IDEMPOTENCY_METADATA_KEY: key},
        }
        if off_session:
            params["off_session"] = True
        if description:
            params["description"] = description
        try:
            with _translated(key, cards=True):
                intent = self._v1.payment_intents.create(
                    params, {"idempotency_key": key}
                )
        except _CardDeclinedError as declined:
            return declined.result(amount, key)
        return _intent_result(intent, key)

    def retrieve_charge(
        self, *, idempotency_key: str | None = None, charge_id: str | None = None
    ) -> ChargeResult | None:
        """The PaymentIntent made with *idempotency_key*, or with id *charge_id*."""
        key, charge_id = check_lookup(idempotency_key, charge_id)
        if charge_id is None:
            assert key is not None
            found = self._find_by_key(key)
            return None if found is None else _intent_result(found, key)
        try:
            with _translated():
                intent = self._v1.payment_intents.retrieve(charge_id)
        except GatewayConfigurationError as error:
            if error.fields.get("status") == 404:
                return None
            raise
        return _intent_result(intent, _key_of(intent))

    def _find_by_key(self, key: str) -> PaymentIntent | None:
        with _translated():
            recent = self._v1.payment_intents.list({"limit": _RECENT})
            for intent in recent.data:
                if _key_of(intent) == key:
                    return intent
            query = f"metadata['{IDEMPOTENCY_METADATA_KEY}']:'{_quoted(key)}'"
            found = self._v1.payment_intents.search({"query": query, "limit": 10})
        for intent in found.data:
            if _key_of(intent) == key:
                return intent
        return None

    def cancel_charge(self, charge_id: str) -> ChargeResult:
        """Cancel a PaymentIntent that waits for the customer or is processing,
        or was declined (``requires_payment_method``).

        One that finished first (succeeded, or failed) is read back instead:
        Stripe refuses to cancel it, and its outcome is what counts. A
        declined one gets its decline in its metadata first
        (``recurbill_decline``): Stripe clears ``last_payment_error`` on the
        update and the cancel, and the decline is reported from there.
        """
        check_id(charge_id, what="charge_id")
        with _translated():
            intent = self._v1.payment_intents.retrieve(charge_id)
        if intent.status in _CANCELABLE:
            self._keep_decline(intent)
            try:
                with _translated():
                    intent = self._v1.payment_intents.cancel(charge_id)
            except GatewayConfigurationError as error:
                if error.fields.get("code") != "payment_intent_unexpected_state":
                    raise
                with _translated():  # it finished meanwhile: its outcome counts
                    intent = self._v1.payment_intents.retrieve(charge_id)
        return _intent_result(intent, _key_of(intent))

    def _keep_decline(self, intent: PaymentIntent) -> None:
        """Write a declined PaymentIntent's decline into its metadata; clear
        one kept earlier from one that is not declined now (confirmed again
        since, it waits for the customer: a cancel now is no decline)."""
        result = _intent_result(intent, _key_of(intent))
        if result.status is ChargeStatus.DECLINED:
            codes = {
                "error_code": result.error_code,
                "decline_code": result.decline_code,
            }
            kept = json.dumps(codes, sort_keys=True)
        elif _metadata_of(intent).get(_DECLINE_KEY):
            kept = ""  # Stripe removes a key set to the empty string
        else:
            return
        params: PaymentIntentUpdateParams = {"metadata": {_DECLINE_KEY: kept}}
        with _translated():  # setting a value: safe to repeat, no key needed
            self._v1.payment_intents.update(intent.id, params)

    def refund(
        self,
        charge_id: str,
        *,
        amount: Money | None,
        idempotency_key: str,
        metadata: Mapping[str, str] | None = None,
    ) -> RefundResult:
        """Refund a PaymentIntent, all that is left (None) or part of it.

        The PaymentIntent is read first, so that an amount in another currency
        is refused rather than read by Stripe in the charge's currency.
        *metadata* goes on the Refund, with the idempotency key.
        """
        check_id(charge_id, what="charge_id")
        amount = check_refund_amount(amount)
        key = check_idempotency_key(idempotency_key)
        meta = check_metadata({} if metadata is None else metadata)
        params: RefundCreateParams = {
            "payment_intent": charge_id,
            # the key is how retrieve_refund finds it
            "metadata": {**meta, IDEMPOTENCY_METADATA_KEY: key},
        }
        if amount is not None:
            params["amount"] = to_minor_units(amount)
        with _translated():
            intent = self._v1.payment_intents.retrieve(charge_id)
        currency = Currency(intent.currency)
        if amount is not None and amount.currency != currency:
            raise InvalidInputError(
                problem=f"refund of {amount} on a charge in {currency}",
                allowed=f"refund in the charge's currency, {currency}",
            )
        try:
            with _translated(key):
                refund = self._v1.refunds.create(params, {"idempotency_key": key})
        except GatewayConfigurationError as error:
            if error.fields.get("code") in _REFUND_TOO_LARGE:
                raise InvalidInputError(
                    problem=f"refund of {amount or 'the rest'} on charge {charge_id}",
                    allowed="refund at most what is left of the charge",
                ) from None
            raise
        return _refund_result(refund, charge_id)

    def retrieve_refund(
        self, charge_id: str, *, idempotency_key: str
    ) -> RefundResult | None:
        """The refund of a PaymentIntent that carries *idempotency_key*, or None.

        Refunds carry their key in their metadata; a PaymentIntent has few
        refunds, so its list is read (up to 100, the most Stripe returns).
        """
        check_id(charge_id, what="charge_id")
        key = check_idempotency_key(idempotency_key)
        with _translated():
            refunds = self._v1.refunds.list(
                {"payment_intent": charge_id, "limit": _RECENT}
            )
        for refund in refunds.data:
            if _key_of(refund) == key:
                return _refund_result(refund, charge_id)
        return None

    # -- webhooks --------------------------------------------------------------

    def parse_webhook(
        self, payload: bytes, *, signature: str, now: int
    ) -> WebhookEvent:
        """Verify a Stripe webhook against its raw body at *now*; parse the event."""
        if not self._secrets:
            raise WebhookError(
                problem="no webhook secret is configured",
                allowed="pass webhook_secrets=['whsec_…'] to StripeGateway",
            )
        verify_webhook(
            payload,
            signature=signature,
            secrets=self._secrets,
            now=now,
            tolerance=DEFAULT_TOLERANCE,
        )
        return parse_event(bytes(payload))


class _CardDeclinedError(Exception):
    """A Stripe card error, turned into a result by the caller."""

    def __init__(self, code: str, decline_code: str | None, intent: Any) -> None:
        super().__init__(code)
        self.code = code
        self.decline_code = decline_code
        self.intent = intent

    def result(self, amount: Money, key: str) -> ChargeResult:
        intent_id = getattr(self.intent, "id", None)
        if self.code == "authentication_required":
            return ChargeResult(
                status=ChargeStatus.REQUIRES_ACTION,
                charge_id=intent_id,
                amount=amount,
                idempotency_key=key,
                decline_code=self.decline_code or self.code,
                error_code=self.code,
                client_secret=getattr(self.intent, "client_secret", None),
            )
        decline = self.decline_code or self.code
        return ChargeResult(
            status=ChargeStatus.DECLINED,
            charge_id=intent_id,
            amount=amount,
            idempotency_key=key,
            decline_code=decline,
            error_code=self.code,
            retryable=decline in RETRYABLE_DECLINES,
        )


_UNSURE = frozenset({408, 409, 425, 429})
"""Statuses after which the request may or may not have been carried out."""


@contextmanager
def _translated(key: str | None = None, *, cards: bool = False) -> Iterator[None]:
    """Turn Stripe's exceptions into recurbill's, without chaining them.

    With *cards*, a card error becomes :class:`_CardDeclinedError` for the caller
    to turn into a result; elsewhere it is a configuration error.
    """
    try:
        yield
    except stripe.CardError as exc:
        if not cards:
            _raise_translated(exc, key)
        error = exc.error
        raise _CardDeclinedError(
            exc.code or "card_declined",
            None if error is None else error.decline_code,
            None if error is None else error.payment_intent,
        ) from None
    except stripe.StripeError as exc:
        _raise_translated(exc, key)


def _raise_translated(exc: StripeError, key: str | None) -> NoReturn:
    fields: dict[str, object] = {"code": exc.code, "status": exc.http_status}
    if isinstance(exc, stripe.IdempotencyError):
        raise IdempotencyKeyReuseError(key=key, **fields) from None
    refused = (
        isinstance(
            exc,
            (
                stripe.AuthenticationError,
                stripe.PermissionError,
                stripe.InvalidRequestError,
                stripe.CardError,
            ),
        )
        and exc.error is not None
    )  # Stripe's own, structured refusal
    status = exc.http_status
    if not refused or (status is not None and (status >= 500 or status in _UNSURE)):
        # a timeout, an outage, or an answer that is not Stripe's (a proxy's
        # page, a cut-off body): the request may have been carried out
        raise GatewayUnavailableError(
            problem=f"Stripe did not complete the request ({_describe(exc)})",
            allowed="the outcome is unknown; retry later with the same idempotency "
            "key or reconcile with retrieve_charge()",
            **fields,
        ) from None
    if isinstance(exc, (stripe.AuthenticationError, stripe.PermissionError)):
        raise GatewayAuthenticationError(
            problem=f"Stripe refused the API key ({_describe(exc)}: "
            f"{exc.user_message})",
            allowed="give a valid secret key with the needed permissions; "
            "nothing was done",
            **fields,
        ) from None
    raise GatewayConfigurationError(
        problem=f"Stripe refused the request ({_describe(exc)}: {exc.user_message})",
        allowed="check the API key, the ids and the parameters; retrying the same "
        "request will not help",
        **fields,
    ) from None


def _field(obj: object, name: str) -> Any:
    """A field that Stripe may leave out of a response (None when absent)."""
    return getattr(obj, name, None)


def _quoted(text: str) -> str:
    """*text* inside a quoted string of Stripe's search query language.

    Stripe documents a backslash before a quote; doubling a backslash itself
    is not documented (``find_customer`` searches by values without one).
    """
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _metadata_of(obj: object) -> dict[str, Any]:
    """A Stripe object's metadata as a plain dict (empty when absent)."""
    metadata = _field(obj, "metadata")
    return {} if metadata is None else dict(metadata.to_dict())


def _key_of(obj: PaymentIntent | Refund) -> str:
    """The idempotency key recurbill put in a PaymentIntent's or Refund's metadata."""
    value = _metadata_of(obj).get(IDEMPOTENCY_METADATA_KEY, "")
    return value if isinstance(value, str) else ""


_CANCELABLE = frozenset(
    {
        "requires_action",
        "requires_confirmation",
        "requires_payment_method",
        "requires_capture",
        "processing",
    }
)
"""PaymentIntent states Stripe lets you cancel."""


def _intent_result(intent: PaymentIntent, key: str) -> ChargeResult:
    """The PaymentIntent as the port's result; its decline is its last
    error, or once that is cleared, the one ``cancel_charge`` kept (only for
    a charge that is declined or canceled: one confirmed again since that
    waits for authentication has none)."""
    amount = from_minor_units(intent.amount, intent.currency)
    error = _field(intent, "last_payment_error")
    kept_code, kept_decline = _kept_decline(intent)
    if error is not None:
        code, decline = _field(error, "code"), _field(error, "decline_code")
    elif intent.status == "requires_payment_method":
        code, decline = kept_code, kept_decline
    else:
        code, decline = None, None
    decline = decline or code
    common: dict[str, Any] = {
        "charge_id": intent.id,
        "amount": amount,
        "idempotency_key": key,
    }
    if intent.status == "succeeded":
        return ChargeResult(status=ChargeStatus.SUCCEEDED, **common)
    if intent.status == "canceled":
        # only a decline kept before the cancel: a charge canceled while it
        # waited for authentication was never declined
        return ChargeResult(
            status=ChargeStatus.CANCELED,
            decline_code=kept_decline,
            error_code=kept_code,
            **common,
        )
    if intent.status in ("processing", "requires_capture"):
        return ChargeResult(status=ChargeStatus.PROCESSING, **common)
    if intent.status == "requires_action" or code == "authentication_required":
        redirect = _field(_field(intent, "next_action"), "redirect_to_url")
        return ChargeResult(
            status=ChargeStatus.REQUIRES_ACTION,
            decline_code=decline,
            error_code=code,
            client_secret=_field(intent, "client_secret"),
            action_url=_field(redirect, "url"),
            **common,
        )
    return ChargeResult(
        status=ChargeStatus.DECLINED,
        decline_code=decline,
        error_code=code or intent.status,
        retryable=decline in RETRYABLE_DECLINES,
        **common,
    )


def _kept_decline(intent: PaymentIntent) -> tuple[str | None, str | None]:
    """The decline ``cancel_charge`` wrote into a PaymentIntent's metadata:
    its error code and decline code (None where there is none)."""
    try:
        kept = json.loads(_metadata_of(intent).get(_DECLINE_KEY) or "{}")
    except ValueError:
        kept = None
    if not isinstance(kept, dict):
        return None, None
    codes = [kept.get("error_code"), kept.get("decline_code")]
    code, decline = (c if isinstance(c, str) and c else None for c in codes)
    return code, decline


def _card_details(method: PaymentMethod) -> CardDetails:
    card = method.card
    if card is None:
        raise InvalidInputError(
            problem=f"payment method {method.id} is a {method.type}, not a card",
            allowed="save cards only",
        )
    return CardDetails(
        token=method.id,
        brand=card.brand,
        last4=card.last4,
        exp_month=card.exp_month,
        exp_year=card.exp_year,
    )

"""GatewayContract: the tests every payment gateway adapter must pass.

Subclass it in a test module (the name must start with ``Test``) and supply a
``gateway`` fixture; recurbill runs it on :class:`InMemoryGateway` and on
``StripeGateway`` (against a local fake of Stripe's API, and against Stripe's
test mode when a test key is given)::

    class TestMyGateway(GatewayContract):
        @pytest.fixture
        def gateway(self) -> PaymentGateway:
            return MyGateway(...)

        @pytest.fixture
        def webhook_secret(self) -> str:
            return "whsec_the_secret_my_gateway_verifies_with"

Optional fixtures make more of the contract run:

- ``inject_fault``: a function ``(kind, operation)`` that makes the next call
  of *operation* (``"charge"``) fail with *kind*: ``"timeout_before"`` (the
  gateway did nothing) or ``"timeout_after"`` (it acted, the answer was lost).
  Without it the fault tests are skipped.
- ``count_charges``: a function from an idempotency key to the number of
  succeeded charges the gateway holds for it. Without it, the exactly-once
  tests rely on ``retrieve_charge`` alone.
- ``customer_details``: a function from a gateway customer id to the
  (e-mail, name) the gateway keeps for it. Without it, the update tests
  check only that updates are taken.
- ``search_lags``: True if ``find_customer`` may not yet find a customer
  just created (Stripe's search is eventually consistent); then the test
  accepts None for it.

The cards are Stripe's test payment methods (``pm_card_visa``, …). Cards that
decline are charged by their test id, because Stripe declines some of them
already when they are attached to a customer.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from decimal import Decimal

import pytest

from recurbill.errors import (
    GatewayConfigurationError,
    GatewayError,
    GatewayUnavailableError,
    IdempotencyKeyReuseError,
    InvalidInputError,
    WebhookError,
)
from recurbill.money import Currency, Money
from recurbill.payments import (
    CardDetails,
    ChargeResult,
    ChargeStatus,
    PaymentGateway,
    sign_webhook,
)

__all__ = ["DECLINING_CARDS", "GatewayContract"]

InjectFault = Callable[[str, str], None]
CountCharges = Callable[[str], int]
CustomerDetails = Callable[[str], tuple[str, str]]

DECLINING_CARDS = [
    ("pm_card_visa_chargeDeclined", "card_declined", "generic_decline", False),
    (
        "pm_card_visa_chargeDeclinedInsufficientFunds",
        "card_declined",
        "insufficient_funds",
        False,
    ),
    ("pm_card_visa_chargeDeclinedLostCard", "card_declined", "lost_card", False),
    ("pm_card_visa_chargeDeclinedStolenCard", "card_declined", "stolen_card", False),
    ("pm_card_chargeDeclinedExpiredCard", "expired_card", "expired_card", False),
    ("pm_card_chargeDeclinedIncorrectCvc", "incorrect_cvc", "incorrect_cvc", False),
    (
        "pm_card_chargeDeclinedProcessingError",
        "processing_error",
        "processing_error",
        True,
    ),
]
"""(test card, error code, decline code, retryable) for each kind of decline."""

NOW = 1_767_225_600  # 2026-01-01T00:00:00Z, the "now" of the webhook tests


def _key(label: str) -> str:
    # base32 (a-z, 2-7): a unique key with no digit run that looks like a card
    unique = base64.b32encode(uuid.uuid4().bytes).decode().rstrip("=").lower()
    return f"contract-{label}-{unique}"


def _event(event_id: str, type_: str, created: int) -> bytes:
    intent = f"pi_{event_id}"
    obj: dict[str, object] = {"id": intent, "object": "payment_intent"}
    if type_.startswith("charge."):  # Stripe: a Charge, naming its PaymentIntent
        obj = {"id": f"ch_{event_id}", "object": "charge", "payment_intent": intent}
    body = {
        "id": event_id,
        "object": "event",
        "type": type_,
        "created": created,
        "livemode": False,
        "data": {"object": obj},
    }
    return json.dumps(body).encode()


class GatewayContract:
    """Behaviour every :class:`PaymentGateway` adapter must show (see module docs)."""

    # -- fixtures a subclass may override ------------------------------------

    @pytest.fixture
    def inject_fault(self) -> InjectFault | None:
        """Fault injection, if the gateway under test supports it."""
        return None

    @pytest.fixture
    def count_charges(self) -> CountCharges | None:
        """Succeeded charges per idempotency key, if the gateway can tell."""
        return None

    @pytest.fixture
    def customer_details(self) -> CustomerDetails | None:
        """(e-mail, name) the gateway keeps per customer, if it can tell."""
        return None

    @pytest.fixture
    def search_lags(self) -> bool:
        """Whether ``find_customer`` may miss a customer just created (Stripe's
        search is eventually consistent)."""
        return False

    @pytest.fixture
    def customer(self, gateway: PaymentGateway) -> str:
        """A fresh customer at the gateway."""
        return gateway.create_customer(
            email="kari.nordmann@example.no",
            name="Kari Nordmann",
            metadata={"recurbill_customer": "contract"},
        )

    @pytest.fixture
    def visa(self, gateway: PaymentGateway, customer: str) -> CardDetails:
        """A saved Visa card that charges fine."""
        return gateway.attach_payment_method(customer, token="pm_card_visa")

    # -- helpers ---------------------------------------------------------------

    @staticmethod
    def charge(
        gateway: PaymentGateway,
        customer: str,
        token: str,
        amount: Money,
        key: str,
        *,
        off_session: bool = True,
    ) -> ChargeResult:
        """Charge with the contract's usual description and metadata."""
        return gateway.charge(
            customer,
            payment_method=token,
            amount=amount,
            idempotency_key=key,
            off_session=off_session,
            description="Session 2026-01-05",
            metadata={"recurbill_payment": "contract"},
        )

    # -- customers and cards ---------------------------------------------------

    def test_customer_ids_are_distinct(self, gateway: PaymentGateway) -> None:
        first = gateway.create_customer(email="a@example.no", name="A")
        second = gateway.create_customer(email="b@example.no", name="B")
        assert first
        assert second
        assert first != second

    def test_one_customer_per_idempotency_key(self, gateway: PaymentGateway) -> None:
        """How ``Billing.add_customer`` repeated never leaves a second customer."""
        key = _key("customer")
        first = gateway.create_customer(
            email="a@example.no", name="A", idempotency_key=key
        )
        again = gateway.create_customer(
            email="a@example.no", name="A", idempotency_key=key
        )
        assert again == first
        with pytest.raises(IdempotencyKeyReuseError):
            gateway.create_customer(email="b@example.no", name="B", idempotency_key=key)

    def test_a_customer_is_found_by_its_metadata(
        self, gateway: PaymentGateway, search_lags: bool
    ) -> None:
        """How ``Billing.add_customer`` repeated after the key expired finds
        the customer its lost answer made, and not another account's."""
        tag = _key("found")
        made = gateway.create_customer(
            email="a@example.no",
            name="A",
            metadata={"recurbill_customer": tag, "account": "contract"},
        )
        gateway.create_customer(
            email="a@example.no",
            name="A",
            metadata={"recurbill_customer": tag, "account": "another"},
        )
        found = gateway.find_customer(
            metadata={"recurbill_customer": tag, "account": "contract"}
        )
        assert found == made or (search_lags and found is None)
        missing = {"recurbill_customer": _key("missing"), "account": "contract"}
        assert gateway.find_customer(metadata=missing) is None

    def test_customer_update_sets_email_and_name(
        self,
        gateway: PaymentGateway,
        customer: str,
        customer_details: CustomerDetails | None,
    ) -> None:
        """How ``Billing.change_customer`` keeps the gateway's copy in step."""
        for email, name in [
            ("kari.hansen@example.no", "Kari Hansen"),
            ("kari.hansen@example.no", "Kari Hansen"),  # a repeat is harmless
            ("kari.nordmann@example.no", "Kari Nordmann"),  # values come back
        ]:
            gateway.update_customer(customer, email=email, name=name)
            if customer_details is not None:
                assert customer_details(customer) == (email, name)
        setup = gateway.start_card_setup(customer)  # still the same customer
        assert setup.customer == customer

    def test_updating_an_unknown_customer_is_refused(
        self, gateway: PaymentGateway
    ) -> None:
        with pytest.raises(GatewayConfigurationError):
            gateway.update_customer("cus_nobody_at_all", email="a@example.no", name="A")

    def test_customer_update_checks_its_arguments(
        self, gateway: PaymentGateway, customer: str
    ) -> None:
        with pytest.raises(InvalidInputError):
            gateway.update_customer(customer, email="not an address", name="A")
        with pytest.raises(InvalidInputError):
            gateway.update_customer(customer, email="a@example.no", name=42)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError):
            gateway.update_customer("", email="a@example.no", name="A")

    def test_card_setup_is_for_the_customer(
        self, gateway: PaymentGateway, customer: str
    ) -> None:
        setup = gateway.start_card_setup(customer)
        assert setup.customer == customer
        assert setup.setup_id
        assert setup.client_secret
        assert setup.client_secret != setup.setup_id

    def test_saved_card_has_display_facts_only(
        self, gateway: PaymentGateway, customer: str, visa: CardDetails
    ) -> None:
        assert visa.token.startswith("pm_")
        assert visa.token != "pm_card_visa"
        assert (visa.brand, visa.last4) == ("visa", "4242")
        assert 1 <= visa.exp_month <= 12
        assert visa.exp_year >= 2026
        again = gateway.attach_payment_method(customer, token="pm_card_visa")
        assert again.token != visa.token
        tokens = {card.token for card in gateway.list_payment_methods(customer)}
        assert tokens == {visa.token, again.token}

    def test_default_and_detach(
        self, gateway: PaymentGateway, customer: str, visa: CardDetails
    ) -> None:
        master = gateway.attach_payment_method(customer, token="pm_card_mastercard")
        assert (master.brand, master.last4) == ("mastercard", "4444")
        gateway.set_default_payment_method(customer, token=master.token)
        gateway.detach_payment_method(visa.token)
        assert [c.token for c in gateway.list_payment_methods(customer)] == [
            master.token
        ]

    def test_detached_card_cannot_be_made_default(
        self, gateway: PaymentGateway, customer: str, visa: CardDetails
    ) -> None:
        gateway.detach_payment_method(visa.token)
        with pytest.raises(GatewayError):
            gateway.set_default_payment_method(customer, token=visa.token)

    def test_detached_card_cannot_be_used_again(
        self, gateway: PaymentGateway, customer: str, visa: CardDetails
    ) -> None:
        gateway.detach_payment_method(visa.token)
        with pytest.raises(GatewayError):
            self.charge(gateway, customer, visa.token, Money(100, "NOK"), _key("gone"))
        with pytest.raises(GatewayError):
            gateway.attach_payment_method(customer, token=visa.token)

    def test_a_card_attached_again_to_its_customer_is_the_same_card(
        self, gateway: PaymentGateway, customer: str, visa: CardDetails
    ) -> None:
        """How a save whose attach lost its answer is repeated."""
        assert gateway.attach_payment_method(customer, token=visa.token) == visa
        assert [c.token for c in gateway.list_payment_methods(customer)] == [visa.token]

    @pytest.mark.parametrize(
        "number", ["4242424242424242", "4242 4242 4242 4242", "pm_4000056655665556"]
    )
    def test_card_numbers_are_refused(
        self, gateway: PaymentGateway, customer: str, number: str
    ) -> None:
        with pytest.raises(InvalidInputError, match="card number") as caught:
            gateway.attach_payment_method(customer, token=number)
        assert number not in str(caught.value)
        with pytest.raises(InvalidInputError, match="card number"):
            self.charge(gateway, customer, number, Money(100, "NOK"), _key("pan"))

    def test_card_data_in_metadata_is_refused(
        self, gateway: PaymentGateway, customer: str, visa: CardDetails
    ) -> None:
        for metadata in ({"cvc": "123"}, {"note": "card 4242424242424242"}):
            with pytest.raises(InvalidInputError):
                gateway.charge(
                    customer,
                    payment_method=visa.token,
                    amount=Money(100, "NOK"),
                    idempotency_key=_key("meta"),
                    off_session=True,
                    metadata=metadata,
                )

    # -- charges ---------------------------------------------------------------

    def test_charge_succeeds_and_can_be_retrieved(
        self, gateway: PaymentGateway, customer: str, visa: CardDetails
    ) -> None:
        key = _key("ok")
        result = self.charge(gateway, customer, visa.token, Money("850.00", "NOK"), key)
        assert result.status is ChargeStatus.SUCCEEDED
        assert result.amount == Money("850.00", "NOK")
        assert result.idempotency_key == key
        assert result.charge_id
        assert result.decline_code is None
        assert gateway.retrieve_charge(charge_id=result.charge_id) == result
        assert gateway.retrieve_charge(idempotency_key=key) == result

    def test_unknown_charge_is_none(self, gateway: PaymentGateway) -> None:
        assert gateway.retrieve_charge(idempotency_key=_key("never")) is None

    @pytest.mark.parametrize(
        ("card", "error_code", "decline_code", "retryable"), DECLINING_CARDS
    )
    def test_declines_are_results(
        self,
        gateway: PaymentGateway,
        customer: str,
        card: str,
        error_code: str,
        decline_code: str,
        retryable: bool,
    ) -> None:
        key = _key("decline")
        result = self.charge(gateway, customer, card, Money("850.00", "NOK"), key)
        assert result.status is ChargeStatus.DECLINED
        assert (result.error_code, result.decline_code) == (error_code, decline_code)
        assert result.retryable is retryable
        assert result.amount == Money("850.00", "NOK")
        assert result.idempotency_key == key

    def test_card_that_saves_but_never_charges(
        self, gateway: PaymentGateway, customer: str
    ) -> None:
        card = gateway.attach_payment_method(
            customer, token="pm_card_chargeCustomerFail"
        )
        assert card.last4 == "0341"
        for attempt in range(2):
            result = self.charge(
                gateway, customer, card.token, Money(300, "NOK"), _key(f"fail{attempt}")
            )
            assert result.status is ChargeStatus.DECLINED
            assert result.decline_code
            assert not result.retryable

    def test_authentication_required_off_session(
        self, gateway: PaymentGateway, customer: str
    ) -> None:
        card = gateway.attach_payment_method(
            customer, token="pm_card_authenticationRequired"
        )
        result = self.charge(
            gateway, customer, card.token, Money(500, "NOK"), _key("3ds")
        )
        assert result.status is ChargeStatus.REQUIRES_ACTION
        assert result.client_secret or result.action_url
        assert result.charge_id

    def test_a_charge_waiting_for_authentication_can_be_canceled(
        self, gateway: PaymentGateway, customer: str, visa: CardDetails
    ) -> None:
        card = gateway.attach_payment_method(
            customer, token="pm_card_authenticationRequired"
        )
        waiting = self.charge(
            gateway, customer, card.token, Money(500, "NOK"), _key("cancel")
        )
        assert waiting.charge_id is not None
        canceled = gateway.cancel_charge(waiting.charge_id)
        assert canceled.status is ChargeStatus.CANCELED
        assert canceled.charge_id == waiting.charge_id
        found = gateway.retrieve_charge(charge_id=waiting.charge_id)
        assert found is not None
        assert found.status is ChargeStatus.CANCELED
        # never declined: no decline's codes (the request for 3-D Secure is none)
        assert (found.decline_code, found.error_code) == (None, None)
        assert gateway.cancel_charge(waiting.charge_id).status is ChargeStatus.CANCELED

    def test_a_declined_charge_can_be_canceled(
        self, gateway: PaymentGateway, customer: str
    ) -> None:
        """How a charge declined after authentication is closed for good.

        It keeps the decline's codes, in the cancel's answer and in every
        look-up: billing records the decline from them when the cancel's
        answer, or the record after it, was lost.
        """
        card = "pm_card_visa_chargeDeclinedInsufficientFunds"
        key = _key("closed")
        declined = self.charge(gateway, customer, card, Money(500, "NOK"), key)
        assert declined.status is ChargeStatus.DECLINED
        assert declined.charge_id is not None
        codes = (declined.decline_code, declined.error_code)
        assert codes == ("insufficient_funds", "card_declined")
        canceled = gateway.cancel_charge(declined.charge_id)
        assert canceled.status is ChargeStatus.CANCELED
        assert (canceled.decline_code, canceled.error_code) == codes
        for found in (
            gateway.retrieve_charge(charge_id=declined.charge_id),
            gateway.retrieve_charge(idempotency_key=key),
            gateway.cancel_charge(declined.charge_id),  # again: nothing changes
        ):
            assert found is not None
            assert found.status is ChargeStatus.CANCELED
            assert (found.decline_code, found.error_code) == codes

    def test_canceling_a_charge_that_succeeded_returns_its_outcome(
        self, gateway: PaymentGateway, customer: str, visa: CardDetails
    ) -> None:
        done = self.charge(gateway, customer, visa.token, Money(500, "NOK"), _key("k"))
        assert done.charge_id is not None
        assert gateway.cancel_charge(done.charge_id).status is ChargeStatus.SUCCEEDED

    def test_same_key_same_parameters_charges_once(
        self,
        gateway: PaymentGateway,
        customer: str,
        visa: CardDetails,
        count_charges: CountCharges | None,
    ) -> None:
        key = _key("twice")
        first = self.charge(gateway, customer, visa.token, Money(400, "NOK"), key)
        second = self.charge(gateway, customer, visa.token, Money(400, "NOK"), key)
        assert second == first
        if count_charges is not None:
            assert count_charges(key) == 1

    def test_same_key_other_parameters_is_refused(
        self, gateway: PaymentGateway, customer: str, visa: CardDetails
    ) -> None:
        key = _key("reuse")
        self.charge(gateway, customer, visa.token, Money(400, "NOK"), key)
        with pytest.raises(IdempotencyKeyReuseError):
            self.charge(gateway, customer, visa.token, Money(401, "NOK"), key)

    def test_declines_replay_under_the_same_key(
        self, gateway: PaymentGateway, customer: str
    ) -> None:
        key = _key("declined-twice")
        card = "pm_card_visa_chargeDeclinedInsufficientFunds"
        first = self.charge(gateway, customer, card, Money(400, "NOK"), key)
        assert self.charge(gateway, customer, card, Money(400, "NOK"), key) == first

    def test_timeout_after_success_then_retry_charges_once(
        self,
        gateway: PaymentGateway,
        customer: str,
        visa: CardDetails,
        inject_fault: InjectFault | None,
        count_charges: CountCharges | None,
    ) -> None:
        if inject_fault is None:
            pytest.skip("this gateway cannot inject faults")
        key = _key("lost-answer")
        inject_fault("timeout_after", "charge")
        with pytest.raises(GatewayUnavailableError):
            self.charge(gateway, customer, visa.token, Money(700, "NOK"), key)
        known = gateway.retrieve_charge(idempotency_key=key)
        assert known is not None
        assert known.status is ChargeStatus.SUCCEEDED
        retried = self.charge(gateway, customer, visa.token, Money(700, "NOK"), key)
        assert retried.status is ChargeStatus.SUCCEEDED
        assert retried.charge_id == known.charge_id
        if count_charges is not None:
            assert count_charges(key) == 1

    def test_timeout_before_then_retry_charges_once(
        self,
        gateway: PaymentGateway,
        customer: str,
        visa: CardDetails,
        inject_fault: InjectFault | None,
        count_charges: CountCharges | None,
    ) -> None:
        if inject_fault is None:
            pytest.skip("this gateway cannot inject faults")
        key = _key("no-answer")
        inject_fault("timeout_before", "charge")
        with pytest.raises(GatewayUnavailableError):
            self.charge(gateway, customer, visa.token, Money(700, "NOK"), key)
        assert gateway.retrieve_charge(idempotency_key=key) is None
        retried = self.charge(gateway, customer, visa.token, Money(700, "NOK"), key)
        assert retried.status is ChargeStatus.SUCCEEDED
        if count_charges is not None:
            assert count_charges(key) == 1

    # -- currencies ------------------------------------------------------------

    @pytest.mark.parametrize(
        "amount",
        [Money(15000, "ISK"), Money(5000, "JPY"), Money("12.340", "KWD")],
        ids=str,
    )
    def test_currencies_round_trip_exactly(
        self,
        gateway: PaymentGateway,
        customer: str,
        visa: CardDetails,
        amount: Money,
    ) -> None:
        key = _key(f"cur-{amount.currency}")
        result = self.charge(gateway, customer, visa.token, amount, key)
        assert result.status is ChargeStatus.SUCCEEDED
        assert result.amount == amount
        assert result.amount.is_quantized
        assert result.charge_id is not None
        retrieved = gateway.retrieve_charge(charge_id=result.charge_id)
        assert retrieved is not None
        assert retrieved.amount == amount
        part = Money(
            (amount.amount / 2).quantize(Decimal("0.01")), amount.currency
        ).quantize()
        refund = gateway.refund(
            result.charge_id, amount=part, idempotency_key=_key("cur-refund")
        )
        assert refund.amount == part

    @pytest.mark.parametrize(
        "amount",
        [Money("12.345", "KWD"), Money("1.5", "JPY"), Money("100.50", "ISK")],
        ids=str,
    )
    def test_amounts_the_gateway_cannot_take_are_refused(
        self,
        gateway: PaymentGateway,
        customer: str,
        visa: CardDetails,
        amount: Money,
    ) -> None:
        with pytest.raises(InvalidInputError):
            self.charge(gateway, customer, visa.token, amount, _key("bad-amount"))

    @pytest.mark.parametrize("amount", [Money(0, "NOK"), Money(-5, "NOK")], ids=str)
    def test_nothing_or_less_is_refused(
        self,
        gateway: PaymentGateway,
        customer: str,
        visa: CardDetails,
        amount: Money,
    ) -> None:
        with pytest.raises(InvalidInputError):
            self.charge(gateway, customer, visa.token, amount, _key("nothing"))

    # -- refunds -----------------------------------------------------------------

    def test_partial_then_full_refund(
        self, gateway: PaymentGateway, customer: str, visa: CardDetails
    ) -> None:
        charge = self.charge(
            gateway, customer, visa.token, Money(1000, "NOK"), _key("r")
        )
        assert charge.charge_id is not None
        key = _key("refund-part")
        part = gateway.refund(
            charge.charge_id, amount=Money(250, "NOK"), idempotency_key=key
        )
        assert (part.charge_id, part.amount) == (charge.charge_id, Money(250, "NOK"))
        assert part.refund_id
        assert part.status in ("succeeded", "pending")
        again = gateway.refund(
            charge.charge_id, amount=Money(250, "NOK"), idempotency_key=key
        )
        assert again == part
        rest = gateway.refund(
            charge.charge_id, amount=None, idempotency_key=_key("rest")
        )
        assert rest.amount == Money(750, "NOK")
        assert rest.refund_id != part.refund_id
        with pytest.raises(InvalidInputError):
            gateway.refund(
                charge.charge_id, amount=Money(1, "NOK"), idempotency_key=_key("more")
            )

    def test_charges_stay_within_the_gateways_limits(
        self, gateway: PaymentGateway, customer: str, visa: CardDetails
    ) -> None:
        """Stripe's minimum charge (3.00 NOK) and eight-digit maximum."""
        for amount in (Money("2.99", "NOK"), Money("1000000.00", "NOK")):
            with pytest.raises(InvalidInputError, match="gateway's m"):
                self.charge(gateway, customer, visa.token, amount, _key("limit"))
        smallest = self.charge(
            gateway, customer, visa.token, Money("3.00", "NOK"), _key("min")
        )
        largest = self.charge(
            gateway, customer, visa.token, Money("999999.99", "NOK"), _key("max")
        )
        assert smallest.status is largest.status is ChargeStatus.SUCCEEDED

    @pytest.mark.parametrize("code", ["NOK", "ISK", "KWD"])
    def test_charge_limits_are_the_limits_charges_keep(
        self, gateway: PaymentGateway, customer: str, visa: CardDetails, code: str
    ) -> None:
        """What ``charge_limits`` says is what ``charge`` takes and refuses."""
        limits = gateway.charge_limits(Currency(code))
        assert limits.currency == Currency(code)
        step = limits.increment
        assert step.amount > 0
        assert limits.maximum is not None  # every gateway has a largest charge
        bounds = [(limits.maximum, limits.maximum + step)]
        if limits.minimum is not None:
            bounds.append((limits.minimum, limits.minimum - step))
        for within, beyond in bounds:
            assert limits.broken_by(within) is None
            assert limits.broken_by(beyond) is not None
            done = self.charge(gateway, customer, visa.token, within, _key("edge"))
            assert done.status is ChargeStatus.SUCCEEDED
            with pytest.raises(InvalidInputError):
                self.charge(gateway, customer, visa.token, beyond, _key("beyond"))

    def test_a_refund_is_found_by_its_key(
        self, gateway: PaymentGateway, customer: str, visa: CardDetails
    ) -> None:
        """How a refund whose answer was lost is finished without a second one."""
        first = self.charge(gateway, customer, visa.token, Money(400, "NOK"), _key("a"))
        other = self.charge(gateway, customer, visa.token, Money(300, "NOK"), _key("b"))
        assert first.charge_id is not None
        assert other.charge_id is not None
        key = _key("refund-found")
        made = gateway.refund(
            first.charge_id,
            amount=Money(100, "NOK"),
            idempotency_key=key,
            metadata={"recurbill_refund": "contract"},
        )
        assert gateway.retrieve_refund(first.charge_id, idempotency_key=key) == made
        assert (
            gateway.retrieve_refund(first.charge_id, idempotency_key=_key("x")) is None
        )
        assert gateway.retrieve_refund(other.charge_id, idempotency_key=key) is None

    def test_refund_never_exceeds_the_charge(
        self, gateway: PaymentGateway, customer: str, visa: CardDetails
    ) -> None:
        charge = self.charge(
            gateway, customer, visa.token, Money(100, "NOK"), _key("r")
        )
        assert charge.charge_id is not None
        with pytest.raises(InvalidInputError):
            gateway.refund(
                charge.charge_id, amount=Money(101, "NOK"), idempotency_key=_key("big")
            )
        with pytest.raises(InvalidInputError):
            gateway.refund(
                charge.charge_id, amount=Money(50, "SEK"), idempotency_key=_key("sek")
            )
        full = gateway.refund(charge.charge_id, amount=None, idempotency_key=_key("f"))
        assert full.amount == Money(100, "NOK")
        with pytest.raises(InvalidInputError):  # Stripe: charge_already_refunded
            gateway.refund(charge.charge_id, amount=None, idempotency_key=_key("f2"))

    # -- webhooks ----------------------------------------------------------------

    def test_webhook_is_parsed(
        self, gateway: PaymentGateway, webhook_secret: str
    ) -> None:
        payload = _event("evt_contract_1", "payment_intent.succeeded", NOW - 5)
        header = sign_webhook(payload, secret=webhook_secret, timestamp=NOW)
        event = gateway.parse_webhook(payload, signature=header, now=NOW + 10)
        assert event.event_id == "evt_contract_1"
        assert event.type == "payment_intent.succeeded"
        assert event.created == NOW - 5
        assert event.data["id"] == "pi_evt_contract_1"

    def test_webhook_with_bad_signature_is_refused(
        self, gateway: PaymentGateway, webhook_secret: str
    ) -> None:
        payload = _event("evt_contract_2", "payment_intent.succeeded", NOW)
        forged = sign_webhook(payload, secret="whsec_not_ours", timestamp=NOW)
        good = sign_webhook(payload, secret=webhook_secret, timestamp=NOW)
        tampered = payload.replace(b"succeeded", b"payment_failed")
        for body, header in (
            (payload, forged),
            (tampered, good),
            (payload, ""),
            (payload, "t=abc,v1=00"),
            (payload, good.split(",")[0]),
        ):
            with pytest.raises(WebhookError):
                gateway.parse_webhook(body, signature=header, now=NOW)

    @pytest.mark.parametrize("age", [301, 3600, -301])
    def test_webhook_with_stale_timestamp_is_refused(
        self, gateway: PaymentGateway, webhook_secret: str, age: int
    ) -> None:
        payload = _event("evt_contract_3", "payment_intent.succeeded", NOW)
        header = sign_webhook(payload, secret=webhook_secret, timestamp=NOW - age)
        with pytest.raises(WebhookError, match="timestamp"):
            gateway.parse_webhook(payload, signature=header, now=NOW)
        fresh = sign_webhook(payload, secret=webhook_secret, timestamp=NOW - 300)
        assert gateway.parse_webhook(payload, signature=fresh, now=NOW).event_id

    def test_webhook_that_is_not_an_event_is_refused(
        self, gateway: PaymentGateway, webhook_secret: str
    ) -> None:
        for payload in (b"not json", b"[]", b'{"id": "evt_x"}'):
            header = sign_webhook(payload, secret=webhook_secret, timestamp=NOW)
            with pytest.raises(WebhookError):
                gateway.parse_webhook(payload, signature=header, now=NOW)

    def test_duplicate_delivery_has_a_stable_id(
        self, gateway: PaymentGateway, webhook_secret: str
    ) -> None:
        payload = _event("evt_contract_4", "charge.refunded", NOW)
        first = gateway.parse_webhook(
            payload,
            signature=sign_webhook(payload, secret=webhook_secret, timestamp=NOW),
            now=NOW,
        )
        second = gateway.parse_webhook(
            payload,
            signature=sign_webhook(payload, secret=webhook_secret, timestamp=NOW + 60),
            now=NOW + 61,
        )
        assert first == second
        assert first.refund is None  # its object is a Charge, not a Refund

    def test_out_of_order_delivery_parses_each_event(
        self, gateway: PaymentGateway, webhook_secret: str
    ) -> None:
        older = _event("evt_contract_5", "payment_intent.requires_action", NOW - 30)
        newer = _event("evt_contract_6", "payment_intent.succeeded", NOW - 10)
        seen = [
            gateway.parse_webhook(
                body,
                signature=sign_webhook(body, secret=webhook_secret, timestamp=NOW),
                now=NOW,
            )
            for body in (newer, older)
        ]
        assert [(e.event_id, e.created) for e in seen] == [
            ("evt_contract_6", NOW - 10),
            ("evt_contract_5", NOW - 30),
        ]

"""InMemoryGateway: the gateway contract, plus recording, faults and the guard."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recurbill.errors import (
    GatewayConfigurationError,
    GatewayUnavailableError,
    IdempotencyKeyReuseError,
    InvalidInputError,
    ProductionGuardError,
    WebhookError,
)
from recurbill.money import Money
from recurbill.payments.memory import (
    DEFAULT_WEBHOOK_SECRET,
    TEST_CARDS,
    InMemoryGateway,
)
from recurbill.payments.protocol import (
    ChargeResult,
    ChargeStatus,
    PaymentGateway,
    WebhookEvent,
)
from recurbill.testing.payments import GatewayContract

NOW = 1_767_225_600


class TestInMemoryGatewayContract(GatewayContract):
    @pytest.fixture
    def gateway(self) -> InMemoryGateway:
        return InMemoryGateway(environ={})

    @pytest.fixture
    def webhook_secret(self) -> str:
        return DEFAULT_WEBHOOK_SECRET

    @pytest.fixture
    def inject_fault(self, gateway: InMemoryGateway) -> object:
        def inject(kind: str, operation: str) -> None:
            gateway.fail_next(kind, operation=operation)  # type: ignore[arg-type]

        return inject

    @pytest.fixture
    def count_charges(self, gateway: InMemoryGateway) -> object:
        return lambda key: sum(c.idempotency_key == key for c in gateway.ledger)

    @pytest.fixture
    def customer_details(self, gateway: InMemoryGateway) -> object:
        def details(customer: str) -> tuple[object, object]:
            kept = gateway.customer_details(customer)
            return kept["email"], kept["name"]

        return details


@pytest.fixture
def gateway() -> InMemoryGateway:
    return InMemoryGateway(environ={})


@pytest.fixture
def customer(gateway: InMemoryGateway) -> str:
    return gateway.create_customer(email="ola@example.no", name="Ola")


def _charge(
    gateway: InMemoryGateway,
    customer: str,
    key: str,
    *,
    token: str = "pm_card_visa",
    amount: Money | None = None,
) -> ChargeResult:
    return gateway.charge(
        customer,
        payment_method=token,
        amount=amount or Money("850.00", "NOK"),
        idempotency_key=key,
        off_session=True,
        metadata={"recurbill_payment": "pay_1", "account": "acc_1"},
    )


def test_it_satisfies_the_protocol(gateway: InMemoryGateway) -> None:
    port: PaymentGateway = gateway
    assert port is gateway


# -- production guard ---------------------------------------------------------


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "on", "production"])
def test_refuses_to_start_where_production_is_declared(value: str) -> None:
    with pytest.raises(ProductionGuardError, match="production"):
        InMemoryGateway(environ={"RECURBILL_PRODUCTION": value})


@pytest.mark.parametrize("value", ["", "0", "false", "No", "off", " "])
def test_starts_where_production_is_not_declared(value: str) -> None:
    assert InMemoryGateway(environ={"RECURBILL_PRODUCTION": value}).requests == []


def test_production_flag_refuses() -> None:
    with pytest.raises(ProductionGuardError):
        InMemoryGateway(production=True, environ={})


def test_environment_is_read_at_construction_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("RECURBILL_PRODUCTION", raising=False)
    gateway = InMemoryGateway()
    monkeypatch.setenv("RECURBILL_PRODUCTION", "1")
    customer = gateway.create_customer(email="a@example.no", name="A")
    assert customer.startswith("cus_")
    with pytest.raises(ProductionGuardError):
        InMemoryGateway()


def test_production_guard_is_a_configuration_error() -> None:
    with pytest.raises(GatewayConfigurationError):
        InMemoryGateway(production=True)


# -- recording and determinism ------------------------------------------------


def test_every_request_is_recorded(gateway: InMemoryGateway, customer: str) -> None:
    card = gateway.attach_payment_method(customer, token="pm_card_visa")
    _charge(gateway, customer, "k1", token=card.token)
    ops = [(r.operation, r.idempotency_key) for r in gateway.requests]
    assert ops == [
        ("create_customer", None),
        ("attach_payment_method", None),
        ("charge", "k1"),
    ]
    charge = gateway.requests[-1]
    assert charge.params["amount"] == Money("850.00", "NOK")
    assert charge.params["payment_method"] == card.token
    assert charge.params["metadata"] == {
        "recurbill_payment": "pay_1",
        "account": "acc_1",
    }


def test_ids_are_deterministic() -> None:
    def run() -> list[str]:
        gateway = InMemoryGateway(environ={})
        customer = gateway.create_customer(email="a@example.no", name="A")
        card = gateway.attach_payment_method(customer, token="pm_card_amex")
        result = gateway.charge(
            customer,
            payment_method=card.token,
            amount=Money(100, "NOK"),
            idempotency_key="k",
            off_session=False,
        )
        return [customer, card.token, str(result.charge_id)]

    assert run() == run() == ["cus_mem_0001", "pm_mem_0001", "pi_mem_0001"]


def test_test_cards_have_the_stripe_display_facts(
    gateway: InMemoryGateway, customer: str
) -> None:
    amex = gateway.attach_payment_method(customer, token="pm_card_amex")
    assert (amex.brand, amex.last4, amex.exp_month, amex.exp_year) == (
        "amex",
        "8431",
        12,
        2034,
    )
    assert all(len(card.last4) == 4 for card in TEST_CARDS.values())


def test_ledger_holds_succeeded_charges_only(
    gateway: InMemoryGateway, customer: str
) -> None:
    _charge(gateway, customer, "ok")
    _charge(gateway, customer, "no", token="pm_card_visa_chargeDeclined")
    _charge(gateway, customer, "ok")
    assert [c.idempotency_key for c in gateway.ledger] == ["ok"]


def test_charging_a_card_of_another_customer_is_refused(
    gateway: InMemoryGateway, customer: str
) -> None:
    other = gateway.create_customer(email="b@example.no", name="B")
    card = gateway.attach_payment_method(other, token="pm_card_visa")
    with pytest.raises(GatewayConfigurationError, match="not attached"):
        _charge(gateway, customer, "k", token=card.token)
    with pytest.raises(GatewayConfigurationError, match="another customer"):
        gateway.attach_payment_method(customer, token=card.token)


def test_unknown_ids_are_configuration_errors(gateway: InMemoryGateway) -> None:
    with pytest.raises(GatewayConfigurationError):
        gateway.start_card_setup("cus_nobody")
    with pytest.raises(GatewayConfigurationError):
        gateway.attach_payment_method("cus_nobody", token="pm_card_visa")
    with pytest.raises(GatewayConfigurationError):
        gateway.detach_payment_method("pm_nothing")


def test_bad_input_is_refused_before_recording(gateway: InMemoryGateway) -> None:
    with pytest.raises(InvalidInputError, match="idempotency key"):
        gateway.charge(
            "cus_x",
            payment_method="pm_card_visa",
            amount=Money(100, "NOK"),
            idempotency_key="",
            off_session=True,
        )
    with pytest.raises(InvalidInputError, match="off_session"):
        gateway.charge(
            "cus_x",
            payment_method="pm_card_visa",
            amount=Money(100, "NOK"),
            idempotency_key="k",
            off_session="yes",  # type: ignore[arg-type]
        )
    with pytest.raises(InvalidInputError, match="e-mail"):
        gateway.create_customer(email="nobody", name="N")
    with pytest.raises(InvalidInputError, match="exactly one"):
        gateway.retrieve_charge()
    assert gateway.requests == []


# -- card setup and webhooks ----------------------------------------------------


def test_confirmed_card_setup_attaches_the_card(
    gateway: InMemoryGateway, customer: str
) -> None:
    setup = gateway.start_card_setup(customer)
    token = gateway.confirm_card_setup(setup.setup_id, card="pm_card_mastercard")
    assert [c.token for c in gateway.list_payment_methods(customer)] == [token]
    details = gateway.attach_payment_method(customer, token=token)
    assert (details.token, details.last4) == (token, "4444")
    gateway.set_default_payment_method(customer, token=token)
    assert gateway.default_payment_method(customer) == token
    gateway.detach_payment_method(token)
    assert gateway.default_payment_method(customer) is None
    assert gateway.events[-1].type == "setup_intent.succeeded"


def test_every_outcome_emits_a_signed_event(
    gateway: InMemoryGateway, customer: str
) -> None:
    ok = _charge(gateway, customer, "ok")
    _charge(gateway, customer, "no", token="pm_card_visa_chargeDeclinedLostCard")
    _charge(gateway, customer, "3ds", token="pm_card_authenticationRequired")
    assert ok.charge_id is not None
    gateway.refund(ok.charge_id, amount=None, idempotency_key="r")
    types = [e.type for e in gateway.events]
    assert types == [
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.payment_failed",  # off-session: authentication_required
        "refund.created",
        "charge.refunded",
    ]
    assert [e.created for e in gateway.events] == [NOW + i for i in range(5)]
    for event in gateway.events:
        payload, header = gateway.webhook(event.event_id, now=NOW + 100)
        assert gateway.parse_webhook(payload, signature=header, now=NOW + 100) == event
    data = gateway.events[0].data
    assert data["metadata"] == {
        "recurbill_payment": "pay_1",
        "account": "acc_1",
        "recurbill_idempotency_key": "ok",
    }
    assert (data["amount"], data["currency"]) == (85000, "nok")
    assert gateway.events[4].data["amount_refunded"] == 85000


def _partly_refunded(
    gateway: InMemoryGateway, customer: str
) -> tuple[ChargeResult, list[WebhookEvent]]:
    """A charge of 850 NOK, refunded 100 then the rest; the events of it."""
    paid = _charge(gateway, customer, "pay")
    assert paid.charge_id is not None
    gateway.refund(paid.charge_id, amount=Money(100, "NOK"), idempotency_key="r1")
    gateway.refund(paid.charge_id, amount=None, idempotency_key="r2")
    return paid, gateway.events


def test_charge_refunded_carries_the_charge_as_stripe_does(
    gateway: InMemoryGateway, customer: str
) -> None:
    paid, events = _partly_refunded(gateway, customer)
    intent = events[0].data
    first, rest = [e.data for e in events if e.type == "charge.refunded"]
    for charge in (first, rest):
        assert charge["object"] == "charge"
        assert charge["id"] == intent["latest_charge"]
        assert str(charge["id"]).startswith("ch_")
        assert charge["payment_intent"] == paid.charge_id
        assert charge["metadata"] == intent["metadata"]  # copied, as Stripe does
        assert (charge["amount"], charge["currency"]) == (85000, "nok")
    assert (first["amount_refunded"], first["refunded"]) == (10000, False)
    assert (rest["amount_refunded"], rest["refunded"]) == (85000, True)
    assert "amount_refunded" not in intent  # a PaymentIntent has none


def test_refund_created_carries_the_refund_as_stripe_does(
    gateway: InMemoryGateway, customer: str
) -> None:
    paid, events = _partly_refunded(gateway, customer)
    created = [e for e in events if e.type == "refund.created"]
    assert [e.refund for e in created] == gateway.refunds
    for event in created:
        assert event.data["object"] == "refund"
        assert event.data["charge"] == events[0].data["latest_charge"]
        assert event.data["payment_intent"] == paid.charge_id


@pytest.mark.parametrize(
    ("off_session", "type_", "status", "error"),
    [
        (False, "payment_intent.requires_action", "requires_action", None),
        (
            True,
            "payment_intent.payment_failed",
            "requires_payment_method",
            {
                "code": "authentication_required",
                "decline_code": "authentication_required",
            },
        ),
    ],
)
def test_authentication_required_emits_what_stripe_does(
    gateway: InMemoryGateway,
    customer: str,
    off_session: bool,
    type_: str,
    status: str,
    error: object,
) -> None:
    result = gateway.charge(
        customer,
        payment_method="pm_card_authenticationRequired",
        amount=Money("850.00", "NOK"),
        idempotency_key="3ds",
        off_session=off_session,
    )
    # the result is the Stripe adapter's either way: the customer can confirm
    assert result.status is ChargeStatus.REQUIRES_ACTION
    assert result.client_secret
    (event,) = gateway.events
    assert (event.type, event.data["id"]) == (type_, result.charge_id)
    assert event.data["object"] == "payment_intent"
    assert event.data["status"] == status
    assert event.data["last_payment_error"] == error
    assert event.data["latest_charge"] is None  # no attempt reached the bank


def test_webhook_delivered_twice_and_out_of_order(
    gateway: InMemoryGateway, customer: str
) -> None:
    _charge(gateway, customer, "a")
    _charge(gateway, customer, "b")
    first, second = gateway.events
    deliveries = [
        gateway.webhook(second.event_id, now=NOW + 10),
        gateway.webhook(first.event_id, now=NOW + 11),
        gateway.webhook(second.event_id, now=NOW + 12),
    ]
    parsed = [
        gateway.parse_webhook(body, signature=sig, now=NOW + 12).event_id
        for body, sig in deliveries
    ]
    assert parsed == [second.event_id, first.event_id, second.event_id]


def test_webhook_secrets_rotate() -> None:
    old = InMemoryGateway(environ={}, webhook_secrets=["whsec_old"])
    new = InMemoryGateway(environ={}, webhook_secrets=["whsec_new", "whsec_old"])
    customer = old.create_customer(email="a@example.no", name="A")
    old.charge(
        customer,
        payment_method="pm_card_visa",
        amount=Money(100, "NOK"),
        idempotency_key="k",
        off_session=True,
    )
    payload, header = old.webhook(old.events[0].event_id, now=NOW)
    assert new.parse_webhook(payload, signature=header, now=NOW).event_id
    newest = InMemoryGateway(environ={}, webhook_secrets=["whsec_new"])
    with pytest.raises(WebhookError, match="no signature"):
        newest.parse_webhook(payload, signature=header, now=NOW)


def test_webhook_of_unknown_event_is_refused(gateway: InMemoryGateway) -> None:
    with pytest.raises(InvalidInputError):
        gateway.webhook("evt_nothing", now=NOW)


# -- fault injection --------------------------------------------------------------


def test_timeout_after_records_the_charge_then_replays(
    gateway: InMemoryGateway, customer: str
) -> None:
    gateway.fail_next("timeout_after")
    with pytest.raises(GatewayUnavailableError, match="unknown"):
        _charge(gateway, customer, "k")
    assert len(gateway.ledger) == 1
    again = _charge(gateway, customer, "k")
    assert again == gateway.ledger[0]
    assert len(gateway.ledger) == 1


def test_timeout_before_and_unavailable_do_nothing(
    gateway: InMemoryGateway, customer: str
) -> None:
    gateway.fail_next("timeout_before")
    gateway.fail_next("unavailable")
    for _ in range(2):
        with pytest.raises(GatewayUnavailableError):
            _charge(gateway, customer, "k")
    assert gateway.ledger == []
    assert gateway.retrieve_charge(idempotency_key="k") is None
    _charge(gateway, customer, "k")
    assert len(gateway.ledger) == 1
    assert [r.operation for r in gateway.requests].count("charge") == 3


def test_faults_target_one_operation(gateway: InMemoryGateway, customer: str) -> None:
    result = _charge(gateway, customer, "k")
    gateway.fail_next("timeout_after", operation="refund", times=2)
    charge_id = result.charge_id
    assert charge_id is not None
    for _ in range(2):
        with pytest.raises(GatewayUnavailableError):
            gateway.refund(charge_id, amount=Money(100, "NOK"), idempotency_key="r")
    refund = gateway.refund(charge_id, amount=Money(100, "NOK"), idempotency_key="r")
    assert gateway.refunds == [refund]


def test_fault_arguments_are_checked(gateway: InMemoryGateway) -> None:
    with pytest.raises(InvalidInputError):
        gateway.fail_next("explode")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        gateway.fail_next("timeout_after", operation="_charge")
    with pytest.raises(InvalidInputError):
        gateway.fail_next("timeout_after", operation="teleport")
    with pytest.raises(InvalidInputError):
        gateway.fail_next("timeout_after", times=0)


def test_refund_keys_are_not_charge_keys(
    gateway: InMemoryGateway, customer: str
) -> None:
    charge_id = _charge(gateway, customer, "k").charge_id
    assert charge_id is not None
    with pytest.raises(IdempotencyKeyReuseError):
        gateway.refund(charge_id, amount=None, idempotency_key="k")


def test_refund_of_a_declined_charge_is_refused(
    gateway: InMemoryGateway, customer: str
) -> None:
    charge_id = _charge(
        gateway, customer, "k", token="pm_card_chargeCustomerFail"
    ).charge_id
    assert charge_id is not None
    with pytest.raises(GatewayConfigurationError):
        gateway.refund(charge_id, amount=None, idempotency_key="r")


def test_concurrent_retries_charge_once(
    gateway: InMemoryGateway, customer: str
) -> None:
    results: list[ChargeResult] = []

    def worker() -> None:
        results.append(_charge(gateway, customer, "same"))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(gateway.ledger) == 1
    assert all(r == gateway.ledger[0] for r in results)


@given(
    amounts=st.lists(st.integers(min_value=1, max_value=10_000), min_size=1, max_size=6)
)
def test_refunds_never_exceed_the_charge(amounts: list[int]) -> None:
    gateway = InMemoryGateway(environ={})
    customer = gateway.create_customer(email="a@example.no", name="A")
    charge = gateway.charge(
        customer,
        payment_method="pm_card_visa",
        amount=Money(10_000, "NOK"),
        idempotency_key="c",
        off_session=True,
    )
    assert charge.status is ChargeStatus.SUCCEEDED
    assert charge.charge_id is not None
    refunded = 0
    for n, amount in enumerate(amounts):
        try:
            gateway.refund(
                charge.charge_id, amount=Money(amount, "NOK"), idempotency_key=f"r{n}"
            )
        except InvalidInputError:
            assert refunded + amount > 10_000
        else:
            refunded += amount
        assert sum(r.amount.amount for r in gateway.refunds) == refunded <= 10_000


# -- charges that finish later ------------------------------------------------------


def test_authentication_completed_later(
    gateway: InMemoryGateway, customer: str
) -> None:
    first = _charge(gateway, customer, "3ds", token="pm_card_authenticationRequired")
    assert first.status is ChargeStatus.REQUIRES_ACTION
    assert first.charge_id is not None
    done = gateway.settle(first.charge_id)
    assert done.status is ChargeStatus.SUCCEEDED
    assert (done.charge_id, done.amount) == (first.charge_id, first.amount)
    assert gateway.ledger == [done]
    assert gateway.retrieve_charge(idempotency_key="3ds") == done
    assert gateway.retrieve_charge(charge_id=first.charge_id) == done
    assert (
        _charge(gateway, customer, "3ds", token="pm_card_authenticationRequired")
        == first
    )
    assert gateway.events[-1].type == "payment_intent.succeeded"
    assert gateway.events[-1].data["status"] == "succeeded"


def test_processing_then_declined(gateway: InMemoryGateway, customer: str) -> None:
    gateway.process_next()
    waiting = _charge(gateway, customer, "slow")
    assert waiting.status is ChargeStatus.PROCESSING
    assert gateway.ledger == []
    assert gateway.events[-1].type == "payment_intent.processing"
    assert waiting.charge_id is not None
    failed = gateway.settle(
        waiting.charge_id, succeed=False, decline_code="do_not_honor"
    )
    assert (failed.status, failed.decline_code) == (
        ChargeStatus.DECLINED,
        "do_not_honor",
    )
    assert gateway.ledger == []
    assert _charge(gateway, customer, "next").status is ChargeStatus.SUCCEEDED
    with pytest.raises(InvalidInputError, match="not waiting"):
        gateway.settle(waiting.charge_id)
    with pytest.raises(InvalidInputError):
        gateway.process_next(times=0)


@pytest.mark.parametrize("secrets", [(), "whsec_plain", ("whsec_ok", "")])
def test_webhook_secrets_are_checked_and_never_shown(secrets: object) -> None:
    with pytest.raises(InvalidInputError) as refused:
        InMemoryGateway(environ={}, webhook_secrets=secrets)  # type: ignore[arg-type]
    assert "whsec" not in str(refused.value).replace("['whsec_…']", "")


def test_a_refund_that_fails_later_emits_refund_events(
    gateway: InMemoryGateway, customer: str
) -> None:
    charge = _charge(gateway, customer, "pay")
    assert charge.charge_id is not None
    refund = gateway.refund(
        charge.charge_id,
        amount=Money("850.00", "NOK"),
        idempotency_key="ref",
        metadata={"recurbill_refund": "re_1", "account": "acc_1"},
    )
    assert refund.status == "succeeded"
    failed = gateway.fail_refund(refund.refund_id)
    assert (failed.status, failed.failure_reason) == (
        "failed",
        "expired_or_canceled_card",
    )
    assert gateway.retrieve_refund(charge.charge_id, idempotency_key="ref") == failed
    updated, failure = gateway.events[-2:]
    assert (updated.type, failure.type) == ("refund.updated", "refund.failed")
    assert updated.refund == failed
    assert failure.data["metadata"] == {
        "recurbill_refund": "re_1",
        "account": "acc_1",
        "recurbill_idempotency_key": "ref",
    }
    assert failure.data["payment_intent"] == charge.charge_id
    # the money came back to the business: the charge can be refunded again
    again = gateway.refund(charge.charge_id, amount=None, idempotency_key="ref2")
    assert again.amount == Money("850.00", "NOK")
    with pytest.raises(GatewayConfigurationError, match="refund"):
        gateway.fail_refund(failed.refund_id)  # failed already


def test_a_pending_refund_that_ends_emits_refund_updated(
    gateway: InMemoryGateway, customer: str
) -> None:
    charge = _charge(gateway, customer, "pay")
    assert charge.charge_id is not None
    gateway.hold_next_refund(times=2)
    first = gateway.refund(
        charge.charge_id, amount=Money(100, "NOK"), idempotency_key="a"
    )
    second = gateway.refund(
        charge.charge_id, amount=Money(100, "NOK"), idempotency_key="b"
    )
    gateway.finish_refund(first.refund_id, "succeeded")
    assert [e.type for e in gateway.events][-1:] == ["refund.updated"]
    assert gateway.events[-1].refund is not None
    assert gateway.events[-1].refund.status == "succeeded"
    ended = gateway.finish_refund(second.refund_id, "failed", failure_reason="declined")
    assert ended.failure_reason == "declined"
    assert [e.type for e in gateway.events][-2:] == ["refund.updated", "refund.failed"]


def test_a_customer_key_makes_one_customer(gateway: InMemoryGateway) -> None:
    gateway.fail_next("timeout_after", operation="create_customer")
    with pytest.raises(GatewayUnavailableError):
        gateway.create_customer(email="a@example.no", name="A", idempotency_key="c1")
    first = gateway.create_customer(
        email="a@example.no", name="A", idempotency_key="c1"
    )
    assert (
        gateway.create_customer(email="a@example.no", name="A", idempotency_key="c1")
        == first
    )
    with pytest.raises(IdempotencyKeyReuseError):
        gateway.create_customer(email="b@example.no", name="B", idempotency_key="c1")
    other = gateway.create_customer(email="a@example.no", name="A")
    assert other != first

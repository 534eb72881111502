"""StripeGateway: the gateway contract against a local fake of Stripe's API.

``TestStripeTestModeContract`` runs the same contract against Stripe's real
test mode; it is skipped unless STRIPE_TEST_SECRET_KEY is set (a ``sk_test_``
or ``rk_test_`` key), and it is the only test here that leaves the machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import stripe
from fake_stripe import API_KEY, FakeStripe

from recurbill.errors import (
    GatewayAuthenticationError,
    GatewayConfigurationError,
    GatewayUnavailableError,
    IdempotencyKeyReuseError,
    InvalidInputError,
    WebhookError,
)
from recurbill.money import Money
from recurbill.payments.protocol import ChargeResult, ChargeStatus, PaymentGateway
from recurbill.payments.stripe import StripeGateway
from recurbill.testing.payments import GatewayContract

SECRET = "whsec_fake_endpoint"
ROOT = Path(__file__).parent.parent.parent

FAULT_PATHS = {"charge": "/v1/payment_intents", "refund": "/v1/refunds"}
FAULT_KINDS = {"timeout_before": "drop_before", "timeout_after": "drop_after"}


class TestStripeGatewayContract(GatewayContract):
    """The contract on StripeGateway, talking to the fake over loopback HTTP."""

    @pytest.fixture
    def gateway(self, stripe_client: stripe.StripeClient) -> StripeGateway:
        return StripeGateway(stripe_client, webhook_secrets=[SECRET])

    @pytest.fixture
    def webhook_secret(self) -> str:
        return SECRET

    @pytest.fixture
    def inject_fault(self, fake_stripe: FakeStripe) -> Callable[[str], None]:
        def inject(kind: str, operation: str) -> None:
            fake_stripe.fail_next(
                FAULT_KINDS[kind],  # type: ignore[arg-type]
                path=FAULT_PATHS[operation],
            )

        return inject  # type: ignore[return-value]

    @pytest.fixture
    def count_charges(self, fake_stripe: FakeStripe) -> Callable[[str], int]:
        return fake_stripe.succeeded_charges

    @pytest.fixture
    def customer_details(
        self, fake_stripe: FakeStripe
    ) -> Callable[[str], tuple[str, str]]:
        def details(customer: str) -> tuple[str, str]:
            kept = fake_stripe.customers[customer]
            return kept["email"], kept["name"]

        return details


_TEST_KEY = os.environ.get("STRIPE_TEST_SECRET_KEY", "")


@pytest.mark.skipif(
    not _TEST_KEY, reason="STRIPE_TEST_SECRET_KEY is not set (Stripe test mode)"
)
class TestStripeTestModeContract(GatewayContract):
    """The contract against Stripe's own test mode (opt-in, needs the network)."""

    @pytest.fixture
    def gateway(self) -> Iterator[StripeGateway]:
        if not _TEST_KEY.startswith(("sk_test_", "rk_test_")):
            pytest.fail("STRIPE_TEST_SECRET_KEY must be a test-mode key")
        session = requests.Session()
        client = stripe.StripeClient(
            api_key=_TEST_KEY,
            http_client=stripe.RequestsClient(session=session, timeout=30),
            max_network_retries=2,
        )
        try:
            yield StripeGateway(client, webhook_secrets=[SECRET])
        finally:
            session.close()

    @pytest.fixture
    def webhook_secret(self) -> str:
        return SECRET

    @pytest.fixture
    def search_lags(self) -> bool:
        return True  # Stripe's search: "searchable in under 1 minute"


# -- the adapter alone --------------------------------------------------------------


@pytest.fixture
def gateway(stripe_client: stripe.StripeClient) -> StripeGateway:
    return StripeGateway(stripe_client, webhook_secrets=[SECRET])


@pytest.fixture
def customer(gateway: StripeGateway) -> str:
    return gateway.create_customer(email="ola@example.no", name="Ola")


def _charge(gateway: StripeGateway, customer: str, key: str) -> ChargeResult:
    return gateway.charge(
        customer,
        payment_method="pm_card_visa",
        amount=Money("850.00", "NOK"),
        idempotency_key=key,
        off_session=True,
        metadata={"recurbill_payment": "pay_1"},
    )


def test_it_satisfies_the_protocol(gateway: StripeGateway) -> None:
    port: PaymentGateway = gateway
    assert port is gateway


def test_rate_limit_is_unavailable(
    gateway: StripeGateway, customer: str, fake_stripe: FakeStripe
) -> None:
    fake_stripe.fail_next("rate_limit")
    with pytest.raises(GatewayUnavailableError, match="RateLimitError, HTTP 429"):
        _charge(gateway, customer, "k429")
    assert fake_stripe.succeeded_charges("k429") == 0
    assert _charge(gateway, customer, "k429").status is ChargeStatus.SUCCEEDED


def test_server_error_is_unavailable(
    gateway: StripeGateway, customer: str, fake_stripe: FakeStripe
) -> None:
    fake_stripe.fail_next("server_error")
    with pytest.raises(GatewayUnavailableError, match="HTTP 500"):
        _charge(gateway, customer, "k500")
    assert _charge(gateway, customer, "k500").status is ChargeStatus.SUCCEEDED
    assert fake_stripe.succeeded_charges("k500") == 1


def test_client_retries_use_the_same_key(
    fake_stripe: FakeStripe, stripe_client: stripe.StripeClient
) -> None:
    session = requests.Session()
    session.trust_env = False
    retrying = stripe.StripeClient(
        api_key=API_KEY,
        base_addresses={"api": fake_stripe.url},
        http_client=stripe.RequestsClient(session=session, timeout=5),
        max_network_retries=1,
    )
    try:
        gateway = StripeGateway(retrying)
        customer = gateway.create_customer(email="a@example.no", name="A")
        fake_stripe.fail_next("drop_after")
        assert _charge(gateway, customer, "kr").status is ChargeStatus.SUCCEEDED
    finally:
        session.close()
    posts = [r for r in fake_stripe.received if r.path == "/v1/payment_intents"]
    assert [r.idempotency_key for r in posts] == ["kr", "kr"]
    assert fake_stripe.succeeded_charges("kr") == 1


def test_answer_held_past_the_timeout_is_unavailable(
    fake_stripe: FakeStripe,
) -> None:
    session = requests.Session()
    session.trust_env = False
    impatient = stripe.StripeClient(
        api_key=API_KEY,
        base_addresses={"api": fake_stripe.url},
        http_client=stripe.RequestsClient(session=session, timeout=0.3),
        max_network_retries=0,
    )
    try:
        gateway = StripeGateway(impatient)
        customer = gateway.create_customer(email="a@example.no", name="A")
        fake_stripe.fail_next("hold")
        with pytest.raises(GatewayUnavailableError, match="APIConnectionError"):
            _charge(gateway, customer, "slow")
        found = gateway.retrieve_charge(idempotency_key="slow")
    finally:
        session.close()
    assert found is not None
    assert found.status is ChargeStatus.SUCCEEDED
    assert fake_stripe.succeeded_charges("slow") == 1


def test_wrong_api_key_is_an_authentication_error(fake_stripe: FakeStripe) -> None:
    session = requests.Session()
    session.trust_env = False
    client = stripe.StripeClient(
        api_key="sk_test_wrong",
        base_addresses={"api": fake_stripe.url},
        http_client=stripe.RequestsClient(session=session, timeout=5),
    )
    try:
        with pytest.raises(GatewayAuthenticationError, match="refused the API key"):
            StripeGateway(client).create_customer(email="a@example.no", name="A")
    finally:
        session.close()


def test_unknown_ids_are_configuration_errors(gateway: StripeGateway) -> None:
    with pytest.raises(GatewayConfigurationError, match="HTTP 404"):
        gateway.start_card_setup("cus_nobody")
    assert gateway.retrieve_charge(charge_id="pi_nothing") is None
    with pytest.raises(GatewayConfigurationError):
        gateway.refund("pi_nothing", amount=None, idempotency_key="r")


def test_key_reuse_across_operations(gateway: StripeGateway, customer: str) -> None:
    result = _charge(gateway, customer, "shared")
    assert result.charge_id is not None
    with pytest.raises(IdempotencyKeyReuseError, match="shared"):
        gateway.refund(result.charge_id, amount=None, idempotency_key="shared")


def test_charge_request_is_what_stripe_expects(
    gateway: StripeGateway, customer: str, fake_stripe: FakeStripe
) -> None:
    _charge(gateway, customer, "form")
    post = next(r for r in fake_stripe.received if r.path == "/v1/payment_intents")
    fields = dict(pair.split("=", 1) for pair in post.body.split("&"))
    assert fields["amount"] == "85000"
    assert fields["currency"] == "nok"
    assert fields["confirm"] == "true"
    assert fields["off_session"] == "true"
    assert fields["allowed_payment_method_types[0]"] == "card"
    assert fields["metadata[recurbill_idempotency_key]"] == "form"
    assert fields["metadata[recurbill_payment]"] == "pay_1"
    assert post.idempotency_key == "form"


@pytest.mark.parametrize(
    ("amount", "units"),
    [
        (Money(15000, "ISK"), "1500000"),
        (Money(5000, "JPY"), "5000"),
        (Money("12.340", "KWD"), "12340"),
        (Money("99.95", "EUR"), "9995"),
    ],
    ids=str,
)
def test_minor_units_on_the_wire(
    gateway: StripeGateway,
    customer: str,
    fake_stripe: FakeStripe,
    amount: Money,
    units: str,
) -> None:
    result = gateway.charge(
        customer,
        payment_method="pm_card_visa",
        amount=amount,
        idempotency_key=f"units-{amount.currency}",
        off_session=True,
    )
    assert result.amount == amount
    post = next(r for r in fake_stripe.received if r.path == "/v1/payment_intents")
    assert f"amount={units}&" in post.body


def test_authentication_on_session_needs_action(
    gateway: StripeGateway, customer: str
) -> None:
    card = gateway.attach_payment_method(
        customer, token="pm_card_authenticationRequired"
    )
    result = gateway.charge(
        customer,
        payment_method=card.token,
        amount=Money(100, "NOK"),
        idempotency_key="on-session",
        off_session=False,
    )
    assert result.status is ChargeStatus.REQUIRES_ACTION
    assert result.client_secret == f"{result.charge_id}_secret_fake"
    assert gateway.retrieve_charge(charge_id=str(result.charge_id)) == result


def test_declined_charge_is_retrieved_as_declined(
    gateway: StripeGateway, customer: str
) -> None:
    result = gateway.charge(
        customer,
        payment_method="pm_card_visa_chargeDeclinedStolenCard",
        amount=Money(100, "NOK"),
        idempotency_key="stolen",
        off_session=True,
    )
    assert result.charge_id is not None
    assert gateway.retrieve_charge(charge_id=result.charge_id) == result
    assert gateway.retrieve_charge(idempotency_key="stolen") == result


def test_search_finds_older_charges(
    gateway: StripeGateway, customer: str, fake_stripe: FakeStripe
) -> None:
    first = _charge(gateway, customer, "it's-old")
    fake_stripe.intents.update(
        {f"pi_filler{n}": {"metadata": {}} for n in range(100)}  # newer, unrelated
    )
    assert gateway.retrieve_charge(idempotency_key="it's-old") == first
    searched = [r for r in fake_stripe.received if r.path.endswith("/search")]
    assert len(searched) == 1


def test_constructor_checks_its_arguments(stripe_client: stripe.StripeClient) -> None:
    with pytest.raises(GatewayConfigurationError, match="StripeClient"):
        StripeGateway(object())  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError):
        StripeGateway(stripe_client, webhook_secrets="whsec_x")
    gateway = StripeGateway(stripe_client, webhook_secrets=["whsec_secret_value"])
    assert "whsec_secret_value" not in repr(gateway)


def test_webhooks_need_a_secret(stripe_client: stripe.StripeClient) -> None:
    with pytest.raises(WebhookError, match="no webhook secret"):
        StripeGateway(stripe_client).parse_webhook(b"{}", signature="t=1,v1=0", now=1)


def test_webhook_secrets_rotate(stripe_client: stripe.StripeClient) -> None:
    from recurbill.payments import sign_webhook

    gateway = StripeGateway(stripe_client, webhook_secrets=["whsec_new", "whsec_old"])
    body = (
        b'{"id": "evt_1", "type": "charge.refunded", "created": 5, '
        b'"data": {"object": {"id": "pi_1"}}}'
    )
    for secret in ("whsec_new", "whsec_old"):
        header = sign_webhook(body, secret=secret, timestamp=100)
        assert (
            gateway.parse_webhook(body, signature=header, now=100).event_id == "evt_1"
        )
    stripe_signed = stripe.WebhookSignature._compute_signature(
        f"100.{body.decode()}", "whsec_old"
    )
    header = f"t=100,v1={stripe_signed}"
    assert gateway.parse_webhook(body, signature=header, now=100).created == 5


def test_the_fake_rejects_parameters_the_sdk_does_not_define(
    stripe_client: stripe.StripeClient,
) -> None:
    with pytest.raises(stripe.InvalidRequestError, match="payment_method_types"):
        stripe_client.v1.payment_intents.create(
            {"amount": 100, "currency": "nok", "payment_method_types": ["card"]}  # type: ignore[typeddict-unknown-key]
        )
    with pytest.raises(stripe.InvalidRequestError, match="invoice_settings"):
        stripe_client.v1.customers.update(
            "cus_x",
            {"invoice_settings": {"default_payment_methods": "pm_1"}},  # type: ignore[arg-type]
        )


def test_import_without_stripe_installed() -> None:
    code = (
        "import sys; sys.modules['stripe'] = None\n"
        "import recurbill.payments as p\n"
        "from recurbill.errors import GatewayConfigurationError\n"
        "try:\n"
        "    p.StripeGateway(object())\n"
        "except GatewayConfigurationError as e:\n"
        "    print(e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )
    assert "pip install '.[stripe]'" in done.stdout


def test_cancel_reads_back_a_charge_that_succeeded_meanwhile(
    gateway: StripeGateway,
    customer: str,
    fake_stripe: FakeStripe,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    card = gateway.attach_payment_method(
        customer, token="pm_card_authenticationRequired"
    )
    waiting = gateway.charge(
        customer,
        payment_method=card.token,
        amount=Money("10.00", "NOK"),
        idempotency_key="key-race-1",
        off_session=False,
    )
    assert waiting.status is ChargeStatus.REQUIRES_ACTION
    assert waiting.charge_id is not None
    intents = gateway._v1.payment_intents
    original = intents.retrieve

    def retrieve_then_authenticate(intent_id: str, *args: Any, **kwargs: Any) -> Any:
        found = original(intent_id, *args, **kwargs)
        fake_stripe.intents[intent_id]["status"] = "succeeded"  # 3-D Secure done now
        return found

    monkeypatch.setattr(intents, "retrieve", retrieve_then_authenticate)
    result = gateway.cancel_charge(waiting.charge_id)
    assert result.status is ChargeStatus.SUCCEEDED


def _declined_then_cancel_failed(
    gateway: StripeGateway, customer: str, fake_stripe: FakeStripe, key: str
) -> ChargeResult:
    """An off-session charge declined for insufficient funds (idempotency key
    ``key-<key>``), whose cancel then failed at Stripe after the decline was
    kept in its metadata."""
    declined = gateway.charge(
        customer,
        payment_method="pm_card_visa_chargeDeclinedInsufficientFunds",
        amount=Money("10.00", "NOK"),
        idempotency_key=f"key-{key}",
        off_session=True,
    )
    assert declined.charge_id is not None
    cancel = f"/v1/payment_intents/{declined.charge_id}/cancel"
    fake_stripe.fail_next("server_error", path=cancel)
    with pytest.raises(GatewayUnavailableError):
        gateway.cancel_charge(declined.charge_id)
    return declined


def test_a_decline_kept_before_the_cancel_survives_a_cancel_that_failed(
    gateway: StripeGateway, customer: str, fake_stripe: FakeStripe
) -> None:
    """The decline goes into the metadata before the cancel, and Stripe
    clears ``last_payment_error`` on that update: should the cancel then
    fail, the look-up still reports the decline's codes, and so does the
    cancel made again."""
    declined = _declined_then_cancel_failed(gateway, customer, fake_stripe, "kept-1")
    codes = (declined.decline_code, declined.error_code)
    assert codes == ("insufficient_funds", "card_declined")
    intent = fake_stripe.intents[declined.charge_id]
    assert intent["status"] == "requires_payment_method"
    assert intent["last_payment_error"] is None  # cleared by the update
    found = gateway.retrieve_charge(idempotency_key="key-kept-1")
    assert found is not None
    assert found.status is ChargeStatus.DECLINED
    assert (found.decline_code, found.error_code) == codes
    canceled = gateway.cancel_charge(declined.charge_id)
    assert canceled.status is ChargeStatus.CANCELED
    assert (canceled.decline_code, canceled.error_code) == codes


def test_a_kept_decline_is_not_read_into_a_charge_waiting_again(
    gateway: StripeGateway, customer: str, fake_stripe: FakeStripe
) -> None:
    """The decline kept before a cancel that failed belongs to that decline:
    once the customer confirms the charge again and it waits for
    authentication, the look-up reports no decline."""
    declined = _declined_then_cancel_failed(gateway, customer, fake_stripe, "kept-2")
    fake_stripe.intents[declined.charge_id]["status"] = "requires_action"
    found = gateway.retrieve_charge(idempotency_key="key-kept-2")
    assert found is not None
    assert found.status is ChargeStatus.REQUIRES_ACTION
    assert (found.decline_code, found.error_code) == (None, None)


def test_a_charge_confirmed_again_then_canceled_reports_no_old_decline(
    gateway: StripeGateway, customer: str, fake_stripe: FakeStripe
) -> None:
    """A decline kept by a cancel that failed is cleared by the next cancel
    once the customer has confirmed the charge again (it waits for them)."""
    declined = _declined_then_cancel_failed(gateway, customer, fake_stripe, "kept-3")
    fake_stripe.intents[declined.charge_id]["status"] = "requires_action"
    canceled = gateway.cancel_charge(declined.charge_id)
    assert canceled.status is ChargeStatus.CANCELED
    assert (canceled.decline_code, canceled.error_code) == (None, None)
    assert (
        "recurbill_decline" not in fake_stripe.intents[declined.charge_id]["metadata"]
    )


def test_refunds_carry_their_metadata_and_report_a_later_failure(
    gateway: StripeGateway, customer: str, fake_stripe: FakeStripe
) -> None:
    charge = _charge(gateway, customer, "to-refund")
    assert charge.charge_id is not None
    made = gateway.refund(
        charge.charge_id,
        amount=None,
        idempotency_key="refund-1",
        metadata={"recurbill_refund": "re_1", "account": "acc_1"},
    )
    post = next(r for r in fake_stripe.received if r.path == "/v1/refunds")
    fields = dict(pair.split("=", 1) for pair in post.body.split("&"))
    assert fields["metadata[recurbill_refund]"] == "re_1"
    assert fields["metadata[account]"] == "acc_1"
    assert fields["metadata[recurbill_idempotency_key]"] == "refund-1"
    assert made.failure_reason is None
    # the card was closed: Stripe moves the refund to failed
    fake_stripe.refunds[made.refund_id].update(
        status="failed", failure_reason="expired_or_canceled_card"
    )
    found = gateway.retrieve_refund(charge.charge_id, idempotency_key="refund-1")
    assert found is not None
    assert (found.status, found.failure_reason) == (
        "failed",
        "expired_or_canceled_card",
    )


def test_a_customer_key_goes_in_the_idempotency_header(
    gateway: StripeGateway, fake_stripe: FakeStripe
) -> None:
    fake_stripe.fail_next("drop_after", path="/v1/customers")
    with pytest.raises(GatewayUnavailableError):
        gateway.create_customer(email="a@example.no", name="A", idempotency_key="c-1")
    first = gateway.create_customer(
        email="a@example.no", name="A", idempotency_key="c-1"
    )
    assert len(fake_stripe.customers) == 1
    assert [
        r.idempotency_key for r in fake_stripe.received if r.path == "/v1/customers"
    ] == ["c-1", "c-1"]
    with pytest.raises(IdempotencyKeyReuseError):
        gateway.create_customer(email="b@example.no", name="B", idempotency_key="c-1")
    assert gateway.create_customer(email="a@example.no", name="A") != first


@pytest.mark.parametrize("type_", ["refund.failed", "charge.refund.updated"])
def test_refund_events_carry_the_refund(gateway: StripeGateway, type_: str) -> None:
    from recurbill.payments import sign_webhook

    refund = {
        "id": "re_1",
        "object": "refund",
        "amount": 85000,
        "currency": "nok",
        "payment_intent": "pi_1",
        "status": "failed",
        "failure_reason": "lost_or_stolen_card",
        "metadata": {"recurbill_refund": "re_mine"},
    }
    body = json.dumps(
        {"id": "evt_r", "type": type_, "created": 5, "data": {"object": refund}}
    ).encode()
    header = sign_webhook(body, secret=SECRET, timestamp=100)
    event = gateway.parse_webhook(body, signature=header, now=100)
    assert event.refund is not None
    assert event.refund.charge_id == "pi_1"
    assert event.refund.amount == Money("850.00", "NOK")
    assert (event.refund.status, event.refund.failure_reason) == (
        "failed",
        "lost_or_stolen_card",
    )


def test_find_customer_searches_by_entries_without_a_backslash(
    gateway: StripeGateway, fake_stripe: FakeStripe
) -> None:
    """Stripe documents no escape for a backslash in a search value: the
    search uses the other entries, and every entry must match exactly."""
    made = gateway.create_customer(
        email="a@example.no",
        name="A",
        metadata={"recurbill_customer": "cus\\1", "account": "acct's"},
    )
    found = gateway.find_customer(
        metadata={"recurbill_customer": "cus\\1", "account": "acct's"}
    )
    assert found == made
    (search,) = [r for r in fake_stripe.received if r.path.endswith("/search")]
    sent = urllib.parse.unquote_plus(search.query + search.body)
    assert "account']:'acct\\'s'" in sent  # the quote escaped, as documented
    assert "recurbill_customer" not in sent  # the entry with a backslash
    assert gateway.find_customer(metadata={"recurbill_customer": "cus\\1"}) is None


def test_every_card_is_listed_past_the_first_page(
    gateway: StripeGateway, customer: str
) -> None:
    """remove_card checks the list before detaching: a card past the first
    page of 100 must be in it."""
    tokens = [
        gateway.attach_payment_method(customer, token="pm_card_visa").token
        for _ in range(105)
    ]
    listed = [card.token for card in gateway.list_payment_methods(customer)]
    assert sorted(listed) == sorted(tokens)

"""No card number or CVC is ever recorded, logged or sent by either gateway.

A whole session of gateway calls runs (with DEBUG logging from every logger,
stripe's included) while card numbers are offered in every place that takes
text; then everything the gateways recorded, logged, raised and sent to the
fake Stripe API is scanned.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from functools import partial

import pytest
import stripe
from fake_stripe import FakeStripe

from recurbill.errors import InvalidInputError
from recurbill.money import Money
from recurbill.payments.memory import InMemoryGateway
from recurbill.payments.protocol import PaymentGateway
from recurbill.payments.stripe import StripeGateway

PANS = [
    "4242424242424242",
    "4000 0566 5566 5556",
    "5555-5555-5555-4444",
    "378282246310005",
]
CARD_NUMBER = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
CVC_FIELD = re.compile(r"""(?i)\b(cvc2?|cvv2?|number)\b['"\]]*\s*[:=]\s*['"]?\d""")


def _session(gateway: PaymentGateway) -> list[str]:
    """Use every operation, offering card data wherever text goes; return errors."""
    refusals: list[str] = []
    customer = gateway.create_customer(email="kari@example.no", name="Kari")
    gateway.start_card_setup(customer)
    visa = gateway.attach_payment_method(customer, token="pm_card_visa")
    gateway.set_default_payment_method(customer, token=visa.token)
    gateway.list_payment_methods(customer)
    ok = gateway.charge(
        customer,
        payment_method=visa.token,
        amount=Money("850.00", "NOK"),
        idempotency_key="scan-ok",
        off_session=True,
        description="Session",
        metadata={"recurbill_payment": "pay_1"},
    )
    for card in ("pm_card_visa_chargeDeclined", "pm_card_authenticationRequired"):
        gateway.charge(
            customer,
            payment_method=card,
            amount=Money(100, "NOK"),
            idempotency_key=f"scan-{card}",
            off_session=True,
        )
    assert ok.charge_id is not None
    gateway.refund(ok.charge_id, amount=Money(50, "NOK"), idempotency_key="scan-r")
    gateway.retrieve_charge(idempotency_key="scan-ok")
    gateway.detach_payment_method(visa.token)
    attempts: list[Callable[[], object]] = []
    charge = partial(
        gateway.charge,
        customer,
        payment_method="pm_card_visa",
        amount=Money(100, "NOK"),
        off_session=True,
    )
    for pan in PANS:
        attempts += [
            partial(gateway.attach_payment_method, customer, token=pan),
            partial(gateway.create_customer, email="a@example.no", name=pan),
            partial(charge, idempotency_key="scan-pan", description=f"card {pan}"),
            partial(charge, idempotency_key=pan.replace(" ", "").replace("-", "")),
        ]
    attempts.append(partial(charge, idempotency_key="cvc", metadata={"cvc": "123"}))
    for attempt in attempts:
        with pytest.raises(InvalidInputError) as refused:
            attempt()
        refusals.append(f"{refused.value!s} {refused.value.fields!r}")
    return refusals


def _assert_clean(texts: list[str]) -> None:
    for text in texts:
        assert CARD_NUMBER.search(text) is None, text
        assert CVC_FIELD.search(text) is None, text


def test_in_memory_gateway_keeps_no_card_data(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    gateway = InMemoryGateway(environ={})
    refusals = _session(gateway)
    events = [
        gateway.webhook(event.event_id, now=1_767_225_600)[0].decode()
        for event in gateway.events
    ]
    _assert_clean(
        [
            caplog.text,
            *refusals,
            *map(repr, gateway.requests),
            *events,
            repr(gateway.ledger),
            repr(gateway.refunds),
        ]
    )


def test_stripe_gateway_sends_and_logs_no_card_data(
    caplog: pytest.LogCaptureFixture,
    stripe_client: stripe.StripeClient,
    fake_stripe: FakeStripe,
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="stripe")
    refusals = _session(StripeGateway(stripe_client, webhook_secrets=["whsec_x"]))
    assert any("Post details" in r.getMessage() for r in caplog.records)
    sent = [f"{r.method} {r.path}?{r.query} {r.body}" for r in fake_stripe.received]
    assert len(sent) >= 10
    _assert_clean([caplog.text, *refusals, *sent])


def test_the_scan_would_find_a_card_number() -> None:
    for pan in PANS:
        with pytest.raises(AssertionError):
            _assert_clean([f"amount=100&note={pan}"])
    for field in ("card[cvc]=123", '{"cvc": "123"}', "card[number]=4242", "cvv2: 999"):
        with pytest.raises(AssertionError):
            _assert_clean([field])
    _assert_clean(["pi_fake000001 created=1767225600 amount=85000"])

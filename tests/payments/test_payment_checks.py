"""Minor units, webhook signatures and the card-data guard, on their own."""

from __future__ import annotations

import json
from decimal import Decimal
from functools import partial

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from recurbill.errors import InvalidInputError, WebhookError
from recurbill.money import ISO_4217_DECIMALS, Currency, Money
from recurbill.payments.checks import (
    check_charge,
    check_email,
    check_id,
    check_metadata,
    looks_like_card_number,
)
from recurbill.payments.minor_units import (
    THREE_DECIMAL_CURRENCIES,
    ZERO_DECIMAL_CURRENCIES,
    from_minor_units,
    minor_unit_exponent,
    to_minor_units,
)
from recurbill.payments.protocol import RefundResult
from recurbill.payments.webhooks import parse_event, sign_webhook, verify_webhook

CODES = sorted(ISO_4217_DECIMALS)


@pytest.mark.parametrize(
    ("money", "units"),
    [
        (Money("850.00", "NOK"), 85000),
        (Money("0.01", "EUR"), 1),
        (Money(500, "JPY"), 500),
        (Money(5, "ISK"), 500),
        (Money("5.120", "KWD"), 5120),
        (Money("1.990", "TND"), 1990),
        (Money("2.500", "IQD"), 250),  # ISO 3 decimals, Stripe 2
        (Money(5, "MGA"), 5),  # ISO 2 decimals, Stripe 0
    ],
    ids=str,
)
def test_known_minor_units(money: Money, units: int) -> None:
    assert to_minor_units(money) == units
    assert from_minor_units(units, money.currency) == money


@pytest.mark.parametrize(
    "money",
    [
        Money("5.124", "KWD"),
        Money("0.5", "ISK"),
        Money("1.5", "JPY"),
        Money("0.001", "EUR"),
        Money("2.505", "IQD"),
        Money("5.5", "MGA"),
    ],
    ids=str,
)
def test_amounts_the_gateway_cannot_take(money: Money) -> None:
    with pytest.raises(InvalidInputError, match="whole multiples of"):
        to_minor_units(money)


def test_stripe_currency_lists() -> None:
    assert {"JPY", "KRW", "VND"} <= ZERO_DECIMAL_CURRENCIES
    assert "ISK" not in ZERO_DECIMAL_CURRENCIES
    assert minor_unit_exponent("ISK") == 2
    assert minor_unit_exponent(Currency("kwd")) == 3
    assert {"BHD", "JOD", "KWD", "OMR", "TND"} == THREE_DECIMAL_CURRENCIES


@given(code=st.sampled_from(CODES), units=st.integers(min_value=0, max_value=10**12))
def test_minor_units_round_trip(code: str, units: int) -> None:
    step = {"ISK": 100, "UGX": 100, **dict.fromkeys(THREE_DECIMAL_CURRENCIES, 10)}.get(
        code, 1
    )
    money = from_minor_units(units * step, code)
    assert to_minor_units(money) == units * step
    if money.is_quantized:
        assert money.amount.as_tuple().exponent == -money.currency.decimals


@given(payload=st.binary(max_size=300), timestamp=st.integers(0, 2**40))
def test_any_payload_verifies_under_its_own_signature(
    payload: bytes, timestamp: int
) -> None:
    header = sign_webhook(payload, secret="whsec_a", timestamp=timestamp)
    verify_webhook(payload, signature=header, secrets=["whsec_a"], now=timestamp)
    with pytest.raises(WebhookError):
        verify_webhook(payload, signature=header, secrets=["whsec_b"], now=timestamp)


@given(payload=st.binary(min_size=1, max_size=200), index=st.integers(0, 199))
def test_any_changed_byte_breaks_the_signature(payload: bytes, index: int) -> None:
    assume(index < len(payload))
    header = sign_webhook(payload, secret="whsec_a", timestamp=100)
    changed = bytearray(payload)
    changed[index] ^= 0x01
    with pytest.raises(WebhookError, match="no signature"):
        verify_webhook(bytes(changed), signature=header, secrets=["whsec_a"], now=100)


def test_signature_header_with_several_v1_and_v0() -> None:
    body = b"{}"
    good = sign_webhook(body, secret="whsec_a", timestamp=7).split("v1=")[1]
    header = f"t=7,v0=deadbeef,v1={'0' * 64},v1={good}"
    verify_webhook(body, signature=header, secrets=["whsec_a"], now=7)
    with pytest.raises(WebhookError, match="malformed"):
        verify_webhook(body, signature="t=7,t=8,v1=00", secrets=["whsec_a"], now=7)
    with pytest.raises(WebhookError, match="raw bytes"):
        verify_webhook("{}", signature=header, secrets=["whsec_a"], now=7)  # type: ignore[arg-type]


def _refund_event(type_: str, **changes: object) -> bytes:
    refund: dict[str, object] = {
        "id": "re_1",
        "object": "refund",
        "amount": 1500,
        "currency": "isk",
        "payment_intent": "pi_1",
        "status": None,
        "metadata": {},
    }
    refund.update(changes)
    body = {"id": "e", "type": type_, "created": 1, "data": {"object": refund}}
    return json.dumps(body).encode()


def test_refund_events_are_read() -> None:
    event = parse_event(_refund_event("refund.updated"))
    assert event.refund == RefundResult(
        refund_id="re_1",
        charge_id="pi_1",
        amount=Money(15, "ISK"),
        status="pending",  # Stripe's status may be null: not final yet
    )
    assert parse_event(_refund_event("refund.failed", status="failed")).refund
    # not a refund event, or not a refund of a PaymentIntent recurbill knows
    assert parse_event(_refund_event("charge.refunded")).refund is None
    for change in (
        {"payment_intent": None},
        {"object": "charge"},
        {"currency": "xxq"},
        {"amount": True},
    ):
        assert parse_event(_refund_event("refund.updated", **change)).refund is None


def test_event_shape_is_checked() -> None:
    good = b'{"id": "e", "type": "t", "created": 1, "data": {"object": {"a": 1}}}'
    assert parse_event(good).data == {"a": 1}
    for bad in (
        b'{"id": "e", "type": "t", "created": "1", "data": {"object": {}}}',
        b'{"id": "e", "type": "t", "created": 1, "data": {}}',
        b"\xff",
    ):
        with pytest.raises(WebhookError):
            parse_event(bad)


@pytest.mark.parametrize(
    "text",
    [
        "4242424242424242",
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        "378282246310005",
        "6011111111111117",
        "note 4000056655665556 end",
        "4242424242424",  # 13 digits
        "4242424242424242424",  # 19 digits
    ],
)
def test_card_numbers_are_recognised(text: str) -> None:
    assert looks_like_card_number(text)
    with pytest.raises(InvalidInputError, match="card number") as refused:
        check_id(text, what="token")
    assert text not in str(refused.value)


@pytest.mark.parametrize(
    "text",
    [
        "pm_1NqXyZ2eZvKYlo2C",
        "424242424242",  # 12 digits
        "42424242424242424242",  # 20 digits: not a card number
        "2026-01-05 12:00",
        "recurbill-pay_2cdkq3gj7bzuxr5kifg6twvdnu",
    ],
)
def test_other_text_is_not_a_card_number(text: str) -> None:
    assert not looks_like_card_number(text)


def test_metadata_and_email_checks() -> None:
    assert check_metadata({"recurbill_payment": "pay_1"}) == {
        "recurbill_payment": "pay_1"
    }
    for bad in ({"CVC": "1"}, {"card_number": "x"}, {"": "x"}, {"a": 1}, ["a"]):
        with pytest.raises(InvalidInputError):
            check_metadata(bad)
    assert check_email("kari@example.no") == "kari@example.no"
    for bad_email in ("kari", "@", "kari@", 7):
        with pytest.raises(InvalidInputError):
            check_email(bad_email)


def test_metadata_within_stripes_limits() -> None:
    """50 keys at Stripe, one of them recurbill's; keys of 40 characters
    without brackets; values of 500."""
    most = {f"k{i}": "v" for i in range(49)}
    assert check_metadata(most) == most
    with pytest.raises(InvalidInputError, match="50 keys; at most 49"):
        check_metadata({**most, "k49": "v"})
    assert check_metadata({"k" * 40: "v" * 500}) == {"k" * 40: "v" * 500}
    for bad in ({"k" * 41: "v"}, {"k": "v" * 501}, {"a[b]": "v"}):
        with pytest.raises(InvalidInputError, match="too long or its key"):
            check_metadata(bad)


def test_a_charges_metadata_leaves_room_for_a_decline() -> None:
    """A charge carries one more key of recurbill's when it is canceled after
    a decline (Stripe clears the PaymentIntent's last error): 48 of the 50."""
    charge = partial(
        check_charge,
        "cus_1",
        payment_method="pm_card_visa",
        amount=Money(100, "NOK"),
        idempotency_key="k",
        off_session=True,
        description="",
    )
    most = {f"k{i}": "v" for i in range(48)}
    assert charge(metadata=most).metadata == most
    with pytest.raises(InvalidInputError, match=r"49 keys; at most 48 .*decline"):
        charge(metadata={**most, "k48": "v"})


def test_a_charge_request_is_checked_whole() -> None:
    request = check_charge(
        "cus_1",
        payment_method="pm_card_visa",
        amount=Money("12.340", "KWD"),
        idempotency_key="k",
        off_session=True,
        description="",
        metadata=None,
    )
    assert (request.minor_units, request.metadata) == (12340, {})
    with pytest.raises(InvalidInputError, match="positive"):
        check_charge(
            "cus_1",
            payment_method="pm_card_visa",
            amount=Money(Decimal("0.00"), "NOK"),
            idempotency_key="k",
            off_session=True,
            description="",
            metadata=None,
        )


@pytest.mark.parametrize(
    "header",
    ["t=²,v1=ab", "t=100,v1=é", "t=100", "v1=" + "a" * 64, "t=1e3,v1=" + "a" * 64],
)
def test_crafted_webhook_headers_are_webhook_errors(header: str) -> None:
    from recurbill.errors import WebhookError
    from recurbill.payments.webhooks import verify_webhook

    with pytest.raises(WebhookError):
        verify_webhook(b"{}", signature=header, secrets=["whsec_test"], now=100)


@pytest.mark.parametrize("key", ["recurbill_idempotency_key", "recurbill_decline"])
def test_metadata_keys_the_adapters_write_are_refused(key: str) -> None:
    """A caller's value would be overwritten, or read back as a decline that
    never happened."""
    with pytest.raises(InvalidInputError, match=f"'{key}' is recurbill's own"):
        check_metadata({key: '{"error_code": "card_declined"}'})
    assert check_metadata({"recurbill_customer": "c-1"}) == {
        "recurbill_customer": "c-1"
    }

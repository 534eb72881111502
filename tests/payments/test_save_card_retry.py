"""save_card or remove_card fails at a step, the caller repeats it: the same
outcome on both gateways (the in-memory one, and StripeGateway over the local
fake of Stripe's API). One stored card, attached once and the default; a card
whose storing failed is detached, never left at the gateway unseen; a card
being removed stays shown until it is detached and forgotten."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import attrs
import pytest
import stripe
from fake_stripe import FakeStripe

from billing_helpers import CrashError, Faults, FaultyStorage
from recurbill.billing import Billing
from recurbill.errors import (
    ConflictError,
    GatewayConfigurationError,
    GatewayUnavailableError,
)
from recurbill.payments.memory import InMemoryGateway
from recurbill.payments.protocol import PaymentGateway
from recurbill.payments.stripe import StripeGateway
from recurbill.records import PaymentMethod
from recurbill.storage.memory import InMemoryStorage

ADD_CARD = 5  # storage calls: customer, look-up, locked customer, cards, add
NOW = datetime(2027, 1, 5, 12, tzinfo=timezone.utc)


@attrs.define
class Side:
    """A gateway, and what the test does with it that the port does not offer."""

    gateway: PaymentGateway
    confirm: Callable[[str], str]  # gateway customer -> a confirmed card's token
    fail: Callable[[str, str, str], None]  # (fault, operation, subject)
    default: Callable[[str], str | None]  # gateway customer -> default token


def _memory() -> Side:
    gateway = InMemoryGateway(environ={})

    def confirm(customer: str) -> str:
        return gateway.confirm_card_setup(gateway.start_card_setup(customer).setup_id)

    def fail(fault: str, operation: str, _: str) -> None:
        kind = {"lost": "timeout_after", "down": "unavailable"}[fault]
        gateway.fail_next(kind, operation=operation)  # type: ignore[arg-type]

    return Side(gateway, confirm, fail, gateway.default_payment_method)


def _stripe(fake: FakeStripe, client: stripe.StripeClient) -> Side:
    gateway = StripeGateway(client, webhook_secrets=["whsec_fake"])

    def confirm(customer: str) -> str:  # a confirmed SetupIntent attaches it
        return gateway.attach_payment_method(customer, token="pm_card_visa").token

    def fail(fault: str, operation: str, subject: str) -> None:
        path = {
            "attach_payment_method": f"/v1/payment_methods/{subject}/attach",
            "detach_payment_method": f"/v1/payment_methods/{subject}/detach",
            "set_default_payment_method": f"/v1/customers/{subject}",
        }[operation]
        fake.fail_next(
            "drop_after" if fault == "lost" else "server_error",  # type: ignore[arg-type]
            path=path,
        )

    def default(customer: str) -> str | None:
        settings: dict[str, Any] = fake.customers[customer]["invoice_settings"]
        return settings["default_payment_method"]

    return Side(gateway, confirm, fail, default)


@pytest.fixture(params=["memory", "stripe"])
def side(request: pytest.FixtureRequest) -> Side:
    if request.param == "memory":
        return _memory()
    return _stripe(
        request.getfixturevalue("fake_stripe"), request.getfixturevalue("stripe_client")
    )


@attrs.define
class Kari:
    """Kari, her gateway customer and a card she confirmed, over *side*."""

    billing: Billing
    storage: InMemoryStorage
    faults: Faults
    side: Side
    customer: str
    token: str

    def save(self) -> PaymentMethod:
        return self.billing.save_card("fjord", "kari", token=self.token)

    def stored(self) -> list[PaymentMethod]:
        with self.storage.transaction() as tx:
            return tx.list_payment_methods("fjord", "kari")

    def at_gateway(self) -> tuple[list[str], str | None]:
        cards = self.side.gateway.list_payment_methods(self.customer)
        return [c.token for c in cards], self.side.default(self.customer)


def _kari(side: Side) -> Kari:
    storage, faults = InMemoryStorage(), Faults()
    billing = Billing(
        storage=FaultyStorage(storage, faults),  # type: ignore[arg-type]
        gateway=side.gateway,
    )
    billing.create_account(
        account_id="fjord",
        name="Fjord Fysio AS",
        currency="NOK",
        summary_email="post@fjordfysio.no",
    )
    kari = billing.add_customer(
        "fjord", name="Kari Nordmann", email="kari@example.no", customer_id="kari"
    )
    customer = kari.gateway_customer_id or ""
    return Kari(billing, storage, faults, side, customer, side.confirm(customer))


@pytest.mark.parametrize(
    ("fault", "operation"),
    [("lost", "attach_payment_method"), ("down", "set_default_payment_method")],
)
def test_a_gateway_failure_then_saving_again_stores_the_card_once(
    side: Side, fault: str, operation: str
) -> None:
    kari = _kari(side)
    subject = kari.token if operation == "attach_payment_method" else kari.customer
    side.fail(fault, operation, subject)
    with pytest.raises(GatewayUnavailableError):
        kari.save()
    card = kari.save()
    assert kari.stored() == [card]
    assert card.token == kari.token
    assert kari.at_gateway() == ([kari.token], kari.token)


def test_a_card_that_could_not_be_stored_is_detached(side: Side) -> None:
    kari = _kari(side)
    kari.faults.calls, kari.faults.fail_at = 0, ADD_CARD
    with pytest.raises(CrashError, match="add_payment_method"):
        kari.save()
    assert kari.stored() == []
    assert kari.at_gateway() == ([], None)  # nothing the customer cannot see
    with pytest.raises(GatewayConfigurationError, match="detached"):
        kari.save()  # a detached card is not attached again: it is saved anew
    kari.token = side.confirm(kari.customer)
    card = kari.save()
    assert kari.stored() == [card]
    assert kari.at_gateway() == ([card.token], card.token)


def test_a_card_the_gateway_could_not_detach_is_adopted(side: Side) -> None:
    kari = _kari(side)
    kari.faults.calls, kari.faults.fail_at = 0, ADD_CARD
    side.fail("down", "detach_payment_method", kari.token)
    with pytest.raises(CrashError, match="add_payment_method"):
        kari.save()  # the storage's error, not the detach's
    assert kari.at_gateway() == ([kari.token], None)
    card = kari.save()
    assert kari.stored() == [card]
    assert kari.at_gateway() == ([kari.token], kari.token)


def test_a_card_whose_storing_waited_too_long_for_a_lock_stays_attached(
    side: Side,
) -> None:
    """A lock held too long (the daily run's chunk) is passing: the card the
    customer just confirmed is kept, and saving again stores it."""
    kari = _kari(side)
    kari.faults.calls, kari.faults.fail_at = 0, ADD_CARD
    kari.faults.mode = "lock_timeout"
    with pytest.raises(ConflictError):
        kari.save()
    assert kari.stored() == []
    assert kari.at_gateway() == ([kari.token], None)  # kept for the next try
    card = kari.save()
    assert kari.stored() == [card]
    assert kari.at_gateway() == ([kari.token], kari.token)


@pytest.mark.parametrize("fault", ["down", "lost"])
def test_removing_a_card_the_gateway_failed_to_detach_finishes_on_repeat(
    side: Side, fault: str
) -> None:
    """remove_card detaches first: a detach that failed (or whose answer was
    lost) leaves the card stored and shown, and the repeat removes it."""
    kari = _kari(side)
    card = kari.save()
    side.fail(fault, "detach_payment_method", kari.token)
    with pytest.raises(GatewayUnavailableError):
        kari.billing.remove_card("fjord", "kari", card.id, now=NOW)
    assert kari.stored() == [card]  # still shown: nothing is hidden
    kari.billing.remove_card("fjord", "kari", card.id, now=NOW)
    assert kari.stored() == []
    assert kari.at_gateway() == ([], None)


def test_removing_a_card_whose_forgetting_failed_finishes_on_repeat(
    side: Side,
) -> None:
    kari = _kari(side)
    card = kari.save()
    kari.faults.fail_on = "remove_payment_method"
    with pytest.raises(CrashError, match="remove_payment_method"):
        kari.billing.remove_card("fjord", "kari", card.id, now=NOW)
    assert kari.stored() == [card]
    assert kari.at_gateway()[0] == []  # detached already: it cannot be charged
    kari.billing.remove_card("fjord", "kari", card.id, now=NOW)  # not detached again
    assert kari.stored() == []

"""A payment whose charge id is known is looked up by that id, not by its key.

With Stripe, a look-up by key reads the account's 100 most recent
PaymentIntents, then Stripe's search, which is not read-after-write. On a
busy account a charge waiting for 3-D Secure that the customer then
completes is found by neither: its webhook, ``confirm_payment``,
``confirm_mass_payment`` and the daily run must ask for the PaymentIntent
by its id, and record the success at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone

import attrs
import pytest
import stripe
from fake_stripe import FakeStripe

from recurbill.billing import Billing
from recurbill.invoice import InvoiceLine
from recurbill.payments import sign_webhook
from recurbill.payments.stripe import StripeGateway
from recurbill.records import InvoiceStatus, Payment, PaymentStatus
from recurbill.storage.memory import InMemoryStorage

SECRET = "whsec_lookup"
BILLED = datetime(2027, 2, 1, 9, tzinfo=timezone.utc)
LATER = datetime(2027, 2, 1, 9, 5, tzinfo=timezone.utc)


@attrs.define
class Busy:
    """Billing over Stripe's fake, a payment waiting for 3-D Secure, and
    more newer PaymentIntents on the Stripe account than a list page holds."""

    fake: FakeStripe
    billing: Billing
    storage: InMemoryStorage
    waiting: Payment

    def get_paths(self) -> list[str]:
        return [r.path for r in self.fake.received if r.method == "GET"]

    def invoice_status(self) -> InvoiceStatus:
        (invoice_id,) = self.waiting.invoice_ids
        with self.storage.transaction() as tx:
            return tx.get_invoice("fjord", invoice_id).status

    def payment_status(self) -> PaymentStatus:
        with self.storage.transaction() as tx:
            return tx.get_payment("fjord", self.waiting.id).status


def _busy(
    fake: FakeStripe, client: stripe.StripeClient, pay: Callable[..., Payment]
) -> Busy:
    storage = InMemoryStorage()
    billing = Billing(
        storage=storage,
        gateway=StripeGateway(client, webhook_secrets=[SECRET]),
    )
    billing.create_account(
        account_id="fjord",
        name="Fjord Fysio AS",
        currency="NOK",
        summary_email="post@fjordfysio.no",
    )
    per = billing.add_customer(
        "fjord",
        name="Per Olsen",
        email="per@example.no",
        collection_method="send_invoice",
        customer_id="per",
    )
    card = billing.save_card("fjord", per.id, token="pm_card_authenticationRequired")
    line = InvoiceLine(description="Session", quantity=1, unit_price="800", vat_rate=25)
    invoice = billing.record_session("fjord", per.id, lines=[line], now=BILLED).invoice
    waiting = pay(billing, invoice.id, card.id)
    assert waiting.status is PaymentStatus.REQUIRES_ACTION
    assert waiting.charge_id is not None
    # other customers' charges, newer: the waiting one is not on the list
    fake.intents.update(
        {f"pi_other{n}": {"id": f"pi_other{n}", "metadata": {}} for n in range(100)}
    )
    fake.search_lags = True  # and Stripe's search does not show it yet
    fake.authenticate(waiting.charge_id)
    fake.received.clear()
    return Busy(fake, billing, storage, waiting)


def _pay_one(billing: Billing, invoice_id: str, card_id: str) -> Payment:
    outcome = billing.pay("fjord", invoice_id, payment_method_id=card_id, now=BILLED)
    assert outcome.payment is not None
    return outcome.payment


def _pay_many(billing: Billing, invoice_id: str, card_id: str) -> Payment:
    paid = billing.mass_pay(
        "fjord", "per", [invoice_id], payment_method_id=card_id, now=BILLED
    )
    assert paid.payment is not None
    return paid.payment


@pytest.fixture
def busy(fake_stripe: FakeStripe, stripe_client: stripe.StripeClient) -> Busy:
    return _busy(fake_stripe, stripe_client, _pay_one)


def _succeeded_event(busy: Busy, event_id: str) -> tuple[bytes, str]:
    assert busy.waiting.charge_id is not None
    intent = busy.fake.intents[busy.waiting.charge_id]
    event = {
        "id": event_id,
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": int(LATER.timestamp()),
        "data": {"object": intent},
    }
    body = json.dumps(event).encode()
    stamp = int(LATER.timestamp())
    return body, sign_webhook(body, secret=SECRET, timestamp=stamp)


def test_the_succeeded_webhook_records_the_payment(busy: Busy) -> None:
    body, signature = _succeeded_event(busy, "evt_3ds_done")
    recorded = busy.billing.handle_webhook(body, signature=signature, now=LATER)
    assert isinstance(recorded, Payment)
    assert recorded.status is PaymentStatus.SUCCEEDED
    assert busy.invoice_status() is InvoiceStatus.PAID
    assert busy.get_paths() == [f"/v1/payment_intents/{busy.waiting.charge_id}"]
    again = busy.billing.handle_webhook(body, signature=signature, now=LATER)
    assert again is None  # a redelivery, of a payment already recorded


def test_confirm_payment_sees_the_authentication(busy: Busy) -> None:
    outcome = busy.billing.confirm_payment("fjord", busy.waiting.id, now=LATER)
    assert outcome.status is PaymentStatus.SUCCEEDED
    assert outcome.receipt is not None
    assert busy.invoice_status() is InvoiceStatus.PAID
    assert busy.get_paths() == [f"/v1/payment_intents/{busy.waiting.charge_id}"]


def test_the_daily_run_finishes_the_payment(busy: Busy) -> None:
    busy.billing.run(as_of=LATER)
    assert busy.payment_status() is PaymentStatus.SUCCEEDED
    assert busy.invoice_status() is InvoiceStatus.PAID


def test_confirm_mass_payment_sees_the_authentication(
    fake_stripe: FakeStripe, stripe_client: stripe.StripeClient
) -> None:
    busy = _busy(fake_stripe, stripe_client, _pay_many)
    assert busy.waiting.settlement_id is not None
    done = busy.billing.confirm_mass_payment(
        "fjord", busy.waiting.settlement_id, now=LATER
    )
    assert done.payment is not None
    assert done.payment.status is PaymentStatus.SUCCEEDED
    assert done.receipt is not None
    assert busy.invoice_status() is InvoiceStatus.PAID

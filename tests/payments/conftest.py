"""Fixtures for the payment tests: the local fake of Stripe's API and clients."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
import stripe
from fake_stripe import API_KEY, FakeStripe

__all__ = ["fake_stripe", "stripe_client"]


@pytest.fixture
def fake_stripe() -> Iterator[FakeStripe]:
    """A fake Stripe API on 127.0.0.1, stopped (and its threads joined) after."""
    with FakeStripe().running() as fake:
        yield fake


@pytest.fixture
def stripe_client(fake_stripe: FakeStripe) -> Iterator[stripe.StripeClient]:
    """A StripeClient that talks to the fake only; its HTTP session is closed after."""
    session = requests.Session()
    session.trust_env = False  # no proxies: loopback only
    client = stripe.StripeClient(
        api_key=API_KEY,
        base_addresses={"api": fake_stripe.url},
        http_client=stripe.RequestsClient(session=session, timeout=5),
        max_network_retries=0,
    )
    try:
        yield client
    finally:
        session.close()

"""Contract suites every adapter must pass, and factories for your own tests.

Subclass a contract in your test suite and provide its fixture to check your
own adapter the way recurbill checks its own. Call
``pytest.register_assert_rewrite("recurbill.testing")`` in your
``conftest.py`` before this package is imported, so that a failing check
shows the values it compared.
"""

from __future__ import annotations

from recurbill.testing.payments import GatewayContract
from recurbill.testing.storage import (
    StorageContract,
    make_account,
    make_customer,
    make_invoice,
    make_notification,
    make_payment,
    make_payment_method,
    make_template,
)

__all__ = [
    "GatewayContract",
    "StorageContract",
    "make_account",
    "make_customer",
    "make_invoice",
    "make_notification",
    "make_payment",
    "make_payment_method",
    "make_template",
]

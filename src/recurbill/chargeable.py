"""Whether a card payment can take an amount: the gateway's limits, and the
one rule for which invoices are charged automatically."""

from __future__ import annotations

from collections.abc import Mapping

from recurbill.errors import ChargeAmountError
from recurbill.money import Money
from recurbill.payments.protocol import ChargeBound, PaymentGateway
from recurbill.records import CollectionMethod, Customer, NoChargeReason

__all__ = [
    "CARD_LIMITS",
    "ONE_INVOICE_ADVICE",
    "check_chargeable",
    "no_automatic_charge",
]

_BEYOND = {
    "minimum": "below the gateway's minimum of {limit} for a card payment",
    "maximum": "above the gateway's maximum of {limit} for one card payment",
    "increment": "not a whole multiple of {limit}, the smallest unit the gateway "
    "charges",
}


ONE_INVOICE_ADVICE: Mapping[ChargeBound, str] = {
    "maximum": "pay it another way, such as a bank transfer",
    "minimum": "pay it together with other open invoices in one payment (a mass "
    "payment), or another way such as a bank transfer",
    "increment": "pay it another way, such as a bank transfer",
}
"""What to do with one invoice whose amount a card payment cannot take."""


def check_chargeable(
    gateway: PaymentGateway,
    amount: Money,
    *,
    what: str,
    advice: Mapping[ChargeBound, str],
    error: type[ChargeAmountError] = ChargeAmountError,
    **fields: object,
) -> None:
    """Refuse *amount* before any payment is made if the gateway cannot charge it.

    The gateway says its limits (:meth:`PaymentGateway.charge_limits`); the
    error (*error*, with *fields*) names *what* is paid, the amount and the
    limit it breaks, and gives the *advice* for that limit.
    """
    broken = gateway.charge_limits(amount.currency).broken_by(amount)
    if broken is None:
        return
    bound, limit = broken
    raise error(
        problem=f"{what}, {amount}, cannot be paid by card: it is "
        + _BEYOND[bound].format(limit=limit),
        allowed=advice[bound],
        amount=amount,
        bound=bound,
        limit=limit,
        **fields,
    )


_OUTSIDE: Mapping[ChargeBound, NoChargeReason] = {
    "minimum": NoChargeReason.BELOW_MINIMUM,
    "maximum": NoChargeReason.ABOVE_MAXIMUM,
    "increment": NoChargeReason.NOT_INCREMENT,
}
CARD_LIMITS = frozenset(_OUTSIDE.values())
"""The reasons of :func:`no_automatic_charge` that are the gateway's limits."""


def no_automatic_charge(
    gateway: PaymentGateway, customer: Customer, amount: Money
) -> NoChargeReason | None:
    """Why *amount* is not charged to *customer*'s default card automatically,
    or None when it is.

    The one rule for first attempts (the daily run, a session) and retries:
    the customer must be charged automatically and have a default card, the
    amount must be above zero, and the gateway must be able to take it in one
    card payment (:meth:`PaymentGateway.charge_limits`).
    """
    if customer.collection_method is not CollectionMethod.CHARGE_AUTOMATICALLY:
        return NoChargeReason.SEND_INVOICE
    if customer.default_payment_method_id is None:
        return NoChargeReason.NO_CARD
    if amount.amount <= 0:
        return NoChargeReason.NOTHING_DUE
    broken = gateway.charge_limits(amount.currency).broken_by(amount)
    return None if broken is None else _OUTSIDE[broken[0]]

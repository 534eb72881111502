"""Money to a card gateway's integer minor units and back, by Stripe's rules.

Stripe's API takes amounts as integers in a currency's smallest unit, and its
idea of that unit differs from ISO 4217 in a few places. Both gateways that
ship with recurbill follow these rules, so a test against the in-memory
gateway refuses what Stripe would refuse:

- Zero-decimal currencies (JPY, KRW, CLP, VND, …): whole units, ¥500 is ``500``.
- ISK and UGX: ISO 4217 and Stripe agree that they have no fractions, but
  Stripe's API still writes them with two decimals: 5 kr is ``500`` and the
  amount must be a multiple of 100.
- Three-decimal currencies (BHD, JOD, KWD, OMR, TND): thousandths, but Stripe's
  partners need the last digit to be 0, so 5.120 KWD is ``5120`` and 5.124 KWD
  is refused. recurbill refuses rather than rounds: rounding would charge
  another amount than the invoice says. Round invoices to 0.010 (see
  :func:`~recurbill.money.round_decimal`) before charging them.
- Everything else: hundredths. An ISO three-decimal currency that Stripe
  writes with two (IQD, LYD) must then have 0 as its third decimal.

>>> to_minor_units(Money("850.00", "NOK")), to_minor_units(Money(5, "ISK"))
(85000, 500)
>>> to_minor_units(Money("5.120", "KWD")), from_minor_units(5120, "KWD")
(5120, Money(amount=Decimal('5.120'), currency=Currency(code='KWD')))
"""

from __future__ import annotations

import functools
from decimal import Decimal

from recurbill.errors import ChargeAmountError, InvalidInputError
from recurbill.money import Currency, Money, round_decimal
from recurbill.payments.protocol import ChargeLimits

__all__ = [
    "MAX_CHARGE_UNITS",
    "MINIMUM_CHARGE",
    "THREE_DECIMAL_CURRENCIES",
    "ZERO_DECIMAL_CURRENCIES",
    "charge_limits",
    "check_charge_amount",
    "from_minor_units",
    "minor_unit_exponent",
    "to_minor_units",
]

ZERO_DECIMAL_CURRENCIES = frozenset(
    "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF VND VUV XAF XOF XPF".split()
)
"""Currencies Stripe writes in whole units."""

THREE_DECIMAL_CURRENCIES = frozenset("BHD JOD KWD OMR TND".split())
"""Currencies Stripe writes in thousandths (last digit 0)."""

_STEP = {"ISK": 100, "UGX": 100, **dict.fromkeys(THREE_DECIMAL_CURRENCIES, 10)}


def minor_unit_exponent(currency: Currency | str) -> int:
    """How many decimals an API amount in *currency* has (0, 2 or 3)."""
    code = Currency(currency).code if isinstance(currency, str) else currency.code
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    return 3 if code in THREE_DECIMAL_CURRENCIES else 2


def to_minor_units(money: Money) -> int:
    """*money* as an integer API amount; refuse what the gateway cannot take."""
    exponent = minor_unit_exponent(money.currency)
    units = money.amount.scaleb(exponent)
    step = _STEP.get(money.currency.code, 1)
    if units != units.to_integral_value() or int(units) % step:
        smallest = Decimal(step).scaleb(-exponent)
        raise InvalidInputError(
            problem=f"{money} cannot be charged through the gateway",
            allowed=(
                f"{money.currency} amounts must be whole multiples of {smallest}; "
                "round the amount before charging it"
            ),
        )
    return int(units)


MAX_CHARGE_UNITS = 99_999_999
"""Stripe's largest charge: eight digits of minor units (999,999.99 NOK)."""

_MAX_UNITS = {"IDR": 999_999_999_999}
"""Currencies whose largest charge has more digits (twelve for IDR)."""

MINIMUM_CHARGE = {
    code: Decimal(amount)
    for code, amount in {
        "AED": "2.00", "AUD": "0.50", "BGN": "1.00", "BRL": "0.50", "CAD": "0.50",
        "CHF": "0.50", "CZK": "15.00", "DKK": "2.50", "EUR": "0.50", "GBP": "0.30",
        "HKD": "4.00", "HUF": "175.00", "INR": "0.50", "JPY": "50", "MXN": "10",
        "MYR": "2", "NOK": "3.00", "NZD": "0.50", "PLN": "2.00", "RON": "2.00",
        "SEK": "3.00", "SGD": "0.50", "THB": "10", "USD": "0.50",
    }.items()
}  # fmt: skip
"""Stripe's smallest charge in each currency it settles in (its currency table).

Stripe's minimum is that of the account's settlement currency: these apply
when an account charges in the currency it settles in, as recurbill's
accounts (one currency each) normally do. A charge Stripe converts must reach
the equivalent of the settlement currency's minimum, which depends on the
exchange rate; in a currency outside this table no limit is known in
advance, so none is applied."""


@functools.lru_cache(maxsize=512)  # a pure function of the currency, asked per charge
def charge_limits(currency: Currency | str) -> ChargeLimits:
    """Stripe's limits for one charge in *currency* (both shipped gateways use them).

    The maximum is the largest amount of at most eight digits (twelve for
    IDR) that is a whole multiple of the increment, so 999,999 ISK rather than
    999,999.99:

    >>> str(charge_limits("ISK").maximum), str(charge_limits("NOK").minimum)
    ('999999 ISK', '3.00 NOK')
    """
    currency = Currency(currency) if isinstance(currency, str) else currency
    step = _STEP.get(currency.code, 1)
    most = _MAX_UNITS.get(currency.code, MAX_CHARGE_UNITS)
    minimum = MINIMUM_CHARGE.get(currency.code)
    return ChargeLimits(
        currency=currency,
        minimum=None if minimum is None else Money(minimum, currency).quantize(),
        maximum=from_minor_units(most - most % step, currency),
        increment=from_minor_units(step, currency),
    )


def check_charge_amount(money: Money) -> int:
    """*money* in minor units if the gateway takes it as a charge, else refused.

    :func:`to_minor_units`, and within Stripe's minimum (:data:`MINIMUM_CHARGE`)
    and maximum (:data:`MAX_CHARGE_UNITS`) for a charge: outside them,
    :class:`~recurbill.errors.ChargeAmountError`.
    """
    units = to_minor_units(money)
    broken = charge_limits(money.currency).broken_by(money)
    if broken is None:
        return units
    bound, limit = broken
    if bound == "minimum":
        raise ChargeAmountError(
            problem=f"a charge of {money} is below the gateway's minimum of {limit}",
            allowed=f"charge at least {limit}; collect smaller amounts another way "
            "(a bank transfer, or with the next invoice)",
            amount=money,
            bound=bound,
            limit=limit,
        )
    raise ChargeAmountError(
        problem=f"a charge of {money} is above the gateway's maximum of {limit}",
        allowed=f"charge at most {limit} at once",
        amount=money,
        bound=bound,
        limit=limit,
    )


def from_minor_units(units: int, currency: Currency | str) -> Money:
    """An integer API amount in *currency* as Money with ISO 4217 decimals."""
    currency = Currency(currency) if isinstance(currency, str) else currency
    value = Decimal(units).scaleb(-minor_unit_exponent(currency))
    exact = round_decimal(value, currency.decimals)
    return Money(exact if exact == value else value, currency)

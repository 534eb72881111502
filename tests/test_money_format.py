"""format_money reads each locale's pattern once and still renders Babel's text.

The reference below is format_money as it was when it called Babel for every
amount, computed exactly (in a context with room for every digit); the fast
formatter must return exactly the same text.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, localcontext

import attrs
import pytest
from babel.core import Locale
from babel.localedata import exists
from babel.numbers import parse_pattern
from hypothesis import given
from hypothesis import strategies as st

from recurbill.errors import InvalidAmountError
from recurbill.money import (
    EXACT,
    MAX_AMOUNT_DECIMALS,
    MAX_AMOUNT_DIGITS,
    Money,
    decimals_of,
    format_money,
)
from recurbill.money import _money_format as money_format

CURRENCIES = ["NOK", "SEK", "ISK", "EUR", "USD", "JPY", "BHD", "INR", "CHF"]
LOCALES = [
    name
    for name in (
        "nb_NO nn_NO sv_SE sv_FI is_IS en_GB en_US de_DE fr_FR de_CH hi_IN "
        "ar_EG ar_SA fa_IR bn_IN"
    ).split()
    if exists(name)
]


def babel_format(money: Money, locale: str | Locale) -> str:
    """format_money as Babel renders it (the pattern parsed on every call),
    but for a zero that is shown without a sign."""
    loc = Locale.parse(locale)
    pattern = parse_pattern(loc.currency_formats["standard"].pattern)
    digits = money.currency.decimals
    pattern.frac_prec = (digits, digits)
    amount = money.quantize().amount
    text: str = pattern.apply(
        amount if amount else abs(amount),  # zero is shown without a sign
        loc,
        currency=money.currency.code,
        currency_digits=False,
    )
    return text


def babel_format_exact(money: Money, locale: str) -> str:
    """Every decimal of the amount, at least the currency's (a unit price)."""
    exponent = money.amount.normalize().as_tuple().exponent
    digits = money.currency.decimals
    places = max(digits, -exponent if isinstance(exponent, int) else 0)
    if places == digits:
        return babel_format(money, locale)
    loc = Locale.parse(locale)
    pattern = parse_pattern(loc.currency_formats["standard"].pattern)
    pattern.frac_prec = (digits, places)
    text: str = pattern.apply(
        money.amount, loc, currency=money.currency.code, currency_digits=False
    )
    return text


def outcome(function: Callable[..., object], *args: object, **kwargs: object) -> object:
    """What *function* returns in a context with room for every digit, or the
    type of what it raises."""
    try:
        with localcontext(EXACT):
            return function(*args, **kwargs)
    except ArithmeticError as error:
        return type(error)


def within_limits(amount: Decimal) -> bool:
    """Whether Money takes *amount* (its digits before and after the point)."""
    return (
        abs(amount) < Decimal(10) ** MAX_AMOUNT_DIGITS
        and decimals_of(amount) <= MAX_AMOUNT_DECIMALS
    )


any_amounts = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False),
    st.integers(0, 6).flatmap(
        lambda places: st.decimals(allow_nan=False, allow_infinity=False, places=places)
    ),
    st.builds(
        lambda digits, exponent, negative: Decimal(
            (int(negative), tuple(digits), exponent)
        ),
        st.lists(st.integers(0, 9), min_size=1, max_size=22),
        st.integers(-8, 4),
        st.booleans(),
    ),
    st.sampled_from(["0", "-0", "-0.004", "0.005", "-0.005", "999999.995"]).map(
        Decimal
    ),
)
amounts = any_amounts.filter(within_limits)


@given(
    st.one_of(
        st.integers(10**100, 10**120).map(Decimal),
        st.integers(1, 10**40)
        .filter(lambda n: n % 10)
        .map(lambda n: Decimal(f"{n}E-40")),
    ),
    st.booleans(),
)
def test_money_refuses_amounts_beyond_its_limits(
    amount: Decimal, negative: bool
) -> None:
    with pytest.raises(InvalidAmountError, match="at most 100 digits before"):
        Money(amount.copy_negate() if negative else amount, "NOK")


@given(st.integers(-(10**100) + 1, 10**100 - 1), st.sampled_from(CURRENCIES))
def test_format_money_takes_every_amount_money_takes(whole: int, code: str) -> None:
    text = format_money(Money(whole, code), "en_GB")
    assert str(abs(whole))[-3:] in text.replace(",", "")


@given(amounts, st.sampled_from(CURRENCIES), st.sampled_from(LOCALES))
def test_format_money_is_babels_text(amount: Decimal, code: str, locale: str) -> None:
    money = Money(amount, code)
    expected = outcome(babel_format, money, locale)
    assert outcome(format_money, money, locale) == expected
    assert outcome(format_money, money, Locale.parse(locale)) == expected


@given(amounts, st.sampled_from(CURRENCIES), st.sampled_from(LOCALES))
def test_exact_format_is_babels_text(amount: Decimal, code: str, locale: str) -> None:
    money = Money(amount, code)
    expected = outcome(babel_format_exact, money, locale)
    assert outcome(format_money, money, locale, exact=True) == expected


@given(amounts, st.sampled_from(CURRENCIES), st.sampled_from(LOCALES))
def test_babel_itself_renders_what_the_fast_path_renders(
    amount: Decimal, code: str, locale: str
) -> None:
    """The path for patterns the fast formatter leaves to Babel gives the same text."""
    fast = money_format(locale, code)
    slow = attrs.evolve(fast, simple=False)
    digits = Money(amount, code).currency.decimals
    assert outcome(slow, amount, digits, digits + 3) == outcome(
        fast, amount, digits, digits + 3
    )
    quantized = outcome(lambda: Money(amount, code).quantize().amount)
    if isinstance(quantized, Decimal):
        assert slow.fixed(quantized, digits) == fast.fixed(quantized, digits)


@pytest.mark.parametrize(
    ("money", "locale", "text"),
    [
        (Money("-1234567.891", "NOK"), "nb_NO", "-1\xa0234\xa0567,89\xa0kr"),
        (Money("-0.001", "NOK"), "nb_NO", "0,00\xa0kr"),
        (Money("1234567.5", "ISK"), "is_IS", "1.234.568\xa0kr."),
        (Money("12345678.9", "INR"), "hi_IN", "₹1,23,45,678.90"),
        (Money("1234.5", "BHD"), "en_GB", "BHD1,234.500"),
        (Money("1234.5", "CHF"), "de_CH", "CHF\xa01’234.50"),
    ],
)
def test_known_renderings(money: Money, locale: str, text: str) -> None:
    assert format_money(money, locale) == text

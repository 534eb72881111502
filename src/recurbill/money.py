"""Exact money: ISO 4217 currencies, Decimal amounts, one rounding rule.

Amounts are :class:`decimal.Decimal`; floats are refused. The number of decimals
of a currency is ISO 4217's minor unit (NOK 2, ISK 0, JPY 0, KWD 3). Babel's CLDR
data uses other digits for about a dozen currencies (for example ISK and IQD),
which is right for display but wrong for amounts; recurbill uses ISO 4217 for
every amount and tells Babel how many decimals to show.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TypeAlias

import attrs
from babel.core import Locale, UnknownLocaleError
from babel.numbers import (
    get_currency_symbol,
    get_decimal_symbol,
    get_group_symbol,
    parse_pattern,
)

from recurbill.errors import (
    CurrencyMismatchError,
    InvalidAmountError,
    InvalidInputError,
    UnknownCurrencyError,
)

__all__ = [
    "ISO_4217_DECIMALS",
    "AmountLike",
    "Currency",
    "Money",
    "allocate",
    "as_currency",
    "format_money",
    "round_decimal",
    "to_decimal",
]

AmountLike: TypeAlias = "Decimal | int | str"
"""What an amount may be given as: a Decimal, an int or a decimal string."""

_ACTIVE_CODES = frozenset(
    (
        "AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV "
        "BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE "
        "CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD "
        "HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW "
        "KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR "
        "MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG "
        "QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP "
        "SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED "
        "VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG "
    ).split()
)
_ZERO = ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF")
_ZERO_MORE = ("UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF")
_THREE = ("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND")
_FOUR = ("CLF", "UYW")
_EXCEPTIONS = {
    **dict.fromkeys(_ZERO + _ZERO_MORE, 0),
    **dict.fromkeys(_THREE, 3),
    **dict.fromkeys(_FOUR, 4),
}
ISO_4217_DECIMALS: dict[str, int] = {
    code: _EXCEPTIONS.get(code, 2) for code in _ACTIVE_CODES
}
"""Minor-unit decimals of every active ISO 4217 currency code."""


def to_decimal(value: object) -> Decimal:
    """Return *value* as a finite Decimal; refuse floats, bools, NaN and text."""
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int) and not isinstance(value, bool):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise InvalidAmountError(value=value) from None
    else:
        raise InvalidAmountError(value=value)
    if not result.is_finite():
        raise InvalidAmountError(value=value)
    return result


def round_decimal(
    value: Decimal, decimals: int, rounding: str = ROUND_HALF_UP
) -> Decimal:
    """Round *value* to *decimals* places; half-up unless *rounding* says otherwise.

    This is the one rounding helper of recurbill: every amount that is rounded
    goes through it.
    """
    return value.quantize(_quantum(decimals), rounding=rounding)


@functools.lru_cache(maxsize=16)
def _quantum(decimals: int) -> Decimal:
    return Decimal(1).scaleb(-decimals)


def _currency_code(code: str) -> str:
    if not isinstance(code, str) or code.upper() not in ISO_4217_DECIMALS:
        raise UnknownCurrencyError(code=code)
    return code.upper()


@attrs.frozen
class Currency:
    """An ISO 4217 currency: its code and the decimals its amounts carry.

    >>> Currency("isk").decimals
    0
    """

    code: str = attrs.field(converter=_currency_code)

    @property
    def decimals(self) -> int:
        """ISO 4217 minor-unit decimals (NOK 2, ISK 0, KWD 3)."""
        return ISO_4217_DECIMALS[self.code]

    def __str__(self) -> str:
        return self.code


def as_currency(value: Currency | str) -> Currency:
    """*value* as a :class:`Currency`: a Currency is kept, a code is looked up."""
    return value if isinstance(value, Currency) else Currency(value)


@attrs.frozen(order=False)
class Money:
    """An exact amount in one currency.

    Built from a Decimal, an int or a decimal string, never a float. The amount
    keeps every decimal it was given (unit prices may have more than the
    currency); :meth:`quantize` rounds it to the currency's decimals. Arithmetic
    works only within one currency; otherwise :class:`CurrencyMismatchError`.

    >>> Money("12.50", "NOK") + Money(1, "NOK")
    Money(amount=Decimal('13.50'), currency=Currency(code='NOK'))
    """

    amount: Decimal = attrs.field(converter=to_decimal)
    currency: Currency = attrs.field(converter=as_currency)

    @classmethod
    def zero(cls, currency: Currency | str) -> Money:
        """Zero in *currency*."""
        return cls(Decimal(0), currency)

    def quantize(self, rounding: str = ROUND_HALF_UP) -> Money:
        """This amount rounded to the currency's decimals (half-up by default)."""
        return Money(
            round_decimal(self.amount, self.currency.decimals, rounding), self.currency
        )

    @property
    def is_quantized(self) -> bool:
        """Whether the amount has no more decimals than its currency allows."""
        return self.amount == round_decimal(self.amount, self.currency.decimals)

    def _same(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise InvalidInputError(
                problem=f"cannot combine Money with {type(other).__name__}",
                allowed="add or compare Money only with Money",
            )
        if other.currency != self.currency:
            raise CurrencyMismatchError(left=self.currency, right=other.currency)
        return other

    def __add__(self, other: Money) -> Money:
        return Money(self.amount + self._same(other).amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.amount - self._same(other).amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __abs__(self) -> Money:
        return Money(abs(self.amount), self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        return Money(self.amount * to_decimal(factor), self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: Money) -> bool:
        return self.amount < self._same(other).amount

    def __le__(self, other: Money) -> bool:
        return self.amount <= self._same(other).amount

    def __gt__(self, other: Money) -> bool:
        return self.amount > self._same(other).amount

    def __ge__(self, other: Money) -> bool:
        return self.amount >= self._same(other).amount

    def __bool__(self) -> bool:
        return bool(self.amount)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency.code}"


def allocate(total: Money, weights: Sequence[Decimal | int]) -> list[Money]:
    """Split *total* by *weights* into quantized parts that sum exactly to it.

    The total is first rounded to its currency's decimals. Each part is the
    proportional share rounded down in minor units; the units left over go one
    by one to the parts with the largest remainders (ties: the earlier part).

    >>> print(*allocate(Money("100.00", "NOK"), [1, 1, 1]), sep=", ")
    33.34 NOK, 33.33 NOK, 33.33 NOK
    """
    if not weights:
        raise InvalidInputError(
            problem="allocate() got no weights", allowed="give at least one weight"
        )
    exact = [to_decimal(w) for w in weights]
    if any(w < 0 for w in exact) or sum(exact) <= 0:
        raise InvalidInputError(
            problem=f"weights {[str(w) for w in exact]} cannot share an amount",
            allowed="weights must be zero or positive with a positive sum",
        )
    quantized = total.quantize()
    unit = Decimal(1).scaleb(-total.currency.decimals)
    units = int(quantized.amount / unit)
    sign = -1 if units < 0 else 1
    units = abs(units)
    weight_sum = sum(exact)
    shares = [units * w / weight_sum for w in exact]
    floors = [int(s) for s in shares]
    leftover = units - sum(floors)
    by_remainder = sorted(
        range(len(shares)), key=lambda i: (-(shares[i] - floors[i]), i)
    )
    for i in by_remainder[:leftover]:
        floors[i] += 1
    return [Money(sign * f * unit, total.currency) for f in floors]


def format_money(money: Money, locale: str | Locale, *, exact: bool = False) -> str:
    """*money* rounded half-up to its currency's decimals, formatted for *locale*.

    The amount is quantized first (Babel alone would round half-even and use
    CLDR's digits), then shown with exactly the ISO 4217 decimals. With *exact*
    it is not rounded: every decimal it has is shown, and at least the
    currency's (a unit price of 0.125 NOK). The text is Babel's, byte for byte;
    each locale and currency's pattern and symbols are read once.

    >>> format_money(Money("1234.5", "NOK"), "nb_NO")
    '1\\xa0234,50\\xa0kr'
    >>> format_money(Money("-0.125", "GBP"), "en_GB", exact=True)
    '-£0.125'
    """
    if type(money) is not Money:
        _not_money(money)
    code = money.currency.code
    digits = ISO_4217_DECIMALS[code]
    if exact:
        exponent = money.amount.normalize().as_tuple().exponent
        if isinstance(exponent, int) and -exponent > digits:
            return _money_format(locale, code)(money.amount, digits, -exponent)
    amount = money.amount.quantize(_quantum(digits), rounding=ROUND_HALF_UP)
    return _money_format(locale, code).fixed(amount, digits)


@attrs.frozen
class _MoneyFormat:
    """A locale's currency pattern for one currency, parsed once.

    Renders as Babel's ``NumberPattern.apply`` does (``currency_digits=False``,
    the fraction digits given per call). Patterns whose output needs more than
    grouping, symbols and fixed affixes (quotes, a currency name, percent,
    exponent or significant digits) go to Babel itself.
    """

    locale: Locale
    code: str
    pattern: str
    prefix: tuple[str, str]
    suffix: tuple[str, str]
    grouping: tuple[int, int]
    min_int: int
    group: str
    decimal: str
    simple: bool

    def __call__(self, amount: Decimal, min_frac: int, max_frac: int) -> str:
        if not self.simple:
            pattern = parse_pattern(self.pattern)
            pattern.frac_prec = (min_frac, max_frac)
            text: str = pattern.apply(
                amount, self.locale, currency=self.code, currency_digits=False
            )
            return text
        negative = amount.is_signed()
        rounded = abs(amount).normalize().quantize(_quantum(max_frac))
        whole, _, frac = f"{rounded:f}".partition(".")
        frac = frac or "0"
        if len(frac) < min_frac:
            frac += "0" * (min_frac - len(frac))
        if max_frac == 0 or (min_frac == 0 and int(frac) == 0):
            frac = ""
        else:
            while len(frac) > min_frac and frac[-1] == "0":
                frac = frac[:-1]
            frac = self.decimal + frac
        return (
            self.prefix[negative] + self._grouped(whole) + frac + self.suffix[negative]
        )

    def fixed(self, amount: Decimal, decimals: int) -> str:
        """*amount*, already quantized to *decimals*, with exactly that many.

        The same text as ``self(amount, decimals, decimals)``: a quantized
        amount needs no rounding, and its digits are its own.
        """
        if not self.simple:
            return self(amount, decimals, decimals)
        whole, _, frac = f"{amount:f}".lstrip("-").partition(".")
        number = self._grouped(whole) + (self.decimal + frac if decimals else "")
        negative = amount.is_signed()
        return self.prefix[negative] + number + self.suffix[negative]

    def _grouped(self, whole: str) -> str:
        if len(whole) < self.min_int:
            whole = "0" * (self.min_int - len(whole)) + whole
        size, groups = self.grouping[0], ""
        while len(whole) > size:
            groups = self.group + whole[-size:] + groups
            whole = whole[:-size]
            size = self.grouping[1]
        return whole + groups


def _not_money(value: object) -> None:
    if not isinstance(value, Money):
        raise InvalidInputError(
            problem=f"{value!r} is not Money",
            allowed="give a recurbill.Money, e.g. Money('100', 'NOK')",
        )


@functools.lru_cache(maxsize=256)
def _money_format(locale: str | Locale, code: str) -> _MoneyFormat:
    try:
        loc = Locale.parse(locale)
    except (UnknownLocaleError, ValueError, TypeError):
        raise InvalidInputError(
            problem=f"locale {locale!r} is not one Babel knows",
            allowed="a locale such as 'nb_NO', 'sv_SE', 'is_IS' or 'en_GB'",
        ) from None
    text = loc.currency_formats["standard"].pattern
    pattern = parse_pattern(text)
    group = get_group_symbol(loc, numbering_system="latn")
    decimal = get_decimal_symbol(loc, numbering_system="latn")
    symbol = get_currency_symbol(code, loc)

    def affix(raw: str) -> str:
        return raw.replace("¤¤", code).replace("¤", symbol)

    affixes = (*pattern.prefix, *pattern.suffix)
    simple = (
        pattern.scale == 0
        and not pattern.exp_prec
        and "@" not in pattern.pattern
        and pattern.number_pattern != ""
        and not any("¤¤¤" in raw or "'" in affix(raw) for raw in affixes)
        and not any(c in group + decimal for c in "'¤")
    )
    return _MoneyFormat(
        locale=loc,
        code=code,
        pattern=text,
        prefix=(affix(pattern.prefix[0]), affix(pattern.prefix[1])),
        suffix=(affix(pattern.suffix[0]), affix(pattern.suffix[1])),
        grouping=pattern.grouping,
        min_int=pattern.int_prec[0],
        group=group,
        decimal=decimal,
        simple=simple,
    )

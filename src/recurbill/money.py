"""Exact money: ISO 4217 currencies, Decimal amounts, one rounding rule.

Amounts are :class:`decimal.Decimal`; floats are refused. The number of decimals
of a currency is ISO 4217's minor unit (NOK 2, ISK 0, JPY 0, KWD 3). Babel's CLDR
data uses other digits for about a dozen currencies (for example ISK and IQD),
which is right for display but wrong for amounts; recurbill uses ISO 4217 for
every amount and tells Babel how many decimals to show.

Arithmetic never uses the caller's :mod:`decimal` context: recurbill computes
in its own context (:data:`EXACT`), whose precision holds every sum and product
of the amounts it accepts, so nothing is rounded but what a rule rounds. A
Money amount has at most :data:`MAX_AMOUNT_DIGITS` digits before the decimal
point and :data:`MAX_AMOUNT_DECIMALS` after it; larger ones are refused.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from decimal import (
    MAX_EMAX,
    MIN_EMIN,
    ROUND_05UP,
    ROUND_DOWN,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    InvalidOperation,
    Overflow,
    localcontext,
)
from typing import NoReturn, TypeAlias

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
from recurbill.inputs import flag, instance, sequence

__all__ = [
    "EXACT",
    "ISO_4217_DECIMALS",
    "MAX_AMOUNT_DECIMALS",
    "MAX_AMOUNT_DIGITS",
    "ROUNDING_MODES",
    "AmountLike",
    "Currency",
    "Money",
    "allocate",
    "as_currency",
    "decimals_of",
    "divide",
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


ROUNDING_MODES = frozenset(
    {
        "ROUND_05UP",
        "ROUND_CEILING",
        "ROUND_DOWN",
        "ROUND_FLOOR",
        "ROUND_HALF_DOWN",
        "ROUND_HALF_EVEN",
        "ROUND_HALF_UP",
        "ROUND_UP",
    }
)
"""The :mod:`decimal` rounding modes (each is its own name as text)."""

MAX_AMOUNT_DIGITS = 100
"""Digits a Money amount may have before the decimal point (it is below 10**100).

Far above any real amount, and above anything the invoice calculator can
produce from lines within its limits, so a computed total always fits."""
MAX_AMOUNT_DECIMALS = 28
"""Decimals a Money amount may have (trailing zeros aside), as a line's price."""
_AMOUNT_LIMIT = Decimal(10**MAX_AMOUNT_DIGITS)
_FINEST = Decimal(f"1E-{MAX_AMOUNT_DECIMALS}")

EXACT = Context(
    prec=1000,
    rounding=ROUND_HALF_EVEN,
    Emax=MAX_EMAX,
    Emin=MIN_EMIN,
    traps=[InvalidOperation, DivisionByZero, Overflow],
)
"""The decimal context of every computation in recurbill, never the caller's.

Its precision holds every sum and product of amounts within the limits
exactly (they need fewer than 200 digits), so only an explicit rounding rounds,
with the rounding mode it names. Divisions go through :func:`divide`. Only
its flags change as it is used, and nothing reads them; traps act on each
operation alone, so threads may share it."""


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
    return value.quantize(_quantum(decimals), rounding, EXACT)


def divide(
    dividend: Decimal, divisor: Decimal, decimals: int, rounding: str = ROUND_HALF_UP
) -> Decimal:
    """*dividend* / *divisor* rounded once to *decimals* places, exactly.

    The quotient is first computed with at least two digits beyond *decimals*,
    rounded toward zero except that a last digit of 0 or 5 goes away from zero
    when digits were dropped (``ROUND_05UP``), which keeps every later rounding
    correct: 2.4999…9 (dropped digits) never reads as exactly half.
    """
    if not dividend:
        return round_decimal(dividend, decimals, rounding)
    digits = max(dividend.adjusted() - divisor.adjusted(), 0) + decimals + 5
    context = Context(prec=digits, rounding=ROUND_05UP, Emax=MAX_EMAX, Emin=MIN_EMIN)
    return round_decimal(context.divide(dividend, divisor), decimals, rounding)


def decimals_of(value: Decimal) -> int:
    """How many decimals *value* needs, trailing zeros aside (no context used)."""
    _, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int) or exponent >= 0:
        return 0
    significant = "".join(map(str, digits)).rstrip("0")
    if not significant:
        return 0  # zero, however many decimals it is written with
    return max(0, -(exponent + len(digits) - len(significant)))


@functools.lru_cache(maxsize=16)
def _quantum(decimals: int) -> Decimal:
    return Decimal(1).scaleb(-decimals, EXACT)


def _amount(value: object) -> Decimal:
    """*value* as a Money amount: a finite Decimal within the amount limits."""
    amount = to_decimal(value)
    if amount.copy_abs() >= _AMOUNT_LIMIT or amount != amount.quantize(
        _FINEST, ROUND_DOWN, EXACT
    ):
        raise InvalidAmountError(
            value=value,
            problem=f"the amount {amount} is beyond what recurbill computes exactly",
            allowed=f"an amount has at most {MAX_AMOUNT_DIGITS} digits before the "
            f"decimal point and {MAX_AMOUNT_DECIMALS} after it",
        )
    return amount


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

    amount: Decimal = attrs.field(converter=_amount)
    currency: Currency = attrs.field(converter=as_currency)

    @classmethod
    def zero(cls, currency: Currency | str) -> Money:
        """Zero in *currency*, at its decimals (``0.00 NOK``, ``0 ISK``)."""
        code = as_currency(currency)
        return cls(Decimal(0).scaleb(-code.decimals, EXACT), code)

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
        return Money(EXACT.add(self.amount, self._same(other).amount), self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(
            EXACT.subtract(self.amount, self._same(other).amount), self.currency
        )

    def __neg__(self) -> Money:
        return Money(self.amount.copy_negate(), self.currency)

    def __abs__(self) -> Money:
        return Money(self.amount.copy_abs(), self.currency)

    def __mul__(self, factor: Decimal | int) -> Money:
        return Money(EXACT.multiply(self.amount, _amount(factor)), self.currency)

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

    A *total* that is not Money or *weights* that are not a list, tuple or
    other iterable (not text or a mapping) of Decimals and ints raise
    :class:`~recurbill.errors.InvalidInputError`
    (:class:`~recurbill.errors.InvalidAmountError` for a float, NaN or bool
    weight).

    >>> print(*allocate(Money("100.00", "NOK"), [1, 1, 1]), sep=", ")
    33.34 NOK, 33.33 NOK, 33.33 NOK
    """
    instance(total, Money, "total", allowed=_GIVE_MONEY.format("total"))
    weights = sequence(
        weights,
        "weights",
        allowed="give weights as a list or tuple of Decimals or ints, e.g. [1, 2]",
    )
    if not weights:
        raise InvalidInputError(
            problem="allocate() got no weights", allowed="give at least one weight"
        )
    exact = [_weight(w) for w in weights]
    if any(w < 0 for w in exact) or not any(exact):
        raise InvalidInputError(
            problem=f"weights {[str(w) for w in exact]} cannot share an amount",
            allowed="weights must be zero or positive with a positive sum",
        )
    decimals = total.currency.decimals
    units = int(total.quantize().amount.scaleb(decimals, EXACT))
    sign = -1 if units < 0 else 1
    units = abs(units)
    # exact rational shares: units × w / Σw, each w an integer over a common 10^k
    scale = max(decimals_of(w) for w in exact)
    ints = [int(w.scaleb(scale, EXACT)) for w in exact]
    weight_sum = sum(ints)
    floors, remainders = zip(
        *(divmod(units * w, weight_sum) for w in ints), strict=True
    )
    parts = list(floors)
    leftover = units - sum(parts)
    by_remainder = sorted(range(len(parts)), key=lambda i: (-remainders[i], i))
    for i in by_remainder[:leftover]:
        parts[i] += 1
    return [
        Money(Decimal(sign * f).scaleb(-decimals, EXACT), total.currency) for f in parts
    ]


def _weight(value: object) -> Decimal:
    weight = to_decimal(value)
    if weight.copy_abs() >= _AMOUNT_LIMIT or decimals_of(weight) > MAX_AMOUNT_DECIMALS:
        raise InvalidInputError(
            problem=f"weight {weight} is too large or has too many decimals",
            allowed=f"a weight has at most {MAX_AMOUNT_DIGITS} digits before the "
            f"decimal point and {MAX_AMOUNT_DECIMALS} after it",
        )
    return weight


def format_money(money: Money, locale: str | Locale, *, exact: bool = False) -> str:
    """*money* rounded half-up to its currency's decimals, formatted for *locale*.

    The amount is quantized first (Babel alone would round half-even and use
    CLDR's digits), then shown with exactly the ISO 4217 decimals. With *exact*
    it is not rounded: every decimal it has is shown, and at least the
    currency's (a unit price of 0.125 NOK). The text is Babel's, byte for byte
    (but an amount that rounds to zero has no minus sign: "0,00 kr", never
    "-0,00 kr"); each locale and currency's pattern and symbols are read once.
    Raises :class:`~recurbill.errors.InvalidInputError` for *money* that is
    not Money, a *locale* Babel does not know, or *exact* not True or False.

    >>> format_money(Money("1234.5", "NOK"), "nb_NO")
    '1\\xa0234,50\\xa0kr'
    >>> format_money(Money("-0.125", "GBP"), "en_GB", exact=True)
    '-£0.125'
    >>> format_money(Money("-0.004", "NOK"), "nb_NO")  # zero has no sign
    '0,00\xa0kr'
    """
    if type(money) is not Money:
        instance(money, Money, "money", allowed=_GIVE_MONEY.format("money"))
    if exact is not False:
        flag(exact, "exact")
    if not isinstance(locale, (str, Locale)):
        _unknown_locale(locale)
    code = money.currency.code
    digits = ISO_4217_DECIMALS[code]
    if exact:
        places = decimals_of(money.amount)
        if places > digits:
            return _money_format(locale, code)(money.amount, digits, places)
    amount = round_decimal(money.amount, digits)
    if not amount:  # -0.001 rounds to -0.00: nothing is shown without a sign
        amount = abs(amount)
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
            with localcontext(EXACT):  # Babel computes in the current context
                text: str = pattern.apply(
                    amount, self.locale, currency=self.code, currency_digits=False
                )
            return text
        negative = amount.is_signed()
        rounded = amount.copy_abs().quantize(_quantum(max_frac), ROUND_HALF_EVEN, EXACT)
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


_GIVE_MONEY = "give {} as a recurbill.Money, e.g. Money('100', 'NOK')"


def _unknown_locale(locale: object) -> NoReturn:
    raise InvalidInputError(
        problem=f"locale {locale!r} is not one Babel knows",
        allowed="a locale such as 'nb_NO', 'sv_SE', 'is_IS' or 'en_GB' "
        "(text or a babel.Locale)",
    ) from None


@functools.lru_cache(maxsize=256)
def _money_format(locale: str | Locale, code: str) -> _MoneyFormat:
    try:
        loc = Locale.parse(locale)
    except (UnknownLocaleError, ValueError, TypeError):
        _unknown_locale(locale)
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

import enum
from decimal import Decimal

import pytest
from babel import Locale
from hypothesis import given
from hypothesis import strategies as st

from recurbill import (
    Currency,
    CurrencyMismatchError,
    InvalidAmountError,
    InvalidInputError,
    Money,
    UnknownCurrencyError,
    allocate,
    format_money,
)
from recurbill.money import ISO_4217_DECIMALS, round_decimal


@pytest.mark.parametrize(
    ("code", "decimals"),
    [("NOK", 2), ("SEK", 2), ("ISK", 0), ("JPY", 0), ("KWD", 3), ("IQD", 3)],
)
def test_iso_4217_decimals(code: str, decimals: int) -> None:
    assert Currency(code).decimals == decimals


def test_lower_case_code_is_normalised() -> None:
    assert Currency("nok") == Currency("NOK")


@pytest.mark.parametrize("code", ["XXX", "NOKK", "", "kroner", "XAU"])
def test_unknown_currency_is_refused(code: str) -> None:
    with pytest.raises(UnknownCurrencyError, match="ISO 4217"):
        Currency(code)


@pytest.mark.parametrize(
    "bad", [0.1, 1.0, float("nan"), True, None, "abc", "NaN", "inf"]
)
def test_inexact_amounts_are_refused(bad: object) -> None:
    with pytest.raises(InvalidAmountError, match="floats are refused"):
        Money(bad, "NOK")  # type: ignore[arg-type]


def test_amount_kinds() -> None:
    assert Money("12.50", "NOK") == Money(Decimal("12.5"), "NOK")
    assert Money(12, "NOK").amount == Decimal(12)


def test_mixed_currency_arithmetic_is_refused() -> None:
    with pytest.raises(CurrencyMismatchError, match="NOK with SEK"):
        Money(1, "NOK") + Money(1, "SEK")
    with pytest.raises(CurrencyMismatchError):
        _ = Money(1, "NOK") < Money(1, "SEK")
    with pytest.raises(InvalidInputError):
        Money(1, "NOK") + 1  # type: ignore[operator]


def test_multiplying_by_a_float_is_refused() -> None:
    with pytest.raises(InvalidAmountError):
        Money(1, "NOK") * 1.5  # type: ignore[operator]


@pytest.mark.parametrize(
    ("amount", "code", "expected"),
    [
        ("2.5", "ISK", "3"),
        ("-2.5", "ISK", "-3"),
        ("0.125", "NOK", "0.13"),
        ("1.0005", "KWD", "1.001"),
        ("10", "KWD", "10.000"),
    ],
)
def test_quantize_is_half_up(amount: str, code: str, expected: str) -> None:
    result = Money(amount, code).quantize()
    assert str(result.amount) == expected
    assert result.is_quantized


def test_isk_has_no_decimals_and_kwd_three() -> None:
    assert Money("999.99", "ISK").quantize().amount.as_tuple().exponent == 0
    assert Money("1", "KWD").quantize().amount.as_tuple().exponent == -3


@given(
    total=st.decimals(min_value=-(10**9), max_value=10**9, places=3),
    weights=st.lists(
        st.integers(min_value=0, max_value=10**6), min_size=1, max_size=30
    ).filter(lambda ws: sum(ws) > 0),
    code=st.sampled_from(["NOK", "ISK", "KWD", "JPY"]),
)
def test_allocate_parts_sum_to_the_total(
    total: Decimal, weights: list[int], code: str
) -> None:
    money = Money(total, code)
    parts = allocate(money, weights)
    assert len(parts) == len(weights)
    assert sum((p.amount for p in parts), Decimal(0)) == money.quantize().amount
    assert all(p.is_quantized for p in parts)
    unit = Decimal(1).scaleb(-money.currency.decimals)
    for part, weight in zip(parts, weights, strict=True):
        ideal = money.quantize().amount * weight / sum(weights)
        assert abs(part.amount - ideal) < unit
        if weight == 0:
            assert part.amount == 0


def test_allocate_refuses_bad_weights() -> None:
    with pytest.raises(InvalidInputError, match="at least one weight"):
        allocate(Money(1, "NOK"), [])
    with pytest.raises(InvalidInputError, match="positive sum"):
        allocate(Money(1, "NOK"), [0, 0])
    with pytest.raises(InvalidInputError, match="positive sum"):
        allocate(Money(1, "NOK"), [2, -1])


@pytest.mark.parametrize(
    ("total", "weights", "message"),
    [
        (Decimal(100), [1, 1], r"total Decimal\('100'\) is not Money; give total"),
        (None, [1], "total None is not Money"),
        (Money(1, "NOK"), 5, "weights 5 is not a sequence; give weights as a list"),
        (Money(1, "NOK"), "12", "weights '12' is not a sequence"),
        (Money(1, "NOK"), {"a": 1}, "is not a sequence"),
    ],
)
def test_allocate_names_a_total_or_weights_of_the_wrong_kind(
    total: object, weights: object, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        allocate(total, weights)  # type: ignore[arg-type]


def test_allocate_takes_weights_from_any_iterable() -> None:
    total = Money(100, "NOK")
    assert allocate(total, iter([1, 2])) == allocate(total, (1, 2))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"exact": None}, "exact=None is not True or False; give exact as True or"),
        ({"exact": 1}, "exact=1 is not True or False"),
        ({"exact": "no"}, "exact='no' is not True or False"),
        ({"locale": ["nb_NO"]}, r"locale \['nb_NO'\] is not one Babel knows"),
        ({"locale": None}, "locale None is not one Babel knows"),
    ],
)
def test_format_money_names_an_argument_of_the_wrong_kind(
    options: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"locale": "nb_NO", **options}
    with pytest.raises(InvalidInputError, match=message):
        format_money(Money("0.125", "NOK"), **arguments)  # type: ignore[arg-type]


def test_format_money_takes_a_str_subclass_as_the_locale() -> None:
    class Language(str, enum.Enum):
        NORWEGIAN = "nb_NO"

    money = Money("1234.5", "NOK")
    assert format_money(money, Language.NORWEGIAN) == format_money(money, "nb_NO")


def test_format_money_takes_a_babel_locale() -> None:
    money = Money("0.125", "NOK")
    assert format_money(money, Locale.parse("nb_NO"), exact=True) == format_money(
        money, "nb_NO", exact=True
    )


@pytest.mark.parametrize(
    ("amount", "code", "locale", "expected"),
    [
        ("1234.5", "NOK", "nb_NO", "1\xa0234,50\xa0kr"),
        ("1234.5", "SEK", "sv_SE", "1\xa0234,50\xa0kr"),
        ("1234.5", "ISK", "is_IS", "1.235\xa0kr."),
        ("1234.5", "GBP", "en_GB", "£1,234.50"),
        ("0.125", "NOK", "nb_NO", "0,13\xa0kr"),
        ("0.0125", "KWD", "en_GB", "KWD0.013"),
    ],
)
def test_format_money_quantizes_half_up_with_iso_digits(
    amount: str, code: str, locale: str, expected: str
) -> None:
    assert format_money(Money(amount, code), locale) == expected


def test_round_decimal_can_round_half_even() -> None:
    assert round_decimal(Decimal("0.125"), 2, "ROUND_HALF_EVEN") == Decimal("0.12")


def test_every_iso_code_is_three_letters() -> None:
    assert all(len(c) == 3 and c.isupper() for c in ISO_4217_DECIMALS)


@pytest.mark.parametrize("code", sorted(ISO_4217_DECIMALS))
def test_zero_is_written_with_its_currencys_decimals(code: str) -> None:
    """``0.00 NOK`` like every other NOK amount, ``0 ISK``, ``0.000 KWD``."""
    zero = Money.zero(code)
    decimals = ISO_4217_DECIMALS[code]
    assert zero == Money("0", code)
    assert zero.amount.as_tuple().exponent == -decimals
    written = "0." + "0" * decimals if decimals else "0"
    assert str(zero) == f"{written} {code}"
    assert zero.is_quantized


def test_zero_does_not_depend_on_the_callers_decimal_context() -> None:
    from decimal import Context, localcontext

    with localcontext(Context(Emin=-1, Emax=10, clamp=1)):
        assert str(Money.zero("NOK")) == "0.00 NOK"

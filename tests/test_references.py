from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from recurbill.errors import (
    InvalidInputError,
    InvalidReferenceError,
    ReferenceLengthError,
    UnknownCurrencyError,
)
from recurbill.money import Currency
from recurbill.references import (
    ReferenceMethod,
    ReferenceScheme,
    kid_mod10,
    kid_mod11,
    ocr,
    reference_methods,
    validate_kid,
    validate_ocr,
)

numbers = st.text(alphabet="0123456789", min_size=1, max_size=23)


@pytest.mark.parametrize(
    ("number", "mod10", "mod11"),
    [("1234", "12344", "12343"), ("2345678", "23456783", "23456788")],
)
def test_published_kid_examples(number: str, mod10: str, mod11: str) -> None:
    assert kid_mod10(number) == mod10
    assert kid_mod11(number) == mod11
    assert validate_kid(mod10) == mod10
    assert validate_kid(mod11) == mod11


@pytest.mark.parametrize(
    ("number", "length_digit", "expected"),
    [("12345", False, "123455"), ("12345", True, "1234574")],
)
def test_published_ocr_examples(number: str, length_digit: bool, expected: str) -> None:
    assert ocr(number, length_digit=length_digit) == expected
    assert validate_ocr(expected, length_digit=length_digit) == expected


def test_mod11_remainder_ten_is_a_dash() -> None:
    # 3*2 + 2*3 = 12; 12 mod 11 = 1; 11 - 1 = 10 -> "-"
    assert kid_mod11("23") == "23-"
    assert validate_kid("23-") == "23-"
    # remainder 0 gives check digit 0: 1*2 + 3*3 = 11
    assert kid_mod11("31") == "310"


def _luhn_ok(text: str) -> bool:
    """Independent Luhn check over the whole number (check digit included)."""
    total = 0
    for i, ch in enumerate(reversed(text)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d // 10 + d % 10
    return total % 10 == 0


def _mod11_ok(text: str) -> bool:
    body, check = text[:-1], text[-1]
    weights = [2, 3, 4, 5, 6, 7]
    total = sum(int(c) * weights[i % 6] for i, c in enumerate(reversed(body)))
    expected = 11 - total % 11
    return check == {11: "0", 10: "-"}.get(expected, str(expected))


@given(numbers)
def test_kid_round_trips(number: str) -> None:
    for kid in (kid_mod10(number), kid_mod11(number)):
        assert kid[:-1] == number
        assert 2 <= len(kid) <= 25
        assert validate_kid(kid) == kid
    assert _luhn_ok(kid_mod10(number))
    assert _mod11_ok(kid_mod11(number))


@given(numbers, st.integers(min_value=0, max_value=9))
def test_a_wrong_kid_check_digit_is_refused(number: str, wrong: int) -> None:
    good = {kid_mod10(number)[-1], kid_mod11(number)[-1]}
    assume(str(wrong) not in good)
    with pytest.raises(InvalidReferenceError, match="fails its check digit"):
        validate_kid(number + str(wrong))


@given(numbers, st.booleans())
def test_ocr_round_trips(number: str, length_digit: bool) -> None:
    reference = ocr(number, length_digit=length_digit)
    assert reference.startswith(number)
    assert _luhn_ok(reference)
    if length_digit:
        assert reference[-2] == str(len(reference) % 10)
    assert validate_ocr(reference, length_digit=length_digit) == reference


@given(numbers, st.integers(min_value=1, max_value=9))
def test_a_changed_ocr_digit_is_caught(number: str, delta: int) -> None:
    reference = ocr(number)
    changed = reference[:-1] + str((int(reference[-1]) + delta) % 10)
    with pytest.raises(InvalidReferenceError, match="Luhn check digit"):
        validate_ocr(changed)


def test_wrong_length_digit() -> None:
    with pytest.raises(InvalidReferenceError, match="length digit must be 7"):
        validate_ocr("1234564", length_digit=True)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: kid_mod10(""), "not a string of digits"),
        (lambda: kid_mod10("12a4"), "not a string of digits"),
        (lambda: kid_mod11("-12"), "not a string of digits"),
        (lambda: kid_mod10(1234), "not a string"),  # type: ignore[arg-type]
        (lambda: kid_mod10("1" * 25), "at most 24 digits"),
        (lambda: validate_kid("1"), "too short"),
        (lambda: validate_kid("12345"), "fails its check digit"),
        (lambda: validate_kid("1234x"), "ends in 'x'"),
        (lambda: validate_kid("1" * 26), "at most 24 digits"),
        (lambda: validate_ocr("5"), "too short"),
        (lambda: validate_ocr("123456"), "Luhn check digit 5"),
        (lambda: validate_ocr("12 3455"), "not a string of digits"),
        (lambda: ocr("1" * 24, length_digit=True), "at most 23 digits"),
        (lambda: ocr("1234", length_digit=1), "length_digit=1 is not True or False"),
        (lambda: ocr("1234", length_digit="no"), "give length_digit as True or"),
        (lambda: validate_ocr("123455", length_digit=None), "length_digit=None"),
    ],
)
def test_bad_input_is_refused(call: object, message: str) -> None:
    with pytest.raises(InvalidReferenceError, match=message) as info:
        call()  # type: ignore[operator]
    assert isinstance(info.value, InvalidInputError)
    assert isinstance(info.value, ValueError)


# -- the account's scheme ------------------------------------------------------

_DIGIT_METHODS = [m for m in ReferenceMethod if m is not ReferenceMethod.INVOICE_NUMBER]


def _tail(method: ReferenceMethod) -> int:
    """How many digits follow the number: the check digit, and a length digit."""
    return 2 if method is ReferenceMethod.OCR_LENGTH_DIGIT else 1


def _shortest(method: ReferenceMethod) -> int:
    return _tail(method) + 1


@st.composite
def _schemes(draw: st.DrawFn, *, fixed: bool = False) -> ReferenceScheme:
    method = draw(st.sampled_from(_DIGIT_METHODS))
    lengths = st.integers(min_value=_shortest(method), max_value=25)
    length = draw(lengths if fixed else st.none() | lengths)
    return ReferenceScheme(method=method, length=length)


@st.composite
def _fitting(draw: st.DrawFn) -> tuple[ReferenceScheme, int]:
    """A scheme and an invoice number that fits it."""
    scheme = draw(_schemes())
    room = (scheme.length or 25) - _tail(scheme.method)
    return scheme, draw(st.integers(min_value=0, max_value=10**room - 1))


@st.composite
def _too_long(draw: st.DrawFn) -> tuple[ReferenceScheme, int]:
    """A scheme with a fixed length and an invoice number that does not fit it."""
    scheme = draw(_schemes(fixed=True))
    assert scheme.length is not None
    room = scheme.length - _tail(scheme.method)
    return scheme, draw(st.integers(min_value=10**room, max_value=10**25))


def _check_under(scheme: ReferenceScheme, reference: str) -> None:
    """*reference* passes the validator and the check digit of its method."""
    method = scheme.method
    if method in (ReferenceMethod.KID_MOD10, ReferenceMethod.KID_MOD11):
        assert validate_kid(reference) == reference
        if method is ReferenceMethod.KID_MOD10:
            assert _luhn_ok(reference)
        else:
            assert _mod11_ok(reference)
    else:
        length_digit = method is ReferenceMethod.OCR_LENGTH_DIGIT
        assert validate_ocr(reference, length_digit=length_digit) == reference
        assert _luhn_ok(reference)


@given(_fitting())
def test_every_reference_validates_under_its_scheme(
    case: tuple[ReferenceScheme, int],
) -> None:
    scheme, number = case
    tail = _tail(scheme.method)
    reference = scheme.reference(number, series="INV")
    _check_under(scheme, reference)
    body = reference[:-tail]
    if scheme.length is None:
        assert body == str(number)
    else:
        assert len(reference) == scheme.length
        assert body == str(number).zfill(scheme.length - tail)  # zeros in front


@given(_too_long())
def test_a_number_too_long_for_the_fixed_length_is_refused(
    case: tuple[ReferenceScheme, int],
) -> None:
    scheme, number = case
    assert scheme.length is not None
    room = scheme.length - _tail(scheme.method)
    with pytest.raises(ReferenceLengthError) as refused:
        scheme.reference(number, series="INV")
    error = refused.value
    assert isinstance(error, InvalidReferenceError)
    assert error.fields["number"] == number
    assert error.fields["length"] == scheme.length
    assert error.fields["largest"] == 10**room - 1
    assert f"invoice number {number} " in str(error)
    assert f"{scheme.length}-character" in str(error)


def test_the_largest_number_that_fits_and_the_next() -> None:
    scheme = ReferenceScheme(method="kid_mod10", length=5)
    assert scheme.reference(9999, series="INV") == kid_mod10("9999")
    assert scheme.reference(7, series="INV") == "00075"
    with pytest.raises(ReferenceLengthError, match=r"holds invoice numbers up to 9999"):
        scheme.reference(10000, series="INV")
    ocr_scheme = ReferenceScheme(method="ocr_length_digit", length=5)
    assert ocr_scheme.reference(999, series="INV") == ocr("999", length_digit=True)
    assert ocr_scheme.reference(12, series="INV") == "01255"
    with pytest.raises(ReferenceLengthError, match="5-character OCR"):
        ocr_scheme.reference(1000, series="INV")


def test_a_mod11_remainder_of_ten_gives_a_dash_padded_or_not() -> None:
    # 23 has MOD11 check digit "-" (see above); zeros in front weigh nothing
    assert ReferenceScheme(method="kid_mod11").reference(23, series="X") == "23-"
    padded = ReferenceScheme(method="kid_mod11", length=8).reference(23, series="X")
    assert padded == "0000023-"
    assert validate_kid(padded) == padded


def test_the_invoice_number_scheme_is_series_and_number() -> None:
    scheme = ReferenceScheme(method=ReferenceMethod.INVOICE_NUMBER)
    assert scheme.reference(42, series="F2025") == "F2025-000042"
    assert scheme.reference(1234567, series="INV") == "INV-1234567"


@pytest.mark.parametrize(
    ("currency", "default", "allowed"),
    [
        ("NOK", "kid_mod10", ["kid_mod10", "kid_mod11"]),
        ("SEK", "ocr_length_digit", ["ocr_length_digit", "ocr"]),
        ("ISK", "invoice_number", ["invoice_number"]),
        ("EUR", "invoice_number", ["invoice_number"]),
    ],
)
def test_methods_by_currency(currency: str, default: str, allowed: list[str]) -> None:
    assert [m.value for m in reference_methods(currency)] == allowed
    assert ReferenceScheme.default_for(currency) == ReferenceScheme(method=default)


def test_a_currency_is_known_whatever_its_case_or_form() -> None:
    for currency in ("nok", "Nok", Currency("NOK")):
        assert reference_methods(currency) == reference_methods("NOK")
    assert ReferenceScheme.default_for("sek").method is ReferenceMethod.OCR_LENGTH_DIGIT


@pytest.mark.parametrize("currency", ["bogus", "", "  ", None, 5, b"NOK", ["NOK"]])
def test_an_unknown_currency_has_no_methods_but_an_error(currency: object) -> None:
    with pytest.raises(UnknownCurrencyError, match="use an active ISO 4217 code"):
        reference_methods(currency)  # type: ignore[arg-type]
    with pytest.raises(UnknownCurrencyError):
        ReferenceScheme.default_for(currency)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ReferenceScheme(method="kid"), "reference method 'kid' is unknown"),
        (lambda: ReferenceScheme(method=None), "'kid_mod10', 'kid_mod11'"),
        (
            lambda: ReferenceScheme(method="invoice_number", length=10),
            "only for a KID or OCR",
        ),
        (lambda: ReferenceScheme(method="kid_mod10", length=1), "from 2 to 25"),
        (lambda: ReferenceScheme(method="kid_mod11", length=26), "from 2 to 25"),
        (lambda: ReferenceScheme(method="ocr", length=1), "from 2 to 25"),
        (lambda: ReferenceScheme(method="ocr_length_digit", length=2), "from 3 to 25"),
        (lambda: ReferenceScheme(method="kid_mod10", length=True), "from 2 to 25"),
        (lambda: ReferenceScheme(method="kid_mod10", length="10"), "from 2 to 25"),
        (
            lambda: ReferenceScheme(method="kid_mod10").reference(-1, series="X"),
            "whole number >= 0",
        ),
        (
            lambda: ReferenceScheme(method="ocr").reference("12", series="X"),
            "whole number >= 0",
        ),
    ],
)
def test_a_bad_scheme_is_refused(make: object, message: str) -> None:
    with pytest.raises(InvalidReferenceError, match=message):
        make()  # type: ignore[operator]

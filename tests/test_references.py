from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from recurbill.errors import InvalidInputError, InvalidReferenceError
from recurbill.references import (
    kid_mod10,
    kid_mod11,
    ocr,
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
    ],
)
def test_bad_input_is_refused(call: object, message: str) -> None:
    with pytest.raises(InvalidReferenceError, match=message) as info:
        call()  # type: ignore[operator]
    assert isinstance(info.value, InvalidInputError)
    assert isinstance(info.value, ValueError)

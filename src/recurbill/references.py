"""Payment references: Norwegian KID and Swedish OCR, generated and validated.

* KID (Nets): the number plus one check digit, MOD10 (Luhn) or MOD11
  (weights 2, 3, …, 7 from the right; a remainder giving 10 is written
  ``-``); 2 to 25 characters in all.
* OCR (Bankgirot): the number plus a Luhn check digit, optionally preceded
  by a length digit (the total length, both digits included, modulo 10);
  2 to 25 digits in all.

>>> kid_mod10("1234"), kid_mod11("1234"), ocr("12345", length_digit=True)
('12344', '12343', '1234574')

An account's :class:`ReferenceScheme` says how its invoice numbers become
references: the check-digit method its bank agreement fixes, and optionally a
fixed total length (the number left-padded with zeros):

>>> ReferenceScheme(method="kid_mod11", length=10).reference(4711, series="INV")
'0000047112'
"""

from __future__ import annotations

import enum

import attrs

from recurbill.errors import InvalidReferenceError, ReferenceLengthError
from recurbill.inputs import flag
from recurbill.money import Currency, as_currency

__all__ = [
    "ReferenceMethod",
    "ReferenceScheme",
    "kid_mod10",
    "kid_mod11",
    "ocr",
    "reference_kind",
    "reference_methods",
    "validate_kid",
    "validate_ocr",
]

_MAX_LENGTH = 25
_DIGITS = frozenset("0123456789")


def _digits(value: object, what: str, *, max_length: int) -> str:
    if not isinstance(value, str):
        raise InvalidReferenceError(
            problem=f"{what} {value!r} is not a string",
            allowed="give the number as a string of digits, e.g. '1234'",
        )
    text = value.strip()
    if not text or not set(text) <= _DIGITS:
        raise InvalidReferenceError(
            problem=f"{what} {value!r} is not a string of digits",
            allowed="use only the digits 0-9 (no spaces, letters or signs)",
        )
    if len(text) > max_length:
        raise InvalidReferenceError(
            problem=f"{what} {value!r} has {len(text)} digits",
            allowed=f"at most {max_length} digits, so the reference fits in 25",
        )
    return text


def _luhn(digits: str) -> str:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str(-total % 10)


def _mod11(digits: str) -> str:
    total = sum(
        (ord(char) - 48) * (2 + position % 6)
        for position, char in enumerate(reversed(digits))
    )
    check = -total % 11
    return "-" if check == 10 else str(check)


def kid_mod10(number: str) -> str:
    """*number* with its KID MOD10 (Luhn) check digit appended.

    >>> kid_mod10("2345678")
    '23456783'
    """
    digits = _digits(number, "KID number", max_length=_MAX_LENGTH - 1)
    return digits + _luhn(digits)


def kid_mod11(number: str) -> str:
    """*number* with its KID MOD11 check digit appended (``-`` for remainder 10).

    >>> kid_mod11("2345678"), kid_mod11("23")
    ('23456788', '23-')
    """
    digits = _digits(number, "KID number", max_length=_MAX_LENGTH - 1)
    return digits + _mod11(digits)


def validate_kid(kid: str) -> str:
    """Return *kid* (stripped) if its last character is a valid MOD10 or MOD11
    check digit; otherwise raise :class:`~recurbill.errors.InvalidReferenceError`.

    >>> validate_kid("12343")
    '12343'
    """
    if not isinstance(kid, str):
        raise InvalidReferenceError(
            problem=f"KID {kid!r} is not a string",
            allowed="give the KID as a string of 2 to 25 digits",
        )
    text = kid.strip()
    if len(text) < 2:
        raise InvalidReferenceError(
            problem=f"KID {kid!r} is too short",
            allowed="a KID has 2 to 25 characters: digits and one check digit",
        )
    body = _digits(text[:-1], "KID", max_length=_MAX_LENGTH - 1)
    check = text[-1]
    if check not in _DIGITS and check != "-":
        raise InvalidReferenceError(
            problem=f"KID {kid!r} ends in {check!r}",
            allowed="the check digit is a digit, or '-' for MOD11 remainder 10",
        )
    if check not in (_luhn(body), _mod11(body)):
        raise InvalidReferenceError(
            problem=f"KID {kid!r} fails its check digit",
            allowed=(
                f"the last digit must be the MOD10 ({_luhn(body)}) or MOD11 "
                f"({_mod11(body)}) check digit of {body}"
            ),
        )
    return text


def ocr(number: str, *, length_digit: bool = False) -> str:
    """A Swedish OCR reference: *number*, optionally a length digit, and a
    Luhn check digit computed over everything before it.

    *length_digit* is True or False, else
    :class:`~recurbill.errors.InvalidReferenceError`.

    >>> ocr("12345")
    '123455'
    """
    flag(length_digit, "length_digit", error=InvalidReferenceError)
    limit = _MAX_LENGTH - (2 if length_digit else 1)
    digits = _digits(number, "OCR number", max_length=limit)
    if length_digit:
        digits += str((len(digits) + 2) % 10)
    return digits + _luhn(digits)


def validate_ocr(ocr: str, *, length_digit: bool = False) -> str:
    """Return *ocr* (stripped) if its Luhn check digit (and, when asked, its
    length digit) is right; otherwise, or when *length_digit* is not True or
    False, raise :class:`~recurbill.errors.InvalidReferenceError`.

    >>> validate_ocr("1234574", length_digit=True)
    '1234574'
    """
    flag(length_digit, "length_digit", error=InvalidReferenceError)
    shortest = 3 if length_digit else 2
    text = _digits(ocr, "OCR reference", max_length=_MAX_LENGTH)
    if len(text) < shortest:
        raise InvalidReferenceError(
            problem=f"OCR reference {ocr!r} is too short",
            allowed=f"at least {shortest} digits including the check digit",
        )
    body, check = text[:-1], text[-1]
    if length_digit and body[-1] != str(len(text) % 10):
        raise InvalidReferenceError(
            problem=f"OCR reference {ocr!r} has length digit {body[-1]}",
            allowed=(
                f"the length digit must be {len(text) % 10}: the total length "
                f"{len(text)} modulo 10"
            ),
        )
    if check != _luhn(body):
        raise InvalidReferenceError(
            problem=f"OCR reference {ocr!r} fails its check digit",
            allowed=f"the last digit must be the Luhn check digit {_luhn(body)}",
        )
    return text


def reference_kind(currency: str) -> str:
    """Which payment reference an invoice in *currency* carries.

    ``"kid"`` for NOK (Norway's KID), ``"ocr"`` for SEK (Sweden's OCR
    number), ``"other"`` for the rest (the invoice number as text). The
    invoice e-mail names the reference by this, whatever the reader's
    language: a KID is a KID to a Swedish reader too. An account's
    :class:`ReferenceScheme` only uses the methods of its currency
    (:func:`reference_methods`), so the name always fits the reference.

    >>> reference_kind("NOK"), reference_kind("SEK"), reference_kind("ISK")
    ('kid', 'ocr', 'other')
    """
    return {"NOK": "kid", "SEK": "ocr"}.get(currency, "other")


class ReferenceMethod(str, enum.Enum):
    """How an invoice number becomes a payment reference."""

    KID_MOD10 = "kid_mod10"
    KID_MOD11 = "kid_mod11"
    OCR_LENGTH_DIGIT = "ocr_length_digit"
    OCR = "ocr"
    INVOICE_NUMBER = "invoice_number"

    @property
    def label(self) -> str:
        """What the reference is called in messages, e.g. ``KID (MOD11)``."""
        return _LABELS[self]


_LABELS = {
    ReferenceMethod.KID_MOD10: "KID (MOD10)",
    ReferenceMethod.KID_MOD11: "KID (MOD11)",
    ReferenceMethod.OCR_LENGTH_DIGIT: "OCR (with length digit)",
    ReferenceMethod.OCR: "OCR (without length digit)",
    ReferenceMethod.INVOICE_NUMBER: "invoice number",
}

_BY_CURRENCY = {
    "NOK": (ReferenceMethod.KID_MOD10, ReferenceMethod.KID_MOD11),
    "SEK": (ReferenceMethod.OCR_LENGTH_DIGIT, ReferenceMethod.OCR),
}


def reference_methods(currency: Currency | str) -> tuple[ReferenceMethod, ...]:
    """The methods an account billing in *currency* may use, its default first.

    A KID is paid through a Norwegian bank (NOK), an OCR number through
    Bankgirot (SEK); other currencies use the invoice number. *currency* is a
    :class:`~recurbill.money.Currency` or an ISO 4217 code in any case
    (``"nok"`` is NOK). A code that is no active ISO 4217 code raises
    :class:`~recurbill.errors.UnknownCurrencyError` rather than answering
    "the invoice number": no account bills in it, and every caller in
    recurbill passes an account's own currency.

    >>> tuple(method.value for method in reference_methods("SEK"))
    ('ocr_length_digit', 'ocr')
    """
    code = as_currency(currency).code
    return _BY_CURRENCY.get(code, (ReferenceMethod.INVOICE_NUMBER,))


def _method(value: object) -> ReferenceMethod:
    try:
        return ReferenceMethod(value)
    except (ValueError, TypeError):
        raise InvalidReferenceError(
            problem=f"reference method {value!r} is unknown",
            allowed="one of " + ", ".join(repr(m.value) for m in ReferenceMethod),
        ) from None


def _check_length(
    scheme: ReferenceScheme, attribute: attrs.Attribute[int | None], length: int | None
) -> None:
    if length is None:
        return
    method = scheme.method
    if method is ReferenceMethod.INVOICE_NUMBER:
        raise InvalidReferenceError(
            problem=f"length={length!r} is given for an invoice number reference",
            allowed="a fixed length only for a KID or OCR reference; leave it out "
            "(None) for the invoice number",
        )
    shortest = 3 if method is ReferenceMethod.OCR_LENGTH_DIGIT else 2
    if (
        isinstance(length, bool)
        or not isinstance(length, int)
        or not shortest <= length <= _MAX_LENGTH
    ):
        raise InvalidReferenceError(
            problem=f"length={length!r} is not a {method.label} length",
            allowed=f"a whole number from {shortest} to {_MAX_LENGTH} (the whole "
            "reference, check digit included), or None for no fixed length",
        )


@attrs.frozen(kw_only=True)
class ReferenceScheme:
    """How an account's invoice numbers become payment references.

    ``method`` is the check-digit method of the bank agreement (a
    :class:`ReferenceMethod` or its value). ``length``, when given, is the
    fixed length of the whole reference (length digit and check digit
    included): the invoice number is left-padded with zeros to fill it, and
    an invoice number too long for it raises
    :class:`~recurbill.errors.ReferenceLengthError`. A MOD11 number whose
    check digit works out to 10 gets ``-`` as its check digit, as Nets'
    KID rules say; no invoice number is skipped.

    >>> ReferenceScheme(method="ocr_length_digit", length=8).reference(42, series="F")
    '00004283'
    >>> ReferenceScheme(method="invoice_number").reference(42, series="F")
    'F-000042'
    """

    method: ReferenceMethod = attrs.field(converter=_method)
    length: int | None = attrs.field(default=None, validator=_check_length)

    @classmethod
    def default_for(cls, currency: Currency | str) -> ReferenceScheme:
        """What an account in *currency* uses unless told otherwise: a MOD10
        KID for NOK, an OCR with length digit for SEK, otherwise the invoice
        number; none with a fixed length. An unknown currency raises
        :class:`~recurbill.errors.UnknownCurrencyError`
        (see :func:`reference_methods`).

        >>> ReferenceScheme.default_for("NOK")
        ReferenceScheme(method=<ReferenceMethod.KID_MOD10: 'kid_mod10'>, length=None)
        """
        return cls(method=reference_methods(currency)[0])

    def reference(self, number: int, *, series: str) -> str:
        """The payment reference of invoice *number* of *series*.

        The series is used only by the invoice number method
        (``INV-000042``); a KID or OCR holds the number alone.
        """
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise InvalidReferenceError(
                problem=f"invoice number {number!r} is not a whole number >= 0",
                allowed="give the invoice number as an int, e.g. 42",
            )
        method = self.method
        if method is ReferenceMethod.INVOICE_NUMBER:
            return f"{series}-{number:06d}"
        digits = str(number)
        length_digit = method is ReferenceMethod.OCR_LENGTH_DIGIT
        if self.length is not None:
            room = self.length - (2 if length_digit else 1)
            if len(digits) > room:
                raise ReferenceLengthError(
                    number=number,
                    length=self.length,
                    scheme=method.label,
                    largest=10**room - 1,
                )
            digits = digits.zfill(room)
        if method is ReferenceMethod.KID_MOD10:
            return kid_mod10(digits)
        if method is ReferenceMethod.KID_MOD11:
            return kid_mod11(digits)
        return ocr(digits, length_digit=length_digit)

"""Where customers pay an account's invoices, and the seller's VAT number.

A :class:`PayeeAccount` is one account to pay to, in the form its country
uses, each checked by its check digit:

* ``no_account``: a Norwegian bank account number, 11 digits whose last is
  the MOD11 check digit (weights 2, 3, …, 7 from the right; as a KID's);
  shown ``1234 56 78903``.
* ``bankgiro``: a Swedish Bankgiro number, 7 or 8 digits ending in a Luhn
  check digit (as an OCR number's); shown ``505-1057`` or ``5050-1055``.
* ``plusgiro``: a Swedish Plusgiro number, 2 to 8 digits ending in a Luhn
  check digit; shown ``28 65 43-4``.
* ``iban``: an IBAN (ISO 13616): country code, two check digits that make
  the whole number 1 modulo 97, and the national account, 15 to 34
  characters; with an optional BIC (8 or 11 characters). Shown in groups of
  four: ``IS14 0159 2600 7654 5510 7303 39``.

Numbers may be given with the spaces, dots and hyphens people write them
with; they are kept as digits (and letters for an IBAN) only:

>>> PayeeAccount(kind="no_account", number="1234.56.78903").number
'12345678903'
>>> PayeeAccount(kind="bankgiro", number="5050-1055").display
'5050-1055'
"""

from __future__ import annotations

import enum
import string
from collections.abc import Callable

import attrs

from recurbill.errors import InvalidPayeeError
from recurbill.references import kid_mod11, ocr

__all__ = ["VAT_NUMBER_LENGTHS", "PayeeAccount", "PayeeKind", "check_vat_number"]

_SEPARATORS = str.maketrans("", "", " .-\u00a0")
_ALPHANUMERIC = frozenset(string.ascii_uppercase + string.digits)

# IBAN lengths of the Nordic countries; others: 15 to 34 characters.
_IBAN_LENGTHS = {"NO": 15, "SE": 24, "IS": 26, "DK": 18, "FI": 18, "FO": 18, "GL": 18}

VAT_NUMBER_LENGTHS = (4, 40)
"""The shortest and longest seller VAT or organisation number allowed."""


class PayeeKind(str, enum.Enum):
    """The kind of account customers pay to."""

    NO_ACCOUNT = "no_account"
    BANKGIRO = "bankgiro"
    PLUSGIRO = "plusgiro"
    IBAN = "iban"


def _kind(value: object) -> PayeeKind:
    try:
        return PayeeKind(value)
    except (ValueError, TypeError):
        raise InvalidPayeeError(
            problem=f"payee account kind {value!r} is unknown",
            allowed="one of " + ", ".join(repr(k.value) for k in PayeeKind),
        ) from None


def _compact(value: object) -> object:
    """*value* without the separators people write numbers with, upper case."""
    if isinstance(value, str):
        return value.translate(_SEPARATORS).upper()
    return value


def _bic(value: object) -> object:
    return None if value is None else _compact(value)


@attrs.frozen(kw_only=True)
class PayeeAccount:
    """An account customers pay to: its kind, number and (IBAN only) BIC.

    A number that is not of its kind, or fails its check digit, raises
    :class:`~recurbill.errors.InvalidPayeeError` saying what is allowed.

    >>> PayeeAccount(kind="iban", number="is14 0159 2600 7654 5510 7303 39").display
    'IS14 0159 2600 7654 5510 7303 39'
    """

    kind: PayeeKind = attrs.field(converter=_kind)
    number: str = attrs.field(converter=_compact)
    bic: str | None = attrs.field(default=None, converter=_bic)

    def __attrs_post_init__(self) -> None:
        _CHECKS[self.kind](self.number)
        if self.bic is not None:
            _check_bic(self.bic, self.kind)

    @property
    def display(self) -> str:
        """The number as people write it (grouped, with its separators)."""
        return _DISPLAY[self.kind](self.number)


def _digits(number: object, kind: str, lengths: range, example: str) -> str:
    shortest, longest = lengths.start, lengths.stop - 1
    if (
        not isinstance(number, str)
        or not number.isascii()
        or not number.isdigit()
        or len(number) not in lengths
    ):
        count = f"{shortest}" if shortest == longest else f"{shortest} to {longest}"
        raise InvalidPayeeError(
            problem=f"{kind} {number!r} is not a {kind}",
            allowed=f"a {kind} has {count} digits, e.g. {example!r} "
            "(spaces, dots and hyphens are ignored)",
        )
    return number


def _check_digit(number: str, kind: str, expected: str, method: str) -> None:
    if number[-1] != expected:
        raise InvalidPayeeError(
            problem=f"{kind} {number!r} fails its {method} check digit",
            allowed=f"the last digit of {number[:-1]}… must be {expected}: "
            "check the number for a typing error",
        )


def _check_no_account(number: object) -> None:
    kind = "Norwegian account number"
    digits = _digits(number, kind, range(11, 12), "1234 56 78903")
    expected = kid_mod11(digits[:-1])[-1]
    if expected == "-":  # remainder 10: no account number has this body
        raise InvalidPayeeError(
            problem=f"{kind} {digits!r} cannot be valid: its first ten digits "
            "give MOD11 remainder 10",
            allowed="a Norwegian account number whose MOD11 check digit is 0-9: "
            "check the number for a typing error",
        )
    _check_digit(digits, kind, expected, "MOD11")


def _check_giro(kind: str, lengths: range, example: str) -> Callable[[object], None]:
    """The check of a Swedish giro number: digits ending in a Luhn check digit."""

    def check(number: object) -> None:
        digits = _digits(number, kind, lengths, example)
        _check_digit(digits, kind, ocr(digits[:-1])[-1], "Luhn")

    return check


def _check_iban(number: object) -> None:
    length = _IBAN_LENGTHS.get(number[:2]) if isinstance(number, str) else None
    if (
        not isinstance(number, str)
        or not set(number) <= _ALPHANUMERIC
        or not number[:2].isalpha()
        or not number[2:4].isdigit()
        or not (len(number) == length if length else 15 <= len(number) <= 34)
    ):
        size = f"{length}" if length else "15 to 34"
        raise InvalidPayeeError(
            problem=f"IBAN {number!r} is not an IBAN",
            allowed=f"an IBAN is a country code, two check digits and the national "
            f"account number, {size} letters and digits in all, e.g. "
            "'NO93 8601 1117 947' (spaces are ignored)",
        )
    moved = number[4:] + number[:4]
    if int("".join(str(int(char, 36)) for char in moved)) % 97 != 1:
        raise InvalidPayeeError(
            problem=f"IBAN {number!r} fails its check digits",
            allowed="an IBAN whose check digits (the 3rd and 4th characters) "
            "make it 1 modulo 97 (ISO 13616): check it for a typing error",
        )


def _check_bic(bic: object, kind: PayeeKind) -> None:
    if kind is not PayeeKind.IBAN:
        raise InvalidPayeeError(
            problem=f"a BIC is given for a {kind.value} account",
            allowed="a BIC only with an IBAN; leave it out (None) otherwise",
        )
    if (
        not isinstance(bic, str)
        or len(bic) not in (8, 11)
        or not set(bic) <= _ALPHANUMERIC
        or not bic[:6].isalpha()
    ):
        raise InvalidPayeeError(
            problem=f"BIC {bic!r} is not a BIC",
            allowed="a BIC has 8 or 11 letters and digits, the first six letters "
            "(bank and country), e.g. 'DNBANOKK' or 'DNBANOKKXXX'",
        )


_CHECKS = {
    PayeeKind.NO_ACCOUNT: _check_no_account,
    PayeeKind.BANKGIRO: _check_giro("Bankgiro number", range(7, 9), "5050-1055"),
    PayeeKind.PLUSGIRO: _check_giro("Plusgiro number", range(2, 9), "28 65 43-4"),
    PayeeKind.IBAN: _check_iban,
}


def _pairs(digits: str) -> str:
    """*digits* in pairs from the right: ``286543`` -> ``28 65 43``."""
    head = len(digits) % 2
    groups = [digits[:head]] if head else []
    groups += [digits[i : i + 2] for i in range(head, len(digits), 2)]
    return " ".join(groups)


_DISPLAY = {
    PayeeKind.NO_ACCOUNT: lambda n: f"{n[:4]} {n[4:6]} {n[6:]}",
    PayeeKind.BANKGIRO: lambda n: f"{n[:-4]}-{n[-4:]}",
    PayeeKind.PLUSGIRO: lambda n: f"{_pairs(n[:-1])}-{n[-1]}".lstrip(),
    PayeeKind.IBAN: lambda n: " ".join(n[i : i + 4] for i in range(0, len(n), 4)),
}


def check_vat_number(value: object) -> str:
    """*value*, the seller's VAT or organisation number, with its spaces
    collapsed; or :class:`~recurbill.errors.InvalidPayeeError`.

    Checked lightly, as each country writes its own: one line of 4 to 40
    characters holding at least one digit, e.g. ``NO 999 999 999 MVA``
    (Norway: the organisation number, with MVA when VAT-registered),
    ``SE556677889901`` (Sweden) or ``IS 12345`` (Iceland).

    >>> check_vat_number("  NO 999  999 999 MVA ")
    'NO 999 999 999 MVA'
    >>> check_vat_number("NO\xa0999\xa0999\xa0999\xa0MVA")  # pasted, no-break spaces
    'NO 999 999 999 MVA'
    """
    shortest, longest = VAT_NUMBER_LENGTHS
    raw = value.strip() if isinstance(value, str) else ""
    text = " ".join(raw.split())
    if (
        # one line (no line breaks or tabs); a no-break space is a space
        not raw.replace("\xa0", " ").isprintable()
        or not shortest <= len(text) <= longest
        or not any(char.isdigit() for char in text)
    ):
        raise InvalidPayeeError(
            problem=f"VAT number {value!r} is not a VAT or organisation number",
            allowed=f"one line of {shortest} to {longest} characters with digits, "
            "e.g. 'NO 999 999 999 MVA' or 'SE556677889901'",
        )
    return text

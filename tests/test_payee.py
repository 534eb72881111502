"""Payee accounts and VAT numbers: each kind's numbers checked by their check
digits, and an account taking, keeping and refusing them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from recurbill.billing import Billing
from recurbill.errors import (
    InvalidInputError,
    InvalidPayeeError,
    InvalidRecordError,
    NotFoundError,
)
from recurbill.payee import PayeeAccount, PayeeKind, check_vat_number
from recurbill.payments.memory import InMemoryGateway
from recurbill.storage.memory import InMemoryStorage

# Published or bank-issued examples, as people write them, and as shown.
GOOD = [
    ("no_account", "8601 11 17947", "86011117947", "8601 11 17947"),
    ("no_account", "1234.56.78903", "12345678903", "1234 56 78903"),
    ("bankgiro", "5050-1055", "50501055", "5050-1055"),
    ("bankgiro", "505-1057", "5051057", "505-1057"),
    ("plusgiro", "28 65 43-4", "2865434", "28 65 43-4"),
    ("plusgiro", "4 10 03-5", "410035", "4 10 03-5"),
    ("plusgiro", "1-8", "18", "1-8"),
    ("iban", "NO93 8601 1117 947", "NO9386011117947", "NO93 8601 1117 947"),
    (
        "iban",
        "se45 5000 0000 0583 9825 7466",
        "SE4550000000058398257466",
        "SE45 5000 0000 0583 9825 7466",
    ),
    (
        "iban",
        "IS14 0159 2600 7654 5510 7303 39",
        "IS140159260076545510730339",
        "IS14 0159 2600 7654 5510 7303 39",
    ),
    (
        "iban",
        "DE89 3704 0044 0532 0130 00",
        "DE89370400440532013000",
        "DE89 3704 0044 0532 0130 00",
    ),
]


@pytest.mark.parametrize(("kind", "given_as", "number", "shown"), GOOD)
def test_a_valid_number_is_kept_compact_and_shown_as_people_write_it(
    kind: str, given_as: str, number: str, shown: str
) -> None:
    payee = PayeeAccount(kind=kind, number=given_as)
    assert payee.kind is PayeeKind(kind)
    assert payee.number == number
    assert payee.display == shown
    assert PayeeAccount(kind=kind, number=shown) == payee


@pytest.mark.parametrize(
    ("kind", "number", "message"),
    [
        ("no_account", "8601 11 17948", "fails its MOD11 check digit"),
        ("no_account", "1234 56 78900", "the last digit of 1234567890… must be 3"),
        ("no_account", "1234 56 00050", "give MOD11 remainder 10"),
        ("no_account", "8601 11 1794", "has 11 digits"),
        ("no_account", "8601 11 179477", "has 11 digits"),
        ("no_account", "86O1 11 17947", "has 11 digits"),
        ("bankgiro", "5050-1056", "fails its Luhn check digit"),
        ("bankgiro", "505-105", "has 7 to 8 digits"),
        ("bankgiro", "50501-0555", "has 7 to 8 digits"),
        ("plusgiro", "28 65 43-5", "fails its Luhn check digit"),
        ("plusgiro", "8", "has 2 to 8 digits"),
        ("iban", "NO94 8601 1117 947", "fails its check digits"),
        ("iban", "NO93 8601 1117 9470", "15 letters and digits"),
        ("iban", "SE45 5000 0000 0583 9825 746", "24 letters and digits"),
        ("iban", "XX12 3456", "15 to 34 letters and digits"),
        ("iban", "9393 8601 1117 947", "a country code"),
        ("iban", "NO9X 8601 1117 947", "two check digits"),
        ("iban", "NO93 8601 1117 94!", "not an IBAN"),
    ],
)
def test_a_bad_number_is_refused_saying_what_is_allowed(
    kind: str, number: str, message: str
) -> None:
    with pytest.raises(InvalidPayeeError, match=message):
        PayeeAccount(kind=kind, number=number)


def test_an_unknown_kind_or_a_number_that_is_not_text_is_refused() -> None:
    with pytest.raises(InvalidPayeeError, match="kind 'kontonummer' is unknown"):
        PayeeAccount(kind="kontonummer", number="86011117947")
    with pytest.raises(InvalidPayeeError, match="one of 'no_account', 'bankgiro'"):
        PayeeAccount(kind=None, number="86011117947")
    for kind in PayeeKind:
        with pytest.raises(InvalidPayeeError):
            PayeeAccount(kind=kind, number=86011117947)  # type: ignore[arg-type]


def test_a_bic_goes_with_an_iban_only_and_must_be_a_bic() -> None:
    payee = PayeeAccount(kind="iban", number="NO9386011117947", bic="dnba nokk")
    assert payee.bic == "DNBANOKK"
    long = PayeeAccount(kind="iban", number="NO9386011117947", bic="DNBANOKKXXX")
    assert long.bic == "DNBANOKKXXX"
    with pytest.raises(InvalidPayeeError, match="a BIC only with an IBAN"):
        PayeeAccount(kind="no_account", number="86011117947", bic="DNBANOKK")
    for bic in ("DNBANOK", "DNBANOKKXX", "DNB1NOKK", "DNBANOKK-XX", ""):
        with pytest.raises(InvalidPayeeError, match="8 or 11 letters and digits"):
            PayeeAccount(kind="iban", number="NO9386011117947", bic=bic)


_VALID = {kind: number for kind, _, number, _ in GOOD}


@given(
    kind=st.sampled_from(sorted(_VALID)),
    position=st.integers(min_value=0, max_value=33),
    shift=st.integers(min_value=1, max_value=9),
)
def test_a_number_with_one_digit_mistyped_is_refused(
    kind: str, position: int, shift: int
) -> None:
    """Each kind's check catches every single wrong digit (MOD11, Luhn and
    mod-97 all do)."""
    number = _VALID[kind]
    digits = [i for i, char in enumerate(number) if char.isdigit()]
    at = digits[position % len(digits)]
    typo = str((int(number[at]) + shift) % 10)
    with pytest.raises(InvalidPayeeError):
        PayeeAccount(kind=kind, number=number[:at] + typo + number[at + 1 :])


@pytest.mark.parametrize(
    ("given_as", "kept"),
    [
        ("NO 999 999 999 MVA", "NO 999 999 999 MVA"),
        ("  999  999 999   MVA ", "999 999 999 MVA"),
        ("SE556677889901", "SE556677889901"),
        ("IS 12345", "IS 12345"),
        ("5566778899", "5566778899"),
        ("NO\xa0999\xa0999\xa0999\xa0MVA", "NO 999 999 999 MVA"),  # pasted
    ],
)
def test_a_vat_number_is_kept_with_its_spaces_collapsed(
    given_as: str, kept: str
) -> None:
    assert check_vat_number(given_as) == kept


@pytest.mark.parametrize(
    "value",
    ["", "   ", "MVA", "NO1", "NO 999 999 999\nMVA", "SE" + "1" * 39, None, 999999999],
)
def test_a_vat_number_that_is_not_one_is_refused(value: object) -> None:
    with pytest.raises(
        InvalidPayeeError, match="one line of 4 to 40 characters with digits"
    ):
        check_vat_number(value)


# -- on an account ---------------------------------------------------------------

OSLO = PayeeAccount(kind="no_account", number="8601 11 17947")


def _billing() -> tuple[Billing, InMemoryStorage]:
    storage = InMemoryStorage()
    return Billing(storage=storage, gateway=InMemoryGateway()), storage


def _create(billing: Billing, **changes: object) -> object:
    fields: dict[str, object] = {
        "name": "Fjord Fysio AS",
        "currency": "NOK",
        "summary_email": "post@fjordfysio.no",
        "account_id": "fjord",
    }
    return billing.create_account(**{**fields, **changes})  # type: ignore[arg-type]


def test_create_account_takes_and_stores_a_payee_account_and_vat_number() -> None:
    billing, storage = _billing()
    account = _create(billing, payee_account=OSLO, vat_number=" NO 999 999 999 MVA")
    with storage.transaction() as tx:
        stored = tx.get_account("fjord")
    assert stored == account
    assert stored.payee_account == OSLO
    assert stored.vat_number == "NO 999 999 999 MVA"


def test_an_account_has_neither_unless_given() -> None:
    billing, _ = _billing()
    account = billing.create_account(
        name="Fjord Fysio AS", currency="NOK", summary_email="post@fjordfysio.no"
    )
    assert account.payee_account is None
    assert account.vat_number is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"payee_account": "8601 11 17947"}, "is not a PayeeAccount"),
        ({"vat_number": "MVA"}, "is not a VAT or organisation number"),
    ],
)
def test_create_account_refuses_bad_ones_and_stores_nothing(
    changes: dict[str, object], message: str
) -> None:
    billing, storage = _billing()
    with pytest.raises(InvalidPayeeError, match=message) as raised:
        _create(billing, **changes)
    assert isinstance(raised.value, InvalidRecordError)
    with storage.transaction() as tx, pytest.raises(NotFoundError):
        tx.get_account("fjord")


def test_change_account_sets_changes_and_keeps_them() -> None:
    billing, storage = _billing()
    _create(billing)
    first = billing.change_account("fjord", payee_account=OSLO)
    assert (first.payee_account, first.vat_number) == (OSLO, None)
    iban = PayeeAccount(kind="iban", number="NO9386011117947", bic="DNBANOKK")
    second = billing.change_account("fjord", payee_account=iban, vat_number="999999999")
    kept = billing.change_account("fjord", name="Fjord Fysio og Trening AS")
    with storage.transaction() as tx:
        assert tx.get_account("fjord") == kept
    assert (second.payee_account, second.vat_number) == (iban, "999999999")
    assert (kept.payee_account, kept.vat_number) == (iban, "999999999")


def test_change_account_refuses_a_bad_one_and_changes_nothing() -> None:
    billing, storage = _billing()
    before = _create(billing, payee_account=OSLO, vat_number="999999999")
    with pytest.raises(InvalidPayeeError, match="is not a VAT or organisation"):
        billing.change_account("fjord", name="Renamed AS", vat_number="x")
    with pytest.raises(InvalidPayeeError, match="is not a PayeeAccount"):
        billing.change_account("fjord", payee_account=12345678903)  # type: ignore[arg-type]
    with storage.transaction() as tx:
        assert tx.get_account("fjord") == before


def test_change_account_clears_them_when_asked_and_only_then() -> None:
    billing, storage = _billing()
    _create(billing, payee_account=OSLO, vat_number="999999999")
    without_vat = billing.change_account("fjord", clear=["vat_number"])
    assert (without_vat.payee_account, without_vat.vat_number) == (OSLO, None)
    neither = billing.change_account("fjord", clear=("payee_account",))
    assert (neither.payee_account, neither.vat_number) == (None, None)
    with storage.transaction() as tx:
        assert tx.get_account("fjord") == neither


REMOVABLE = "out of payee_account, vat_number"


@pytest.mark.parametrize(
    ("changes", "problem", "allowed"),
    [
        ({"clear": "vat_number"}, "clear='vat_number' is not a list", REMOVABLE),
        ({"clear": 3}, "clear=3 is not a list of setting names", REMOVABLE),
        ({"clear": b"vat_number"}, "clear=b'vat_number' is not a list", REMOVABLE),
        (  # a form's {name: checked}: its keys are not the settings to clear
            {"clear": {"vat_number": False}},
            "clear={'vat_number': False} is not a list",
            REMOVABLE,
        ),
        ({"clear": ["name"]}, "clear names 'name', which cannot be", REMOVABLE),
        (
            {"clear": ["vat_number"], "vat_number": "999999999"},
            "vat_number is both given and cleared",
            "give a new vat_number or clear it, not both",
        ),
    ],
)
def test_change_account_refuses_a_bad_clear_and_changes_nothing(
    changes: dict[str, object], problem: str, allowed: str
) -> None:
    billing, storage = _billing()
    before = _create(billing, payee_account=OSLO, vat_number="999999999")
    with pytest.raises(InvalidInputError, match=problem) as raised:
        billing.change_account("fjord", name="Renamed AS", **changes)  # type: ignore[arg-type]
    assert allowed in str(raised.value)
    with storage.transaction() as tx:
        assert tx.get_account("fjord") == before

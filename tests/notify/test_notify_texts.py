"""The message texts: every locale has every key with the same placeholders."""

from __future__ import annotations

import string

import pytest

from recurbill.notify.render import resolve_locale
from recurbill.notify.texts import EN_GB, TEXTS


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@pytest.mark.parametrize("locale", sorted(TEXTS))
def test_every_locale_has_every_key(locale: str) -> None:
    assert set(TEXTS[locale]) == set(EN_GB)


@pytest.mark.parametrize("locale", sorted(TEXTS))
def test_every_text_has_the_same_placeholders(locale: str) -> None:
    for key, english in EN_GB.items():
        assert placeholders(TEXTS[locale][key]) == placeholders(english), key


@pytest.mark.parametrize("locale", sorted(TEXTS))
def test_no_text_is_blank_or_left_in_english(locale: str) -> None:
    for key, text in TEXTS[locale].items():
        assert text.strip(), key
        if locale != "en_GB" and len(EN_GB[key]) > 12:
            assert text != EN_GB[key], f"{locale} {key} is untranslated"


@pytest.mark.parametrize(
    ("given", "chosen"),
    [
        ("nb_NO", "nb_NO"),
        ("nb", "nb_NO"),
        ("nn", "nb_NO"),
        ("nn_NO", "nb_NO"),
        ("no", "nb_NO"),
        ("nb-NO", "nb_NO"),
        ("sv_SE", "sv_SE"),
        ("sv_FI", "sv_SE"),
        ("sv", "sv_SE"),
        ("is_IS", "is_IS"),
        ("is", "is_IS"),
        ("en_GB", "en_GB"),
        ("en_US", "en_GB"),
        ("de_DE", "en_GB"),
        ("fi_FI", "en_GB"),
        ("xx_YY", "en_GB"),
        ("", "en_GB"),
        ("not a locale!", "en_GB"),
    ],
)
def test_resolve_locale(given: str, chosen: str) -> None:
    assert resolve_locale(given) == chosen


def test_each_language_uses_its_own_invoice_words() -> None:
    assert TEXTS["nb_NO"]["invoice.due_date"] == "Forfallsdato"
    assert TEXTS["nb_NO"]["invoice.reference.kid"] == "KID"
    assert TEXTS["nb_NO"]["invoice.amount_due"] == "Beløp å betale"
    assert TEXTS["sv_SE"]["invoice.due_date"] == "Förfallodatum"
    assert TEXTS["sv_SE"]["invoice.amount_due"] == "Att betala"
    assert TEXTS["is_IS"]["invoice.due_date"] == "Gjalddagi"
    assert TEXTS["is_IS"]["invoice.amount_due"] == "Til greiðslu"

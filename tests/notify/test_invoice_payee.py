"""The invoice e-mail says where to pay and shows the seller's VAT number, in
every language, when the account has them; and nothing of them when not."""

from __future__ import annotations

import re
from datetime import date

import pytest
from render_fixtures import CURRENCY, account, customer, invoice

from recurbill.notify.message import Message
from recurbill.notify.render import render_invoice
from recurbill.payee import PayeeAccount

NO_ACCOUNT = PayeeAccount(kind="no_account", number="86011117947")
BANKGIRO = PayeeAccount(kind="bankgiro", number="5050-1055")
PLUSGIRO = PayeeAccount(kind="plusgiro", number="2865434")
IBAN_IS = PayeeAccount(kind="iban", number="IS140159260076545510730339", bic="NBIIISRE")
IBAN_NO = PayeeAccount(kind="iban", number="NO9386011117947")


def _render(locale: str, currency: str, **account_fields: object) -> Message:
    return render_invoice(
        account(locale, currency=currency, **account_fields),
        customer(locale),
        invoice(currency),
    )


def _field(message: Message, label: str, value: str) -> None:
    """*label* and *value* are one row of the fields block, text and HTML."""
    assert re.search(rf"^{re.escape(label)}:\s+{re.escape(value)}$", message.text, re.M)
    assert message.html is not None
    row = f'<th style="text-align:left">{label}</th><td>{value}</td>'
    assert row in message.html


def _said(message: Message, sentence: str) -> None:
    """*sentence* is in both parts, however its line wraps and spaces fall."""
    assert message.html is not None
    for part in (message.text, message.html):
        assert sentence in " ".join(part.split())


@pytest.mark.parametrize(
    ("locale", "payee", "rows", "sentence"),
    [
        (
            "nb_NO",
            NO_ACCOUNT,
            [("Kontonummer", "8601 11 17947")],
            "Vennligst betal 2 349,00 kr til konto 8601 11 17947 innen "
            "19. mars 2026. Husk å bruke KID 1234567897 når du betaler.",
        ),
        (
            "sv_SE",
            BANKGIRO,
            [("Bankgiro", "5050-1055")],
            "Vänligen betala 2 349,00 kr till bankgiro 5050-1055 senast "
            "19 mars 2026. Ange OCR-numret 1234567897 när du betalar.",
        ),
        (
            "sv_SE",
            PLUSGIRO,
            [("Plusgiro", "28 65 43-4")],
            "Vänligen betala 2 349,00 kr till plusgiro 28 65 43-4 senast 19 mars 2026.",
        ),
        (
            "is_IS",
            IBAN_IS,
            [("IBAN", "IS14 0159 2600 7654 5510 7303 39"), ("BIC", "NBIIISRE")],
            "Vinsamlegast greiddu 2.349 kr. inn á IBAN-reikning "
            "IS14 0159 2600 7654 5510 7303 39 í síðasta lagi 19. mars 2026.",
        ),
        (
            "en_GB",
            IBAN_NO,
            [("IBAN", "NO93 8601 1117 947")],
            "Please pay £2,349.00 to IBAN NO93 8601 1117 947 by 19 March 2026. "
            "Use the payment reference 1234567897 when you pay.",
        ),
        (
            "en_GB",
            NO_ACCOUNT,
            [("Account number", "8601 11 17947")],
            "Please pay £2,349.00 to account 8601 11 17947 by 19 March 2026.",
        ),
    ],
)
def test_the_invoice_says_where_to_pay_in_the_readers_language(
    locale: str, payee: PayeeAccount, rows: list[tuple[str, str]], sentence: str
) -> None:
    message = _render(locale, CURRENCY[locale], payee_account=payee)
    for label, value in rows:
        _field(message, label, value)
    _said(message, sentence)


@pytest.mark.parametrize(
    ("locale", "label"),
    [
        ("nb_NO", "Org.nr."),
        ("sv_SE", "Org.nr/momsreg.nr"),
        ("is_IS", "Kennitala/VSK-nr."),
        ("en_GB", "VAT/Org. no."),
    ],
)
def test_the_invoice_shows_the_sellers_vat_number(locale: str, label: str) -> None:
    message = _render(locale, CURRENCY[locale], vat_number="NO 999 999 999 MVA")
    _field(message, label, "NO 999 999 999 MVA")


def test_the_vat_number_is_escaped_in_html() -> None:
    message = _render("nb_NO", "NOK", vat_number="<b>999 999 999</b> & MVA")
    assert re.search(r"^Org\.nr\.:\s+<b>999 999 999</b> & MVA$", message.text, re.M)
    assert message.html is not None
    assert "<td>&lt;b&gt;999 999 999&lt;/b&gt; &amp; MVA</td>" in message.html
    assert "<b>" not in message.html


@pytest.mark.parametrize(
    ("locale", "sentence"),
    [
        (
            "nb_NO",
            "Vennligst betal 2 349,00 kr til konto 8601 11 17947 snarest; "
            "fakturaen forfalt til betaling 19. mars 2026.",
        ),
        (
            "sv_SE",
            "Vänligen betala 2 349,00 kr till konto 8601 11 17947 snarast; "
            "fakturan förföll till betalning den 19 mars 2026.",
        ),
        (
            "is_IS",
            "Vinsamlegast greiddu 2.349 kr. inn á reikning 8601 11 17947 sem "
            "fyrst; gjalddagi reikningsins var 19. mars 2026.",
        ),
        (
            "en_GB",
            "Please pay £2,349.00 to account 8601 11 17947 now; the invoice was "
            "due on 19 March 2026.",
        ),
    ],
)
def test_an_overdue_invoice_asks_to_pay_now_to_the_account(
    locale: str, sentence: str
) -> None:
    message = render_invoice(
        account(locale, payee_account=NO_ACCOUNT),
        customer(locale),
        invoice(CURRENCY[locale]),
        on=date(2026, 3, 20),
    )
    _said(message, sentence)


_LABELS = (
    "Kontonummer", "Bankgiro", "Plusgiro", "IBAN", "BIC", "Org.nr",
    "Bankareikningur", "Kennitala", "Account number", "VAT/Org",
)  # fmt: skip


@pytest.mark.parametrize(
    ("locale", "sentence"),
    [
        ("nb_NO", "Vennligst betal 2 349,00 kr innen 19. mars 2026."),
        ("sv_SE", "Vänligen betala 2 349,00 kr senast 19 mars 2026."),
        ("is_IS", "Vinsamlegast greiddu 2.349 kr. í síðasta lagi 19. mars 2026."),
        ("en_GB", "Please pay £2,349.00 by 19 March 2026."),
    ],
)
def test_without_them_the_invoice_shows_neither(locale: str, sentence: str) -> None:
    message = _render(locale, CURRENCY[locale])
    assert message.html is not None
    for label in _LABELS:
        assert label not in message.text
        assert label not in message.html
    _said(message, sentence)

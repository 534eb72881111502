"""Rendering: the right words, amounts and dates per locale, escaped HTML."""

from __future__ import annotations

import html
import re
import textwrap
import unicodedata
from datetime import date, datetime, timezone
from decimal import Decimal, localcontext
from html.parser import HTMLParser
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from render_fixtures import CURRENCY, account, customer, invoice, money, receipt, report
from smtp_servers import Server

from recurbill.errors import InvalidInputError, InvalidRecordError
from recurbill.invoice import AllowanceCharge, InvoiceLine, compute_totals
from recurbill.money import Money, format_money
from recurbill.notify.message import Message
from recurbill.notify.render import (
    _NARROW,
    _WIDTH,
    SUMMARY_ROWS,
    _e,
    _width,
    _wrap,
    notification_for,
    render_invoice,
    render_payment_failed,
    render_payment_needs_action,
    render_receipt,
    render_summary,
)
from recurbill.notify.smtp import SmtpNotifier
from recurbill.notify.texts import TEXTS
from recurbill.records import (
    ChargeLine,
    Customer,
    FailedLine,
    Invoice,
    NoChargeReason,
    PaymentStatus,
    RunReport,
    UnchargedLine,
)

NBSP = "\xa0"


def all_messages(locale: str) -> list[Message]:
    cur = CURRENCY[locale]
    acc, cus = account(locale), customer(locale)
    return [
        render_summary(acc, report(cur)),
        render_invoice(acc, cus, invoice(cur)),
        render_receipt(acc, cus, receipt(cur)),
        render_payment_needs_action(
            acc, cus, ["INV-000041"], money("10", cur), "https://pay.example/c?a=1&b=2"
        ),
        render_payment_needs_action(acc, cus, ["INV-000041"], money("10", cur), None),
        render_payment_failed(acc, cus, ["INV-1", "INV-2"], money("10", cur), None),
    ]


def test_summary_amounts_are_formatted_per_locale() -> None:
    nb = render_summary(account("nb_NO"), report("NOK"))
    assert f"1{NBSP}234,50{NBSP}kr" in nb.text
    assert f"14{NBSP}624,50{NBSP}kr" in nb.text  # the total issued
    assert nb.recipient == "post@bakeriet.no"
    assert nb.subject == "Daglig oppsummering for Bakeriet Ærlig AS, 5. mars 2026"
    icelandic = render_summary(account("is_IS"), report("ISK"))
    assert f"1.235{NBSP}kr." in icelandic.text  # ISK has no decimals
    assert f"14.625{NBSP}kr." in icelandic.text
    english = render_summary(account("en_GB"), report("GBP"))
    assert "£1,234.50" in english.text


def test_summary_totals_do_not_depend_on_the_callers_decimal_context() -> None:
    exact = render_summary(account("nb_NO"), report("NOK")).text
    with localcontext(prec=4):
        rounded = render_summary(account("nb_NO"), report("NOK")).text
    assert rounded == exact
    assert f"14{NBSP}624,50{NBSP}kr" in rounded  # 1.462E+4 at 4 digits


def test_rates_and_quantities_do_not_depend_on_the_callers_decimal_context() -> None:
    line = InvoiceLine(
        description="Kurs",
        quantity="1.23456",
        unit_price="100",
        vat_rate="12.3456",
    )
    totals = compute_totals([line], currency="NOK")
    with localcontext(prec=3):
        text = render_invoice(
            account("nb_NO"),
            customer(),
            invoice(
                lines=(line,),
                net_total=totals.tax_exclusive,
                vat_total=totals.vat_total,
                total=totals.amount_due,
            ),
        ).text
    assert "12,3456" in text
    assert "1,23456" in text


def test_summary_lists_every_part_of_the_run() -> None:
    message = render_summary(account("nb_NO"), report("NOK"))
    text = " ".join(message.text.replace(NBSP, " ").split())  # cells may wrap
    for expected in (
        "Utstedte fakturaer (3)",
        "INV-000043",
        "Þórður Guðmundsson",
        "Avvist (ikke dekning)",
        "Kunne ikke utstedes (1)",
        "Hoppet over under pause (1)",
        "4. mars 2026",
        "Gjentakende fakturaer som er avsluttet (1)",
        "tpl_3",
    ):
        assert expected in text
    assert "Venter på bekreftelse fra kunden (1)" in message.html


_OUTGROWN = FailedLine(
    template_id="tpl_7",
    customer_name="Per Ødegård",
    description="Husleie kontor",
    problem="invoice number 100 does not fit the account's 3-character KID "
    "(MOD10) reference; that length holds invoice numbers up to 99",
    error="ReferenceLengthError",
)


@pytest.mark.parametrize("locale", sorted(TEXTS))
def test_summary_says_an_outgrown_reference_needs_a_new_scheme(locale: str) -> None:
    """Templates failing because the numbers outgrew the reference length need
    no correction: the account's scheme must change, and the summary says so
    (and still asks to correct templates failing on their own)."""
    t = TEXTS[locale]
    small = report(CURRENCY[locale])
    only = render_summary(account(locale), attrs.evolve(small, failed=(_OUTGROWN,)))
    both = render_summary(
        account(locale), attrs.evolve(small, failed=(*small.failed, _OUTGROWN))
    )

    def said(message: Message) -> str:
        return " ".join(message.text.replace(NBSP, " ").split())

    assert " ".join(t["summary.failed_reference_note"].split()) in said(only)
    assert " ".join(t["summary.problem.reference_length"].split()) in said(only)
    assert " ".join(t["summary.failed_note"].split()) not in said(only)
    for key in ("summary.failed_note", "summary.failed_reference_note"):
        assert " ".join(t[key].split()) in said(both)


@pytest.mark.parametrize(
    ("locale", "heading", "now"),
    [
        ("nb_NO", "Ikke trukket fra kort (1)", "(eller snarest, om den er passert)"),
        ("sv_SE", "Inte dragna från kort (1)", "(eller snarast, om den har passerat)"),
        ("is_IS", "Ekki skuldfært á kort (1)", "(eða sem fyrst, ef hann er liðinn)"),
        ("en_GB", "Not charged to a card (1)", "(or now, if that has passed)"),
    ],
)
def test_summary_of_invoices_not_charged_allows_for_a_due_date_passed(
    locale: str, heading: str, now: str
) -> None:
    """A retry that ends after the due date e-mails the invoice to pay now,
    not by its due date: the note under the table says so."""
    line = UnchargedLine(
        invoice_number="INV-000044",
        customer_name="Ingrid Berg",
        amount=money("2", CURRENCY[locale]),
        reason=NoChargeReason.BELOW_MINIMUM,
        retry=True,
    )
    small = attrs.evolve(report(CURRENCY[locale]), uncharged=(line,))
    text = render_summary(account(locale), small).text
    assert heading in text
    assert now in " ".join(text.split())


def _long_report(extra: int) -> RunReport:
    """The fixture's run with every list repeated to SUMMARY_ROWS + *extra* lines."""
    small = report("NOK")
    size = SUMMARY_ROWS + extra

    def grown(lines: tuple[Any, ...], field: str) -> tuple[Any, ...]:
        return tuple(
            attrs.evolve(lines[n % len(lines)], **{field: f"X-{n:06d}"})
            for n in range(size)
        )

    return attrs.evolve(
        small,
        issued=grown(small.issued, "invoice_number"),
        charges=grown(small.charges, "invoice_number"),
        skipped=grown(small.skipped, "template_id"),
        ended=grown(small.ended, "template_id"),
    )


@pytest.mark.parametrize("extra", [0, 1, 7000])
def test_summary_tables_list_at_most_summary_rows_lines(extra: int) -> None:
    long = _long_report(extra)
    message = render_summary(account("en_GB"), long)
    listed = re.findall(r"X-\d{6}", message.text)
    assert len(listed) == 4 * SUMMARY_ROWS  # the first lines of each table
    assert set(listed) == {f"X-{n:06d}" for n in range(SUMMARY_ROWS)}
    more = f"… and {extra} more, not listed here."
    assert message.text.count(more) == (4 if extra else 0)
    assert html.escape(more) in message.html or not extra
    size = SUMMARY_ROWS + extra
    assert f"Invoices issued ({size})" in message.text
    total = sum((line.total.amount for line in long.issued), Decimal(0))
    # the total counts every line, listed or not
    assert format_money(Money(total, "NOK"), "en_GB") in message.text
    assert len(message.text) + len(message.html) < 500_000


@pytest.mark.parametrize("locale", sorted(TEXTS))
def test_summary_says_how_many_lines_it_left_out_in_every_language(
    locale: str,
) -> None:
    text = render_summary(account(locale), _long_report(3)).text
    assert text.count(TEXTS[locale]["summary.more"].format(count=3)) == 4


def test_summary_date_is_the_accounts_local_day() -> None:
    late = RunReport(
        account_id="acme", as_of=datetime(2026, 3, 5, 23, 30, tzinfo=timezone.utc)
    )
    assert "6. mars 2026" in render_summary(account("nb_NO"), late).subject
    assert "5 March 2026" in render_summary(account("en_GB"), late).subject


def test_empty_summary_says_nothing_happened() -> None:
    empty = RunReport(
        account_id="acme", as_of=datetime(2026, 3, 5, tzinfo=timezone.utc)
    )
    text = render_summary(account("sv_SE"), empty).text
    assert "Inget att rapportera" in text
    assert "Utställda" not in text


def test_summary_of_another_account_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="belongs to account"):
        render_summary(account("nb_NO", id="other"), report("NOK"))


@pytest.mark.parametrize(
    ("locale", "words"),
    [
        (
            "nb_NO",
            ["Faktura INV-000041", "Forfallsdato", "19. mars 2026", "KID", "mva.",
             "Beløp å betale", f"2{NBSP}349,00{NBSP}kr", "Mva. 25"],
        ),
        (
            "sv_SE",
            ["Faktura INV-000041", "Förfallodatum", "19 mars 2026", "OCR-nummer",
             "moms", "Att betala", f"2{NBSP}349,00{NBSP}kr"],
        ),
        (
            "is_IS",
            ["Reikningur INV-000041", "Gjalddagi", "19. mars 2026", "VSK",
             "Til greiðslu", f"2.349{NBSP}kr."],
        ),
        (
            "en_GB",
            ["Invoice INV-000041", "Due date", "19 March 2026", "VAT", "Amount due",
             "£2,349.00"],
        ),
    ],
)  # fmt: skip
def test_invoice_reads_like_an_invoice(locale: str, words: list[str]) -> None:
    message = render_invoice(
        account(locale), customer(locale), invoice(CURRENCY[locale])
    )
    for word in words:
        assert word in message.subject + "\n" + message.text, word
    assert "1234567897" in message.text
    assert message.recipient == "kari@example.no"
    assert message.headers["Content-Language"] == locale[:2]


@pytest.mark.parametrize(
    ("currency", "locale", "label", "sentence"),
    [
        ("NOK", "nb_NO", "KID:", "Husk å bruke KID 1234567897 når du betaler."),
        ("NOK", "sv_SE", "KID-nummer:", "Ange KID-numret 1234567897 när du"),
        ("NOK", "en_GB", "KID number:", "Use the KID number 1234567897 when you"),
        ("SEK", "nb_NO", "OCR-referanse:", "Oppgi OCR-referansen 1234567897 når"),
        ("SEK", "sv_SE", "OCR-nummer:", "Ange OCR-numret 1234567897 när du"),
        ("GBP", "nb_NO", "Betalingsreferanse:", "Oppgi referansen 1234567897 når"),
        ("ISK", "sv_SE", "Betalningsreferens:", "Ange referensen 1234567897 när du"),
        ("ISK", "is_IS", "Tilvísun:", "Notaðu tilvísunina 1234567897 þegar þú"),
        ("NOK", "is_IS", "KID-númer:", "Notaðu KID-númerið 1234567897 þegar þú"),
    ],
)
def test_the_reference_is_named_by_what_it_is_in_the_readers_language(
    currency: str, locale: str, label: str, sentence: str
) -> None:
    message = render_invoice(
        account(currency=currency), customer(locale), invoice(currency)
    )
    flat = " ".join(message.text.split())
    assert label in flat
    assert sentence in flat


def test_invoice_shows_vat_per_rate_and_escapes_html() -> None:
    message = render_invoice(account(), customer(), invoice())
    assert f"Mva. 25{NBSP}% av 1{NBSP}600,00{NBSP}kr" in message.text
    assert f"400,00{NBSP}kr" in message.text
    assert "Bok: «Ærlig brød»" in message.text
    assert message.html is not None
    assert "Bok: «Ærlig brød»" in message.html


def test_invoice_for_card_customers_asks_for_payment_too() -> None:
    """The invoice e-mail goes out only when no card charge follows (no card,
    an amount the card cannot take): it never promises one."""
    auto = customer("sv_SE", collection_method="charge_automatically")
    text = render_invoice(account("sv_SE"), auto, invoice("SEK")).text
    assert "Vänligen betala" in text
    assert "kort" not in text


def test_paid_invoice_has_nothing_due() -> None:
    paid = invoice(paid=Money("2349.00", "NOK"), status="paid")
    text = render_invoice(account(), customer(), paid).text
    assert "Fakturaen er betalt" in text
    assert re.search(r"Allerede betalt eller kreditert\s+-2\xa0349,00\xa0kr", text)
    assert re.search(r"Beløp å betale\s+0,00\xa0kr", text)


@pytest.mark.parametrize("locale", sorted(CURRENCY))
@pytest.mark.parametrize("on", [date(2026, 3, 5), date(2026, 3, 19)])
def test_invoice_written_by_its_due_date_reads_as_it_always_did(
    locale: str, on: date
) -> None:
    """Written on its issue date or its due date (19 March), the e-mail is
    the one rendered without a day: pay by the due date."""
    acc, cus, bill = account(locale), customer(locale), invoice(CURRENCY[locale])
    assert render_invoice(acc, cus, bill, on=on) == render_invoice(acc, cus, bill)


@pytest.mark.parametrize(
    ("locale", "pay_now", "pay_by"),
    [
        ("nb_NO", f"Vennligst betal 2{NBSP}349,00{NBSP}kr snarest; fakturaen "
         "forfalt til betaling 19. mars 2026.", "innen 19. mars 2026"),
        ("sv_SE", f"Vänligen betala 2{NBSP}349,00{NBSP}kr snarast; fakturan "
         "förföll till betalning den 19 mars 2026.", "senast 19 mars 2026"),
        ("is_IS", f"Vinsamlegast greiddu 2.349{NBSP}kr. sem fyrst; gjalddagi "
         "reikningsins var 19. mars 2026.", "í síðasta lagi 19. mars 2026"),
        ("en_GB", "Please pay £2,349.00 now; the invoice was due on 19 March "
         "2026.", "by 19 March 2026"),
    ],
)  # fmt: skip
def test_invoice_written_after_its_due_date_asks_for_payment_now(
    locale: str, pay_now: str, pay_by: str
) -> None:
    """The due date stays as issued, in its field; the request is to pay now."""
    acc, cus, bill = account(locale), customer(locale), invoice(CURRENCY[locale])
    message = render_invoice(acc, cus, bill, on=date(2026, 3, 20))
    text = re.sub("[ \n]+", " ", message.text)  # paragraphs wrap at spaces
    assert pay_now in text
    assert pay_by not in text
    assert html.escape(pay_now, quote=False) in (message.html or "")
    normal = render_invoice(acc, cus, bill).text
    fields = normal.split("\n\n")[2]  # number, dates and reference
    assert fields in message.text


def test_paid_invoice_written_after_its_due_date_has_nothing_due() -> None:
    paid = invoice(paid=Money("2349.00", "NOK"), status="paid")
    text = render_invoice(account(), customer(), paid, on=date(2026, 4, 1)).text
    assert "Fakturaen er betalt" in text
    assert "snarest" not in text


@pytest.mark.parametrize(
    "on", [datetime(2026, 3, 20, tzinfo=timezone.utc), "2026-03-20", 20]
)
def test_invoice_written_on_something_not_a_day_is_refused(on: object) -> None:
    with pytest.raises(InvalidInputError, match=r"on .* is not a date"):
        render_invoice(account(), customer(), invoice(), on=on)  # type: ignore[arg-type]


NOT_CHARGED = {
    "nb_NO": (
        "Vennligst betal",
        {
            "below_minimum": "Beløpet å betale er lavere enn det minste beløpet "
            "vi kan trekke fra et kort, så kortet ditt er ikke belastet.",
            "above_maximum": "Beløpet å betale er høyere enn det største beløpet "
            "vi kan trekke fra et kort, så kortet ditt er ikke belastet.",
            "not_increment": "Beløpet å betale kan ikke trekkes fra et kort, så "
            "kortet ditt er ikke belastet.",
        },
    ),
    "sv_SE": (
        "Vänligen betala",
        {
            "below_minimum": "Beloppet som ska betalas är lägre än det minsta "
            "belopp vi kan dra från ett kort, så ditt kort har inte debiterats.",
            "above_maximum": "Beloppet som ska betalas är högre än det högsta "
            "belopp vi kan dra från ett kort, så ditt kort har inte debiterats.",
            "not_increment": "Beloppet som ska betalas kan inte dras från ett "
            "kort, så ditt kort har inte debiterats.",
        },
    ),
    "is_IS": (
        "Vinsamlegast greiddu",
        {
            "below_minimum": "Upphæðin til greiðslu er lægri en lægsta upphæð sem "
            "hægt er að greiða með korti og því hefur kortið þitt ekki verið "
            "skuldfært.",
            "above_maximum": "Upphæðin til greiðslu er hærri en hæsta upphæð sem "
            "hægt er að greiða með korti og því hefur kortið þitt ekki verið "
            "skuldfært.",
            "not_increment": "Ekki er hægt að greiða þessa upphæð með korti og "
            "því hefur kortið þitt ekki verið skuldfært.",
        },
    ),
    "en_GB": (
        "Please pay",
        {
            "below_minimum": "The amount left to pay is less than the smallest "
            "amount we can charge to a card, so your card has not been charged.",
            "above_maximum": "The amount left to pay is more than the largest "
            "amount we can charge to a card, so your card has not been charged.",
            "not_increment": "The amount left to pay cannot be charged to a "
            "card, so your card has not been charged.",
        },
    ),
}
"""Per locale: how the request to pay starts, and the sentence before it
saying why the card was not charged, per card limit."""


def _flat(text: str) -> str:
    return re.sub("[ \n]+", " ", text)  # paragraphs wrap at spaces


def _card_customer(locale: str = "nb_NO") -> Customer:
    return customer(locale, collection_method="charge_automatically")


@pytest.mark.parametrize("reason", ["below_minimum", "above_maximum", "not_increment"])
@pytest.mark.parametrize("locale", sorted(NOT_CHARGED))
def test_invoice_says_why_the_card_was_not_charged(locale: str, reason: str) -> None:
    """The sentence comes first in the request to pay, in text and HTML; the
    rest of the e-mail is the plain invoice e-mail."""
    request, why = NOT_CHARGED[locale][0], NOT_CHARGED[locale][1][reason]
    acc, cus, bill = account(locale), _card_customer(locale), invoice(CURRENCY[locale])
    message = render_invoice(acc, cus, bill, not_charged=NoChargeReason(reason))
    plain = render_invoice(acc, cus, bill)
    assert _flat(message.text) == _flat(plain.text).replace(
        request, f"{why} {request}", 1
    )
    assert _flat(message.text).count(why) == 1
    assert html.escape(f"{why} {request}", quote=False) in (message.html or "")
    assert max(map(len, message.text.split("\n"))) <= _WIDTH
    assert message.subject == plain.subject
    assert render_invoice(acc, cus, bill, not_charged=reason) == message  # by value


@pytest.mark.parametrize("locale", sorted(NOT_CHARGED))
def test_invoice_past_due_says_why_then_asks_for_payment_now(locale: str) -> None:
    request, why = NOT_CHARGED[locale][0], NOT_CHARGED[locale][1]["below_minimum"]
    acc, cus, bill = account(locale), _card_customer(locale), invoice(CURRENCY[locale])
    late = render_invoice(acc, cus, bill, on=date(2026, 3, 20))
    message = render_invoice(
        acc, cus, bill, on=date(2026, 3, 20), not_charged=NoChargeReason.BELOW_MINIMUM
    )
    assert _flat(message.text) == _flat(late.text).replace(
        request, f"{why} {request}", 1
    )


@pytest.mark.parametrize(
    "reason",
    [None, NoChargeReason.SEND_INVOICE, NoChargeReason.NO_CARD, "nothing_due"],
)
@pytest.mark.parametrize("collection", ["send_invoice", "charge_automatically"])
def test_invoice_not_charged_for_other_reasons_reads_as_it_always_did(
    reason: NoChargeReason | str | None, collection: str
) -> None:
    acc, bill = account(), invoice()
    cus = customer(collection_method=collection)
    message = render_invoice(acc, cus, bill, not_charged=reason)  # type: ignore[arg-type]
    assert message == render_invoice(acc, cus, bill)


def test_paid_invoice_the_card_could_not_take_has_nothing_more_to_say() -> None:
    paid = invoice(paid=Money("2349.00", "NOK"), status="paid")
    acc, cus = account(), _card_customer()
    message = render_invoice(acc, cus, paid, not_charged=NoChargeReason.BELOW_MINIMUM)
    assert message == render_invoice(acc, cus, paid)
    assert "Fakturaen er betalt" in message.text


@pytest.mark.parametrize("reason", ["declined", "BELOW_MINIMUM", 3, b"no_card", True])
def test_invoice_not_charged_for_no_known_reason_is_refused(reason: object) -> None:
    with pytest.raises(InvalidInputError, match=r"not_charged .* is not a reason") as e:
        render_invoice(account(), _card_customer(), invoice(), not_charged=reason)  # type: ignore[arg-type]
    assert "'below_minimum'" in str(e.value)  # what is allowed


@pytest.mark.parametrize("reason", ["below_minimum", "above_maximum", "not_increment"])
def test_a_card_limit_for_a_customer_paying_by_invoice_is_refused(reason: str) -> None:
    """Such a customer has no card charged: the e-mail must not say otherwise."""
    with pytest.raises(InvalidInputError, match="not charged automatically"):
        render_invoice(account(), customer(), invoice(), not_charged=reason)  # type: ignore[arg-type]


def test_invoice_of_another_customer_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="belongs to customer"):
        render_invoice(account(), customer(id="cus_2"), invoice())


def test_mass_payment_receipt_lists_each_invoice_and_the_credit() -> None:
    message = render_receipt(account(), customer(), receipt())
    text = message.text
    assert message.subject == "Kvittering R-000007 fra Bakeriet Ærlig AS"
    assert re.search(r"INV-000041\s+1\xa0234,50\xa0kr", text)
    assert re.search(r"INV-000042\s+500,00\xa0kr", text)
    assert re.search(r"Til gode\s+100,00\xa0kr", text)
    assert re.search(r"Totalt betalt\s+1\xa0834,50\xa0kr", text)
    assert "Betalte fakturaer" in text
    assert "Visa som slutter på 4242" in text
    assert "6. mars 2026" in text  # 23:30 UTC is the next day in Oslo


def test_a_receipt_shows_its_paid_at_not_its_issued_at() -> None:
    """Only the payment date changes: the number and the rest are as issued."""
    issued = receipt()
    charged = datetime(2026, 3, 2, 23, 15, tzinfo=timezone.utc)  # 3 March in Oslo
    plain = render_receipt(account(), customer(), issued).text.splitlines()
    dated = render_receipt(account(), customer(), receipt(paid_at=charged))
    changed = [
        (a, b) for a, b in zip(plain, dated.text.splitlines(), strict=True) if a != b
    ]
    label = TEXTS["nb_NO"]["receipt.date"]
    assert [(a.split(":")[0], b.split(":")[0]) for a, b in changed] == [(label,) * 2]
    assert changed[0][1].endswith(" 3. mars 2026")
    assert "3. mars 2026" in dated.html


@pytest.mark.parametrize(
    ("paid_at", "match"),
    [
        (datetime(2026, 3, 6, 0, 0, tzinfo=timezone.utc), "after receipt"),
        (datetime(2026, 3, 5, 12, 0), "naive datetime"),
        ("2026-03-05", "not a datetime"),
        (None, "not a datetime"),
    ],
)
def test_a_receipt_paid_after_it_was_issued_or_without_a_zone_is_refused(
    paid_at: object, match: str
) -> None:
    with pytest.raises(InvalidRecordError, match=match):
        receipt(paid_at=paid_at)


def test_single_receipt_without_credit() -> None:
    one = receipt(
        "ISK",
        items=receipt("ISK").items[:1],
        amount=money("1234.50", "ISK"),
        credit=Money(0, "ISK"),
    )
    text = render_receipt(account("is_IS"), customer("is_IS"), one).text
    assert "Greiddur reikningur" in text
    assert f"Takk fyrir greiðsluna að upphæð 1.235{NBSP}kr.\n" in text  # not "kr.."
    assert "Inneign" not in text
    assert f"1.235{NBSP}kr." in text


def test_needs_action_links_and_escapes_the_url() -> None:
    url = "https://pay.example/confirm?a=1&b=<2>"
    message = render_payment_needs_action(
        account(),
        customer("en_GB"),
        ["INV-000041", "INV-000042"],
        money("10", "NOK"),
        url,
    )
    assert f"Confirm the payment here: {url}" in message.text
    assert "Invoices:" in message.text
    assert message.html is not None
    assert 'href="https://pay.example/confirm?a=1&amp;b=&lt;2&gt;"' in message.html


def test_needs_action_without_url_points_to_the_overview() -> None:
    message = render_payment_needs_action(
        account(), customer("sv_FI"), ["INV-000041"], money("10", "EUR"), None
    )
    assert "betalningsöversikt hos Bakeriet Ærlig AS" in message.text
    assert f"10,00{NBSP}€" in message.text  # Swedish words, Finnish region


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "ftp://x.example", "https://a b"]
)
def test_needs_action_refuses_a_url_that_is_not_a_web_address(url: str) -> None:
    with pytest.raises(InvalidInputError, match="action_url"):
        render_payment_needs_action(
            account(), customer(), ["INV-1"], money("10", "NOK"), url
        )


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("insufficient_funds", "Årsak: ikke dekning på kontoen"),
        ("expired_card", "Årsak: kortet er utløpt"),
        ("card_velocity_exceeded", "Årsak: kortets beløpsgrense er nådd"),
        ("stolen_card", "Årsak: banken avviste betalingen"),
        (None, "Årsak: banken avviste betalingen"),
        ("gateway_error", "Årsak: kortet kunne ikke belastes"),  # no bank saw it
    ],
)
def test_payment_failed_explains_safe_decline_codes(
    code: str | None, reason: str
) -> None:
    text = render_payment_failed(
        account(), customer(), ["INV-000041"], money("10", "NOK"), code
    ).text
    assert reason in text
    assert "stolen" not in text
    assert "Fakturaen er fortsatt ubetalt" in text


def test_payment_failed_for_several_invoices_uses_the_plural() -> None:
    text = render_payment_failed(
        account(), customer("is_IS"), ["INV-1", "INV-2"], money("10", "ISK"), None
    ).text
    assert "Reikningar:" in text
    assert "Reikningarnir eru enn ógreiddir" in text


@pytest.mark.parametrize(
    "numbers", ["INV-000041", [], [""], [41]], ids=["str", "empty", "blank", "int"]
)
def test_invoice_numbers_must_be_a_list_of_numbers(numbers: object) -> None:
    with pytest.raises(InvalidInputError, match="invoice_numbers"):
        render_payment_failed(
            account(),
            customer(),
            numbers,  # type: ignore[arg-type]
            money("1", "NOK"),
            None,
        )


def test_unknown_locale_falls_back_to_english() -> None:
    text = render_invoice(account(), customer("de_DE"), invoice()).text
    assert "Here is your invoice INV-000041" in text
    assert "19 March 2026" in text  # English dates too, not German ones


@pytest.mark.parametrize("locale", sorted(CURRENCY))
def test_html_is_escaped_and_self_contained(locale: str) -> None:
    evil = "<script>alert('x')</script> & Co"
    acc = account(locale, name=evil)
    cus = customer(locale, name=evil)
    hostile = [
        render_invoice(acc, cus, invoice(CURRENCY[locale])),
        render_summary(acc, report(CURRENCY[locale])),
    ]
    for message in [*all_messages(locale), *hostile]:
        assert message.html is not None
        assert "<script" not in message.html
        assert not re.search(
            r"\b(src|srcset|background)=|<img|<link|@import|url\(", message.html
        )
        assert message.headers["Auto-Submitted"] == "auto-generated"
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; Co" in (
        render_invoice(acc, cus, invoice(CURRENCY[locale])).html or ""
    )


@pytest.mark.parametrize("locale", sorted(CURRENCY))
def test_plain_text_lines_stay_readable(locale: str) -> None:
    for message in all_messages(locale):
        assert "<" not in message.text.replace("<2>", "")
        assert all(len(line) <= 100 for line in message.text.splitlines())
        assert message.text.endswith("\n")


def test_rendered_icelandic_invoice_through_real_smtp(smtp_server: Server) -> None:
    acc = account("is_IS", name="Þórður & synir ehf.")
    cus = customer("is_IS", name="Guðrún Þorsteinsdóttir", email="gudrun@example.is")
    message = render_invoice(acc, cus, invoice("ISK"))
    SmtpNotifier(
        smtp_server.host,
        smtp_server.port,
        sender="Þórður & synir <reikningar@thordur.is>",
        security="none",
        local_hostname="localhost",
    ).send(message)

    email = smtp_server.received[0].email
    assert email["Subject"] == "Reikningur INV-000041 frá Þórður & synir ehf."
    assert email["Content-Language"] == "is"
    text, html_part = email.iter_parts()
    body = text.get_content().replace("\r\n", "\n")
    assert body == message.text
    assert "Góðan dag Guðrún Þorsteinsdóttir," in body
    assert f"2.349{NBSP}kr." in body
    assert "Þórður &amp; synir ehf." in html_part.get_content()


def test_notification_for_copies_the_message() -> None:
    message = render_receipt(account(), customer(), receipt())
    note = notification_for(
        message,
        id="ntf_1",
        account_id="acme",
        kind="receipt",
        created_at=datetime(2026, 3, 5, tzinfo=timezone.utc),
    )
    assert (note.recipient, note.subject, note.text, note.html) == (
        message.recipient,
        message.subject,
        message.text,
        message.html,
    )
    assert dict(note.headers) == dict(message.headers)


ALLOWED_TAGS = {
    "html", "head", "meta", "title", "body", "p", "br", "h3", "table", "thead",
    "tbody", "tfoot", "tr", "th", "td", "a",
}  # fmt: skip


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.data: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)

    def handle_data(self, data: str) -> None:
        self.data.append(data)


names = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip())


@given(account_name=names, customer_name=names, description=names)
@settings(max_examples=60, deadline=None)
def test_any_name_is_escaped_in_html_and_kept_in_text(
    account_name: str, customer_name: str, description: str
) -> None:
    acc = account("nb_NO", name=account_name)
    cus = customer("nb_NO", name=customer_name)
    inv = invoice()
    line = attrs.evolve(inv.lines[0], description=description)
    inv = attrs.evolve(inv, lines=(line, *inv.lines[1:]))
    message = render_invoice(acc, cus, inv)
    assert message.html is not None
    parser = _Tags()
    parser.feed(message.html)
    parser.close()
    assert parser.tags <= ALLOWED_TAGS
    shown = "".join(parser.data)
    for name in (account_name, customer_name, description):
        assert name in shown
        # a long description wraps inside its table cell, beside the amounts
        assert all(word in message.text for word in name.split())


@pytest.mark.parametrize("status", list(PaymentStatus))
def test_summary_names_every_payment_status(status: PaymentStatus) -> None:
    line = ChargeLine(
        invoice_number="INV-1",
        customer_name="Kari",
        amount=money("10", "NOK"),
        status=status,
    )
    one = RunReport(
        account_id="acme",
        as_of=datetime(2026, 3, 5, tzinfo=timezone.utc),
        charges=(line,),
    )
    text = render_summary(account("nb_NO"), one).text
    assert TEXTS["nb_NO"][f"status.{status.value}"] in text


_FOOTER = re.compile(
    r'<th colspan="\d+" style="text-align:left">([^<]*) \((\d+)\)</th>'
    r'<th style="text-align:right">([^<]*)</th>'
)


@pytest.mark.parametrize("locale", sorted(TEXTS))
def test_summary_totals_every_card_payment_by_its_outcome(locale: str) -> None:
    """Each outcome a run reports has its own total, so the totals count every
    payment the heading counts (a payment still processing, or whose answer
    was lost, is in one too)."""
    cur, words = CURRENCY[locale], TEXTS[locale]
    statuses = [*PaymentStatus, PaymentStatus.PROCESSING, PaymentStatus.FAILED_UNKNOWN]
    lines = tuple(
        ChargeLine(
            invoice_number=f"INV-{i}",
            customer_name="Kari",
            amount=money(str(10 * (i + 1)), cur),
            status=status,
        )
        for i, status in enumerate(statuses)
    )
    run = RunReport(
        account_id="acme",
        as_of=datetime(2026, 3, 5, tzinfo=timezone.utc),
        charges=lines,
    )
    message = render_summary(account(locale), run)
    assert words["summary.charges"].format(count=len(lines)) in message.text
    footer = {
        label: (int(count), amount)
        for label, count, amount in _FOOTER.findall(message.html)
    }
    expected = {
        html.escape(words[f"summary.total_{status.value}"]): (
            len(chosen := [line for line in lines if line.status is status]),
            format_money(
                Money(sum(line.amount.amount for line in chosen), cur), locale
            ),
        )
        for status in PaymentStatus
    }
    assert footer == expected
    assert sum(count for count, _ in footer.values()) == len(lines)


def test_summary_totals_every_card_payment_in_the_text_too() -> None:
    run = RunReport(
        account_id="acme",
        as_of=datetime(2026, 3, 5, tzinfo=timezone.utc),
        charges=tuple(
            ChargeLine(
                invoice_number=f"INV-{i}",
                customer_name="Kari",
                amount=money("125", "NOK"),
                status=status,
            )
            for i, status in enumerate(
                ["succeeded"] * 3 + ["processing", "failed_unknown"]
            )
        ),
    )
    text = render_summary(account("nb_NO"), run).text.replace(NBSP, " ")
    assert "Kortbetalinger (5)" in text
    assert "Betalt (3)" in text
    assert "Under behandling (1)" in text
    assert "Ukjent utfall (1)" in text


def test_summary_totals_each_currency_separately() -> None:
    base = report("NOK")
    extra = attrs.evolve(
        base.issued[0], invoice_number="INV-9", total=money("5", "EUR")
    )
    mixed = attrs.evolve(base, issued=(*base.issued, extra))
    text = render_summary(account("nb_NO"), mixed).text
    assert f"14{NBSP}624,50{NBSP}kr + 5,00{NBSP}€" in text


def test_bad_time_zone_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="IANA time zone"):
        render_summary(account("nb_NO", timezone="Mars/Olympus"), report("NOK"))


def test_a_line_break_in_a_name_never_reaches_the_subject() -> None:
    message = render_invoice(account(name="Bakeriet\nÆrlig"), customer(), invoice())
    assert message.subject == "Faktura INV-000041 fra Bakeriet Ærlig"


words = st.lists(
    st.one_of(
        st.text(alphabet="ab.-æ\xa0\u2003\x1c", max_size=30),
        st.sampled_from(["", " ", "\t", "\r", "\x0c", "\u2003"]),
    ),
    max_size=40,
).map(" ".join)


@given(st.one_of(words, st.text(max_size=300)))
def test_paragraphs_wrap_as_textwrap_wraps_them(text: str) -> None:
    """Where every character takes one column; otherwise the same, measured
    in columns (a wide character takes two, a combining mark none)."""
    if any(_width(c) != 1 for c in text):
        lines = _wrap(text)
        assert " ".join(text.split()) == " ".join(" ".join(lines).split())
        for line in lines:
            assert _width(line) <= _WIDTH or len(line.split()) == 1
            assert "\t" not in line
            assert "\r" not in line
        return
    expected = []
    for line in text.split("\n"):
        wrapped = textwrap.wrap(
            line, _WIDTH, break_long_words=False, break_on_hyphens=False
        )
        expected.extend(wrapped or [""])
    assert _wrap(text) == expected


def test_the_fast_width_check_only_passes_one_column_characters() -> None:
    """Text matching ``_NARROW`` is measured by len: each of its characters
    must take one column by the full rule."""
    wrong = [
        hex(code)
        for code in range(0x2300)
        if unicodedata.category(chr(code)) != "Cn"
        and _NARROW.fullmatch(chr(code))
        and _width(chr(code) + "\U0001f389") != 3  # bypass the fast check
    ]
    assert wrong == []


@given(st.text(alphabet=st.sampled_from("a&<>\"'æ \xa0"), max_size=20) | st.text())
def test_html_escaping_is_the_standard_librarys(text: str) -> None:
    assert _e(text) == html.escape(text, quote=True)


def test_a_unit_price_shows_every_decimal_it_has() -> None:
    line = attrs.evolve(invoice().lines[0], unit_price=Decimal("0.125"))
    message = render_invoice(account(), customer(), invoice(lines=(line,)))
    assert f"0,125{NBSP}kr" in message.text


@pytest.mark.parametrize(
    ("brand", "locale", "shown"),
    [
        ("visa", "nb_NO", "Visa som slutter på 4242"),
        ("jcb", "en_GB", "JCB ending in 4242"),
        ("eftpos_au", "sv_SE", "eftpos Australia som slutar på 4242"),
        ("amex", "is_IS", "American Express sem endar á 4242"),
        ("unknown", "nb_NO", "kort som slutter på 4242"),
        ("unknown", "en_GB", "card ending in 4242"),
    ],
)
def test_the_receipt_names_the_card_brand_as_people_write_it(
    brand: str, locale: str, shown: str
) -> None:
    message = render_receipt(
        account(locale),
        customer(locale),
        receipt(CURRENCY[locale], card_brand=brand, card_last4="4242"),
    )
    assert shown in message.text


def _invoice_with(lines: tuple[InvoiceLine, ...]) -> Invoice:
    totals = compute_totals(lines, currency="NOK")
    return invoice(
        lines=lines,
        net_total=totals.tax_exclusive,
        vat_total=totals.vat_total,
        total=totals.amount_due,
    )


PER_12 = InvoiceLine(
    description="Strøm",
    quantity=132,
    unit_price="15.24",
    base_quantity=12,
    vat_rate=25,
)
DISCOUNTED = InvoiceLine(
    description="Time",
    quantity=2,
    unit_price="999",
    vat_rate=25,
    allowances=[
        AllowanceCharge(
            is_charge=False, percentage=10, base_amount="1998", reason="stamkunde"
        )
    ],
    charges=[AllowanceCharge(is_charge=True, amount="50", reason="frakt")],
)


@pytest.mark.parametrize(
    ("locale", "rows", "label"),
    [
        (
            "nb_NO",
            [
                "Strøm 132 15,24 kr pr. 12 25 % 167,64 kr",
                "Time 2 999,00 kr 25 % 1 998,00 kr",
                "Tillegg (frakt) 50,00 kr",
                "Rabatt 10 % av 1 998,00 kr -199,80 kr",  # wrapped within 72
                "(stamkunde)",
                "Sum eks. mva. 2 015,84 kr",
            ],
            "Rabatt 10 % av 1 998,00 kr (stamkunde)",
        ),
        (
            "sv_SE",
            [
                "Strøm 132 15,24 Nkr för 12 25 % 167,64 Nkr",
                "Tillägg (frakt) 50,00 Nkr",
                "Rabatt 10 % på -199,80 Nkr",
                "1 998,00 Nkr (stamkunde)",
            ],
            "Rabatt 10 % på 1 998,00 Nkr (stamkunde)",
        ),
        (
            "is_IS",
            [
                "Strøm 132 15,24 NOK fyrir 12 25% 167,64 NOK",
                "Álag (frakt) 50,00 NOK",
                "Afsláttur 10% af -199,80 NOK",
                "1.998,00 NOK (stamkunde)",
            ],
            "Afsláttur 10% af 1.998,00 NOK (stamkunde)",
        ),
        (
            "en_GB",
            [
                "Strøm 132 NOK15.24 per 12 25% NOK167.64",
                "Time 2 NOK999.00 25% NOK1,998.00",
                "Charge (frakt) NOK50.00",
                "Discount 10% of NOK1,998.00 -NOK199.80",
                "(stamkunde)",
                "Total excl. VAT NOK2,015.84",
            ],
            "Discount 10% of NOK1,998.00 (stamkunde)",
        ),
    ],
)
def test_invoice_rows_show_base_quantity_and_line_allowances(
    locale: str, rows: list[str], label: str
) -> None:
    """132 × 15,24 kr read next to 167,64 kr, and 2 × 999 next to 1 798,20:
    the price now says per how many, and each line allowance or charge has its
    row, so the amounts add up to the total without VAT. A label too long for
    its column wraps in it (the plain text keeps lines within 72 characters)."""
    message = render_invoice(
        account(locale), customer(locale), _invoice_with((PER_12, DISCOUNTED))
    )
    shown = [" ".join(row.split()) for row in message.text.split("\n")]
    for row in rows:
        assert row in shown
    assert html.escape(label) in message.html.replace("\xa0", " ")  # one cell


SUMMARY_WORDS = {
    "nb_NO": (
        "Årsak",
        "Ugyldig mva.-sats eller fritaksgrunn",
        "Avvist (ikke dekning)",
        "Detaljer (på engelsk):",
    ),
    "sv_SE": (
        "Orsak",
        "Ogiltig momssats eller undantagsskäl",
        "Nekad (otillräckligt saldo)",
        "Detaljer (på engelska):",
    ),
    "is_IS": (
        "Ástæða",
        "Ógilt VSK-þrep eða ástæða undanþágu",
        "Hafnað (ekki næg innstæða)",
        "Nánari upplýsingar (á ensku):",
    ),
    "en_GB": (
        "Problem",
        "Invalid VAT rate or exemption reason",
        "Declined (insufficient funds)",
        "Details:",
    ),
}


@pytest.mark.parametrize("locale", sorted(SUMMARY_WORDS))
def test_the_summary_says_what_went_wrong_in_the_readers_language(
    locale: str,
) -> None:
    message = render_summary(account(locale), report(CURRENCY[locale]))
    text = " ".join(message.text.split())  # cells may wrap
    column, problem, declined, details = SUMMARY_WORDS[locale]
    assert f"{column} Per Ødegård Husleie kontor {problem}" in text
    assert declined in text
    assert "insufficient_funds" not in text  # the gateway's code, explained
    # the error's own words (English) follow the table, under their label
    english = "Per Ødegård, Husleie kontor: line 1 has VAT category AE without"
    assert text.index(details) < text.index(english)
    assert "line 1" not in text[: text.index(details)]
    for part in (problem, declined):
        assert html.escape(part) in message.html


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        ("VatCategoryError", "Ugyldig mva.-sats eller fritaksgrunn"),
        ("CreditExceedsInvoiceError", "Ugyldige fakturalinjer"),  # its base class
        ("InvalidInvoiceError", "Ugyldige fakturalinjer"),
        ("CurrencyMismatchError", "Beløp i ulike valutaer"),
        ("StartTooEarlyError", "Ugyldig tidsplan"),
        ("InvalidRecordError", "Ugyldige kunde- eller kontoopplysninger"),
        ("InvalidInputError", "Ugyldige opplysninger"),
        ("InvalidSelectionError", "Ugyldige opplysninger"),
        ("SomethingElse", "Ugyldige opplysninger"),
        ("__class__", "Ugyldige opplysninger"),
        ("", "Ugyldige opplysninger"),
    ],
)
def test_a_problem_is_named_by_its_error_class(error: str, shown: str) -> None:
    (failed,) = report("NOK").failed
    run = attrs.evolve(report("NOK"), failed=(attrs.evolve(failed, error=error),))
    text = " ".join(render_summary(account("nb_NO"), run).text.split())
    assert f"Per Ødegård Husleie kontor {shown} Disse" in text


def test_a_rare_decline_code_is_shown_as_the_gateway_gives_it() -> None:
    base = report("NOK")
    charge = attrs.evolve(base.charges[1], decline_code="do_not_honor")
    run = attrs.evolve(base, charges=(charge,))
    assert "Avvist (do_not_honor)" in render_summary(account("nb_NO"), run).text


LOYALTY = AllowanceCharge(
    is_charge=False,
    percentage=10,
    base_amount="1600",
    reason="Lojalitet",
    vat_category="S",
    vat_rate=25,
)
INVOICE_FEE = AllowanceCharge(
    is_charge=True, amount="35", reason="Fakturagebyr", vat_category="S", vat_rate=25
)


def _invoice_with_document_items() -> Invoice:
    """The fixture invoice (2 × 800 at 25 %, 349 at 0 %) with 10 % off 1 600
    and an invoice fee of 35, both at 25 %."""
    base = invoice()
    totals = compute_totals(
        base.lines, currency="NOK", allowances=[LOYALTY], charges=[INVOICE_FEE]
    )
    return invoice(
        allowances=(LOYALTY,),
        charges=(INVOICE_FEE,),
        net_total=totals.tax_exclusive,
        vat_total=totals.vat_total,
        total=totals.amount_due,
    )


@pytest.mark.parametrize(
    ("locale", "rows", "labels"),
    [
        (
            "nb_NO",
            [
                "Rabatt på fakturaen, 10 % av 25 % -160,00 kr",
                "1 600,00 kr (Lojalitet)",
                "Tillegg på fakturaen 25 % 35,00 kr",
                "(Fakturagebyr)",
                "Sum eks. mva. 1 824,00 kr",
                "Mva. 25 % av 1 475,00 kr 368,75 kr",
                "Mva. 0 % av 349,00 kr 0,00 kr",
                "Beløp å betale 2 192,75 kr",
            ],
            [
                "Rabatt på fakturaen, 10 % av 1 600,00 kr (Lojalitet)",
                "Tillegg på fakturaen (Fakturagebyr)",
            ],
        ),
        (
            "sv_SE",
            [
                "Rabatt på fakturan, 10 % av 25 % -160,00 Nkr",
                "1 600,00 Nkr (Lojalitet)",
                "Tillägg på fakturan 25 % 35,00 Nkr",
                "Moms 25 % på 1 475,00 Nkr 368,75 Nkr",
                "Att betala 2 192,75 Nkr",
            ],
            [
                "Rabatt på fakturan, 10 % av 1 600,00 Nkr (Lojalitet)",
                "Tillägg på fakturan (Fakturagebyr)",
            ],
        ),
        (
            "is_IS",
            [
                "Afsláttur af reikningnum, 10% 25% -160,00 NOK",
                "af 1.600,00 NOK (Lojalitet)",
                "Álag á reikninginn 25% 35,00 NOK",
                "VSK 25% af 1.475,00 NOK 368,75 NOK",
                "Til greiðslu 2.192,75 NOK",
            ],
            [
                "Afsláttur af reikningnum, 10% af 1.600,00 NOK (Lojalitet)",
                "Álag á reikninginn (Fakturagebyr)",
            ],
        ),
        (
            "en_GB",
            [
                "Invoice discount 10% of NOK1,600.00 25% -NOK160.00",
                "(Lojalitet)",
                "Invoice charge (Fakturagebyr) 25% NOK35.00",
                "Total excl. VAT NOK1,824.00",
                "VAT 25% of NOK1,475.00 NOK368.75",
                "Amount due NOK2,192.75",
            ],
            [
                "Invoice discount 10% of NOK1,600.00 (Lojalitet)",
                "Invoice charge (Fakturagebyr)",
            ],
        ),
    ],
)
def test_invoice_rows_show_document_allowances_and_charges(
    locale: str, rows: list[str], labels: list[str]
) -> None:
    """Each allowance or charge on the whole invoice has its own row after the
    lines, with its reason, VAT rate and amount, so the amount column adds up
    to the total without VAT; the VAT per rate counts them."""
    message = render_invoice(
        account(locale, currency="NOK"),
        customer(locale),
        _invoice_with_document_items(),
    )
    shown = [" ".join(row.split()) for row in message.text.split("\n")]
    for row in rows:
        assert row in shown
    lines_end = shown.index(" ".join(rows[0].split()))
    assert lines_end > max(
        shown.index(s) for s in shown if s.startswith("Samtaletime")
    )  # after the lines, before the totals
    assert all(len(line) <= _WIDTH for line in message.text.split("\n"))
    assert message.html is not None
    cells = message.html.replace("\xa0", " ")
    for label in labels:
        assert f"<td>{html.escape(label)}</td>" in cells  # one cell each
    assert '<td style="text-align:right">25' in cells

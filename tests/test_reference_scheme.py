"""The account's payment reference scheme, through the billing service.

Every invoice (a session's, the daily run's) carries a reference made by the
account's scheme; a scheme its currency does not use is refused; an invoice
number that outgrows a fixed length is refused without issuing anything.
"""

from __future__ import annotations

from datetime import date

import pytest

from billing_helpers import World, at, line, make_world
from recurbill.errors import InvalidRecordError, ReferenceLengthError
from recurbill.records import CollectionMethod, Customer, Invoice
from recurbill.references import (
    ReferenceScheme,
    kid_mod10,
    kid_mod11,
    ocr,
    validate_kid,
    validate_ocr,
)
from recurbill.storage.memory import InMemoryStorage

_DAY = date(2027, 3, 1)


def _mailed(world: World) -> Customer:
    return world.customer("Per Olsen", card=None, method=CollectionMethod.SEND_INVOICE)


def _session(world: World, customer: Customer) -> Invoice:
    outcome = world.billing.record_session(
        world.account.id, customer.id, lines=[line()], now=at(_DAY)
    )
    return outcome.invoice


def _invoice_mails(world: World) -> list[str]:
    with world.storage.transaction() as tx:
        notes = tx.pending_notifications(limit=100)
    return [n.text for n in notes if n.kind == "invoice"]


@pytest.mark.parametrize(
    ("currency", "expected"),
    [
        ("NOK", kid_mod10("1")),
        ("SEK", ocr("1", length_digit=True)),
        ("ISK", "INV-000001"),
    ],
)
def test_without_a_scheme_an_account_keeps_its_currencys_reference(
    currency: str, expected: str
) -> None:
    world = make_world(currency=currency)
    assert world.account.reference_scheme == ReferenceScheme.default_for(currency)
    assert _session(world, _mailed(world)).payment_reference == expected


def test_a_session_invoice_carries_the_accounts_kid_and_its_mail_shows_it() -> None:
    scheme = ReferenceScheme(method="kid_mod11", length=10)
    world = make_world(reference_scheme=scheme)
    invoice = _session(world, _mailed(world))
    assert invoice.payment_reference == kid_mod11("000000001") == "0000000019"
    assert validate_kid(invoice.payment_reference)
    with world.storage.transaction() as tx:
        assert tx.get_account(world.account.id).reference_scheme == scheme
    (mail,) = _invoice_mails(world)
    assert "KID:            0000000019" in mail


def test_the_daily_run_issues_with_the_accounts_ocr_scheme() -> None:
    scheme = ReferenceScheme(method="ocr", length=12)
    world = make_world(currency="SEK", reference_scheme=scheme)
    per = _mailed(world)
    world.template(per, start=date(2027, 1, 10))
    world.billing.run(at(date(2027, 3, 10), 7))  # January, February, March
    references = sorted(i.payment_reference for i in world.storage_invoices())
    assert references == [ocr(str(n).zfill(11)) for n in (1, 2, 3)]
    for reference in references:
        assert len(reference) == 12
        assert validate_ocr(reference) == reference
    mails = _invoice_mails(world)
    assert len(mails) == 3
    for reference in references:  # the account's locale: Norwegian texts
        assert sum(f"OCR-referanse:  {reference}\n" in mail for mail in mails) == 1


@pytest.mark.parametrize(
    ("currency", "method", "allowed"),
    [
        ("SEK", "kid_mod10", "'ocr_length_digit' or 'ocr'"),
        ("SEK", "invoice_number", "'ocr_length_digit' or 'ocr'"),
        ("NOK", "ocr_length_digit", "'kid_mod10' or 'kid_mod11'"),
        ("NOK", "invoice_number", "'kid_mod10' or 'kid_mod11'"),
        ("ISK", "kid_mod11", "'invoice_number'"),
        ("EUR", "ocr", "'invoice_number'"),
    ],
)
def test_a_scheme_the_currency_does_not_use_is_refused(
    currency: str, method: str, allowed: str
) -> None:
    world = make_world()
    with pytest.raises(InvalidRecordError) as refused:
        world.billing.create_account(
            account_id="other",
            name="Other AB",
            currency=currency,
            summary_email="post@other.example",
            reference_scheme=ReferenceScheme(method=method),
        )
    message = str(refused.value)
    assert f"is not used in {currency}" in message
    assert f"an account billing in {currency} may use {allowed}" in message
    with world.storage.transaction() as tx:
        assert tx.list_account_ids() == ["fjord"]  # nothing written


def test_a_reference_scheme_must_be_a_scheme() -> None:
    storage = InMemoryStorage()
    with pytest.raises(InvalidRecordError, match="is not a ReferenceScheme"):
        make_world(storage=storage, reference_scheme="kid_mod11")  # type: ignore[arg-type]
    with storage.transaction() as tx:
        assert tx.list_account_ids() == []


def _nine_numbers_used(world: World) -> None:
    """As if invoices 1-9 were issued: the next number is 10."""
    with world.storage.transaction() as tx:
        assert tx.allocate_invoice_numbers(world.account.id, "INV", count=9) == 1
        tx.commit()


def test_a_session_whose_number_outgrew_the_length_is_refused_whole() -> None:
    world = make_world(reference_scheme=ReferenceScheme(method="kid_mod10", length=2))
    per = _mailed(world)
    _nine_numbers_used(world)
    for _ in range(2):  # the number is given back: the next try meets 10 again
        with pytest.raises(ReferenceLengthError) as refused:
            _session(world, per)
        assert refused.value.fields["number"] == 10
        assert "invoice number 10 does not fit" in str(refused.value)
        assert "2-character KID (MOD10)" in str(refused.value)
        assert world.storage_invoices() == []
        assert world.notification_kinds() == []


def test_the_daily_run_reports_a_template_whose_number_outgrew_the_length() -> None:
    world = make_world(reference_scheme=ReferenceScheme(method="kid_mod11", length=2))
    per = _mailed(world)
    tid = world.template(per, start=date(2027, 1, 10))
    _nine_numbers_used(world)
    (report,) = world.billing.run(at(date(2027, 1, 10), 7), send_summaries=False)
    assert report.issued == ()
    (failed,) = report.failed
    assert failed.template_id == tid
    assert "invoice number 10 does not fit" in failed.problem
    assert world.storage_invoices() == []
    (again,) = world.billing.run(at(date(2027, 1, 11), 7), send_summaries=False)
    assert [f.template_id for f in again.failed] == [tid]  # still due, not lost

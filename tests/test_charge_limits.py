"""Amounts no card payment can be made for are refused before anything is stored.

The gateway says its limits (``PaymentGateway.charge_limits``); the plan of a
mass payment, the mass payment itself and paying one invoice refuse an amount
outside them with a ChargeAmountError that names the amount, the limit and
what to do, instead of storing a payment the gateway is bound to refuse.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from billing_helpers import World, at, line, make_world
from recurbill.collection import RetryPolicy
from recurbill.errors import (
    ChargeAmountError,
    InvalidSelectionError,
    SelectionAmountError,
)
from recurbill.money import ISO_4217_DECIMALS, Currency, Money
from recurbill.notify.render import render_invoice
from recurbill.payments.minor_units import (
    MAX_CHARGE_UNITS,
    charge_limits,
    check_charge_amount,
    to_minor_units,
)
from recurbill.records import (
    Account,
    CollectionMethod,
    Customer,
    NoChargeReason,
    PaymentStatus,
    SettlementStatus,
)
from recurbill.views import PaymentOutcome

DAY = date(2027, 2, 1)


def _iceland(world: World) -> tuple[Account, Customer, str]:
    account = world.billing.create_account(
        account_id="reykjavik",
        name="Reykjavík Sjúkraþjálfun ehf.",
        currency="ISK",
        locale="is_IS",
        timezone="Atlantic/Reykjavik",
        summary_email="post@example.is",
    )
    jon = world.billing.add_customer(
        account.id,
        name="Jón Jónsson",
        email="jon@example.is",
        collection_method=CollectionMethod.SEND_INVOICE,
    )
    card = world.billing.save_card(account.id, jon.id, token="pm_card_visa")
    return account, jon, card.id


def _bill(world: World, account_id: str, customer_id: str, price: str, n: int) -> str:
    outcome = world.billing.record_session(
        account_id,
        customer_id,
        lines=[line(price, rate="24")],
        now=at(date(2027, 1, 1 + n)),
    )
    return outcome.invoice.id


def _nothing_stored_or_sent(world: World, account_id: str) -> None:
    with world.storage.transaction() as tx:
        assert tx.list_payments(account_id) == []
        assert tx.list_settlements(account_id) == []
    operations = [r.operation for r in world.gateway.requests]
    assert not any("charge" in operation for operation in operations)


def test_seven_invoices_above_the_maximum_are_refused_by_plan_and_payment() -> None:
    world = make_world()
    iceland, jon, card = _iceland(world)
    ids = [_bill(world, iceland.id, jon.id, "150000", n) for n in range(7)]
    calls = {
        "plan": lambda: world.billing.plan_mass_payment(iceland.id, jon.id, ids),
        "pay": lambda: world.billing.mass_pay(
            iceland.id, jon.id, ids, payment_method_id=card, now=at(DAY)
        ),
    }
    for name, call in calls.items():
        with pytest.raises(SelectionAmountError) as caught:
            call()
        error = caught.value
        assert isinstance(error, InvalidSelectionError), name
        assert isinstance(error, ChargeAmountError), name
        message = str(error)
        assert "1302000 ISK" in message  # 7 x 186,000
        assert "maximum of 999999 ISK" in message
        assert "select fewer invoices" in message
        assert error.fields["bound"] == "maximum"
        assert error.fields["limit"] == Money(999_999, "ISK")
        assert error.fields["amount"] == Money(1_302_000, "ISK")
        assert error.fields["reason"] == "amount"
        assert error.fields["invoice_ids"] == tuple(ids)
    _nothing_stored_or_sent(world, iceland.id)

    fewer = world.billing.mass_pay(
        iceland.id, jon.id, ids[:5], payment_method_id=card, now=at(DAY)
    )
    assert fewer.status is SettlementStatus.SUCCEEDED
    assert fewer.total == Money(930_000, "ISK")


def test_one_invoice_above_the_maximum_is_advised_as_pay_advises_it() -> None:
    """One selected invoice leaves nothing to deselect: pay it another way."""
    world = make_world()
    iceland, jon, card = _iceland(world)
    big = _bill(world, iceland.id, jon.id, "960000", 0)  # 1,190,400 ISK
    with pytest.raises(SelectionAmountError) as planned:
        world.billing.plan_mass_payment(iceland.id, jon.id, [big])
    with pytest.raises(ChargeAmountError) as paid:
        world.billing.pay(iceland.id, big, payment_method_id=card, now=at(DAY))
    assert "select fewer" not in str(planned.value)
    assert "pay it another way, such as a bank transfer" in str(planned.value)
    assert planned.value.fields["allowed"] == paid.value.fields["allowed"]
    _nothing_stored_or_sent(world, iceland.id)


def test_a_total_below_the_minimum_is_refused_until_more_invoices_are_selected() -> (
    None
):
    world = make_world()
    per = world.customer("Per Olsen", method=CollectionMethod.SEND_INVOICE)
    with world.storage.transaction() as tx:
        (card,) = tx.list_payment_methods(world.account.id, per.id)
    small = _bill(world, world.account.id, per.id, "2.00", 0)  # 2.48 NOK
    other = _bill(world, world.account.id, per.id, "100.00", 1)
    with pytest.raises(SelectionAmountError, match="select more invoices") as caught:
        world.billing.plan_mass_payment(world.account.id, per.id, [small])
    assert "2.48 NOK" in str(caught.value)
    assert "minimum of 3.00 NOK" in str(caught.value)
    with pytest.raises(SelectionAmountError, match=r"minimum of 3\.00 NOK"):
        world.billing.mass_pay(
            world.account.id, per.id, [small], payment_method_id=card.id, now=at(DAY)
        )
    _nothing_stored_or_sent(world, world.account.id)
    both = world.billing.plan_mass_payment(world.account.id, per.id, [small, other])
    paid = world.billing.mass_pay(
        world.account.id, per.id, [small, other], payment_method_id=card.id, now=at(DAY)
    )
    assert paid.status is SettlementStatus.SUCCEEDED
    assert paid.total == both.total == Money("126.48", "NOK")


def test_paying_one_invoice_outside_the_limits_says_a_card_cannot_pay_it() -> None:
    world = make_world()
    iceland, jon, card = _iceland(world)
    large = _bill(world, iceland.id, jon.id, "1000000", 0)  # 1,240,000 ISK
    with pytest.raises(ChargeAmountError, match="another way") as caught:
        world.billing.pay(iceland.id, large, payment_method_id=card, now=at(DAY))
    assert "1240000 ISK, cannot be paid by card" in str(caught.value)
    assert "maximum of 999999 ISK" in str(caught.value)
    assert not isinstance(caught.value, InvalidSelectionError)
    _nothing_stored_or_sent(world, iceland.id)

    per = world.customer("Per Olsen", method=CollectionMethod.SEND_INVOICE)
    with world.storage.transaction() as tx:
        (nok_card,) = tx.list_payment_methods(world.account.id, per.id)
    small = _bill(world, world.account.id, per.id, "2.00", 0)
    with pytest.raises(ChargeAmountError, match="together with other open invoices"):
        world.billing.pay(
            world.account.id, small, payment_method_id=nok_card.id, now=at(DAY)
        )
    _nothing_stored_or_sent(world, world.account.id)


def test_isk_charges_at_most_999999_kronur() -> None:
    limits = charge_limits("ISK")
    assert limits.maximum == Money(999_999, "ISK")  # not 999,999.99: whole kronur
    assert limits.minimum is None  # no minimum known in advance
    assert check_charge_amount(Money(999_999, "ISK")) == 99_999_900
    with pytest.raises(ChargeAmountError, match="maximum of 999999 ISK"):
        check_charge_amount(Money(1_000_000, "ISK"))


@pytest.mark.parametrize("code", sorted(ISO_4217_DECIMALS))
def test_the_limits_are_what_the_gateway_checks(code: str) -> None:
    limits = charge_limits(code)
    assert limits.currency == Currency(code)
    assert limits.maximum is not None
    most = 999_999_999_999 if code == "IDR" else MAX_CHARGE_UNITS  # 12 digits
    assert to_minor_units(limits.maximum) <= most
    check_charge_amount(limits.maximum)
    with pytest.raises(ChargeAmountError):
        check_charge_amount(limits.maximum + limits.increment)
    if limits.minimum is not None:
        check_charge_amount(limits.minimum)
        with pytest.raises(ChargeAmountError):
            check_charge_amount(limits.minimum - limits.increment)


def _charge_requests(world: World) -> list[object]:
    return [r for r in world.gateway.requests if r.operation == "charge"]


def _invoice_mail(world: World) -> str:
    with world.storage.transaction() as tx:
        (mail,) = [
            n for n in tx.pending_notifications(limit=100) if n.kind == "invoice"
        ]
    return mail.text


WHY = {
    "nb_NO": (
        "Beløpet å betale er lavere enn det minste beløpet vi kan trekke fra et "
        "kort, så kortet ditt er ikke belastet.",
        "Beløpet å betale er høyere enn det største beløpet vi kan trekke fra et "
        "kort, så kortet ditt er ikke belastet.",
        "Vennligst betal",
    ),
    "sv_SE": (
        "Beloppet som ska betalas är lägre än det minsta belopp vi kan dra från "
        "ett kort, så ditt kort har inte debiterats.",
        "Beloppet som ska betalas är högre än det högsta belopp vi kan dra från "
        "ett kort, så ditt kort har inte debiterats.",
        "Vänligen betala",
    ),
    "is_IS": (
        "Upphæðin til greiðslu er lægri en lægsta upphæð sem hægt er að greiða "
        "með korti og því hefur kortið þitt ekki verið skuldfært.",
        "Upphæðin til greiðslu er hærri en hæsta upphæð sem hægt er að greiða "
        "með korti og því hefur kortið þitt ekki verið skuldfært.",
        "Vinsamlegast greiddu",
    ),
    "en_GB": (
        "The amount left to pay is less than the smallest amount we can charge "
        "to a card, so your card has not been charged.",
        "The amount left to pay is more than the largest amount we can charge "
        "to a card, so your card has not been charged.",
        "Please pay",
    ),
}
"""Per locale: why a card was not charged, below the minimum and above the
maximum, and how the request to pay that follows it starts."""


def _mails_to(world: World) -> dict[str, str]:
    with world.storage.transaction() as tx:
        return {
            n.recipient: n.text
            for n in tx.pending_notifications(limit=100)
            if n.kind == "invoice"
        }


def _flat(text: str) -> str:
    return re.sub("[ \n]+", " ", text)  # paragraphs wrap at spaces


def test_a_session_below_the_minimum_is_not_charged_but_sent_as_an_invoice() -> None:
    """2.00 + 25 % VAT = 2.50 NOK, below the gateway's minimum of 3.00 NOK:
    no charge the gateway is bound to refuse, and no e-mail telling the
    customer to pay by card; the invoice says why the card was not charged
    and asks for payment with its KID."""
    world = make_world()
    kari = world.customer()  # charged automatically, with a card
    outcome = world.billing.record_session(
        world.account.id, kari.id, lines=[line("2.00")], now=at(DAY)
    )
    assert outcome.payment is None
    assert outcome.invoice.status.value == "open"
    assert world.payments() == []
    assert _charge_requests(world) == []
    text = _invoice_mail(world)
    assert f"{WHY['nb_NO'][0]} Vennligst betal 2,50\xa0kr innen" in _flat(text)
    assert f"KID {outcome.invoice.payment_reference}" in text
    assert world.notification_kinds() == ["invoice"]  # no "payment failed"


def test_the_daily_run_sends_an_invoice_the_card_cannot_take() -> None:
    world = make_world()
    kari = world.customer()
    world.template(kari, start=DAY, lines=[line("2.00")])
    (report,) = world.billing.run(at(DAY, 7))
    assert len(report.issued) == 1
    assert report.charges == ()
    assert world.payments() == []
    assert _charge_requests(world) == []
    assert "Vennligst betal 2,50\xa0kr innen" in _invoice_mail(world)


def test_an_automatic_customer_without_a_card_is_asked_to_pay_the_invoice() -> None:
    """The invoice e-mail never promises a card charge that will not come."""
    world = make_world()
    kari = world.customer(card=None)
    world.billing.record_session(world.account.id, kari.id, lines=[line()], now=at(DAY))
    text = _invoice_mail(world)
    assert "Vennligst betal 1\xa0000,00\xa0kr innen" in text
    assert "kort" not in text


def test_a_session_not_charged_says_why() -> None:
    world = make_world()
    kari = world.customer()
    small = world.billing.record_session(
        world.account.id, kari.id, lines=[line("2.00")], now=at(DAY)
    )
    assert small.payment is None
    assert small.reason is NoChargeReason.BELOW_MINIMUM
    per = world.customer("Per Hansen", card=None)
    no_card = world.billing.record_session(
        world.account.id, per.id, lines=[line()], now=at(DAY)
    )
    assert no_card.reason is NoChargeReason.NO_CARD
    charged = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(DAY)
    )
    assert charged.payment is not None
    assert charged.reason is None


def test_the_daily_run_reports_what_the_card_could_not_take() -> None:
    world = make_world()
    kari = world.customer()
    world.template(kari, start=DAY, lines=[line("2.00")])
    (report,) = world.billing.run(at(DAY, 7))
    (uncharged,) = report.uncharged
    assert uncharged.reason is NoChargeReason.BELOW_MINIMUM
    assert uncharged.amount == Money("2.50", "NOK")
    assert not uncharged.retry
    with world.storage.transaction() as tx:
        (summary,) = [
            n.text
            for n in tx.pending_notifications(limit=100)
            if n.kind == "daily_summary"
        ]
    assert "Ikke trukket fra kort (1)" in summary
    assert "Under minstebeløpet for kort" in summary


def test_a_retry_the_card_cannot_take_ends_the_retries_without_a_charge() -> None:
    """850 NOK declined, 848 paid by transfer: the 2.00 left is below the card
    minimum. The retry makes no charge and no "pay by card" e-mail: the
    invoice is e-mailed with why the card was not charged, what is left, its
    due date and KID, and the retries end (none the day after)."""
    world = make_world(retry_policy=RetryPolicy((3, 5, 7)))
    ingrid = world.customer(
        "Ingrid Berg", card="pm_card_visa_chargeDeclinedInsufficientFunds"
    )
    outcome = _declined_then_part_paid(world, ingrid)
    before = len(_charge_requests(world))
    (report,) = world.billing.run(at(DAY + timedelta(days=3), 7))
    assert report.charges == ()
    (uncharged,) = report.uncharged
    assert uncharged.retry
    assert uncharged.amount == Money("2.00", "NOK")
    assert len(_charge_requests(world)) == before  # nothing sent
    attempt = max(world.payments(), key=lambda p: p.attempt)
    assert attempt.attempt == 2
    assert attempt.status is PaymentStatus.CANCELED
    assert attempt.error_code == "below_minimum"
    kinds = world.notification_kinds()
    assert "payment_failed" not in kinds
    mails = _invoice_mails(world)
    assert len(mails) == 1
    below, _, request = WHY["nb_NO"]
    assert f"{below} {request} 2,00\xa0kr innen" in _flat(mails[0])
    assert f"KID {outcome.invoice.payment_reference}" in mails[0]
    assert "betalingsoversikten" not in mails[0]  # not "pay it by card"
    for later in (4, 5, 8, 12):  # never retried again, nothing more sent
        (report,) = world.billing.run(at(DAY + timedelta(days=later), 7))
        assert report.charges == ()
        assert report.uncharged == ()
    assert len(_charge_requests(world)) == before
    assert len(_invoice_mails(world)) == 1
    (invoice,) = world.storage_invoices()
    assert invoice.status.value == "open"


@pytest.mark.parametrize("locale", sorted(WHY))
def test_the_invoice_e_mail_says_why_the_card_was_not_charged(locale: str) -> None:
    """Customers charged automatically expect card payments: when the card
    cannot take an invoice (2.50 kr, below the 3.00 minimum; 1,125,000 kr,
    above the maximum), its e-mail says so before asking for payment, in the
    customer's language, and is otherwise the plain invoice e-mail. A
    customer who pays by invoice gets the plain one, byte for byte."""
    below, above, request = WHY[locale]
    world = make_world()
    kari, ola = world.customer("Kari Nordmann"), world.customer("Ola Berg")
    per = world.customer("Per Olsen", card=None, method=CollectionMethod.SEND_INVOICE)
    for who in (kari, ola, per):
        world.billing.change_customer(world.account.id, who.id, locale=locale)
    world.template(kari, start=DAY, lines=[line("2.00")])
    world.template(ola, start=DAY, lines=[line("900000")])
    world.template(per, start=DAY, lines=[line("2.00")])
    (report,) = world.billing.run(at(DAY, 7))
    assert [(u.customer_name, u.reason) for u in report.uncharged] == [
        ("Kari Nordmann", NoChargeReason.BELOW_MINIMUM),
        ("Ola Berg", NoChargeReason.ABOVE_MAXIMUM),
    ]
    assert _charge_requests(world) == []
    mails = _mails_to(world)
    with world.storage.transaction() as tx:
        account = tx.get_account(world.account.id)
        for who, why in ((kari, below), (ola, above), (per, None)):
            customer = tx.get_customer(account.id, who.id)
            (invoice,) = tx.list_invoices(account.id, customer_id=who.id)
            plain = render_invoice(account, customer, invoice).text
            mail = mails[customer.email]
            if why is None:
                assert mail == plain
                continue
            assert _flat(mail) == _flat(plain).replace(request, f"{why} {request}", 1)
            assert _flat(mail).count(why) == 1


def _declined_then_part_paid(world: World, customer: Customer) -> PaymentOutcome:
    """850 NOK charged to *customer*'s card on DAY and declined, 848 paid by
    transfer the day after, a card that works made the default: the retry on
    day 3 finds 2.00 left, below the card minimum. Returns the session's
    outcome."""
    outcome = world.billing.record_session(
        world.account.id, customer.id, lines=[line("680")], now=at(DAY)
    )
    assert outcome.status is PaymentStatus.DECLINED
    world.billing.record_bank_transfer(
        world.account.id,
        customer.id,
        amount=Money("848.00", "NOK"),
        now=at(DAY + timedelta(days=1)),
        reference="bank-1",
    )
    world.billing.save_card(
        world.account.id, customer.id, token="pm_card_visa", make_default=True
    )
    return outcome


def _invoice_mails(world: World) -> list[str]:
    with world.storage.transaction() as tx:
        return [
            n.text for n in tx.pending_notifications(limit=100) if n.kind == "invoice"
        ]


@pytest.mark.parametrize(
    ("locale", "due_field", "due_day", "pay_by", "pay_now"),
    [
        (
            "nb_NO",
            "Forfallsdato",
            "3. februar 2027",
            "innen",
            "Vennligst betal 2,00\xa0kr snarest; fakturaen forfalt til betaling "
            "3. februar 2027.",
        ),
        (
            "sv_SE",
            "Förfallodatum",
            "3 februari 2027",
            "senast",
            "Vänligen betala 2,00\xa0Nkr snarast; fakturan förföll till betalning "
            "den 3 februari 2027.",
        ),
        (
            "is_IS",
            "Gjalddagi",
            "3. febrúar 2027",
            "í síðasta lagi",
            "Vinsamlegast greiddu 2,00\xa0NOK sem fyrst; gjalddagi reikningsins var "
            "3. febrúar 2027.",
        ),
        (
            "en_GB",
            "Due date",
            "3 February 2027",
            "by",
            "Please pay NOK2.00 now; the invoice was due on 3 February 2027.",
        ),
    ],
)
def test_retries_ending_after_the_due_date_ask_for_payment_now(
    locale: str, due_field: str, due_day: str, pay_by: str, pay_now: str
) -> None:
    """Payment terms of 2 days: the invoice of DAY was due on 3 February, and
    its retry on 4 February ends the retries. The e-mail says why the card
    was not charged, asks for what is left now and says when it was due, in
    the customer's language; it never asks for payment by a day that has
    passed. The invoice's due date (BT-9) is not changed, and its field still
    shows it."""
    world = make_world(retry_policy=RetryPolicy((3, 5, 7)))
    world.billing.change_account(world.account.id, payment_terms_days=2)
    ingrid = world.customer(
        "Ingrid Berg", card="pm_card_visa_chargeDeclinedInsufficientFunds"
    )
    world.billing.change_customer(world.account.id, ingrid.id, locale=locale)
    outcome = _declined_then_part_paid(world, ingrid)
    assert outcome.invoice.due_date == DAY + timedelta(days=2)
    (report,) = world.billing.run(at(DAY + timedelta(days=3), 7))
    (uncharged,) = report.uncharged
    assert uncharged.retry
    (mail,) = _invoice_mails(world)
    text = re.sub("[ \n]+", " ", mail)  # paragraphs wrap at spaces
    assert f"{WHY[locale][0]} {pay_now}" in text
    assert f"{pay_by} {due_day}" not in text
    assert re.search(f"{due_field}: +{due_day}\n", mail)  # the field, as issued
    (invoice,) = world.storage_invoices()
    assert invoice.due_date == DAY + timedelta(days=2)


def test_ugx_is_written_with_two_decimals_like_isk() -> None:
    """Stripe: "to charge 5 UGX, provide an amount value of 500", divisible
    by 100."""
    assert to_minor_units(Money(5, "UGX")) == 500
    assert charge_limits("UGX").maximum == Money(999_999, "UGX")
    assert charge_limits("UGX").increment == Money(1, "UGX")


def test_idr_charges_take_twelve_digits() -> None:
    assert charge_limits("IDR").maximum == Money("9999999999.99", "IDR")
    assert check_charge_amount(Money("9999999999.99", "IDR")) == 999_999_999_999

"""A receipt's payment date is when the card was charged, as far as recurbill
knows it, not when it learned the outcome: a charge whose answer was lost, or
that was still processing, and whose success a later run found, was paid when
it was sent. The receipt itself is still numbered and issued when it is made,
and keeps that moment as its ``paid_at``, which its e-mail and the customer's
overview show.
"""

from __future__ import annotations

from datetime import date, timezone

import pytest
from babel.dates import format_date

from billing_helpers import World, at, line, make_world
from recurbill.errors import GatewayAuthenticationError
from recurbill.notify.texts import TEXTS
from recurbill.records import CollectionMethod, Customer, PaymentStatus, Receipt

SENT = date(2027, 1, 15)
RUN = at(date(2027, 1, 18), 6)


def _receipt(world: World, customer: Customer) -> tuple[Receipt, str]:
    """*customer*'s one receipt and the "payment date" its e-mail gives."""
    with world.storage.transaction() as tx:
        (receipt,) = tx.list_receipts(world.account.id, customer.id)
        mails = [n for n in tx.pending_notifications(limit=1000) if n.kind == "receipt"]
    (mail,) = [n for n in mails if receipt.number in n.subject]
    label = TEXTS["nb_NO"]["receipt.date"]
    (shown,) = [
        row.split(":", 1)[1].strip()
        for row in mail.text.splitlines()
        if row.startswith(f"{label}:")
    ]
    return receipt, shown


def _day(day: date) -> str:
    return format_date(day, "long", locale="nb_NO")


def _session(world: World, customer: Customer) -> str:
    """A session charged on :data:`SENT`; its payment's charge id."""
    outcome = world.billing.record_session(
        world.account.id, customer.id, lines=[line()], now=at(SENT, 14)
    )
    assert outcome.payment is not None
    return outcome.payment.charge_id or ""


def test_a_charge_whose_answer_was_lost_is_dated_when_it_was_sent() -> None:
    world = make_world()
    kari = world.customer()
    world.gateway.fail_next("timeout_after")
    _session(world, kari)
    (report,) = world.billing.run(RUN)
    assert [c.status for c in report.charges] == [PaymentStatus.SUCCEEDED]
    receipt, shown = _receipt(world, kari)
    assert shown == _day(SENT)
    assert receipt.issued_at == RUN  # issued when recurbill learned of it
    assert receipt.paid_at == at(SENT, 14)  # stored: when the charge was sent
    with world.storage.transaction() as tx:  # the invoice says the same moment
        (invoice,) = tx.list_invoices(world.account.id)
    assert invoice.paid_at == receipt.paid_at
    overview = world.billing.overview(world.account.id, kari.id, on=RUN.date())
    assert [r.paid_at for r in overview.receipts] == [at(SENT, 14)]


def test_a_charge_that_was_processing_is_dated_when_it_was_sent() -> None:
    world = make_world()
    kari = world.customer()
    world.gateway.process_next()
    charge_id = _session(world, kari)
    world.gateway.settle(charge_id)
    world.billing.run(RUN)
    receipt, shown = _receipt(world, kari)
    assert shown == _day(SENT)
    assert receipt.issued_at == RUN
    assert receipt.paid_at == at(SENT, 14)


def test_a_charge_the_gateway_never_saw_is_dated_when_it_is_sent_again() -> None:
    """The lost request never reached the gateway: the run makes the charge."""
    world = make_world()
    kari = world.customer()
    world.gateway.fail_next("timeout_before")
    _session(world, kari)
    world.billing.run(RUN)
    receipt, shown = _receipt(world, kari)
    assert shown == _day(RUN.date())
    assert receipt.paid_at == receipt.issued_at == RUN


def test_a_charge_a_stopped_run_left_unsent_is_dated_when_it_is_sent() -> None:
    world = make_world()
    kari = world.customer()
    world.template(kari, start=SENT)
    world.gateway.fail_next("unauthorized")
    with pytest.raises(GatewayAuthenticationError):
        world.billing.run(at(SENT, 7))
    assert [p.status for p in world.payments()] == [PaymentStatus.PENDING]
    world.billing.run(RUN)
    _, shown = _receipt(world, kari)
    assert shown == _day(RUN.date())


def test_an_authenticated_charge_is_dated_when_recurbill_learns_of_it() -> None:
    """The gateway's time of the customer's authentication is not known: a
    webhook tells at once, else the next run."""
    world = make_world()
    kari = world.customer(card="pm_card_authenticationRequired")
    charge_id = _session(world, kari)
    world.gateway.settle(charge_id)
    world.billing.run(RUN)
    _, shown = _receipt(world, kari)
    assert shown == _day(RUN.date())


def test_a_charge_answered_at_once_is_dated_that_day() -> None:
    world = make_world()
    kari = world.customer()
    _session(world, kari)
    receipt, shown = _receipt(world, kari)
    assert shown == _day(SENT)
    assert receipt.paid_at == receipt.issued_at == at(SENT, 14)


def test_a_mass_payment_whose_answer_was_lost_is_dated_when_it_was_sent() -> None:
    """Its one receipt, found by a look-up, keeps when the card was charged."""
    world = make_world()
    per = world.customer("Per Olsen", card=None, method=CollectionMethod.SEND_INVOICE)
    card = world.billing.save_card(world.account.id, per.id, token="pm_card_visa")
    invoice_ids = [
        world.billing.record_session(
            world.account.id, per.id, lines=[line()], now=at(date(2027, 1, n))
        ).invoice.id
        for n in (4, 5)
    ]
    world.gateway.fail_next("timeout_after")
    pending = world.billing.mass_pay(
        world.account.id,
        per.id,
        invoice_ids,
        payment_method_id=card.id,
        now=at(SENT, 14),
    )
    assert pending.receipt is None
    done = world.billing.confirm_mass_payment(
        world.account.id, pending.settlement.id, now=RUN
    )
    assert done.receipt is not None
    assert (done.receipt.issued_at, done.receipt.paid_at) == (RUN, at(SENT, 14))
    receipt, shown = _receipt(world, per)
    assert receipt == done.receipt
    assert shown == _day(SENT)
    paid = {i.id: i.paid_at for i in world.storage_invoices()}
    assert paid == dict.fromkeys(invoice_ids, at(SENT, 14))


def test_the_payment_date_is_the_accounts_local_day() -> None:
    """A charge sent at 00:30 in Oslo (23:30 the day before in UTC) is dated
    Oslo's day."""
    world = make_world()
    kari = world.customer()
    world.gateway.fail_next("timeout_after")
    sent = at(SENT, 0).replace(minute=30)
    assert sent.astimezone(timezone.utc).date() < sent.date()
    world.billing.record_session(world.account.id, kari.id, lines=[line()], now=sent)
    world.billing.run(RUN)
    _, shown = _receipt(world, kari)
    assert shown == _day(sent.date())

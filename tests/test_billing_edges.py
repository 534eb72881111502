"""Edge cases where money could be charged twice, lost, or a run could get stuck."""

from datetime import date, timedelta
from decimal import Decimal

import pytest

from billing_helpers import World, at, line, make_world
from recurbill.errors import InvalidInputError, InvalidSelectionError, StateError
from recurbill.invoice import InvoiceLine
from recurbill.money import Money
from recurbill.records import CollectionMethod, InvoiceStatus, PaymentStatus


def _default_card(world: World, customer_id: str) -> str:
    with world.storage.transaction() as tx:
        card = tx.get_customer(world.account.id, customer_id).default_payment_method_id
    assert card is not None
    return card


def test_a_card_with_a_payment_in_progress_cannot_be_removed_or_replaced() -> None:
    world = make_world()
    kari = world.customer(card="pm_card_authenticationRequired")
    outcome = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(date(2027, 1, 5))
    )
    card = _default_card(world, kari.id)
    with pytest.raises(StateError, match="payment in progress"):
        world.billing.replace_card(
            world.account.id, kari.id, old_method_id=card, token="pm_card_visa"
        )
    with pytest.raises(StateError, match="payment in progress"):
        world.billing.remove_card(world.account.id, kari.id, card)
    overview = world.billing.overview(world.account.id, kari.id, on=date(2027, 1, 5))
    assert [m.id for m in overview.payment_methods] == [card]  # nothing changed
    assert outcome.payment is not None
    assert outcome.payment.charge_id is not None
    world.gateway.settle(outcome.payment.charge_id, succeed=True)
    world.billing.run(at(date(2027, 1, 6), 7))
    (invoice,) = world.storage_invoices()
    assert invoice.status is InvoiceStatus.PAID
    world.billing.replace_card(
        world.account.id, kari.id, old_method_id=card, token="pm_card_visa"
    )


def test_a_retry_without_a_card_leaves_the_invoice_open_and_the_run_going() -> None:
    world = make_world()
    ingrid = world.customer(card="pm_card_visa_chargeDeclinedInsufficientFunds")
    world.template(ingrid, start=date(2027, 1, 4))
    world.billing.run(at(date(2027, 1, 4), 7))
    world.billing.remove_card(
        world.account.id, ingrid.id, _default_card(world, ingrid.id)
    )
    for day in range(1, 10):
        world.billing.run(at(date(2027, 1, 4) + timedelta(days=day), 7))
    assert len(world.payments()) == 1
    (invoice,) = world.storage_invoices()
    assert invoice.status is InvoiceStatus.OPEN


def test_a_free_session_is_issued_paid_and_a_negative_one_is_refused() -> None:
    world = make_world()
    kari = world.customer()
    free = world.billing.record_session(
        world.account.id, kari.id, lines=[line("0")], now=at(date(2027, 1, 5))
    )
    assert free.invoice.status is InvoiceStatus.PAID
    assert free.payment is None
    assert world.gateway.ledger == []
    correction = InvoiceLine(
        description="Returned", quantity=-1, unit_price="100", vat_rate=Decimal(25)
    )
    with pytest.raises(InvalidInputError, match="credit note"):
        world.billing.record_session(
            world.account.id, kari.id, lines=[correction], now=at(date(2027, 1, 5))
        )
    with pytest.raises(InvalidInputError, match="credit note"):
        world.template(kari, start=date(2027, 2, 1), lines=[correction])
    with pytest.raises(StateError, match="something to pay"):
        world.billing.pay(
            world.account.id,
            free.invoice.id,
            payment_method_id=_default_card(world, kari.id),
            now=at(date(2027, 1, 6)),
        )
    assert len(world.storage_invoices()) == 1


def test_mass_pay_asks_about_a_charge_whose_answer_was_lost_before_charging_again() -> (
    None
):
    world = make_world()
    kari = world.customer()
    world.gateway.fail_next("timeout_after")
    lost = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(date(2027, 1, 5))
    )
    assert lost.status is PaymentStatus.FAILED_UNKNOWN
    card = _default_card(world, kari.id)
    with pytest.raises(InvalidSelectionError, match=r"is paid"):
        world.billing.mass_pay(
            world.account.id,
            kari.id,
            [lost.invoice.id],
            payment_method_id=card,
            now=at(date(2027, 1, 6)),
        )
    assert len(world.gateway.ledger) == 1
    (invoice,) = world.storage_invoices()
    assert invoice.status is InvoiceStatus.PAID


def test_a_retry_never_runs_beside_a_payment_in_flight() -> None:
    world = make_world()
    ingrid = world.customer(card="pm_card_visa_chargeDeclinedInsufficientFunds")
    world.template(ingrid, start=date(2027, 1, 4))
    world.billing.run(at(date(2027, 1, 4), 7))
    good = world.billing.save_card(world.account.id, ingrid.id, token="pm_card_visa")
    (invoice,) = world.storage_invoices()
    world.gateway.fail_next("timeout_after")
    on_session = world.billing.pay(
        world.account.id,
        invoice.id,
        payment_method_id=good.id,
        now=at(date(2027, 1, 6)),
    )
    assert on_session.status is PaymentStatus.FAILED_UNKNOWN  # charged, answer lost
    world.billing.run(at(date(2027, 1, 7), 7))  # the retry day of attempt 1
    assert len(world.gateway.ledger) == 1
    (invoice,) = world.storage_invoices()
    assert invoice.status is InvoiceStatus.PAID


def test_no_retry_after_the_customer_moved_to_send_invoice() -> None:
    world = make_world()
    ingrid = world.customer(card="pm_card_visa_chargeDeclinedInsufficientFunds")
    world.template(ingrid, start=date(2027, 1, 4))
    world.billing.run(at(date(2027, 1, 4), 7))
    world.billing.set_collection_method(world.account.id, ingrid.id, "send_invoice")
    for day in range(1, 10):
        world.billing.run(at(date(2027, 1, 4) + timedelta(days=day), 7))
    assert len(world.payments()) == 1


def test_a_refunded_retry_is_not_reported_again_and_again() -> None:
    world = make_world()
    ingrid = world.customer(card="pm_card_visa_chargeDeclinedInsufficientFunds")
    world.template(ingrid, start=date(2027, 1, 4))
    world.billing.run(at(date(2027, 1, 4), 7))
    world.billing.save_card(world.account.id, ingrid.id, token="pm_card_visa")
    report = world.billing.run(at(date(2027, 1, 7), 7))[0]
    assert [c.status for c in report.charges] == [PaymentStatus.SUCCEEDED]
    paid = next(p for p in world.payments() if p.status is PaymentStatus.SUCCEEDED)
    world.billing.refund(world.account.id, paid.id, now=at(date(2027, 1, 8)))
    for day in (9, 11, 12):
        report = world.billing.run(at(date(2027, 1, day), 7))[0]
        assert report.charges == (), day
    assert len(world.gateway.ledger) == 1


def test_send_invoice_customers_are_never_retried_even_with_a_card() -> None:
    world = make_world()
    per = world.customer(
        "Per Olsen", card="pm_card_visa", method=CollectionMethod.SEND_INVOICE
    )
    world.template(per, start=date(2027, 1, 4))
    for day in range(0, 10):
        world.billing.run(at(date(2027, 1, 4) + timedelta(days=day), 7))
    assert world.payments() == []
    assert world.billing.overview(
        world.account.id, per.id, on=date(2027, 1, 14)
    ).total_open == Money("1000.00", "NOK")

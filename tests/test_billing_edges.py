"""Edge cases where money could be charged twice, lost, or a run could get stuck."""

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing_helpers import World, at, line, make_world
from recurbill.collection import Collector
from recurbill.errors import (
    InvalidInputError,
    InvalidRecordError,
    InvalidSelectionError,
    StateError,
)
from recurbill.invoice import InvoiceLine
from recurbill.money import Money
from recurbill.records import (
    CollectionMethod,
    InvoiceStatus,
    PaymentStatus,
    TemplateStatus,
)


def _default_card(world: World, customer_id: str) -> str:
    with world.storage.transaction() as tx:
        card = tx.get_customer(world.account.id, customer_id).default_payment_method_id
    assert card is not None
    return card


def test_a_card_whose_charge_has_no_answer_yet_cannot_be_removed() -> None:
    world = make_world()
    kari = world.customer()
    world.gateway.fail_next("timeout_before")
    world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(date(2027, 1, 5))
    )
    card = _default_card(world, kari.id)
    with pytest.raises(StateError, match="payment in progress"):
        world.billing.replace_card(
            world.account.id,
            kari.id,
            old_method_id=card,
            token="pm_card_visa",
            now=at(date(2027, 1, 5)),
        )
    with pytest.raises(StateError, match="payment in progress"):
        world.billing.remove_card(
            world.account.id, kari.id, card, now=at(date(2027, 1, 5))
        )
    overview = world.billing.overview(world.account.id, kari.id, on=date(2027, 1, 5))
    assert [m.id for m in overview.payment_methods] == [card]  # nothing changed
    world.billing.run(at(date(2027, 1, 6), 7))  # finishes the charge, same key
    (invoice,) = world.storage_invoices()
    assert invoice.status is InvoiceStatus.PAID
    world.billing.remove_card(world.account.id, kari.id, card, now=at(date(2027, 1, 6)))
    assert len(world.gateway.ledger) == 1


def test_replacing_a_card_cancels_its_charge_waiting_for_authentication() -> None:
    world = make_world()
    kari = world.customer(card="pm_card_authenticationRequired")
    outcome = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(date(2027, 1, 5))
    )
    assert outcome.payment is not None
    assert outcome.payment.charge_id is not None
    new = world.billing.replace_card(
        world.account.id,
        kari.id,
        old_method_id=_default_card(world, kari.id),
        token="pm_card_visa",
        now=at(date(2027, 1, 6)),
    )
    (payment,) = world.payments()
    assert payment.status is PaymentStatus.CANCELED
    found = world.gateway.retrieve_charge(charge_id=outcome.payment.charge_id)
    assert found is not None
    assert found.status.value == "canceled"  # it can no longer be completed
    paid = world.billing.pay(
        world.account.id,
        outcome.invoice.id,
        payment_method_id=new.id,
        now=at(date(2027, 1, 6)),
    )
    assert paid.status is PaymentStatus.SUCCEEDED
    assert len(world.gateway.ledger) == 1


def test_paying_with_another_card_cancels_the_charge_waiting_for_authentication() -> (
    None
):
    world = make_world()
    kari = world.customer(card="pm_card_authenticationRequired")
    outcome = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(date(2027, 1, 5))
    )
    assert outcome.payment is not None
    assert outcome.payment.charge_id is not None
    other = world.billing.save_card(
        world.account.id, kari.id, token="pm_card_visa", make_default=False
    )
    paid = world.billing.pay(
        world.account.id,
        outcome.invoice.id,
        payment_method_id=other.id,
        now=at(date(2027, 1, 6)),
    )
    assert paid.status is PaymentStatus.SUCCEEDED
    with pytest.raises(InvalidInputError):  # the old charge cannot be completed now
        world.gateway.settle(outcome.payment.charge_id, succeed=True)
    assert len(world.gateway.ledger) == 1


def test_a_retry_without_a_card_leaves_the_invoice_open_and_the_run_going() -> None:
    world = make_world()
    ingrid = world.customer(card="pm_card_visa_chargeDeclinedInsufficientFunds")
    world.template(ingrid, start=date(2027, 1, 4))
    world.billing.run(at(date(2027, 1, 4), 7))
    world.billing.remove_card(
        world.account.id,
        ingrid.id,
        _default_card(world, ingrid.id),
        now=at(date(2027, 1, 4), 12),
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


def _paid_invoice(world: World) -> tuple[str, str, str]:
    kari = world.customer()
    outcome = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(date(2027, 1, 5))
    )
    assert outcome.payment is not None
    return kari.id, outcome.invoice.id, outcome.payment.id


def test_a_refund_after_a_credit_note_takes_the_credit_back_not_money_twice() -> None:
    world = make_world()
    kari, invoice_id, payment_id = _paid_invoice(world)
    world.billing.credit_invoice(
        world.account.id,
        invoice_id,
        amount=Money("1000", "NOK"),
        reason="goodwill",
        now=at(date(2027, 1, 6)),
    )
    before = world.billing.overview(world.account.id, kari, on=date(2027, 1, 6))
    assert before.credit_balance == Money("1000.00", "NOK")
    world.billing.refund(world.account.id, payment_id, now=at(date(2027, 1, 7)))
    after = world.billing.overview(world.account.id, kari, on=date(2027, 1, 7))
    # 1000 went back to the card, so the 1000 of credit is gone too
    assert after.credit_balance == Money("0.00", "NOK")
    assert after.open == ()
    assert sum((r.amount.amount for r in world.gateway.refunds), Decimal(0)) == 1000


def test_refunding_a_payment_whose_share_became_credit_takes_that_credit_back() -> None:
    world = make_world()
    per = world.customer("Per Olsen", card=None, method=CollectionMethod.SEND_INVOICE)
    card = world.billing.save_card(world.account.id, per.id, token="pm_card_visa")
    a, b = (
        world.billing.record_session(
            world.account.id, per.id, lines=[line()], now=at(date(2027, 1, 1 + n))
        ).invoice.id
        for n in range(2)
    )
    world.gateway.fail_next("timeout_after")
    pending = world.billing.mass_pay(
        world.account.id,
        per.id,
        [a, b],
        payment_method_id=card.id,
        now=at(date(2027, 1, 5)),
    )
    world.billing.credit_invoice(
        world.account.id,
        b,
        amount=Money("1000", "NOK"),
        reason="cancelled",
        now=at(date(2027, 1, 5), 13),
    )
    done = world.billing.confirm_mass_payment(
        world.account.id, pending.settlement.id, now=at(date(2027, 1, 5), 14)
    )
    assert done.receipt is not None
    assert done.receipt.credit == Money("1000.00", "NOK")
    assert done.payment is not None
    world.billing.refund(world.account.id, done.payment.id, now=at(date(2027, 1, 6)))
    overview = world.billing.overview(world.account.id, per.id, on=date(2027, 1, 6))
    assert overview.credit_balance == Money("0.00", "NOK")
    assert [i.id for i in overview.open] == [a]
    assert overview.total_open == Money("1000.00", "NOK")


def test_a_refund_the_gateway_refuses_is_failed_not_stuck() -> None:
    world = make_world()
    _, _, payment_id = _paid_invoice(world)
    world.gateway.fail_next("timeout_after", operation="refund")
    from recurbill.errors import GatewayUnavailableError

    with pytest.raises(GatewayUnavailableError):
        world.billing.refund(
            world.account.id,
            payment_id,
            amount=Money("100", "NOK"),
            now=at(date(2027, 1, 6)),
        )
    with pytest.raises(StateError, match="no answer yet"):
        world.billing.refund(
            world.account.id,
            payment_id,
            amount=Money("200", "NOK"),
            now=at(date(2027, 1, 6)),
        )
    world.billing.refund(world.account.id, payment_id, now=at(date(2027, 1, 6)))
    world.gateway.fail_next("unavailable", operation="refund")
    with pytest.raises(GatewayUnavailableError):
        world.billing.refund(
            world.account.id,
            payment_id,
            amount=Money("50", "NOK"),
            now=at(date(2027, 1, 7)),
        )
    final = world.billing.refund(world.account.id, payment_id, now=at(date(2027, 1, 7)))
    assert final.amount == Money("50.00", "NOK")
    assert sum((r.amount.amount for r in world.gateway.refunds), Decimal(0)) == 150


def test_the_credit_note_series_cannot_be_an_invoice_series() -> None:
    from recurbill.errors import InvalidRecordError

    world = make_world()
    for series in ("CN", "RCPT", "cn"):
        with pytest.raises(InvalidRecordError, match="reserved"):
            world.billing.create_account(
                name="X",
                currency="NOK",
                summary_email="a@b.no",
                invoice_series=series,
            )


def test_a_session_id_of_another_customer_is_refused() -> None:
    from recurbill.errors import ConflictError

    world = make_world()
    kari = world.customer()
    ola = world.customer("Ola Hansen")
    world.billing.record_session(
        world.account.id,
        kari.id,
        lines=[line()],
        now=at(date(2027, 1, 5)),
        session_id="s-1",
    )
    with pytest.raises(ConflictError, match="another customer"):
        world.billing.record_session(
            world.account.id,
            ola.id,
            lines=[line()],
            now=at(date(2027, 1, 5)),
            session_id="s-1",
        )


def test_repeating_a_session_finishes_a_charge_left_open() -> None:
    world = make_world()
    kari = world.customer()
    world.gateway.fail_next("timeout_before")
    first = world.billing.record_session(
        world.account.id,
        kari.id,
        lines=[line()],
        now=at(date(2027, 1, 5)),
        session_id="s-1",
    )
    assert first.status is PaymentStatus.FAILED_UNKNOWN
    again = world.billing.record_session(
        world.account.id,
        kari.id,
        lines=[line()],
        now=at(date(2027, 1, 5)),
        session_id="s-1",
    )
    assert again.status is PaymentStatus.SUCCEEDED
    assert len(world.gateway.ledger) == 1


@pytest.mark.parametrize(
    "amount",
    [Money("100", "USD"), Money("0", "NOK"), Money("0.001", "NOK"), "100"],
)
def test_amounts_in_the_wrong_currency_or_not_positive_are_refused(
    amount: object,
) -> None:
    world = make_world()
    kari, invoice_id, payment_id = _paid_invoice(world)
    with pytest.raises(InvalidInputError, match="NOK"):
        world.billing.record_bank_transfer(
            world.account.id,
            kari,
            amount=amount,
            now=at(date(2027, 1, 6)),  # type: ignore[arg-type]
            reference="bank-1",
        )
    with pytest.raises(InvalidInputError, match="NOK"):
        world.billing.credit_invoice(
            world.account.id,
            invoice_id,
            amount=amount,
            reason="x",  # type: ignore[arg-type]
            now=at(date(2027, 1, 6)),
        )
    with pytest.raises(InvalidInputError, match="NOK"):
        world.billing.refund(
            world.account.id,
            payment_id,
            amount=amount,
            now=at(date(2027, 1, 6)),  # type: ignore[arg-type]
        )


def test_an_unknown_collection_method_is_a_clear_error() -> None:
    world = make_world()
    with pytest.raises(InvalidInputError, match="send_invoice"):
        world.billing.add_customer(
            world.account.id,
            name="X",
            email="x@example.no",
            collection_method="direct_debit",
        )


def test_a_refund_the_gateway_rejects_is_marked_failed_and_frees_the_payment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from recurbill.errors import GatewayConfigurationError

    world = make_world()
    _, _, payment_id = _paid_invoice(world)

    def reject(*args: object, **kwargs: object) -> None:
        raise GatewayConfigurationError(
            problem="charge already refunded in the dashboard", allowed="look there"
        )

    with monkeypatch.context() as patch:
        patch.setattr(world.gateway, "refund", reject)
        with pytest.raises(GatewayConfigurationError):
            world.billing.refund(
                world.account.id,
                payment_id,
                amount=Money("400", "NOK"),
                now=at(date(2027, 1, 6)),
            )
    with world.storage.transaction() as tx:
        (failed,) = tx.list_refunds(world.account.id, payment_id)
    assert failed.status == "failed"
    done = world.billing.refund(world.account.id, payment_id, now=at(date(2027, 1, 7)))
    assert done.amount == Money("1000.00", "NOK")  # the failed one counts for nothing


def test_each_refund_takes_back_only_what_its_own_payment_paid() -> None:
    world = make_world()
    per = world.customer("Per Olsen", card=None, method=CollectionMethod.SEND_INVOICE)
    visa = world.billing.save_card(world.account.id, per.id, token="pm_card_visa").id
    x, y = (
        world.billing.record_session(
            world.account.id, per.id, lines=[line()], now=at(date(2027, 1, 1 + n))
        ).invoice.id
        for n in range(2)
    )
    mass = world.billing.mass_pay(
        world.account.id,
        per.id,
        [x, y],
        payment_method_id=visa,
        now=at(date(2027, 1, 3)),
    )
    assert mass.payment is not None
    world.billing.refund(
        world.account.id,
        mass.payment.id,
        amount=Money("500", "NOK"),
        now=at(date(2027, 1, 4)),
    )
    own = world.billing.pay(
        world.account.id, y, payment_method_id=visa, now=at(date(2027, 1, 5))
    )
    assert own.payment is not None
    world.billing.refund(world.account.id, mass.payment.id, now=at(date(2027, 1, 6)))
    world.billing.refund(world.account.id, own.payment.id, now=at(date(2027, 1, 7)))
    with world.storage.transaction() as tx:
        paid = {i.id: i.paid for i in tx.list_invoices(world.account.id)}
    zero = Money("0.00", "NOK")
    assert paid == {x: zero, y: zero}  # everything was refunded: nothing is paid
    overview = world.billing.overview(world.account.id, per.id, on=date(2027, 1, 7))
    assert overview.credit_balance == Money(0, "NOK")
    assert overview.total_open == Money("2000.00", "NOK")
    charged = sum((c.amount.amount for c in world.gateway.ledger), Decimal(0))
    refunded = sum((r.amount.amount for r in world.gateway.refunds), Decimal(0))
    assert charged == refunded == 2500


def test_a_declined_try_from_the_overview_does_not_stop_the_retry_policy() -> None:
    world = make_world()
    ingrid = world.customer(card="pm_card_visa_chargeDeclinedInsufficientFunds")
    world.template(ingrid, start=date(2027, 1, 4))
    world.billing.run(at(date(2027, 1, 4), 7))
    (invoice,) = world.storage_invoices()
    tried = world.billing.pay(
        world.account.id,
        invoice.id,
        payment_method_id=_default_card(world, ingrid.id),
        now=at(date(2027, 1, 5)),
    )
    assert tried.status is PaymentStatus.DECLINED
    for day in range(2, 12):
        world.billing.run(at(date(2027, 1, 4) + timedelta(days=day), 7))
    automatic = sorted(p.attempt for p in world.payments() if p.off_session)
    assert automatic == [1, 2, 3, 4]
    assert world.notification_kinds().count("payment_failed") == 1


def test_the_daily_run_finishes_a_refund_whose_answer_was_lost() -> None:
    world = make_world()
    kari, invoice_id, payment_id = _paid_invoice(world)
    world.gateway.fail_next("timeout_after", operation="refund")
    from recurbill.errors import GatewayUnavailableError

    with pytest.raises(GatewayUnavailableError):
        world.billing.refund(
            world.account.id,
            payment_id,
            amount=Money("400", "NOK"),
            now=at(date(2027, 1, 6)),
            reopen=False,
        )
    world.billing.run(at(date(2027, 1, 7), 7))
    with world.storage.transaction() as tx:
        (refund,) = tx.list_refunds(world.account.id, payment_id)
        notes = tx.list_credit_notes(world.account.id, invoice_id=invoice_id)
    assert refund.status == "succeeded"
    assert [n.amount for n in notes] == [Money("400.00", "NOK")]  # reopen=False kept
    assert len(world.gateway.refunds) == 1
    overview = world.billing.overview(world.account.id, kari, on=date(2027, 1, 7))
    assert overview.open == ()
    world.billing.run(at(date(2027, 1, 8), 7))
    assert len(world.gateway.refunds) == 1


def test_a_template_past_the_end_of_the_calendar_finishes_and_blocks_no_one() -> None:
    world = make_world()
    kari, ola = world.customer(), world.customer("Ola Nordmann")
    far = world.template(kari, start=date(2027, 2, 1), period="year", every=8000)
    near = world.template(ola, start=date(2027, 2, 1), period="month")
    (report,) = world.billing.run(at(date(2027, 2, 2), 7))
    assert sorted(line.issue_date for line in report.issued) == [date(2027, 2, 1)] * 2
    assert [line.template_id for line in report.ended] == [far]
    view = world.billing.template_view(world.account.id, far, upcoming=3)
    assert view.template.status is TemplateStatus.FINISHED
    assert view.upcoming == ()
    (report,) = world.billing.run(at(date(2027, 3, 2), 7))
    assert [line.issue_date for line in report.issued] == [date(2027, 3, 1)]
    assert world.billing.template_view(world.account.id, near).upcoming


def test_a_template_reaching_the_year_9998_ends_there() -> None:
    world = make_world()
    kari = world.customer()
    tid = world.template(kari, start=date(2027, 2, 1), period="year", every=2000)
    view = world.billing.template_view(world.account.id, tid, upcoming=10)
    assert [u.occurrence.on.year for u in view.upcoming] == [2027, 4027, 6027, 8027]
    for year in (2027, 4027, 6027, 8027):
        world.billing.run(at(date(year, 2, 1), 7))
    view = world.billing.template_view(world.account.id, tid, upcoming=10)
    assert [i.issue_date.year for i in view.invoices] == [2027, 4027, 6027, 8027]
    assert view.template.status is TemplateStatus.FINISHED  # 10027 never comes


@pytest.mark.parametrize("days", [-1, 366, 3_000_000, True, 14.0])
def test_payment_terms_beyond_a_year_are_refused(days: object) -> None:
    world = make_world()
    with pytest.raises(InvalidRecordError, match="from 0 to 365"):
        world.billing.create_account(
            name="Lang Frist AS",
            currency="NOK",
            summary_email="post@langfrist.no",
            payment_terms_days=days,  # type: ignore[arg-type]
        )


def test_retries_look_closely_only_at_invoices_still_owing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Declined charges whose invoices were paid since cost one batched read."""
    world = make_world()
    card = "pm_card_visa_chargeDeclinedInsufficientFunds"
    people = [world.customer(f"Kunde {n}", card=card) for n in range(12)]
    for person in people:
        world.billing.record_session(
            world.account.id, person.id, lines=[line()], now=at(date(2027, 1, 4))
        )
    invoices = world.storage_invoices()
    for invoice in invoices[1:]:  # paid another way; one stays open
        world.billing.record_bank_transfer(
            world.account.id,
            invoice.customer_id,
            amount=invoice.outstanding,
            now=at(date(2027, 1, 5)),
            reference=f"bank-{invoice.id}",
        )
    looked_at: list[str] = []
    retry_due = Collector.retry_due

    def counting(self: Collector, tx: Any, declined: Any, *, on: date) -> bool:
        looked_at.append(declined.invoice_ids[0])
        return retry_due(self, tx, declined, on=on)

    monkeypatch.setattr(Collector, "retry_due", counting)
    (report,) = world.billing.run(at(date(2027, 1, 7), 7))
    assert set(looked_at) == {invoices[0].id}  # then again under its lock
    assert [c.status for c in report.charges] == [PaymentStatus.DECLINED]  # retried


def _monthly_invoices(world: World, tid: str, until: date) -> list[date]:
    day = date(2027, 1, 1)
    while day <= until:
        world.billing.run(at(day, 7))
        day += timedelta(days=1)
    view = world.billing.template_view(world.account.id, tid)
    return [i.issue_date for i in view.invoices]


def test_pausing_from_today_after_the_run_keeps_todays_invoice_counted() -> None:
    world = make_world()
    tid = world.template(
        world.customer(), start=date(2027, 1, 1), period="month", max_count=3
    )
    assert _monthly_invoices(world, tid, date(2027, 2, 1)) == [
        date(2027, 1, 1),
        date(2027, 2, 1),
    ]
    # paused "from today", after this morning's run issued today's invoice
    world.billing.pause_template(
        world.account.id, tid, on=date(2027, 2, 1), resume=date(2027, 4, 1)
    )
    assert _monthly_invoices(world, tid, date(2027, 6, 2)) == [
        date(2027, 1, 1),
        date(2027, 2, 1),
        date(2027, 4, 1),  # the third and last: March was skipped, May is not billed
    ]


def test_resuming_on_a_day_already_skipped_still_bills_max_count() -> None:
    world = make_world()
    tid = world.template(
        world.customer(), start=date(2027, 1, 1), period="month", max_count=3
    )
    _monthly_invoices(world, tid, date(2027, 2, 10))
    world.billing.pause_template(world.account.id, tid, on=date(2027, 2, 15))
    _monthly_invoices(world, tid, date(2027, 3, 1))  # March 1 is skipped
    resumed = world.billing.resume_template(world.account.id, tid, on=date(2027, 3, 1))
    assert resumed.status is TemplateStatus.ACTIVE
    assert _monthly_invoices(world, tid, date(2027, 5, 2)) == [
        date(2027, 1, 1),
        date(2027, 2, 1),
        date(2027, 4, 1),
    ]


def test_an_occurrence_due_past_the_calendar_in_utc_ends_the_template() -> None:
    from datetime import datetime, time, timezone

    world = make_world()
    west = world.billing.create_account(
        name="West Coast Inc",
        currency="USD",
        timezone="America/Los_Angeles",
        run_time=time(20),
        summary_email="billing@west.example",
    )
    customer = world.billing.add_customer(
        west.id, name="Pat", email="pat@west.example", collection_method="send_invoice"
    )
    created = datetime(2027, 12, 1, tzinfo=timezone.utc)
    template = world.billing.create_template(
        west.id,
        customer.id,
        lines=[line()],
        start=date(2027, 12, 31),
        period="year",
        every=7971,  # the next date, 9998-12-31 at 20:00 there, is in 9999 in UTC
        now=created,
    )
    view = world.billing.template_view(west.id, template.id, upcoming=3)
    assert [u.occurrence.on for u in view.upcoming] == [date(2027, 12, 31)]
    reports = world.billing.run(datetime(2028, 1, 2, tzinfo=timezone.utc))
    (report,) = [r for r in reports if r.account_id == west.id]
    assert [i.issue_date for i in report.issued] == [date(2027, 12, 31)]
    assert [e.template_id for e in report.ended] == [template.id]
    assert report.failed == ()


def test_resuming_late_a_pause_that_already_ended_changes_nothing() -> None:
    world = make_world()
    tid = world.template(world.customer(), start=date(2027, 1, 1), period="month")
    world.billing.pause_template(
        world.account.id, tid, on=date(2027, 2, 15), resume=date(2027, 3, 10)
    )
    _monthly_invoices(world, tid, date(2027, 4, 2))  # March 1 skipped, April 1 issued
    before = world.billing.template_view(world.account.id, tid)
    after = world.billing.resume_template(world.account.id, tid, on=date(2027, 3, 5))
    assert after.schedule == before.template.schedule
    assert _monthly_invoices(world, tid, date(2027, 5, 2)) == [
        date(2027, 1, 1),
        date(2027, 2, 1),
        date(2027, 4, 1),
        date(2027, 5, 1),
    ]


@pytest.mark.parametrize("daily", [True, False])
def test_a_catch_up_run_stops_at_the_end_of_the_calendar_as_the_preview_does(
    daily: bool,
) -> None:
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo

    world = make_world(timezone="Pacific/Kiritimati")  # UTC+14
    kiri = ZoneInfo("Pacific/Kiritimati")
    tid = world.template(
        world.customer(card=None, method=CollectionMethod.SEND_INVOICE),
        start=date(9998, 12, 4),
        period="week",
        created=date(9998, 12, 1),
    )
    preview = world.billing.template_view(world.account.id, tid, upcoming=10)
    promised = [u.occurrence.on for u in preview.upcoming]
    assert promised == [date(9998, 12, d) for d in (4, 11, 18, 25)]
    if daily:
        for d in range(4, 31):
            world.billing.run(at(date(9998, 12, d), 7, zone=kiri))
    world.billing.run(datetime(9998, 12, 31, 23, tzinfo=timezone.utc))
    view = world.billing.template_view(world.account.id, tid)
    assert [i.issue_date for i in view.invoices] == promised
    assert view.template.status is TemplateStatus.FINISHED


def test_pause_and_resume_dates_are_checked_before_they_are_moved() -> None:
    from recurbill.errors import InvalidPauseError

    world = make_world()
    tid = world.template(world.customer(), start=date(2027, 1, 4), period="week")
    _monthly_invoices(world, tid, date(2027, 1, 20))  # Jan 4, 11 and 18 handled
    with pytest.raises(InvalidPauseError, match="not after the pause start"):
        world.billing.pause_template(
            world.account.id, tid, on=date(2027, 1, 10), resume=date(2027, 1, 3)
        )
    world.billing.pause_template(world.account.id, tid, on=date(2027, 1, 19))
    # resuming on a date already handled, before the pause starts: it never starts
    resumed = world.billing.resume_template(world.account.id, tid, on=date(2027, 1, 10))
    assert resumed.schedule.pauses == ()


@pytest.mark.parametrize("status", ["failed", "canceled"])
def test_a_refund_the_gateway_answers_failed_or_canceled_changes_no_invoice(
    status: str,
) -> None:
    world = make_world()
    kari, invoice_id, payment_id = _paid_invoice(world)
    world.gateway.refuse_next_refund(status)
    refused = world.billing.refund(
        world.account.id, payment_id, now=at(date(2027, 1, 6))
    )
    assert refused.status == status
    (invoice,) = world.storage_invoices()
    assert invoice.status is InvoiceStatus.PAID  # no money went back
    assert invoice.outstanding == Money.zero("NOK")
    # the whole amount can still be refunded, once
    refund = world.billing.refund(
        world.account.id, payment_id, now=at(date(2027, 1, 7))
    )
    assert refund.status == "succeeded"
    assert refund.amount == invoice.total
    (invoice,) = world.storage_invoices()
    assert invoice.status is InvoiceStatus.OPEN
    assert invoice.outstanding == invoice.total
    assert [r.status for r in world.gateway.refunds] == [status, "succeeded"]
    with pytest.raises(StateError, match="refunded in full"):
        world.billing.refund(world.account.id, payment_id, now=at(date(2027, 1, 8)))
    overview = world.billing.overview(world.account.id, kari, on=date(2027, 1, 8))
    assert [i.id for i in overview.open] == [invoice_id]


def test_the_in_memory_gateway_refuses_only_known_refund_statuses() -> None:
    world = make_world()
    with pytest.raises(InvalidInputError, match="'failed' or 'canceled'"):
        world.gateway.refuse_next_refund("pending")


def test_a_lost_charge_made_after_a_bank_transfer_becomes_credit_once() -> None:
    """Giving the charge up would be unsafe: the gateway (or another worker)
    may still carry out the first request. Made with its key, it is one charge,
    and what the invoice no longer needed is the customer's credit."""
    world = make_world()
    kari = world.customer()
    world.gateway.fail_next("timeout_before")  # the gateway never saw it
    outcome = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(date(2027, 3, 1), 9)
    )
    assert outcome.payment is not None
    assert outcome.payment.status is PaymentStatus.FAILED_UNKNOWN
    world.billing.record_bank_transfer(
        world.account.id,
        kari.id,
        amount=outcome.invoice.total,
        now=at(date(2027, 3, 1), 10),
        reference="bank-1",
    )
    for day in (2, 3):  # finishes what has no outcome, once
        world.billing.run(at(date(2027, 3, day), 7))
    assert [c.idempotency_key for c in world.gateway.ledger] == [
        outcome.payment.idempotency_key
    ]
    overview = world.billing.overview(world.account.id, kari.id, on=date(2027, 3, 3))
    assert overview.credit_balance == outcome.invoice.total
    (invoice,) = world.storage_invoices()
    assert invoice.status is InvoiceStatus.PAID
    assert invoice.paid == invoice.total  # paid once, by the transfer


@pytest.mark.parametrize(
    ("card", "fault"),
    [("pm_card_visa", "timeout_before"), ("pm_card_authenticationRequired", None)],
)
def test_an_invoice_with_a_payment_in_progress_cannot_be_voided(
    card: str, fault: str | None
) -> None:
    world = make_world()
    kari = world.customer(card=card)
    if fault is not None:
        world.gateway.fail_next(fault)
    outcome = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(date(2027, 3, 1), 9)
    )
    assert outcome.payment is not None
    with pytest.raises(StateError, match="payment in progress"):
        world.billing.void_invoice(world.account.id, outcome.invoice.id)
    (invoice,) = world.storage_invoices()
    assert invoice.status is InvoiceStatus.OPEN


def test_an_invoice_with_a_credit_note_cannot_be_voided() -> None:
    world = make_world()
    kari = world.customer(method=CollectionMethod.SEND_INVOICE)
    outcome = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(date(2027, 3, 1), 9)
    )
    world.billing.credit_invoice(
        world.account.id,
        outcome.invoice.id,
        amount=Money("300", "NOK"),
        reason="one session fewer",
        now=at(date(2027, 3, 2)),
    )
    with pytest.raises(StateError, match="credited by credit notes"):
        world.billing.void_invoice(world.account.id, outcome.invoice.id)
    (invoice,) = world.storage_invoices()
    assert invoice.status is InvoiceStatus.OPEN
    assert invoice.outstanding == invoice.total - Money("300", "NOK")


@pytest.mark.parametrize("reason", ["", "   ", None])
def test_a_credit_note_needs_a_reason(reason: object) -> None:
    world = make_world()
    kari = world.customer(method=CollectionMethod.SEND_INVOICE)
    outcome = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(date(2027, 3, 1), 9)
    )
    with pytest.raises(InvalidInputError, match="reason"):
        world.billing.credit_invoice(
            world.account.id,
            outcome.invoice.id,
            amount=Money("300", "NOK"),
            reason=reason,  # type: ignore[arg-type]
            now=at(date(2027, 3, 2)),
        )
    (invoice,) = world.storage_invoices()
    assert invoice.credited == Money.zero("NOK")  # nothing half-written


def test_credit_is_used_on_open_invoices_oldest_first_and_only_once() -> None:
    world = make_world()
    kari = world.customer(method=CollectionMethod.SEND_INVOICE)
    acct = world.account.id
    first, second = (
        world.billing.record_session(
            acct, kari.id, lines=[line("800")], now=at(date(2027, 3, day), 9)
        ).invoice
        for day in (1, 2)
    )  # 1000 NOK each
    world.billing.record_bank_transfer(
        acct,
        kari.id,
        amount=Money("2500", "NOK"),
        now=at(date(2027, 3, 3)),
        reference="b1",
    )  # pays both, 500 left as credit
    third = world.billing.record_session(
        acct, kari.id, lines=[line("800")], now=at(date(2027, 3, 4), 9)
    ).invoice
    result = world.billing.apply_credit(acct, kari.id, now=at(date(2027, 3, 5)))
    assert [a.invoice_id for a in result.allocations] == [third.id]
    assert result.applied == Money("500", "NOK")
    assert result.credit == Money.zero("NOK")
    overview = world.billing.overview(acct, kari.id, on=date(2027, 3, 5))
    assert overview.credit_balance == Money.zero("NOK")
    assert overview.total_open == Money("500", "NOK")
    assert {i.id for i in overview.paid} == {first.id, second.id}
    again = world.billing.apply_credit(acct, kari.id, now=at(date(2027, 3, 6)))
    assert again.allocations == ()  # nothing left to use
    assert world.billing.overview(
        acct, kari.id, on=date(2027, 3, 6)
    ).total_open == Money("500", "NOK")


def test_a_balance_below_zero_is_reported_as_owed_and_nothing_is_used() -> None:
    """A refund took back credit already used: the customer owes it, and
    apply_credit says so (the overview's balance), instead of 0 left."""
    world = make_world()
    kari = world.customer(method=CollectionMethod.SEND_INVOICE)
    acct = world.account.id
    first = world.billing.record_session(
        acct, kari.id, lines=[line()], now=at(date(2027, 3, 1), 9)
    ).invoice
    paid = world.billing.pay(
        acct,
        first.id,
        payment_method_id=_default_card(world, kari.id),
        now=at(date(2027, 3, 1), 10),
    )
    assert paid.payment is not None
    world.billing.credit_invoice(
        acct,
        first.id,
        amount=Money("300", "NOK"),
        reason="one session fewer",
        now=at(date(2027, 3, 2)),
    )  # on a paid invoice: 300 of credit
    world.billing.record_session(
        acct, kari.id, lines=[line()], now=at(date(2027, 3, 3), 9)
    )
    used = world.billing.apply_credit(acct, kari.id, now=at(date(2027, 3, 3), 10))
    assert used.applied == Money("300", "NOK")
    world.billing.refund(acct, paid.payment.id, now=at(date(2027, 3, 4)))
    overview = world.billing.overview(acct, kari.id, on=date(2027, 3, 4))
    assert overview.credit_balance == Money("-300", "NOK")  # taken back, owed
    open_before = [(i.id, i.outstanding) for i in overview.open]

    result = world.billing.apply_credit(acct, kari.id, now=at(date(2027, 3, 5)))
    assert result.allocations == ()
    assert result.credit == result.total == overview.credit_balance
    after = world.billing.overview(acct, kari.id, on=date(2027, 3, 5))
    assert after.credit_balance == Money("-300", "NOK")
    assert [(i.id, i.outstanding) for i in after.open] == open_before


def test_credit_is_not_used_on_an_invoice_whose_charge_has_no_outcome() -> None:
    world = make_world()
    kari = world.customer()
    acct = world.account.id
    world.billing.record_bank_transfer(
        acct,
        kari.id,
        amount=Money("300", "NOK"),
        now=at(date(2027, 3, 1)),
        reference="b1",
    )  # nothing open: all credit
    world.gateway.fail_next("timeout_before")
    outcome = world.billing.record_session(
        acct, kari.id, lines=[line()], now=at(date(2027, 3, 2), 9)
    )
    assert outcome.payment is not None
    assert outcome.payment.status is PaymentStatus.FAILED_UNKNOWN
    result = world.billing.apply_credit(acct, kari.id, now=at(date(2027, 3, 2), 10))
    assert result.allocations == ()
    assert result.credit == Money("300", "NOK")
    (invoice,) = world.storage_invoices()
    assert invoice.paid == Money.zero("NOK")


def test_an_uncollectible_invoice_is_no_longer_retried_or_paid() -> None:
    world = make_world()
    kari = world.customer(card="pm_card_visa_chargeDeclinedInsufficientFunds")
    acct = world.account.id
    outcome = world.billing.record_session(
        acct, kari.id, lines=[line()], now=at(date(2027, 3, 1), 9)
    )
    assert outcome.payment is not None
    assert outcome.payment.status is PaymentStatus.DECLINED
    written_off = world.billing.mark_uncollectible(acct, outcome.invoice.id)
    assert written_off.status is InvoiceStatus.UNCOLLECTIBLE
    world.billing.run(at(date(2027, 3, 4), 7))  # the first retry would be due
    assert len(world.payments()) == 1  # not retried
    overview = world.billing.overview(acct, kari.id, on=date(2027, 3, 4))
    assert [i.id for i in overview.uncollectible] == [outcome.invoice.id]
    assert overview.open == ()
    assert overview.total_open == Money.zero("NOK")
    card = _default_card(world, kari.id)
    with pytest.raises(StateError):
        world.billing.pay(
            acct, outcome.invoice.id, payment_method_id=card, now=at(date(2027, 3, 4))
        )
    for again in (world.billing.mark_uncollectible, world.billing.void_invoice):
        with pytest.raises(StateError, match="is uncollectible"):
            again(acct, outcome.invoice.id)


def test_an_invoice_with_a_payment_in_progress_cannot_be_written_off() -> None:
    world = make_world()
    kari = world.customer()
    world.gateway.fail_next("timeout_before")
    outcome = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(date(2027, 3, 1), 9)
    )
    with pytest.raises(StateError, match="payment in progress"):
        world.billing.mark_uncollectible(world.account.id, outcome.invoice.id)
    (invoice,) = world.storage_invoices()
    assert invoice.status is InvoiceStatus.OPEN


@pytest.mark.parametrize("reopen", [True, False])
def test_a_refund_leaves_a_written_off_invoice_written_off(reopen: bool) -> None:
    world = make_world()
    acct = world.account.id
    kari, invoice_id, payment_id = _paid_invoice(world)  # 1000 NOK paid by card
    world.billing.refund(
        acct, payment_id, amount=Money("400", "NOK"), now=at(date(2027, 1, 6))
    )  # reopens 400
    world.billing.mark_uncollectible(acct, invoice_id)
    world.billing.refund(
        acct,
        payment_id,
        amount=Money("200", "NOK"),
        reopen=reopen,
        now=at(date(2027, 1, 7)),
    )
    (invoice,) = world.storage_invoices()
    assert invoice.status is InvoiceStatus.UNCOLLECTIBLE
    assert invoice.paid == Money("400", "NOK")
    assert invoice.credited == Money.zero("NOK")  # no credit note on a write-off
    overview = world.billing.overview(acct, kari, on=date(2027, 1, 7))
    assert [i.id for i in overview.uncollectible] == [invoice_id]
    assert overview.open == ()

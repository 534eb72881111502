from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from billing_helpers import World, at, line, make_world
from recurbill.collection import IN_FLIGHT
from recurbill.errors import (
    InvalidInputError,
    InvalidSelectionError,
    NotFoundError,
    SelectionAmountError,
)
from recurbill.money import Money
from recurbill.payments.memory import InMemoryGateway
from recurbill.records import (
    CollectionMethod,
    Customer,
    InvoiceStatus,
    Payment,
    PaymentStatus,
    SettlementStatus,
)
from recurbill.views import PaymentOutcome

DAY = date(2027, 2, 1)


def _open_invoices(world: World, customer: Customer, prices: list[str]) -> list[str]:
    ids = []
    for n, price in enumerate(prices):
        outcome = world.billing.record_session(
            world.account.id,
            customer.id,
            lines=[line(price)],
            now=at(date(2027, 1, 1 + n)),
        )
        ids.append(outcome.invoice.id)
    return ids


def _payer(world: World, card: str = "pm_card_visa") -> tuple[Customer, str]:
    customer = world.customer(
        "Per Olsen", card=None, method=CollectionMethod.SEND_INVOICE
    )
    method = world.billing.save_card(world.account.id, customer.id, token=card)
    return customer, method.id


def test_one_payment_settles_every_selected_invoice_with_one_receipt() -> None:
    world = make_world()
    per, card = _payer(world)
    ids = _open_invoices(world, per, ["100", "250.50", "80"])
    plan = world.billing.plan_mass_payment(world.account.id, per.id, ids[:2])
    assert plan.total == Money("438.13", "NOK")  # 125.00 + 313.13
    done = world.billing.mass_pay(
        world.account.id, per.id, ids[:2], payment_method_id=card, now=at(DAY)
    )
    assert done.status is SettlementStatus.SUCCEEDED
    assert done.total == plan.total
    assert (done.card_brand, done.card_last4) == ("visa", "4242")
    assert done.receipt is not None
    assert done.receipt_number == done.receipt.number
    assert [i.invoice_id for i in done.receipt.items] == ids[:2]
    assert [i.status for i in done.invoices] == [InvoiceStatus.PAID] * 2
    assert len(world.gateway.ledger) == 1
    assert world.gateway.ledger[0].amount == Money("438.13", "NOK")
    overview = world.billing.overview(world.account.id, per.id, on=DAY)
    assert [i.id for i in overview.open] == [ids[2]]
    assert world.notification_kinds().count("receipt") == 1


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (lambda ids: [], "empty"),
        (lambda ids: [ids[0], ids[0]], "more than once"),
        (lambda ids: ["inv_nope"], "not found"),
    ],
)
def test_bad_selections_are_refused_before_anything_is_charged(
    selection: Any, message: str
) -> None:
    world = make_world()
    per, card = _payer(world)
    ids = _open_invoices(world, per, ["100", "200"])
    with pytest.raises(InvalidSelectionError, match=message):
        world.billing.mass_pay(
            world.account.id,
            per.id,
            selection(ids),
            payment_method_id=card,
            now=at(DAY),
        )
    assert world.gateway.ledger == []
    assert world.billing.overview(world.account.id, per.id, on=DAY).total_open == (
        Money("375.00", "NOK")
    )


def test_an_invoice_of_another_customer_is_not_found() -> None:
    world = make_world()
    per, card = _payer(world)
    kari = world.customer(
        "Kari Nordmann", card=None, method=CollectionMethod.SEND_INVOICE
    )
    mine = _open_invoices(world, per, ["100"])
    hers = _open_invoices(world, kari, ["100"])
    with pytest.raises(InvalidSelectionError, match="not found"):
        world.billing.mass_pay(
            world.account.id, per.id, mine + hers, payment_method_id=card, now=at(DAY)
        )
    kari_card = world.billing.save_card(world.account.id, kari.id, token="pm_card_visa")
    with pytest.raises(NotFoundError):
        world.billing.mass_pay(
            world.account.id, per.id, mine, payment_method_id=kari_card.id, now=at(DAY)
        )


def test_a_paid_or_void_invoice_cannot_be_selected() -> None:
    world = make_world()
    per, card = _payer(world)
    ids = _open_invoices(world, per, ["100", "200"])
    world.billing.void_invoice(world.account.id, ids[1])
    with pytest.raises(InvalidSelectionError, match="void"):
        world.billing.mass_pay(
            world.account.id, per.id, ids, payment_method_id=card, now=at(DAY)
        )


def test_a_decline_changes_nothing_but_the_outcome_and_the_customer_can_retry() -> None:
    world = make_world()
    per, bad = _payer(world, "pm_card_visa_chargeDeclinedInsufficientFunds")
    ids = _open_invoices(world, per, ["100", "200"])
    declined = world.billing.mass_pay(
        world.account.id, per.id, ids, payment_method_id=bad, now=at(DAY)
    )
    assert declined.status is SettlementStatus.DECLINED
    assert declined.payment is not None
    assert declined.payment.decline_code == "insufficient_funds"
    assert [i.status for i in declined.invoices] == [InvoiceStatus.OPEN] * 2
    assert declined.receipt is None
    good = world.billing.save_card(
        world.account.id, per.id, token="pm_card_mastercard", make_default=False
    )
    paid = world.billing.mass_pay(
        world.account.id, per.id, ids, payment_method_id=good.id, now=at(DAY, 13)
    )
    assert paid.status is SettlementStatus.SUCCEEDED
    assert paid.card_last4 == "4444"
    assert len(world.gateway.ledger) == 1


def test_authentication_required_then_completed() -> None:
    world = make_world()
    per, card = _payer(world, "pm_card_authenticationRequired")
    ids = _open_invoices(world, per, ["100", "200"])
    pending = world.billing.mass_pay(
        world.account.id, per.id, ids, payment_method_id=card, now=at(DAY)
    )
    assert pending.status is SettlementStatus.REQUIRES_ACTION
    assert pending.client_secret
    again = world.billing.mass_pay(  # the same card and selection: the same one
        world.account.id, per.id, ids, payment_method_id=card, now=at(DAY)
    )
    assert again.settlement == pending.settlement
    assert pending.payment is not None
    assert pending.payment.charge_id is not None
    world.gateway.settle(pending.payment.charge_id, succeed=True)  # 3-D Secure done
    done = world.billing.confirm_mass_payment(
        world.account.id, pending.settlement.id, now=at(DAY, 13)
    )
    assert done.status is SettlementStatus.SUCCEEDED
    assert [i.status for i in done.invoices] == [InvoiceStatus.PAID] * 2
    assert len(world.gateway.ledger) == 1


def test_a_double_submit_charges_once() -> None:
    world = make_world()
    per, card = _payer(world)
    ids = _open_invoices(world, per, ["100", "200"])
    first = world.billing.mass_pay(
        world.account.id, per.id, ids, payment_method_id=card, now=at(DAY)
    )
    again = world.billing.mass_pay(
        world.account.id,
        per.id,
        list(reversed(ids)),
        payment_method_id=card,
        now=at(DAY),
    )
    assert again.settlement.id == first.settlement.id
    assert again.receipt_number == first.receipt_number
    assert len(world.gateway.ledger) == 1


class _PaidElsewhere(InMemoryGateway):
    """Before charging, the customer's bank transfer arrives for one invoice."""

    hook: Any = None

    def charge(self, customer: str, **kwargs: Any) -> Any:  # type: ignore[override]
        if self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        return super().charge(customer, **kwargs)


def test_an_invoice_paid_another_way_mid_way_becomes_credit() -> None:
    gateway = _PaidElsewhere()
    world = make_world(gateway=gateway)
    per, card = _payer(world)
    ids = _open_invoices(world, per, ["100", "200"])
    gateway.hook = lambda: world.billing.record_bank_transfer(
        world.account.id,
        per.id,
        amount=Money("125", "NOK"),
        now=at(DAY),
        reference="bank-1",
    )
    done = world.billing.mass_pay(
        world.account.id, per.id, ids, payment_method_id=card, now=at(DAY)
    )
    assert done.status is SettlementStatus.SUCCEEDED
    assert done.total == Money("375.00", "NOK")
    assert done.receipt is not None
    assert done.receipt.credit == Money("125.00", "NOK")
    overview = world.billing.overview(world.account.id, per.id, on=DAY)
    assert overview.open == ()
    assert overview.credit_balance == Money("125.00", "NOK")


def test_a_partial_refund_reopens_the_last_settled_invoice_first() -> None:
    world = make_world()
    per, card = _payer(world)
    ids = _open_invoices(world, per, ["100", "200"])
    done = world.billing.mass_pay(
        world.account.id, per.id, ids, payment_method_id=card, now=at(DAY)
    )
    assert done.payment is not None
    world.billing.refund(
        world.account.id, done.payment.id, amount=Money("50", "NOK"), now=at(DAY, 14)
    )
    overview = world.billing.overview(world.account.id, per.id, on=DAY)
    assert [(i.id, i.outstanding) for i in overview.open] == [
        (ids[1], Money("50.00", "NOK"))
    ]
    assert overview.open[0].status is InvoiceStatus.OPEN


def test_isk_and_nok_settle_to_the_last_unit() -> None:
    for currency, prices, total in [
        # with 25 % VAT each invoice rounds half-up on its own:
        # 2498.75 -> 2499, 5687.5 -> 5688, 16237.5 -> 16238
        ("ISK", ["1999", "4550", "12990"], "24425"),
        # 124.9875 -> 124.99, 0.0625 -> 0.06, 1543.2125 -> 1543.21
        ("NOK", ["99.99", "0.05", "1234.57"], "1668.26"),
    ]:
        world = make_world()
        if currency == "ISK":
            world.account = world.billing.create_account(
                account_id="rvk",
                name="Ráðgjöf ehf.",
                currency="ISK",
                locale="is_IS",
                timezone="Atlantic/Reykjavik",
                summary_email="reikningar@radgjof.is",
            )
        per, card = _payer(world)
        ids = _open_invoices(world, per, prices)
        done = world.billing.mass_pay(
            world.account.id, per.id, ids, payment_method_id=card, now=at(DAY)
        )
        assert done.total == Money(total, currency), currency
        assert done.total.is_quantized
        assert world.gateway.ledger[0].amount == Money(total, currency)
        assert [i.outstanding for i in done.invoices] == [Money(0, currency)] * 3


def test_bank_transfer_pays_oldest_first_and_the_rest_is_credit() -> None:
    world = make_world()
    per, _ = _payer(world)
    ids = _open_invoices(world, per, ["100", "200"])
    result = world.billing.record_bank_transfer(
        world.account.id,
        per.id,
        amount=Money("400", "NOK"),
        now=at(DAY),
        reference="bank-7",
    )
    assert [a.invoice_id for a in result.allocations] == ids
    assert result.credit == Money("25.00", "NOK")
    overview = world.billing.overview(world.account.id, per.id, on=DAY)
    assert overview.open == ()
    assert overview.credit_balance == Money("25.00", "NOK")
    from recurbill.errors import StateError

    with pytest.raises(StateError, match="already recorded"):
        world.billing.record_bank_transfer(
            world.account.id,
            per.id,
            amount=Money("400", "NOK"),
            now=at(DAY),
            reference="bank-7",
        )


def test_payment_statuses_are_recorded_on_the_settlement_payment() -> None:
    world = make_world()
    per, card = _payer(world)
    ids = _open_invoices(world, per, ["100"])
    done = world.billing.mass_pay(
        world.account.id, per.id, ids, payment_method_id=card, now=at(DAY)
    )
    assert done.payment is not None
    assert done.payment.status is PaymentStatus.SUCCEEDED
    assert done.payment.settlement_id == done.settlement.id
    again = world.billing.mass_payment(world.account.id, done.settlement.id)
    assert again == done


def test_another_card_replaces_a_payment_left_waiting_for_authentication() -> None:
    world = make_world()
    per, stuck_card = _payer(world, "pm_card_authenticationRequired")
    ids = _open_invoices(world, per, ["100", "200"])
    waiting = world.billing.mass_pay(
        world.account.id, per.id, ids, payment_method_id=stuck_card, now=at(DAY)
    )
    assert waiting.status is SettlementStatus.REQUIRES_ACTION
    other = world.billing.save_card(
        world.account.id, per.id, token="pm_card_visa", make_default=False
    )
    paid = world.billing.mass_pay(
        world.account.id, per.id, ids[:1], payment_method_id=other.id, now=at(DAY, 13)
    )
    assert paid.status is SettlementStatus.SUCCEEDED
    old = world.billing.mass_payment(world.account.id, waiting.settlement.id)
    assert old.status is SettlementStatus.ABANDONED
    assert old.payment is not None
    assert old.payment.status is PaymentStatus.CANCELED
    # the old charge was canceled at the gateway: it can no longer be completed
    assert waiting.payment is not None
    assert waiting.payment.charge_id is not None
    with pytest.raises(InvalidInputError):
        world.gateway.settle(waiting.payment.charge_id, succeed=True)
    rest = world.billing.mass_pay(
        world.account.id, per.id, ids[1:], payment_method_id=other.id, now=at(DAY, 14)
    )
    assert rest.status is SettlementStatus.SUCCEEDED
    assert len(world.gateway.ledger) == 2
    overview = world.billing.overview(world.account.id, per.id, on=DAY)
    assert overview.open == ()
    assert overview.credit_balance == Money(0, "NOK")


def test_a_past_mass_payment_still_shows_its_card_after_the_card_is_removed() -> None:
    world = make_world()
    per, card = _payer(world)
    ids = _open_invoices(world, per, ["100", "200"])
    done = world.billing.mass_pay(
        world.account.id, per.id, ids, payment_method_id=card, now=at(DAY)
    )
    world.billing.remove_card(world.account.id, per.id, card, now=at(DAY, 13))
    later = world.billing.mass_payment(world.account.id, done.settlement.id)
    assert (later.card_brand, later.card_last4) == ("visa", "4242")  # the receipt's
    assert later.status is SettlementStatus.SUCCEEDED
    assert later.receipt == done.receipt


def test_declines_the_issuer_asks_never_to_retry_are_not_retried() -> None:
    from recurbill.collection import HARD_DECLINES

    never = {
        "do_not_try_again",
        "revocation_of_authorization",
        "revocation_of_all_authorizations",
        "stop_payment_order",
        "lost_card",
        "stolen_card",
    }
    assert never <= HARD_DECLINES


def test_a_pending_refund_that_fails_later_leaves_its_amount_as_credit() -> None:
    world = make_world()
    acct = world.account.id
    per, card = _payer(world)
    ids = _open_invoices(world, per, ["400", "400"])  # 500 NOK each with VAT
    done = world.billing.mass_pay(
        acct, per.id, ids, payment_method_id=card, now=at(DAY)
    )
    assert done.payment is not None
    world.gateway.hold_next_refund()
    pending = world.billing.refund(
        acct, done.payment.id, amount=Money("500", "NOK"), now=at(DAY, 14)
    )
    assert pending.status == "pending"  # applied: the last invoice owes again
    assert pending.refund_id is not None
    world.gateway.finish_refund(pending.refund_id, "failed")  # the bank refused
    world.billing.run(at(DAY + timedelta(days=1), 7))
    overview = world.billing.overview(acct, per.id, on=DAY + timedelta(days=1))
    assert [(i.id, i.outstanding) for i in overview.open] == [
        (ids[1], Money("500.00", "NOK"))
    ]
    assert overview.credit_balance == Money("500.00", "NOK")  # nothing was lost
    world.billing.run(at(DAY + timedelta(days=2), 7))  # recorded once
    assert world.billing.overview(
        acct, per.id, on=DAY + timedelta(days=2)
    ).credit_balance == Money("500.00", "NOK")
    # the next refund takes the first invoice, not the second again
    world.billing.refund(
        acct,
        done.payment.id,
        amount=Money("500", "NOK"),
        now=at(DAY + timedelta(days=2)),
    )
    first, second = (
        next(i for i in world.storage_invoices() if i.id == invoice_id)
        for invoice_id in ids
    )
    assert first.paid == Money.zero("NOK")
    assert second.paid == Money.zero("NOK")


def test_a_pending_refund_that_succeeds_later_is_recorded_so() -> None:
    world = make_world()
    acct = world.account.id
    per, card = _payer(world)
    ids = _open_invoices(world, per, ["400"])
    done = world.billing.mass_pay(
        acct, per.id, ids, payment_method_id=card, now=at(DAY)
    )
    assert done.payment is not None
    world.gateway.hold_next_refund()
    pending = world.billing.refund(acct, done.payment.id, now=at(DAY, 14))
    assert pending.refund_id is not None
    world.gateway.finish_refund(pending.refund_id, "succeeded")
    world.billing.run(at(DAY + timedelta(days=1), 7))
    with world.storage.transaction() as tx:
        (refund,) = tx.list_refunds(acct)
    assert refund.status == "succeeded"
    overview = world.billing.overview(acct, per.id, on=DAY + timedelta(days=1))
    assert overview.credit_balance == Money.zero("NOK")
    assert [i.id for i in overview.open] == ids


# -- a payment waiting for authentication is replaced, never doubled ----------


def _waiting(world: World) -> tuple[Customer, str, str, list[str], Any]:
    """Per's two invoices in a mass payment that waits for 3-D Secure."""
    per, stuck, visa = world.paying_by_hand()
    ids = _open_invoices(world, per, ["100", "200"])
    waiting = world.billing.mass_pay(
        world.account.id, per.id, ids, payment_method_id=stuck, now=at(DAY)
    )
    assert waiting.status is SettlementStatus.REQUIRES_ACTION
    return per, stuck, visa, ids, waiting


def _in_flight(world: World) -> list[Any]:
    return [p for p in world.payments() if p.status in IN_FLIGHT]


def _nothing_canceled(world: World, waiting: Payment | None) -> None:
    """The payment waiting for authentication is as it was: nothing was
    canceled at the gateway."""
    assert waiting is not None
    assert [p.status for p in world.payments() if p.id == waiting.id] == [
        PaymentStatus.REQUIRES_ACTION
    ]
    assert "cancel_charge" not in [r.operation for r in world.gateway.requests]


def test_the_plan_agrees_with_the_payment_on_invoices_waiting_for_authentication() -> (
    None
):
    world = make_world()
    per, _, visa, ids, waiting = _waiting(world)
    plan = world.billing.plan_mass_payment(world.account.id, per.id, ids)
    assert plan.total == waiting.total
    paid = world.billing.mass_pay(
        world.account.id, per.id, ids, payment_method_id=visa, now=at(DAY, 13)
    )
    assert paid.status is SettlementStatus.SUCCEEDED
    assert paid.total == plan.total
    old = world.billing.mass_payment(world.account.id, waiting.settlement.id)
    assert old.status is SettlementStatus.ABANDONED
    with pytest.raises(InvalidInputError):  # canceled: it can never be completed
        world.gateway.settle(waiting.payment.charge_id, succeed=True)
    assert len(world.gateway.ledger) == 1


def test_the_same_card_may_pay_another_selection_instead_of_a_waiting_one() -> None:
    world = make_world()
    per, stuck, _, ids, waiting = _waiting(world)
    plan = world.billing.plan_mass_payment(world.account.id, per.id, ids[:1])
    again = world.billing.mass_pay(
        world.account.id, per.id, ids[:1], payment_method_id=stuck, now=at(DAY, 13)
    )
    assert again.status is SettlementStatus.REQUIRES_ACTION
    assert again.settlement.id != waiting.settlement.id
    assert again.total == plan.total
    old = world.billing.mass_payment(world.account.id, waiting.settlement.id)
    assert old.status is SettlementStatus.ABANDONED
    assert [p.id for p in _in_flight(world)] == [again.payment.id]
    with pytest.raises(InvalidInputError):
        world.gateway.settle(waiting.payment.charge_id, succeed=True)
    world.gateway.settle(again.payment.charge_id, succeed=True)
    done = world.billing.confirm_mass_payment(
        world.account.id, again.settlement.id, now=at(DAY, 14)
    )
    assert done.status is SettlementStatus.SUCCEEDED
    assert [c.amount for c in world.gateway.ledger] == [plan.total]


def test_paying_one_invoice_replaces_a_mass_payment_left_waiting() -> None:
    world = make_world()
    _, stuck, _, ids, waiting = _waiting(world)
    one = world.billing.pay(
        world.account.id, ids[0], payment_method_id=stuck, now=at(DAY, 13)
    )
    assert one.payment is not None
    assert one.payment.invoice_ids == (ids[0],)  # not the waiting mass payment
    assert one.status is PaymentStatus.REQUIRES_ACTION
    old = world.billing.mass_payment(world.account.id, waiting.settlement.id)
    assert old.status is SettlementStatus.ABANDONED
    assert [p.id for p in _in_flight(world)] == [one.payment.id]


def test_invoices_in_a_payment_without_an_outcome_stay_refused_by_both() -> None:
    world = make_world()
    per, card = _payer(world)
    other = world.billing.save_card(
        world.account.id, per.id, token="pm_card_mastercard", make_default=False
    )
    ids = _open_invoices(world, per, ["100", "200"])
    world.gateway.process_next()
    processing = world.billing.mass_pay(
        world.account.id, per.id, ids, payment_method_id=card, now=at(DAY)
    )
    assert processing.status is SettlementStatus.PENDING
    with pytest.raises(InvalidSelectionError, match="payment in progress"):
        world.billing.plan_mass_payment(world.account.id, per.id, ids[:1])
    with pytest.raises(InvalidSelectionError, match="payment in progress"):
        world.billing.mass_pay(
            world.account.id, per.id, ids[:1], payment_method_id=other.id, now=at(DAY)
        )
    assert world.gateway.ledger == []


def test_a_refused_payment_leaves_the_waiting_one_as_it_was() -> None:
    world = make_world()
    per, _, _, ids, waiting = _waiting(world)
    stranger = world.customer("Ola Nordmann")
    with world.storage.transaction() as tx:
        (not_his,) = tx.list_payment_methods(world.account.id, stranger.id)
    with pytest.raises(NotFoundError):
        world.billing.mass_pay(
            world.account.id, per.id, ids, payment_method_id=not_his.id, now=at(DAY)
        )
    with pytest.raises(NotFoundError):
        world.billing.pay(
            world.account.id, ids[0], payment_method_id=not_his.id, now=at(DAY)
        )
    still = world.billing.mass_payment(world.account.id, waiting.settlement.id)
    assert still.status is SettlementStatus.REQUIRES_ACTION
    _nothing_canceled(world, waiting.payment)


def test_a_selection_refused_for_its_total_cancels_nothing() -> None:
    world = make_world()
    per, stuck, visa = world.paying_by_hand()
    ids = _open_invoices(world, per, ["100", "2.00"])  # 125.00 and 2.50 NOK
    waiting = world.billing.mass_pay(
        world.account.id, per.id, ids, payment_method_id=stuck, now=at(DAY)
    )
    assert waiting.status is SettlementStatus.REQUIRES_ACTION
    with pytest.raises(SelectionAmountError, match="below the gateway's minimum"):
        world.billing.mass_pay(
            world.account.id, per.id, ids[1:], payment_method_id=visa, now=at(DAY)
        )
    still = world.billing.mass_payment(world.account.id, waiting.settlement.id)
    assert still.status is SettlementStatus.REQUIRES_ACTION
    _nothing_canceled(world, waiting.payment)


def _waiting_beside_processing(
    world: World,
) -> tuple[Customer, list[str], str, PaymentOutcome, PaymentOutcome]:
    """Per's first invoice waits for 3-D Secure, his second is in a payment
    the gateway is still processing (the Visa)."""
    per, stuck, visa = world.paying_by_hand()
    first, second = _open_invoices(world, per, ["100", "200"])
    waiting = world.billing.pay(
        world.account.id, first, payment_method_id=stuck, now=at(DAY)
    )
    assert waiting.status is PaymentStatus.REQUIRES_ACTION
    world.gateway.process_next()
    processing = world.billing.pay(
        world.account.id, second, payment_method_id=visa, now=at(DAY)
    )
    assert processing.status is PaymentStatus.PROCESSING
    return per, [first, second], visa, waiting, processing


def test_a_selection_blocked_by_a_payment_without_an_outcome_cancels_nothing() -> None:
    """One invoice waits for 3-D Secure, another is in a processing payment:
    the selection is refused, and the waiting payment is left as it was."""
    world = make_world()
    per, [first, second], visa, waiting, _ = _waiting_beside_processing(world)
    with pytest.raises(InvalidSelectionError, match="payment in progress"):
        world.billing.plan_mass_payment(world.account.id, per.id, [first, second])
    with pytest.raises(InvalidSelectionError, match="payment in progress"):
        world.billing.mass_pay(
            world.account.id,
            per.id,
            [first, second],
            payment_method_id=visa,
            now=at(DAY, 13),
        )
    _nothing_canceled(world, waiting.payment)


def test_a_selection_paid_meanwhile_is_refused_before_anything_is_canceled() -> None:
    """The look-up finds one invoice paid (its processing payment went
    through): the selection is refused on that news, cancelling nothing."""
    world = make_world()
    per, [first, second], visa, waiting, processing = _waiting_beside_processing(world)
    assert processing.payment is not None
    assert processing.payment.charge_id
    world.gateway.settle(processing.payment.charge_id)  # its webhook is late
    with pytest.raises(InvalidSelectionError, match="paid"):
        world.billing.mass_pay(
            world.account.id,
            per.id,
            [first, second],
            payment_method_id=visa,
            now=at(DAY, 13),
        )
    _nothing_canceled(world, waiting.payment)


class _StartsAnotherOnCancel(InMemoryGateway):
    """While a waiting charge is canceled, another tab starts a new payment."""

    hook: Any = None

    def cancel_charge(self, charge_id: str) -> Any:
        result = super().cancel_charge(charge_id)
        if self.hook is not None:
            hook, self.hook = self.hook, None
            hook()
        return result


def test_a_payment_started_while_the_waiting_one_is_canceled_is_never_doubled() -> None:
    gateway = _StartsAnotherOnCancel()
    world = make_world(gateway=gateway)
    per, stuck, visa, ids, _ = _waiting(world)
    tab: list[Any] = []
    gateway.hook = lambda: tab.append(
        world.billing.pay(
            world.account.id, ids[0], payment_method_id=stuck, now=at(DAY, 13)
        )
    )
    with pytest.raises(InvalidSelectionError, match="payment in progress"):
        world.billing.mass_pay(
            world.account.id, per.id, ids, payment_method_id=visa, now=at(DAY, 13)
        )
    (other_tab,) = tab
    assert other_tab.status is PaymentStatus.REQUIRES_ACTION
    assert [p.id for p in _in_flight(world)] == [other_tab.payment.id]
    assert world.gateway.ledger == []


def test_another_card_refused_for_a_selection_leaves_the_waiting_one_as_it_was() -> (
    None
):
    """The same selection on another card is not a resubmit: refused (its
    invoices were credited meanwhile down to less than a card can take), it
    cancels nothing. (A credit note that settles an invoice cancels the
    waiting payment itself: see test_closing_a_waiting_invoice.py.)"""
    world = make_world()
    per, _, visa, ids, waiting = _waiting(world)
    for invoice in world.storage_invoices():
        world.billing.credit_invoice(
            world.account.id,
            invoice.id,
            amount=invoice.total - Money("1", "NOK"),
            reason="Goodwill",
            now=at(DAY),
        )
    with pytest.raises(SelectionAmountError, match="below the gateway's minimum"):
        world.billing.mass_pay(
            world.account.id, per.id, ids, payment_method_id=visa, now=at(DAY, 13)
        )
    still = world.billing.mass_payment(world.account.id, waiting.settlement.id)
    assert still.status is SettlementStatus.REQUIRES_ACTION
    _nothing_canceled(world, waiting.payment)

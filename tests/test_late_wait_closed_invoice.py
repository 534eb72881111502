"""A charge found waiting for 3-D Secure after its invoice closed is canceled.

An automatic charge's answer is lost (or its request never arrived), a bank
transfer pays the invoice meanwhile (a charge without an outcome is left
alone), and only then does recurbill learn that the charge waits for the
customer's authentication (``confirm_payment``, the daily run). The customer
must not be asked to confirm it, nor be able to: no "confirm your payment"
notice is queued, the charge is canceled at the gateway, and the payment is
recorded canceled. Whatever crash comes between those steps, doing it again
ends the same way, nothing charged.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from datetime import date
from typing import Any

import pytest

from billing_helpers import (
    CrashError,
    Faults,
    FaultyGateway,
    FaultyStorage,
    World,
    at,
    line,
    make_world,
)
from recurbill.collection import RetryPolicy
from recurbill.errors import GatewayUnavailableError, InvalidInputError, NotFoundError
from recurbill.money import Money
from recurbill.notices import NEEDS_ACTION, needs_action_notice_id
from recurbill.notify.render import render_summary
from recurbill.payments.memory import InMemoryGateway
from recurbill.payments.protocol import ChargeResult
from recurbill.records import (
    INVOICE_CLOSED,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentStatus,
    SettlementStatus,
)
from recurbill.storage.memory import InMemoryStorage
from recurbill.storage.protocol import Storage

DAY = date(2027, 3, 1)
LATER = at(DAY, 15)


def _payment(world: World, payment: Payment) -> Payment:
    with world.storage.transaction() as tx:
        return tx.get_payment(world.account.id, payment.id)


def _paid_by_transfer(world: World, invoice: Invoice) -> None:
    world.billing.record_bank_transfer(
        world.account.id,
        invoice.customer_id,
        amount=invoice.total,
        now=at(DAY, 12),
        reference="NO-7731",
    )


def _lost_then_paid(world: World, fault: str = "timeout_after") -> Payment:
    """A session's automatic charge on a 3-D Secure card whose answer is lost
    (*fault*), its invoice then paid in full by bank transfer."""
    kari = world.customer(card="pm_card_authenticationRequired")
    world.gateway.fail_next(fault)  # type: ignore[arg-type]
    lost = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(DAY, 9)
    ).payment
    assert lost is not None
    assert lost.status is PaymentStatus.FAILED_UNKNOWN
    _paid_by_transfer(world, world.invoice_of(lost))
    assert world.invoice_of(lost).status is InvoiceStatus.PAID
    return lost


def _confirm(world: World, payment: Payment) -> None:
    world.billing.confirm_payment(world.account.id, payment.id, now=LATER)


def _daily_run(world: World, payment: Payment) -> None:
    (report,) = world.billing.run(at(DAY + date.resolution, 7))
    assert report.count(PaymentStatus.CANCELED) == 1  # reported: news


def _never_asked_nor_charged(world: World, payment: Payment) -> None:
    """No "confirm your payment" notice was ever stored, the charge can no
    longer be completed, nothing moved and nothing became credit."""
    with world.storage.transaction() as tx, pytest.raises(NotFoundError):
        tx.get_notification(world.account.id, needs_action_notice_id(payment))
    assert NEEDS_ACTION not in world.deliver(at(DAY, 16))
    gateway = world.gateway
    charge_id = gateway.retrieve_charge(idempotency_key=payment.idempotency_key)
    assert charge_id is not None
    assert charge_id.status.value == "canceled"
    with pytest.raises(InvalidInputError, match="not waiting"):
        gateway.settle(charge_id.charge_id or "", succeed=True)
    assert gateway.ledger == []
    overview = world.billing.overview(world.account.id, payment.customer_id, on=DAY)
    assert overview.credit_balance == Money(0, "NOK")


@pytest.mark.parametrize("learn", [_confirm, _daily_run])
@pytest.mark.parametrize("fault", ["timeout_after", "timeout_before"])
def test_a_wait_learned_after_the_invoice_closed_is_canceled(
    storage: Storage, learn: Callable[[World, Payment], None], fault: str
) -> None:
    """The charge made but its answer lost (*timeout_after*: the look-up
    finds it waiting), or never received (*timeout_before*: it is made now,
    with its key, and answers that it waits)."""
    world = make_world(storage=storage)
    lost = _lost_then_paid(world, fault)
    learn(world, lost)
    assert _payment(world, lost).status is PaymentStatus.CANCELED
    assert world.invoice_of(lost).status is InvoiceStatus.PAID
    assert NEEDS_ACTION not in world.notification_kinds()
    _never_asked_nor_charged(world, lost)
    world.billing.run(at(DAY + 2 * date.resolution, 7))  # nothing left to finish
    assert _payment(world, lost).status is PaymentStatus.CANCELED
    assert [r.operation for r in world.gateway.requests].count("cancel_charge") == 1


class _TransferWhileCharging(InMemoryGateway):
    """A gateway that runs *meanwhile* (once) just before its next charge."""

    meanwhile: Callable[[], None] | None = None

    def charge(self, *args: Any, **kwargs: Any) -> ChargeResult:
        meanwhile, self.meanwhile = self.meanwhile, None
        if meanwhile is not None:
            meanwhile()
        return super().charge(*args, **kwargs)


def test_the_daily_runs_own_charge_found_waiting_for_a_paid_invoice_is_canceled(
    storage: Storage,
) -> None:
    """The run issues the invoice and commits its payment; a bank transfer
    pays the invoice before the charge's answer comes: the run's batch
    cancels the waiting charge and queues no notice."""
    gateway = _TransferWhileCharging()
    world = make_world(storage=storage, gateway=gateway)
    world.template(world.customer(card="pm_card_authenticationRequired"), start=DAY)

    def transfer() -> None:
        (invoice,) = world.storage_invoices()
        _paid_by_transfer(world, invoice)

    gateway.meanwhile = transfer
    (report,) = world.billing.run(at(DAY, 7))
    assert len(report.issued) == 1
    (charge,) = report.charges
    assert (charge.status, charge.decline_code) == (
        PaymentStatus.CANCELED,
        INVOICE_CLOSED,
    )
    (payment,) = world.payments()
    assert payment.status is PaymentStatus.CANCELED
    assert world.invoice_of(payment).status is InvoiceStatus.PAID
    assert NEEDS_ACTION not in world.notification_kinds()
    _never_asked_nor_charged(world, payment)


def test_completed_just_before_the_cancel_its_amount_becomes_credit(
    storage: Storage,
) -> None:
    """The customer's page completed the charge between the record of its
    wait and the cancel: the gateway says so, the success is recorded, with
    its receipt, and what the paid invoice no longer owes is credit."""
    world = make_world(storage=storage)
    lost = _lost_then_paid(world)
    gateway = world.gateway
    cancel = gateway.cancel_charge

    def completed_first(charge_id: str) -> ChargeResult:
        gateway.settle(charge_id, succeed=True)
        return cancel(charge_id)

    gateway.cancel_charge = completed_first  # type: ignore[method-assign]
    _confirm(world, lost)
    assert _payment(world, lost).status is PaymentStatus.SUCCEEDED
    assert len(gateway.ledger) == 1
    overview = world.billing.overview(world.account.id, lost.customer_id, on=DAY)
    assert overview.credit_balance == world.invoice_of(lost).total
    assert world.deliver(at(DAY, 16)) == ["receipt"]


def test_a_waiting_mass_payment_of_a_paid_invoice_is_canceled(
    storage: Storage,
) -> None:
    """A mass payment's answer lost, one of its invoices paid by transfer:
    found waiting, its amount no longer holds, so it is canceled (its
    settlement abandoned) and the customer's page cannot complete it."""
    world = make_world(storage=storage)
    per, stuck, _ = world.paying_by_hand()
    invoices = [
        world.billing.record_session(
            world.account.id, per.id, lines=[line(price)], now=at(date(2027, 1, n))
        ).invoice
        for n, price in [(1, "100"), (2, "200")]
    ]
    world.gateway.fail_next("timeout_after")
    lost = world.billing.mass_pay(
        world.account.id,
        per.id,
        [i.id for i in invoices],
        payment_method_id=stuck,
        now=at(DAY, 9),
    )
    assert lost.payment is not None
    assert lost.payment.status is PaymentStatus.FAILED_UNKNOWN
    _paid_by_transfer(world, invoices[0])  # the oldest, the other stays open
    after = world.billing.confirm_mass_payment(
        world.account.id, lost.settlement.id, now=LATER
    )
    assert after.status is SettlementStatus.ABANDONED
    assert after.payment is not None
    assert after.payment.status is PaymentStatus.CANCELED
    assert [i.status for i in after.invoices] == [
        InvoiceStatus.PAID,
        InvoiceStatus.OPEN,
    ]
    charge = world.gateway.retrieve_charge(idempotency_key=lost.payment.idempotency_key)
    assert charge is not None
    assert charge.status.value == "canceled"
    assert world.gateway.ledger == []


@pytest.mark.parametrize(
    ("kind", "mode"),
    [
        ("storage", "crash"),
        ("storage", "timeout_after"),
        ("gateway", "crash"),
        ("gateway", "timeout_after"),
    ],
)
def test_a_fault_at_every_step_then_a_rerun_ends_canceled(kind: str, mode: str) -> None:
    """A fault at each call of ``confirm_payment`` (the look-up, the record
    of the wait, the cancel, the record of the cancel): no notice is ever
    queued, and the next daily run ends with the payment canceled, its
    charge canceled, nothing charged and nothing credited."""
    k = 1
    while True:
        storage_faults, gateway_faults = Faults(mode=mode), Faults(mode=mode)
        gateway = InMemoryGateway()
        world = make_world(
            storage=FaultyStorage(InMemoryStorage(), storage_faults),  # type: ignore[arg-type]
            gateway=FaultyGateway(gateway, gateway_faults),  # type: ignore[arg-type]
        )
        world.gateway = gateway  # the checks below ask the gateway itself
        lost = _lost_then_paid(world)
        target = storage_faults if kind == "storage" else gateway_faults
        target.calls, target.fail_at = 0, k
        with suppress(CrashError, GatewayUnavailableError):
            _confirm(world, lost)
        fired = target.calls >= k
        target.fail_at = None
        assert world.notification_kinds() == [], f"{kind} {mode} fault at {k}"
        world.billing.run(at(DAY + date.resolution, 7))
        assert _payment(world, lost).status is PaymentStatus.CANCELED, (
            f"{kind} {mode} fault at call {k}"
        )
        _never_asked_nor_charged(world, lost)
        if not fired:
            break  # past the last call: every step was covered
        k += 1
    # the gateway is asked twice (the look-up, the cancel), storage often
    assert k > (5 if kind == "storage" else 2), "the harness must have covered them"


def test_a_cancel_not_answered_is_no_charge_to_complete_and_is_made_later(
    storage: Storage,
) -> None:
    """The cancel of the waiting charge gets no answer: confirm_payment hands
    back the payment waiting but without a client secret (nothing can
    complete it, and nothing raises after the answer was stored); the next
    call cancels it."""
    world = make_world(storage=storage)
    lost = _lost_then_paid(world)
    world.gateway.fail_next("unavailable", operation="cancel_charge")
    outcome = world.billing.confirm_payment(world.account.id, lost.id, now=LATER)
    assert outcome.payment is not None
    assert outcome.payment.status is PaymentStatus.REQUIRES_ACTION
    assert outcome.payment.client_secret is None
    assert _payment(world, lost).client_secret is None
    _confirm(world, lost)
    assert _payment(world, lost).status is PaymentStatus.CANCELED
    _never_asked_nor_charged(world, lost)


def test_a_cancel_not_made_outside_a_run_is_summarised_by_the_run_that_makes_it(
    storage: Storage,
) -> None:
    """confirm_payment finds the session's charge waiting for a paid invoice
    and its cancel gets no answer: no summary has listed the charge yet, so
    the daily run that makes the cancel lists it, in its report and in the
    summary e-mail."""
    world = make_world(storage=storage)
    lost = _lost_then_paid(world)
    world.gateway.fail_next("unavailable", operation="cancel_charge")
    _confirm(world, lost)
    assert _payment(world, lost).error_code == INVOICE_CLOSED
    world.deliver(LATER)  # earlier mail out of the way
    (report,) = world.billing.run(at(DAY + date.resolution, 7))
    (charge,) = report.charges
    assert (charge.status, charge.decline_code) == (
        PaymentStatus.CANCELED,
        INVOICE_CLOSED,
    )
    with world.storage.transaction() as tx:
        summaries = [
            " ".join(n.text.split())  # the result column wraps
            for n in tx.pending_notifications(limit=100)
            if n.kind == "daily_summary"
        ]
    assert len(summaries) == 1
    assert "Kansellert (fakturaen gjort opp på annen måte)" in summaries[0]
    assert world.invoice_of(lost).display_number in summaries[0]
    _never_asked_nor_charged(world, lost)


def test_a_session_charged_while_its_invoice_closed_is_not_issued_twice(
    storage: Storage,
) -> None:
    """record_session's own charge is found waiting for an invoice a transfer
    paid meanwhile, and its cancel gets no answer: the call returns (it
    raised after storing the invoice, and a retry issued a second one); the
    next look-up cancels the charge."""
    gateway = _TransferWhileCharging()
    world = make_world(storage=storage, gateway=gateway)
    kari = world.customer(card="pm_card_authenticationRequired")

    def transfer_then_no_cancel() -> None:
        (invoice,) = world.storage_invoices()
        _paid_by_transfer(world, invoice)
        gateway.fail_next("unavailable", operation="cancel_charge")

    gateway.meanwhile = transfer_then_no_cancel
    outcome = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(DAY, 9)
    )
    assert outcome.payment is not None
    assert outcome.payment.status is PaymentStatus.REQUIRES_ACTION
    assert outcome.payment.client_secret is None
    assert len(world.storage_invoices()) == 1
    _confirm(world, outcome.payment)
    assert _payment(world, outcome.payment).status is PaymentStatus.CANCELED
    _never_asked_nor_charged(world, outcome.payment)


def test_a_cancel_whose_record_fails_does_not_stop_the_daily_run() -> None:
    """The run's own charge found waiting for a paid invoice is canceled, but
    recording that meets a lock: the run goes on and reports; the payment
    stays waiting, without a notice, and the next run records the cancel."""
    faults = Faults()
    gateway = _TransferWhileCharging()
    world = make_world(
        storage=FaultyStorage(InMemoryStorage(), faults),  # type: ignore[arg-type]
        gateway=gateway,
    )
    world.template(world.customer(card="pm_card_authenticationRequired"), start=DAY)
    cancel = gateway.cancel_charge

    def then_locked(charge_id: str) -> ChargeResult:
        faults.mode, faults.fail_on = "lock_timeout", "update_payments"
        return cancel(charge_id)

    def transfer() -> None:
        (invoice,) = world.storage_invoices()
        _paid_by_transfer(world, invoice)

    gateway.meanwhile = transfer
    gateway.cancel_charge = then_locked  # type: ignore[method-assign]
    (report,) = world.billing.run(at(DAY, 7))
    assert len(report.issued) == 1
    (payment,) = world.payments()
    assert payment.status is PaymentStatus.REQUIRES_ACTION
    # not "needs the customer's confirmation": the summary says why it ends
    (charge,) = report.charges
    assert (charge.status, charge.decline_code) == (
        PaymentStatus.CANCELED,
        INVOICE_CLOSED,
    )
    summary = render_summary(world.account, report)
    text = " ".join(summary.text.split())  # the result column wraps
    assert "Kansellert (fakturaen gjort opp på annen måte)" in text
    assert NEEDS_ACTION not in world.notification_kinds()
    gateway.cancel_charge = cancel  # type: ignore[method-assign]
    _daily_run(world, payment)
    assert _payment(world, payment).status is PaymentStatus.CANCELED
    _never_asked_nor_charged(world, payment)


def test_a_batch_recorded_one_by_one_goes_on_past_a_cancel_not_answered() -> None:
    """The run's batch record fails and each answer is recorded on its own;
    the charge found waiting for a paid invoice cannot be canceled now: the
    run goes on, and the next run cancels it."""
    faults = Faults()
    gateway = _TransferWhileCharging()
    world = make_world(
        storage=FaultyStorage(InMemoryStorage(), faults),  # type: ignore[arg-type]
        gateway=gateway,
    )
    world.template(world.customer(card="pm_card_authenticationRequired"), start=DAY)

    def transfer_then_faults() -> None:
        (invoice,) = world.storage_invoices()
        _paid_by_transfer(world, invoice)
        faults.mode, faults.fail_on = "lock_timeout", "update_payments"
        gateway.fail_next("unavailable", operation="cancel_charge")

    gateway.meanwhile = transfer_then_faults
    (report,) = world.billing.run(at(DAY, 7))
    assert len(report.issued) == 1
    (payment,) = world.payments()
    assert payment.status is PaymentStatus.REQUIRES_ACTION
    assert NEEDS_ACTION not in world.notification_kinds()
    _daily_run(world, payment)
    assert _payment(world, payment).status is PaymentStatus.CANCELED
    _never_asked_nor_charged(world, payment)


def test_a_retry_found_waiting_for_a_paid_invoice_does_not_stop_the_run() -> None:
    """A declined charge's retry goes to the customer's new card, which asks
    for 3-D Secure; the invoice is paid by transfer while it is sent, and
    the cancel gets no answer: the run goes on; the next run cancels it."""
    gateway = _TransferWhileCharging()
    world = make_world(gateway=gateway, retry_policy=RetryPolicy((1,)))
    kari = world.customer(card="pm_card_visa_chargeDeclined")
    world.template(kari, start=DAY)
    (first,) = world.billing.run(at(DAY, 7)).pop().charges
    assert first.status is PaymentStatus.DECLINED
    world.billing.save_card(
        world.account.id, kari.id, token="pm_card_authenticationRequired"
    )

    def transfer_then_no_cancel() -> None:
        (invoice,) = world.storage_invoices()
        _paid_by_transfer(world, invoice)
        gateway.fail_next("unavailable", operation="cancel_charge")

    gateway.meanwhile = transfer_then_no_cancel
    world.billing.run(at(DAY + date.resolution, 7))  # the retry: no raise
    retry = max(world.payments(), key=lambda p: p.attempt)
    assert retry.attempt == 2
    assert retry.status is PaymentStatus.REQUIRES_ACTION
    assert NEEDS_ACTION not in world.notification_kinds()
    world.billing.run(at(DAY + 2 * date.resolution, 7))
    assert _payment(world, retry).status is PaymentStatus.CANCELED
    _never_asked_nor_charged(world, retry)

"""Random sequences of billing operations never create, lose or double money.

Hypothesis drives a small world through random operations: sessions, single
and mass payments with test cards that succeed, decline or need
authentication, credit notes, refunds (reopening or crediting), bank
transfers, voids, daily runs, gateway faults (lost answers, outages) and
customers authenticating late. After every step, for every customer:

    money received - money refunded == what is applied to invoices + credit

and no invoice is paid or credited beyond its total, open without owing or
paid while owing. At the end, once every unfinished payment and refund is
finished, the books and the gateway agree charge for charge.
"""

from __future__ import annotations

import contextlib
import random
from datetime import date, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing_helpers import World, at, line, make_world
from recurbill.corrections import REFUND_FAILED, UNANSWERED
from recurbill.errors import GatewayUnavailableError, RecurbillError
from recurbill.money import Money
from recurbill.records import CollectionMethod, InvoiceStatus, PaymentStatus

CARDS = [
    "pm_card_visa",
    "pm_card_authenticationRequired",
    "pm_card_visa_chargeDeclinedInsufficientFunds",
    "pm_card_mastercard",
]
OPERATIONS = [
    "session", "session", "pay", "pay", "mass", "mass", "credit", "refund",
    "refund", "transfer", "run", "fault", "process", "settle", "settle",
    "confirm", "day", "void",
]  # fmt: skip
ZERO = Money(0, "NOK")
PRICES = ["100", "240", "800"]


def _errors(world: World, transfers: dict[str, Money], *, final: bool) -> list[str]:
    errors: list[str] = []
    account = world.account.id
    with world.storage.transaction() as tx:
        invoices = tx.list_invoices(account)
        payments = tx.list_payments(account)
        customers = tx.list_customers(account)
        credit = {
            c.id: sum((e.amount for e in tx.list_credit_entries(account, c.id)), ZERO)
            for c in customers
        }
        refunds = tx.list_refunds(account)
    answered = [r for r in refunds if r.status not in (*UNANSWERED, REFUND_FAILED)]
    by_payment = {p.id: p for p in payments}
    for customer in customers:
        mine = [p for p in payments if p.customer_id == customer.id]
        received = sum(
            (p.amount for p in mine if p.status is PaymentStatus.SUCCEEDED),
            transfers.get(customer.id, ZERO),
        )
        refunded = sum(
            (r.amount for r in answered if by_payment[r.payment_id] in mine), ZERO
        )
        applied = ZERO
        for invoice in (i for i in invoices if i.customer_id == customer.id):
            if invoice.status is InvoiceStatus.VOID:
                continue
            applied += min(invoice.paid, invoice.total - invoice.credited)
            if not (ZERO <= invoice.paid <= invoice.total) or not (
                ZERO <= invoice.credited <= invoice.total
            ):
                errors.append(f"{invoice.id} paid/credited beyond its total")
            if invoice.status is InvoiceStatus.OPEN and invoice.outstanding <= ZERO:
                errors.append(f"{invoice.id} open while owing nothing")
            if invoice.status is InvoiceStatus.PAID and invoice.outstanding > ZERO:
                errors.append(f"{invoice.id} paid while owing {invoice.outstanding}")
        if received - refunded != applied + credit[customer.id]:
            errors.append(
                f"{customer.id}: received {received} - refunded {refunded} != "
                f"applied {applied} + credit {credit[customer.id]}"
            )
    charged: dict[str, int] = {}
    for charge in world.gateway.ledger:
        charged[charge.idempotency_key] = charged.get(charge.idempotency_key, 0) + 1
    by_key = {p.idempotency_key: p for p in payments}
    for key, times in charged.items():
        if times > 1:
            errors.append(f"{key} charged {times} times")
        payment = by_key.get(key)
        if payment is None:
            errors.append(f"gateway charge {key} unknown to the books")
        elif payment.status is PaymentStatus.DECLINED or (
            final and payment.status is not PaymentStatus.SUCCEEDED
        ):
            errors.append(f"gateway charged {key}; books say {payment.status.value}")
    for payment in payments:
        if (
            payment.status is PaymentStatus.SUCCEEDED
            and payment.idempotency_key not in (charged)
        ):
            errors.append(f"{payment.id} succeeded in the books only")
    if final:
        booked = {r.refund_id for r in answered}
        gateway = {r.refund_id for r in world.gateway.refunds}
        if booked != gateway:
            errors.append(f"refunds: books {sorted(booked)} gateway {sorted(gateway)}")
    return errors


def _step(world: World, rnd: random.Random, state: dict[str, Any]) -> None:
    account = world.account.id
    customer = rnd.choice(state["customers"])
    now = at(state["day"], rnd.randint(8, 20))
    with world.storage.transaction() as tx:
        invoices = tx.list_invoices(account, customer_id=customer)
        payments = tx.list_payments(account, customer_id=customer)
    open_ = [i for i in invoices if i.status is InvoiceStatus.OPEN]
    cards = state["cards"][customer]
    operation = rnd.choice(OPERATIONS)
    if operation == "session":
        session = str(rnd.randint(1, 20)) if rnd.random() < 0.5 else None
        price = rnd.choice(PRICES)
        if session is not None:  # a repeat of a session bills what it billed
            price = PRICES[int(session) % len(PRICES)]
        world.billing.record_session(
            account, customer, lines=[line(price)], now=now, session_id=session
        )
    elif operation == "pay" and invoices:
        invoice = rnd.choice(open_ or invoices)
        world.billing.pay(
            account, invoice.id, payment_method_id=rnd.choice(cards), now=now
        )
    elif operation == "mass" and invoices:
        pool = [i.id for i in (open_ or invoices)]
        chosen = rnd.sample(pool, rnd.randint(1, min(3, len(pool))))
        world.billing.mass_pay(
            account, customer, chosen, payment_method_id=rnd.choice(cards), now=now
        )
    elif operation == "credit" and invoices:
        amount = Money(rnd.choice(["50", "100", "300", "1000"]), "NOK")
        world.billing.credit_invoice(
            account, rnd.choice(invoices).id, amount=amount, reason="x", now=now
        )
    elif operation == "refund" and payments:
        amount = rnd.choice([None, Money("50", "NOK"), Money("500", "NOK")])
        world.billing.refund(
            account,
            rnd.choice(payments).id,
            now=now,
            amount=amount,
            reopen=rnd.random() < 0.5,
        )
    elif operation == "transfer":
        amount = Money(rnd.choice(["100", "500", "1500"]), "NOK")
        state["n"] += 1
        world.billing.record_bank_transfer(
            account, customer, amount=amount, now=now, reference=f"bank-{state['n']}"
        )
        state["transfers"][customer] = state["transfers"].get(customer, ZERO) + amount
    elif operation == "run":
        world.billing.run(now)
    elif operation == "fault":
        world.gateway.fail_next(
            rnd.choice(["timeout_after", "timeout_before", "unavailable"]),
            operation=rnd.choice(["charge", "refund", "retrieve_charge"]),
        )
    elif operation == "process":
        world.gateway.process_next()
    elif operation == "settle":
        waiting = [
            p
            for p in payments
            if p.status in (PaymentStatus.REQUIRES_ACTION, PaymentStatus.PROCESSING)
            and p.charge_id
        ]
        if waiting:
            charge_id = rnd.choice(waiting).charge_id
            assert charge_id is not None
            world.gateway.settle(charge_id, succeed=rnd.random() < 0.7)
    elif operation == "confirm" and payments:
        payment = rnd.choice(payments)
        world.billing.confirm_payment(account, payment.id, now=now)
    elif operation == "day":
        state["day"] += timedelta(days=rnd.randint(1, 4))
    elif operation == "void" and invoices:
        world.billing.void_invoice(account, rnd.choice(invoices).id)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(rnd=st.randoms(use_true_random=False), steps=st.integers(20, 60))
def test_random_operations_keep_the_books_and_the_gateway_in_step(
    rnd: random.Random, steps: int
) -> None:
    world = make_world()
    state: dict[str, Any] = {
        "customers": [],
        "cards": {},
        "transfers": {},
        "day": date(2027, 1, 1),
        "n": 0,
    }
    for n, method in enumerate(
        [CollectionMethod.CHARGE_AUTOMATICALLY, CollectionMethod.SEND_INVOICE]
    ):
        customer = world.customer(f"Customer{n} Nordmann", card=None, method=method)
        state["customers"].append(customer.id)
        state["cards"][customer.id] = [
            world.billing.save_card(
                world.account.id, customer.id, token=card, make_default=(j == 0)
            ).id
            for j, card in enumerate(rnd.sample(CARDS, 3))
        ]
    for _ in range(steps):
        with contextlib.suppress(RecurbillError):  # a refusal or an outage:
            _step(world, rnd, state)  # nothing may be half-written
        assert _errors(world, state["transfers"], final=False) == []
    for _ in range(12):  # outages are over: finish what is unfinished
        try:
            world.billing.run(at(state["day"] + timedelta(days=1), 23))
        except GatewayUnavailableError:
            continue
    assert _errors(world, state["transfers"], final=True) == []

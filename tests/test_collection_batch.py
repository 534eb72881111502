"""Recording a batch of gateway answers at once: each sees the ones before it."""

from __future__ import annotations

from datetime import date

from billing_helpers import at, line, make_world
from recurbill.ids import derived_id
from recurbill.records import CollectionMethod, InvoiceStatus, PaymentStatus


def test_two_payments_of_one_invoice_in_one_batch_pay_it_once() -> None:
    world = make_world()
    kari = world.customer(method=CollectionMethod.SEND_INVOICE)
    now = at(date(2027, 3, 1))
    outcome = world.billing.record_session(
        world.account.id, kari.id, lines=[line("800")], now=now
    )
    collector = world.billing._collector
    with world.storage.transaction() as tx:
        account = tx.get_account(world.account.id)
        customer = tx.get_customer(account.id, kari.id)
        (card,) = tx.list_payment_methods(account.id, kari.id)
        invoice = tx.get_invoice(account.id, outcome.invoice.id)
        payments = [
            collector.new_payment(
                account=account,
                customer=customer,
                method=card,
                invoices=[invoice],
                amount=invoice.total,
                now=now,
                off_session=True,
                payment_id=derived_id("pay", account.id, invoice.id, tab),
            )
            for tab in ("tab-1", "tab-2")
        ]
        tx.add_payments(payments)
        tx.commit()

    (first, second), stop = collector.charge_batch(
        [(payment, customer, card) for payment in payments], now=now
    )
    assert stop is None

    assert first.status is second.status is PaymentStatus.SUCCEEDED
    assert len(world.gateway.ledger) == 2  # both charges went through
    (paid,) = world.storage_invoices()
    assert paid.status is InvoiceStatus.PAID
    assert paid.paid == invoice.total  # paid once, not twice
    with world.storage.transaction() as tx:
        receipts = tx.list_receipts(account.id, kari.id)
        (credit,) = tx.list_credit_entries(account.id, kari.id)
    # the second payment found the invoice settled by the first: its money
    # became credit, and each payment got its own receipt, numbered in order
    assert credit.amount == invoice.total
    assert credit.source_id == second.id
    by_payment = {r.payment_id: r for r in receipts}
    assert by_payment[first.id].number == "RCPT-000001"
    assert by_payment[second.id].number == "RCPT-000002"
    assert [item.amount for item in by_payment[first.id].items] == [invoice.total]
    assert [item.amount for item in by_payment[second.id].items] == [invoice.total * 0]
    assert world.notification_kinds().count("receipt") == 2

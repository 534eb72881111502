from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from billing_helpers import OSLO, World, at, line, make_world
from recurbill.billing import Billing
from recurbill.collection import RetryPolicy
from recurbill.errors import (
    GatewayUnavailableError,
    InvalidInputError,
    InvalidRecordError,
    NotFoundError,
    StartTooEarlyError,
    StateError,
)
from recurbill.money import Money
from recurbill.notify.message import Message
from recurbill.payments.memory import InMemoryGateway
from recurbill.records import (
    CollectionMethod,
    InvoiceStatus,
    OccurrenceOutcome,
    PaymentStatus,
    TemplateStatus,
)
from recurbill.schedule import OccurrenceStatus
from recurbill.storage.memory import InMemoryStorage
from recurbill.testing import make_template

NOK = "NOK"


def nok(amount: str) -> Money:
    return Money(amount, NOK)


# accounts, customers, templates -------------------------------------------


def test_account_validation_names_what_is_allowed() -> None:
    world = make_world()
    with pytest.raises(InvalidRecordError, match="IANA zone"):
        world.billing.create_account(
            name="X", currency="NOK", summary_email="a@b.no", timezone="Mars/Base"
        )
    with pytest.raises(InvalidRecordError, match="locale"):
        world.billing.create_account(
            name="X", currency="NOK", summary_email="a@b.no", locale="xx_YY"
        )
    with pytest.raises(InvalidRecordError, match="e-mail"):
        world.billing.create_account(name="X", currency="NOK", summary_email="nope")


@pytest.mark.parametrize(
    "address",
    [
        '"kari"@example.no',
        "<kari@example.no>",
        "Kari <kari@example.no>",
        "kari@example.no,ola@example.no",
        "kari@example.no; ola@example.no",
    ],
)
def test_only_addresses_a_message_can_be_sent_to_are_stored(address: str) -> None:
    world = make_world()
    with pytest.raises(InvalidRecordError, match="not a single e-mail address"):
        world.billing.add_customer(world.account.id, name="Kari", email=address)
    with pytest.raises(InvalidRecordError, match="not a single e-mail address"):
        world.billing.create_account(name="X", currency="NOK", summary_email=address)
    with pytest.raises(InvalidInputError, match="not a single e-mail address"):
        Message(recipient=address, subject="Hei", text="Hei")
    with world.storage.transaction() as tx:
        assert tx.list_account_ids() == [world.account.id]


def test_template_start_must_be_tomorrow_or_later() -> None:
    world = make_world()
    kari = world.customer()
    today = date(2026, 11, 22)
    with pytest.raises(StartTooEarlyError, match="2026-11-23"):
        world.template(kari, start=today, created=today)
    # late in the evening UTC is already tomorrow in Oslo
    late = datetime(2026, 11, 22, 23, 30, tzinfo=timezone.utc)
    with pytest.raises(StartTooEarlyError, match="2026-11-24"):
        world.billing.create_template(
            world.account.id,
            kari.id,
            lines=[line()],
            start=date(2026, 11, 23),
            period="month",
            now=late,
        )
    assert world.template(kari, start=today + timedelta(days=1), created=today)


def test_template_needs_lines_and_a_known_customer() -> None:
    world = make_world()
    kari = world.customer()
    with pytest.raises(InvalidInputError, match="InvoiceLine"):
        world.billing.create_template(
            world.account.id,
            kari.id,
            lines=[],
            start=date(2027, 1, 1),
            period="month",
            now=at(date(2026, 12, 1)),
        )
    with pytest.raises(NotFoundError):
        world.billing.create_template(
            world.account.id,
            "cus_nobody",
            lines=[line()],
            start=date(2027, 1, 1),
            period="month",
            now=at(date(2026, 12, 1)),
        )


def test_naive_instants_are_refused() -> None:
    world = make_world()
    with pytest.raises(InvalidInputError, match="aware datetime"):
        world.billing.run(datetime(2027, 1, 1, 7))


@pytest.mark.parametrize(
    "as_of",
    [
        datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))),
        datetime(9999, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=5))),  # UTC: year 1
        datetime(9998, 12, 31, 23, tzinfo=timezone(-timedelta(hours=23, minutes=59))),
    ],
)
def test_instants_at_the_ends_of_the_calendar_are_refused(as_of: datetime) -> None:
    world = make_world()
    world.template(world.customer(), start=date(2027, 1, 31))
    with pytest.raises(InvalidInputError, match="in the years 2 to 9998"):
        world.billing.run(as_of)
    with pytest.raises(InvalidRecordError, match="in the years 2 to 9998"):
        make_template(created_at=as_of)


# the daily run -------------------------------------------------------------


def test_run_issues_and_charges_once_and_a_second_run_issues_nothing() -> None:
    world = make_world()
    kari = world.customer()
    template_id = world.template(kari, start=date(2027, 1, 31))
    (report,) = world.billing.run(at(date(2027, 1, 31), 7))
    assert [i.issue_date for i in report.issued] == [date(2027, 1, 31)]
    assert [c.status for c in report.charges] == [PaymentStatus.SUCCEEDED]
    assert world.billing.run(at(date(2027, 1, 31), 23))[0].is_empty
    invoices = world.storage_invoices()
    assert [i.status for i in invoices] == [InvoiceStatus.PAID]
    assert invoices[0].total == nok("1000.00")
    assert invoices[0].template_id == template_id
    assert len(world.gateway.ledger) == 1


def test_not_due_before_the_run_time_in_the_accounts_zone() -> None:
    world = make_world()
    world.template(world.customer(), start=date(2027, 3, 1))
    before = datetime.combine(date(2027, 3, 1), time(6, 14), tzinfo=OSLO)
    assert world.billing.run(before)[0].issued == ()
    after = datetime.combine(date(2027, 3, 1), time(6, 15), tzinfo=OSLO)
    assert len(world.billing.run(after)[0].issued) == 1


def test_catch_up_after_ten_missed_days_dates_each_invoice_its_own_day() -> None:
    world = make_world()
    world.template(world.customer(), start=date(2027, 2, 1), period="week", every=1)
    world.template(world.customer("Ola Hansen"), start=date(2027, 2, 3), period="week")
    (report,) = world.billing.run(at(date(2027, 2, 1), 7))
    assert len(report.issued) == 1
    (report,) = world.billing.run(at(date(2027, 2, 12), 7))  # missed ten days
    assert sorted(i.issue_date for i in report.issued) == [
        date(2027, 2, 3),
        date(2027, 2, 8),
        date(2027, 2, 10),
    ]
    assert world.billing.run(at(date(2027, 2, 12), 8))[0].issued == ()
    numbers = sorted(i.number for i in world.storage_invoices())
    assert numbers == list(range(1, len(numbers) + 1))


def test_send_invoice_customers_get_the_invoice_by_mail_not_a_charge() -> None:
    world = make_world()
    per = world.customer("Per Olsen", card=None, method=CollectionMethod.SEND_INVOICE)
    world.template(per, start=date(2027, 1, 10))
    (report,) = world.billing.run(at(date(2027, 1, 10), 7))
    assert len(report.issued) == 1
    assert report.charges == ()
    assert world.gateway.ledger == []
    kinds = world.notification_kinds()
    assert kinds.count("invoice") == 1
    assert kinds.count("daily_summary") == 1


def test_no_summary_for_an_account_with_nothing_to_report_unless_asked() -> None:
    world = make_world()
    world.billing.run(at(date(2027, 1, 10), 7))
    assert world.notification_kinds() == []
    world.billing.run(at(date(2027, 1, 11), 7), summary_when_empty=True)
    assert world.notification_kinds() == ["daily_summary"]


def test_paused_occurrences_are_skipped_not_back_filled_and_rhythm_continues() -> None:
    world = make_world()
    tid = world.template(world.customer(), start=date(2027, 1, 4), period="week")
    world.billing.pause_template(
        world.account.id, tid, on=date(2027, 1, 10), resume=date(2027, 1, 25)
    )
    reports = [
        world.billing.run(at(date(2027, 1, 4) + timedelta(days=d), 7))[0]
        for d in range(29)
    ]
    issued = [i.issue_date for r in reports for i in r.issued]
    skipped = [s.on for r in reports for s in r.skipped]
    assert issued == [date(2027, 1, 4), date(2027, 1, 25), date(2027, 2, 1)]
    assert skipped == [date(2027, 1, 11), date(2027, 1, 18)]
    view = world.billing.template_view(world.account.id, tid, upcoming=3)
    assert [o.outcome for o in view.history] == [
        OccurrenceOutcome.ISSUED,
        OccurrenceOutcome.SKIPPED,
        OccurrenceOutcome.SKIPPED,
        OccurrenceOutcome.ISSUED,
        OccurrenceOutcome.ISSUED,
    ]
    assert [u.occurrence.on for u in view.upcoming] == [
        date(2027, 2, 8),
        date(2027, 2, 15),
        date(2027, 2, 22),
    ]
    assert all(u.amount == nok("1000.00") for u in view.upcoming)


def test_preview_and_run_agree() -> None:
    world = make_world()
    tid = world.template(
        world.customer(), start=date(2027, 1, 31), period="month", max_count=4
    )
    world.billing.pause_template(
        world.account.id, tid, on=date(2027, 3, 1), resume=date(2027, 4, 1)
    )
    preview = world.billing.template_view(world.account.id, tid, upcoming=10)
    promised = [(u.occurrence.on, u.occurrence.status) for u in preview.upcoming]
    # the upcoming invoice names its occurrence's fields as the history does
    assert [(u.index, u.on, u.status) for u in preview.upcoming] == [
        (u.occurrence.index, *promised[n]) for n, u in enumerate(preview.upcoming)
    ]
    assert OccurrenceStatus.SKIPPED_PAUSED in {u.status for u in preview.upcoming}
    assert [u.index for u in preview.upcoming] == list(range(len(promised)))
    for day in range(0, 130):
        world.billing.run(at(date(2027, 1, 31) + timedelta(days=day), 7))
    done = world.billing.template_view(world.account.id, tid)
    happened = [
        (
            o.on,
            OccurrenceStatus.SCHEDULED
            if o.outcome is OccurrenceOutcome.ISSUED
            else OccurrenceStatus.SKIPPED_PAUSED,
        )
        for o in done.history
    ]
    assert happened == promised[: len(happened)]
    assert [d for d, _ in happened] == [
        date(2027, 1, 31),
        date(2027, 2, 28),
        date(2027, 3, 31),  # skipped: max_count counts the invoices, so ...
        date(2027, 4, 30),
        date(2027, 5, 31),  # ... the fourth invoice comes a month later
    ]
    assert len(done.invoices) == 4
    assert done.template.status is TemplateStatus.FINISHED
    assert done.upcoming == ()


def test_end_date_finishes_the_template_and_the_report_says_so() -> None:
    world = make_world()
    tid = world.template(
        world.customer(), start=date(2027, 1, 1), period="week", end=date(2027, 1, 8)
    )
    world.billing.run(at(date(2027, 1, 1), 7))
    (report,) = world.billing.run(at(date(2027, 1, 8), 7))
    assert [e.template_id for e in report.ended] == [tid]
    assert world.billing.run(at(date(2027, 3, 1), 7))[0].issued == ()
    with pytest.raises(StateError, match="finished"):
        world.billing.pause_template(world.account.id, tid, on=date(2027, 3, 2))


@pytest.mark.parametrize(
    ("zone", "day", "local_run"),
    [
        ("Europe/Oslo", date(2027, 3, 28), time(6, 15)),  # spring forward night
        ("Europe/Oslo", date(2027, 10, 31), time(6, 15)),  # fall back
        ("Atlantic/Reykjavik", date(2027, 3, 28), time(6, 15)),
        ("America/New_York", date(2027, 3, 14), time(6, 15)),
        ("America/New_York", date(2027, 11, 7), time(6, 15)),
    ],
)
def test_invoices_come_at_six_fifteen_local_across_dst(
    zone: str, day: date, local_run: time
) -> None:
    world = make_world(timezone=zone)
    world.template(
        world.customer(), start=day, period="week", created=day - timedelta(days=2)
    )
    tz = ZoneInfo(zone)
    due = datetime.combine(day, local_run, tzinfo=tz)
    assert world.billing.run(due - timedelta(minutes=1))[0].issued == ()
    assert len(world.billing.run(due)[0].issued) == 1
    nxt = datetime.combine(day + timedelta(days=7), local_run, tzinfo=tz)
    assert world.billing.run(nxt - timedelta(minutes=1))[0].issued == ()
    assert len(world.billing.run(nxt)[0].issued) == 1


# declines and retries ------------------------------------------------------


def test_a_decline_leaves_the_invoice_open_and_retries_follow_the_policy() -> None:
    world = make_world(retry_policy=RetryPolicy((3, 5, 7)))
    ingrid = world.customer(
        "Ingrid Berg", card="pm_card_visa_chargeDeclinedInsufficientFunds"
    )
    world.template(ingrid, start=date(2027, 1, 4))
    first = world.billing.run(at(date(2027, 1, 4), 7))[0]
    assert [c.status for c in first.charges] == [PaymentStatus.DECLINED]
    assert first.charges[0].decline_code == "insufficient_funds"
    attempts_on = {}
    for d in range(1, 12):
        day = date(2027, 1, 4) + timedelta(days=d)
        report = world.billing.run(at(day, 7))[0]
        if report.charges:
            attempts_on[day] = [c.status for c in report.charges]
    assert list(attempts_on) == [date(2027, 1, 7), date(2027, 1, 9), date(2027, 1, 11)]
    payments = world.payments()
    assert sorted(p.attempt for p in payments) == [1, 2, 3, 4]
    assert len({p.idempotency_key for p in payments}) == 4
    (invoice,) = world.storage_invoices()
    assert invoice.status is InvoiceStatus.OPEN
    assert world.notification_kinds().count("payment_failed") == 1


def test_hard_declines_are_not_retried() -> None:
    world = make_world()
    world.template(
        world.customer(card="pm_card_visa_chargeDeclinedLostCard"),
        start=date(2027, 1, 4),
    )
    world.billing.run(at(date(2027, 1, 4), 7))
    for d in range(1, 10):
        world.billing.run(at(date(2027, 1, 4) + timedelta(days=d), 7))
    assert len(world.payments()) == 1
    assert world.notification_kinds().count("payment_failed") == 1


# sessions, single payments, overview ---------------------------------------


def test_record_session_charges_at_once_and_issues_a_receipt() -> None:
    world = make_world()
    kari = world.customer()
    outcome = world.billing.record_session(
        world.account.id, kari.id, lines=[line("850")], now=at(date(2027, 1, 5), 15)
    )
    assert outcome.status is PaymentStatus.SUCCEEDED
    assert outcome.invoice.status is InvoiceStatus.PAID
    assert outcome.invoice.issue_date == date(2027, 1, 5)
    assert outcome.receipt is not None
    assert outcome.receipt.amount == nok("1062.50")
    assert (outcome.receipt.card_brand, outcome.receipt.card_last4) == ("visa", "4242")
    assert outcome.invoice.payment_reference.isdigit()


def test_the_same_session_recorded_twice_charges_once() -> None:
    world = make_world()
    kari = world.customer()
    first = world.billing.record_session(
        world.account.id,
        kari.id,
        lines=[line()],
        now=at(date(2027, 1, 5)),
        session_id="s-1",
    )
    again = world.billing.record_session(
        world.account.id,
        kari.id,
        lines=[line()],
        now=at(date(2027, 1, 5)),
        session_id="s-1",
    )
    assert again.invoice.id == first.invoice.id
    assert len(world.gateway.ledger) == 1
    assert len(world.storage_invoices()) == 1


def test_authentication_required_leaves_the_invoice_open_with_what_to_complete() -> (
    None
):
    world = make_world()
    kari = world.customer(card="pm_card_authenticationRequired")
    outcome = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(date(2027, 1, 5))
    )
    assert outcome.status is PaymentStatus.REQUIRES_ACTION
    assert outcome.payment is not None
    assert outcome.payment.client_secret
    assert outcome.invoice.status is InvoiceStatus.OPEN
    assert world.notification_kinds() == ["payment_needs_action"]


def test_customer_pays_an_open_invoice_from_the_overview() -> None:
    world = make_world()
    per = world.customer("Per Olsen", card=None, method=CollectionMethod.SEND_INVOICE)
    card = world.billing.save_card(world.account.id, per.id, token="pm_card_mastercard")
    world.billing.record_session(
        world.account.id, per.id, lines=[line("400")], now=at(date(2027, 1, 5))
    )
    overview = world.billing.overview(world.account.id, per.id, on=date(2027, 1, 30))
    assert overview.total_open == nok("500.00")
    assert [i.status for i in overview.overdue] == [InvoiceStatus.OPEN]
    assert overview.total_overdue == nok("500.00")
    assert [m.last4 for m in overview.payment_methods] == ["4444"]
    invoice = overview.open[0]
    outcome = world.billing.pay(
        world.account.id,
        invoice.id,
        payment_method_id=card.id,
        now=at(date(2027, 1, 30)),
    )
    assert outcome.status is PaymentStatus.SUCCEEDED
    after = world.billing.overview(world.account.id, per.id, on=date(2027, 1, 30))
    assert after.open == ()
    assert [i.id for i in after.paid] == [invoice.id]
    assert len(after.receipts) == 1
    with pytest.raises(StateError, match="only an open invoice"):
        world.billing.pay(
            world.account.id,
            invoice.id,
            payment_method_id=card.id,
            now=at(date(2027, 1, 30)),
        )


def test_another_customers_card_is_not_found() -> None:
    world = make_world()
    kari = world.customer()
    ola = world.customer("Ola Hansen")
    outcome = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(date(2027, 1, 5))
    )
    ola_card = world.billing.overview(
        world.account.id, ola.id, on=date(2027, 1, 5)
    ).payment_methods[0]
    world.billing.refund(world.account.id, outcome.payment.id, now=at(date(2027, 1, 6)))  # type: ignore[union-attr]
    with pytest.raises(NotFoundError):
        world.billing.pay(
            world.account.id,
            outcome.invoice.id,
            payment_method_id=ola_card.id,
            now=at(date(2027, 1, 6)),
        )


def test_replace_card_makes_the_new_one_default_and_forgets_the_old() -> None:
    world = make_world()
    kari = world.customer()
    old = world.billing.overview(
        world.account.id, kari.id, on=date(2027, 1, 1)
    ).payment_methods[0]
    new = world.billing.replace_card(
        world.account.id,
        kari.id,
        old_method_id=old.id,
        token="pm_card_mastercard",
        now=at(date(2027, 1, 1)),
    )
    overview = world.billing.overview(world.account.id, kari.id, on=date(2027, 1, 1))
    assert [m.id for m in overview.payment_methods] == [new.id]
    assert overview.customer.default_payment_method_id == new.id


def test_replace_card_refuses_the_old_cards_own_token_and_changes_nothing() -> None:
    world = make_world()
    kari = world.customer()
    (old,) = world.billing.overview(
        world.account.id, kari.id, on=date(2027, 1, 1)
    ).payment_methods
    with pytest.raises(InvalidInputError, match="is the card being replaced"):
        world.billing.replace_card(
            world.account.id,
            kari.id,
            old_method_id=old.id,
            token=old.token,
            now=at(date(2027, 1, 1)),
        )
    overview = world.billing.overview(world.account.id, kari.id, on=date(2027, 1, 1))
    assert list(overview.payment_methods) == [old]
    assert overview.customer.default_payment_method_id == old.id
    outcome = world.billing.record_session(  # the card still charges
        world.account.id, kari.id, lines=[line()], now=at(date(2027, 1, 2))
    )
    assert outcome.payment is not None
    assert outcome.payment.status is PaymentStatus.SUCCEEDED
    assert outcome.payment.payment_method_id == old.id


# void, credit notes, refunds ------------------------------------------------


def test_void_only_open_unpaid_invoices() -> None:
    world = make_world()
    per = world.customer("Per Olsen", card=None, method=CollectionMethod.SEND_INVOICE)
    outcome = world.billing.record_session(
        world.account.id, per.id, lines=[line()], now=at(date(2027, 1, 5))
    )
    voided = world.billing.void_invoice(world.account.id, outcome.invoice.id)
    assert voided.status is InvoiceStatus.VOID
    with pytest.raises(StateError, match="void only"):
        world.billing.void_invoice(world.account.id, outcome.invoice.id)


def test_credit_note_lowers_what_is_owed_and_on_a_paid_invoice_creates_credit() -> None:
    world = make_world()
    per = world.customer("Per Olsen", card=None, method=CollectionMethod.SEND_INVOICE)
    invoice = world.billing.record_session(
        world.account.id, per.id, lines=[line()], now=at(date(2027, 1, 5))
    ).invoice
    note = world.billing.credit_invoice(
        world.account.id,
        invoice.id,
        amount=nok("200"),
        reason="discount",
        now=at(date(2027, 1, 6)),
    )
    assert note.amount == nok("200.00")
    overview = world.billing.overview(world.account.id, per.id, on=date(2027, 1, 6))
    assert overview.total_open == nok("800.00")
    assert overview.credit_balance == nok("0")
    from recurbill.errors import CreditExceedsInvoiceError

    with pytest.raises(CreditExceedsInvoiceError, match=r"800\.00"):
        world.billing.credit_invoice(
            world.account.id,
            invoice.id,
            amount=nok("900"),
            reason="too much",
            now=at(date(2027, 1, 6)),
        )
    world.billing.credit_invoice(
        world.account.id,
        invoice.id,
        amount=nok("800"),
        reason="rest",
        now=at(date(2027, 1, 6)),
    )
    overview = world.billing.overview(world.account.id, per.id, on=date(2027, 1, 6))
    assert overview.open == ()


def test_refund_reopens_the_invoice_or_credits_it() -> None:
    world = make_world()
    kari = world.customer()
    outcome = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(date(2027, 1, 5))
    )
    assert outcome.payment is not None
    world.billing.refund(
        world.account.id,
        outcome.payment.id,
        amount=nok("250"),
        now=at(date(2027, 1, 6)),
    )
    overview = world.billing.overview(world.account.id, kari.id, on=date(2027, 1, 6))
    assert overview.total_open == nok("250.00")
    assert sum((r.amount.amount for r in world.gateway.refunds), Decimal(0)) == 250
    with pytest.raises(InvalidInputError, match=r"750\.00"):
        world.billing.refund(
            world.account.id,
            outcome.payment.id,
            amount=nok("800"),
            now=at(date(2027, 1, 6)),
        )
    world.billing.refund(
        world.account.id, outcome.payment.id, now=at(date(2027, 1, 6)), reopen=False
    )
    overview = world.billing.overview(world.account.id, kari.id, on=date(2027, 1, 6))
    assert overview.total_open == nok("250.00")  # the rest was credited, not reopened


# webhooks -------------------------------------------------------------------


def test_webhooks_are_deduplicated_and_finish_a_payment_whose_answer_was_lost() -> None:
    world = make_world()
    kari = world.customer()
    world.gateway.fail_next("timeout_after")
    outcome = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(date(2027, 1, 5))
    )
    assert outcome.status is PaymentStatus.FAILED_UNKNOWN
    assert outcome.invoice.status is InvoiceStatus.OPEN
    event = next(
        e for e in world.gateway.events if e.type == "payment_intent.succeeded"
    )
    now = at(date(2027, 1, 5), 13)
    payload, signature = world.gateway.webhook(event.event_id, now=int(now.timestamp()))
    paid = world.billing.handle_webhook(payload, signature=signature, now=now)
    assert paid is not None
    assert paid.status is PaymentStatus.SUCCEEDED
    assert world.billing.handle_webhook(payload, signature=signature, now=now) is None
    assert len(world.gateway.ledger) == 1
    (invoice,) = world.storage_invoices()
    assert invoice.status is InvoiceStatus.PAID


def test_a_gateway_refusal_fails_that_payment_without_stopping_the_run() -> None:
    world = make_world()
    kari = world.customer()
    ola = world.customer("Ola Hansen")
    world.template(kari, start=date(2027, 1, 4))
    world.template(ola, start=date(2027, 1, 4))
    world.gateway.detach_payment_method(
        world.gateway.list_payment_methods(kari.gateway_customer_id or "")[0].token
    )
    (report,) = world.billing.run(at(date(2027, 1, 4), 7))
    assert sorted(c.status for c in report.charges) == [
        PaymentStatus.DECLINED,
        PaymentStatus.SUCCEEDED,
    ]
    failed = next(p for p in world.payments() if p.status is PaymentStatus.DECLINED)
    assert failed.error_code == "gateway_error"
    assert world.billing.run(at(date(2027, 1, 20), 7))[0].charges == ()  # no retry


def test_paying_after_authentication_happened_elsewhere_never_charges_twice() -> None:
    world = make_world()
    kari = world.customer(card="pm_card_authenticationRequired")
    outcome = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(date(2027, 1, 5))
    )
    assert outcome.payment is not None
    assert outcome.payment.charge_id is not None
    world.gateway.settle(outcome.payment.charge_id, succeed=True)  # 3-D Secure done
    card = outcome.payment.payment_method_id
    with pytest.raises(StateError, match="only an open invoice"):
        world.billing.pay(
            world.account.id,
            outcome.invoice.id,
            payment_method_id=card,
            now=at(date(2027, 1, 6)),
        )
    assert len(world.gateway.ledger) == 1
    (invoice,) = world.storage_invoices()
    assert invoice.status is InvoiceStatus.PAID


def test_the_daily_run_finishes_payments_that_waited_for_authentication() -> None:
    world = make_world()
    kari = world.customer(card="pm_card_authenticationRequired")
    world.template(kari, start=date(2027, 1, 4))
    (report,) = world.billing.run(at(date(2027, 1, 4), 7))
    assert [c.status for c in report.charges] == [PaymentStatus.REQUIRES_ACTION]
    world.billing.run(at(date(2027, 1, 5), 7))
    assert world.notification_kinds().count("payment_needs_action") == 1
    (payment,) = world.payments()
    assert payment.charge_id is not None
    world.gateway.settle(payment.charge_id, succeed=True)
    world.billing.run(at(date(2027, 1, 6), 7))
    (invoice,) = world.storage_invoices()
    assert invoice.status is InvoiceStatus.PAID
    assert len(world.gateway.ledger) == 1


def test_an_off_session_charge_asking_for_authentication_fails_as_at_stripe() -> None:
    world = make_world()
    kari = world.customer(card="pm_card_authenticationRequired")
    world.template(kari, start=date(2027, 1, 4))
    world.billing.run(at(date(2027, 1, 4), 7))  # off-session
    (event,) = [e for e in world.gateway.events if e.type.startswith("payment_")]
    # Stripe answers a card error: no requires_action off-session
    assert event.type == "payment_intent.payment_failed"
    assert event.data["status"] == "requires_payment_method"
    now = at(date(2027, 1, 4), 8)
    payload, signature = world.gateway.webhook(event.event_id, now=int(now.timestamp()))
    payment = world.billing.handle_webhook(payload, signature=signature, now=now)
    assert payment is not None  # the customer can still authenticate it
    assert payment.status is PaymentStatus.REQUIRES_ACTION
    assert payment.client_secret
    (invoice,) = world.storage_invoices()
    assert invoice.status is InvoiceStatus.OPEN


def test_a_webhook_whose_processing_fails_is_processed_on_redelivery() -> None:
    world = make_world()
    kari = world.customer()
    world.gateway.fail_next("timeout_after")
    world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(date(2027, 1, 5))
    )
    event = next(
        e for e in world.gateway.events if e.type == "payment_intent.succeeded"
    )
    now = at(date(2027, 1, 5), 13)
    payload, signature = world.gateway.webhook(event.event_id, now=int(now.timestamp()))
    world.gateway.fail_next("unavailable", operation="retrieve_charge")
    with pytest.raises(GatewayUnavailableError):  # answered 5xx: sent again
        world.billing.handle_webhook(payload, signature=signature, now=now)
    assert [p.status for p in world.payments()] == [PaymentStatus.FAILED_UNKNOWN]
    again = world.billing.handle_webhook(payload, signature=signature, now=now)
    assert again is not None  # not remembered: the redelivery is processed
    assert again.status is PaymentStatus.SUCCEEDED
    (invoice,) = world.storage_invoices()
    assert invoice.status is InvoiceStatus.PAID
    assert len(world.gateway.ledger) == 1


def _lost_refund() -> tuple[World, str, str]:
    """A paid session of 1000 NOK whose refund of 300 went back, its answer lost.

    Returns the world, the customer's id and the payment's id.
    """
    world = make_world()
    kari = world.customer()
    outcome = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(date(2027, 1, 5))
    )
    assert outcome.payment is not None
    world.gateway.fail_next("timeout_after", operation="refund")
    with pytest.raises(GatewayUnavailableError):
        world.billing.refund(
            world.account.id,
            outcome.payment.id,
            amount=nok("300"),
            now=at(date(2027, 1, 6)),
        )
    return world, kari.id, outcome.payment.id


def test_a_refund_whose_answer_was_lost_is_finished_not_repeated() -> None:
    world, kari_id, payment_id = _lost_refund()
    assert len(world.gateway.refunds) == 1  # the money went back, the answer did not
    refund = world.billing.refund(
        world.account.id, payment_id, now=at(date(2027, 1, 6))
    )
    assert refund.amount == nok("300.00")
    assert len(world.gateway.refunds) == 1
    overview = world.billing.overview(world.account.id, kari_id, on=date(2027, 1, 6))
    assert overview.total_open == nok("300.00")
    world.billing.refund(world.account.id, payment_id, now=at(date(2027, 1, 7)))
    assert sum((r.amount.amount for r in world.gateway.refunds), Decimal(0)) == 1000


@pytest.mark.parametrize("finished_by", ["the daily run", "refund again"])
def test_a_lost_refund_answer_is_looked_up_after_the_gateway_forgot_its_key(
    finished_by: str,
) -> None:
    world, kari_id, payment_id = _lost_refund()
    world.gateway.forget_idempotency_keys()  # more than 24 hours pass
    if finished_by == "the daily run":
        world.billing.run(at(date(2027, 1, 8), 7))
    else:
        world.billing.refund(world.account.id, payment_id, now=at(date(2027, 1, 8)))
    assert [r.amount for r in world.gateway.refunds] == [nok("300.00")]  # once
    with world.storage.transaction() as tx:
        (refund,) = tx.list_refunds(world.account.id, payment_id)
    assert refund.status == "succeeded"
    assert refund.refund_id == world.gateway.refunds[0].refund_id
    overview = world.billing.overview(world.account.id, kari_id, on=date(2027, 1, 8))
    assert overview.total_open == nok("300.00")


def test_the_summary_names_skipped_and_ended_templates_by_what_they_bill() -> None:
    world = make_world()
    tid = world.template(
        world.customer(),
        start=date(2027, 1, 4),
        period="week",
        end=date(2027, 1, 11),
        lines=[line(description="Treningsoppfølging")],
    )
    world.billing.pause_template(
        world.account.id, tid, on=date(2027, 1, 10), resume=date(2027, 1, 12)
    )
    world.billing.run(at(date(2027, 1, 4), 7))
    (report,) = world.billing.run(at(date(2027, 1, 11), 7))
    assert [s.description for s in report.skipped] == ["Treningsoppfølging"]
    assert [e.description for e in report.ended] == ["Treningsoppfølging"]
    from recurbill.notify.render import render_summary

    text = render_summary(world.account, report).text
    assert text.count("Treningsoppfølging") == 2
    assert tid not in text


def test_change_template_redates_before_the_first_invoice_and_changes_lines() -> None:
    world = make_world()
    tid = world.template(world.customer(), start=date(2027, 1, 31))
    with pytest.raises(StartTooEarlyError, match="2027-01-11"):
        world.billing.change_template(
            world.account.id, tid, start=date(2027, 1, 10), now=at(date(2027, 1, 10))
        )
    world.billing.pause_template(
        world.account.id, tid, on=date(2027, 3, 1), resume=date(2027, 4, 1)
    )
    moved = world.billing.change_template(
        world.account.id, tid, start=date(2027, 2, 28), now=at(date(2027, 1, 10))
    )
    assert moved.schedule.start == date(2027, 2, 28)
    assert (
        moved.schedule.pauses
        == world.billing.template_view(world.account.id, tid).template.schedule.pauses
    )
    assert len(moved.schedule.pauses) == 1  # the pause history is kept
    world.billing.run(at(date(2027, 2, 28), 7))
    world.billing.change_template(
        world.account.id,
        tid,
        lines=[line("400")],
        memo="new price",
        now=at(date(2027, 3, 1)),
    )
    with pytest.raises(StateError, match="has handled occurrences"):
        world.billing.change_template(
            world.account.id, tid, start=date(2027, 5, 1), now=at(date(2027, 3, 1))
        )
    world.billing.run(at(date(2027, 4, 28), 7))
    totals = [i.total for i in world.storage_invoices()]
    assert totals == [nok("1000.00"), nok("500.00")]  # March was paused


def test_the_default_card_is_the_one_automatic_charges_use() -> None:
    world = make_world()
    kari = world.customer()
    master = world.billing.save_card(
        world.account.id, kari.id, token="pm_card_mastercard", make_default=False
    )
    world.billing.set_default_card(world.account.id, kari.id, master.id)
    outcome = world.billing.record_session(
        world.account.id, kari.id, lines=[line()], now=at(date(2027, 1, 5))
    )
    assert outcome.receipt is not None
    assert outcome.receipt.card_last4 == "4444"
    ola = world.customer("Ola Hansen")
    with pytest.raises(NotFoundError):
        world.billing.set_default_card(world.account.id, ola.id, master.id)


def test_resume_early_and_end_a_template() -> None:
    world = make_world()
    tid = world.template(world.customer(), start=date(2027, 1, 4), period="week")
    world.billing.pause_template(world.account.id, tid, on=date(2027, 1, 10))
    world.billing.resume_template(world.account.id, tid, on=date(2027, 1, 17))
    world.billing.end_template(world.account.id, tid, on=date(2027, 1, 25))
    for day in range(0, 40):
        world.billing.run(at(date(2027, 1, 4) + timedelta(days=day), 7))
    issued = [i.issue_date for i in world.storage_invoices()]
    assert issued == [date(2027, 1, 4), date(2027, 1, 18), date(2027, 1, 25)]
    view = world.billing.template_view(world.account.id, tid)
    assert view.template.status is TemplateStatus.FINISHED


@pytest.mark.parametrize("size", [0, -1, True, 2.5, "500"])
def test_chunk_size_must_be_a_positive_whole_number(size: object) -> None:
    with pytest.raises(InvalidInputError, match="chunk_size"):
        Billing(
            storage=InMemoryStorage(),
            gateway=InMemoryGateway(),
            chunk_size=size,  # type: ignore[arg-type]
        )


def test_a_run_in_chunks_of_one_issues_what_one_chunk_does() -> None:
    results = []
    for size in (1, 1000):
        world = make_world(chunk_size=size)
        kari = world.customer()
        ola = world.customer("Ola Nordmann", method=CollectionMethod.SEND_INVOICE)
        for customer in (kari, ola, kari):
            world.template(customer, start=date(2027, 2, 1))
        (report,) = world.billing.run(at(date(2027, 2, 1), 7))
        results.append(
            (
                sorted((i.invoice_number, i.total) for i in report.issued),
                sorted((c.invoice_number, c.status) for c in report.charges),
            )
        )
    assert results[0] == results[1]
    assert len(results[0][0]) == 3
    assert len(results[0][1]) == 2


def test_paying_again_while_the_first_outcome_is_unknown_never_resends_it() -> None:
    world = make_world()
    per = world.customer("Per Olsen", card=None, method=CollectionMethod.SEND_INVOICE)
    card = world.billing.save_card(world.account.id, per.id, token="pm_card_visa")
    world.billing.record_session(
        world.account.id, per.id, lines=[line("400")], now=at(date(2027, 1, 5))
    )
    (invoice,) = world.storage_invoices()
    pay = {"payment_method_id": card.id, "now": at(date(2027, 1, 6))}
    world.gateway.fail_next("timeout_after")  # charged, but the answer is lost
    first = world.billing.pay(world.account.id, invoice.id, **pay)
    assert first.status is PaymentStatus.FAILED_UNKNOWN
    world.gateway.fail_next("unavailable", operation="retrieve_charge")
    second = world.billing.pay(world.account.id, invoice.id, **pay)  # a second click
    assert second.status is PaymentStatus.FAILED_UNKNOWN
    assert second.payment is not None
    assert first.payment is not None
    assert second.payment.id == first.payment.id
    charges = [r for r in world.gateway.requests if r.operation == "charge"]
    assert len(charges) == 1  # not sent again while its outcome is unknown
    with pytest.raises(StateError, match="is paid"):  # the look-up answers now
        world.billing.pay(world.account.id, invoice.id, **pay)
    assert [i.status for i in world.storage_invoices()] == [InvoiceStatus.PAID]
    assert len([r for r in world.gateway.requests if r.operation == "charge"]) == 1
    assert len(world.gateway.ledger) == 1


def test_a_first_card_saved_without_make_default_is_the_default_at_both_ends() -> None:
    world = make_world()
    per = world.customer("Per Olsen", card=None)
    first = world.billing.save_card(
        world.account.id, per.id, token="pm_card_visa", make_default=False
    )
    second = world.billing.save_card(
        world.account.id, per.id, token="pm_card_mastercard", make_default=False
    )
    overview = world.billing.overview(world.account.id, per.id, on=date(2027, 1, 1))
    assert overview.customer.default_payment_method_id == first.id
    gateway_customer = overview.customer.gateway_customer_id
    assert gateway_customer is not None
    assert world.gateway.default_payment_method(gateway_customer) == first.token
    assert second.token != first.token

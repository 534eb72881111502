"""The daily summary's stored lines: which wait, and what a summary lists."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from recurbill.money import Money
from recurbill.records import IssuedLine, PaymentStatus, RunReport, UnchargedLine
from recurbill.summaries import Lines, PaymentRef, decoded, held, summary_report
from recurbill.testing.storage import make_payment

NOW = datetime(2027, 1, 31, 6, tzinfo=timezone.utc)
SUCCEEDED, PENDING = PaymentStatus.SUCCEEDED, PaymentStatus.PENDING


def _ref(payment_id: str, before: PaymentStatus | None = None) -> PaymentRef:
    return PaymentRef(
        payment_id=payment_id,
        invoice_number=f"INV-{payment_id}",
        customer_name="Kari",
        before=before,
    )


def test_lines_read_back_as_stored() -> None:
    lines = Lines(
        issued=[
            IssuedLine(
                invoice_id="inv-1",
                invoice_number="INV-000001",
                customer_name="Þóra Jónsdóttir",
                issue_date=date(2027, 1, 31),
                total=Money("1000.50", "ISK"),
            )
        ],
        uncharged=[
            UnchargedLine(
                invoice_number="INV-000002",
                customer_name="Kari",
                amount=Money("0.40", "NOK"),
                reason="below_minimum",
                retry=True,
            )
        ],
        payments=[_ref("p1"), _ref("p2", PaymentStatus.REQUIRES_ACTION)],
    )
    assert decoded(lines.stored("sml-1", "acme", NOW)) == lines


@pytest.mark.parametrize(
    ("status", "before", "stopped", "waits"),
    [
        (PENDING, None, False, True),  # another worker is making the charge
        (PENDING, None, True, False),  # charging stopped: listed as pending
        (SUCCEEDED, None, False, False),
        (PENDING, PENDING, False, False),  # being finished: no news is no wait
    ],
)
def test_lines_with_a_new_charge_still_pending_wait(
    status: PaymentStatus, before: PaymentStatus | None, stopped: bool, waits: bool
) -> None:
    payments = {"p1": make_payment("p1", status=status)}
    lines = Lines(payments=[_ref("p1", before)])
    assert held(lines, payments, stopped=stopped) is waits


def test_lines_of_a_payment_that_cannot_be_read_wait() -> None:
    assert held(Lines(payments=[_ref("p1")]), {}, stopped=True)


def test_each_payment_is_listed_once_and_only_with_news() -> None:
    payments = {
        "p1": make_payment("p1", status=SUCCEEDED),
        "p2": make_payment("p2", status=PENDING),
        "p3": make_payment("p3", status=SUCCEEDED),
    }
    found = [
        Lines(payments=[_ref("p1"), _ref("p2", PENDING)]),  # p2: finishing failed
        Lines(payments=[_ref("p1", PENDING), _ref("p3", PENDING)]),
    ]
    base = RunReport(account_id="acme", as_of=NOW)
    summary = summary_report(base, found, payments, later={"p3"})
    assert [(c.invoice_number, c.status) for c in summary.charges] == [
        ("INV-p1", SUCCEEDED)
    ]

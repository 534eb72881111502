"""The daily summary's lines, stored with the work they report.

A daily run stores the lines of what it did (invoices issued, occurrences
skipped, templates ended, invoices not charged, the payments it made or is
about to finish) as :class:`~recurbill.records.SummaryLines`, in the
transaction of that work. The summary is built from the lines not yet
summarised and removes them in the transaction that queues it: a crash
anywhere loses no line (the rerun summarises the crashed run's), and no line
is summarised twice (two workers each take what the other has not).

A payment's line records the payment and, for one being finished, its status
before: the summary shows the payment's status when it is queued, and a
payment being finished only if that status changed. A payment made now that
is still pending when a summary is queued (another worker is charging it)
keeps its lines for the summary after its charge. Records have random ids:
they need only be unique, also between workers with their own id factories.
"""

from __future__ import annotations

import json
from collections.abc import Sequence, Set
from datetime import date, datetime
from typing import Any

import attrs

from recurbill.money import Money
from recurbill.records import (
    ChargeLine,
    EndedLine,
    IssuedLine,
    Payment,
    PaymentStatus,
    RunReport,
    SkippedLine,
    SummaryLines,
    UnchargedLine,
)

__all__ = ["Lines", "PaymentRef", "decoded", "held", "summary_report"]


@attrs.frozen(kw_only=True)
class PaymentRef:
    """A payment a summary reports: its invoice numbers and customer name,
    and its status before it was finished (None: a payment made now)."""

    payment_id: str
    invoice_number: str
    customer_name: str
    before: PaymentStatus | None = None


@attrs.define
class Lines:
    """One account's lines of one transaction."""

    issued: list[IssuedLine] = attrs.Factory(list)
    skipped: list[SkippedLine] = attrs.Factory(list)
    ended: list[EndedLine] = attrs.Factory(list)
    uncharged: list[UnchargedLine] = attrs.Factory(list)
    payments: list[PaymentRef] = attrs.Factory(list)

    def stored(self, record_id: str, account_id: str, now: datetime) -> SummaryLines:
        """These lines as the record storage keeps."""
        return SummaryLines(
            id=record_id, account_id=account_id, lines=_dumps(self), created_at=now
        )


def _money(value: Money) -> list[str]:
    return [str(value.amount), value.currency.code]


def _status(status: PaymentStatus | None) -> str | None:
    return None if status is None else status.value


def _dumps(lines: Lines) -> str:
    return json.dumps(
        {
            "issued": [
                [
                    i.invoice_id,
                    i.invoice_number,
                    i.customer_name,
                    i.issue_date.isoformat(),
                    *_money(i.total),
                ]
                for i in lines.issued
            ],
            "skipped": [
                [s.template_id, s.customer_name, s.on.isoformat(), s.description]
                for s in lines.skipped
            ],
            "ended": [
                [e.template_id, e.customer_name, e.description] for e in lines.ended
            ],
            "uncharged": [
                [
                    u.invoice_number,
                    u.customer_name,
                    *_money(u.amount),
                    u.reason.value,
                    u.retry,
                ]
                for u in lines.uncharged
            ],
            "payments": [
                [p.payment_id, p.invoice_number, p.customer_name, _status(p.before)]
                for p in lines.payments
            ],
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _loads(text: str) -> Lines:
    data: dict[str, list[list[Any]]] = json.loads(text)
    return Lines(
        issued=[
            IssuedLine(
                invoice_id=i,
                invoice_number=n,
                customer_name=c,
                issue_date=date.fromisoformat(d),
                total=Money(a, k),
            )
            for i, n, c, d, a, k in data["issued"]
        ],
        skipped=[
            SkippedLine(
                template_id=t, customer_name=c, on=date.fromisoformat(d), description=s
            )
            for t, c, d, s in data["skipped"]
        ],
        ended=[
            EndedLine(template_id=t, customer_name=c, description=s)
            for t, c, s in data["ended"]
        ],
        uncharged=[
            UnchargedLine(
                invoice_number=n,
                customer_name=c,
                amount=Money(a, k),
                reason=r,
                retry=bool(y),
            )
            for n, c, a, k, r, y in data["uncharged"]
        ],
        payments=[
            PaymentRef(
                payment_id=p,
                invoice_number=n,
                customer_name=c,
                before=None if b is None else PaymentStatus(b),
            )
            for p, n, c, b in data["payments"]
        ],
    )


def decoded(record: SummaryLines) -> Lines:
    """The lines *record* stores."""
    return _loads(record.lines)


def held(lines: Lines, payments: dict[str, Payment], *, stopped: bool) -> bool:
    """Whether *lines* wait for a later summary: a payment of theirs cannot be
    read (not in *payments*), or one made now is still pending while charging
    goes on (another worker is about to charge it; its summary, or the next
    run's, reports the outcome). A run whose charging *stopped* reports its
    pending payments as pending."""
    return any(
        ref.payment_id not in payments
        or (
            ref.before is None
            and not stopped
            and payments[ref.payment_id].status is PaymentStatus.PENDING
        )
        for ref in lines.payments
    )


def summary_report(
    base: RunReport,
    found: Sequence[Lines],
    payments: dict[str, Payment],
    *,
    later: Set[str] = frozenset(),
) -> RunReport:
    """The summary of *found* (one account's lines, oldest first), with
    *base*'s ``as_of`` and its lines of what stays as it was (failed,
    unreadable); invoices, charges and uncharged invoices in number order.

    Each payment is listed once, with its status in *payments*; one being
    finished only if its status changed, and none in *later* (lines that
    wait for a later summary list it there).
    """
    lines = Lines()
    refs: dict[str, list[PaymentRef]] = {}
    for each in found:
        lines.issued += each.issued
        lines.skipped += each.skipped
        lines.ended += each.ended
        lines.uncharged += each.uncharged
        for ref in each.payments:
            refs.setdefault(ref.payment_id, []).append(ref)
    charges = [
        _charge(seen[0], payments[payment_id])
        for payment_id, seen in refs.items()
        if payment_id not in later
        and any(ref.before is not payments[payment_id].status for ref in seen)
    ]
    return attrs.evolve(
        base,
        issued=tuple(sorted(lines.issued, key=lambda i: i.invoice_number)),
        charges=tuple(sorted(charges, key=lambda c: c.invoice_number)),
        skipped=tuple(lines.skipped),
        ended=tuple(lines.ended),
        uncharged=tuple(sorted(lines.uncharged, key=lambda u: u.invoice_number)),
    )


def _charge(ref: PaymentRef, payment: Payment) -> ChargeLine:
    return ChargeLine.of(
        payment, invoice_number=ref.invoice_number, customer_name=ref.customer_name
    )

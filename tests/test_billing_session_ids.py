"""A ``session_id`` recorded again: the same session returns its first
invoice, other content under it is refused with nothing written.

Each case runs on the in-memory storage and on SQLite, whose invoices are
read back from their stored text.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest

from billing_helpers import World, at, line, make_world
from recurbill import ConflictError, InvalidInvoiceError, PaymentOutcome
from recurbill.invoice import AllowanceCharge, InvoiceLine, VatCategory
from recurbill.records import Customer
from recurbill.storage.sql import SqlStorage

LOYALTY = AllowanceCharge(
    is_charge=False,
    percentage=10,
    base_amount=800,
    reason="Lojalitetsrabatt",
    vat_category="S",
    vat_rate=25,
)
FEE = AllowanceCharge(
    is_charge=True, amount=35, reason="Fakturagebyr", vat_category="S", vat_rate=25
)
FIRST: dict[str, Any] = {
    "lines": [line()],
    "allowances": [LOYALTY],
    "charges": [FEE],
    "memo": "Booking 7",
}
"""What the first call records under ``booking-7``."""


@pytest.fixture(params=["memory", "sqlite"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    if request.param == "memory":
        yield make_world()
        return
    with SqlStorage.sqlite(tmp_path / "billing.sqlite3") as storage:
        storage.migrate()
        yield make_world(storage=storage)


def _record(
    world: World, kari: Customer, day: date = date(2027, 1, 5), **content: Any
) -> PaymentOutcome:
    return world.billing.record_session(
        world.account.id, kari.id, now=at(day), session_id="booking-7", **content
    )


def _written(world: World) -> tuple[object, ...]:
    with world.storage.transaction() as tx:
        return (
            tx.list_invoices(world.account.id),
            tx.list_payments(world.account.id),
            len(world.gateway.ledger),
        )


@pytest.mark.parametrize(
    ("other", "named"),
    [
        ({"lines": [line("900")]}, "lines"),
        ({"lines": [line(), line(description="Taping")]}, "lines"),
        ({"lines": [attrs.evolve(line(), quantity=2)]}, "lines"),
        ({"lines": [line(rate="15")]}, "lines"),
        ({"allowances": []}, "allowances"),
        ({"allowances": [attrs.evolve(LOYALTY, percentage=20)]}, "allowances"),
        ({"charges": []}, "charges"),
        ({"charges": [FEE, attrs.evolve(FEE, reason="Porto")]}, "charges"),
        ({"memo": "Booking 8"}, "memo"),
        ({"memo": ""}, "memo"),
        ({"lines": [line("900")], "memo": ""}, "lines and memo"),
        (
            {"allowances": [], "charges": [], "memo": ""},
            "allowances, charges and memo",
        ),
    ],
)
def test_other_content_under_a_recorded_session_id_is_refused(
    world: World, other: dict[str, Any], named: str
) -> None:
    kari = world.customer()
    first = _record(world, kari, **FIRST)
    before = _written(world)
    with pytest.raises(ConflictError) as refused:
        _record(world, kari, **{**FIRST, **other})
    number = first.invoice.display_number
    assert str(refused.value) == (
        "session 'booking-7' was recorded already with other content: what is "
        f"given differs from its invoice {number} in the {named}; to record "
        "another session, give a new session_id (or none); to repeat the call "
        "that recorded it, give the lines, allowances, charges and memo it was "
        "recorded with; to correct its invoice, credit it (credit_invoice) and "
        "record the session under a new session_id"
    )
    assert _written(world) == before  # nothing billed, nothing charged


def test_the_same_session_spelled_otherwise_returns_the_first_invoice(
    world: World,
) -> None:
    kari = world.customer()
    first = _record(world, kari, **FIRST)
    before = _written(world)
    again = _record(  # the next day: a retry may come late
        world,
        kari,
        date(2027, 1, 6),
        lines=(
            InvoiceLine(
                description="Session",
                quantity=Decimal("1.0"),
                unit_price="800.00",
                vat_category=VatCategory.STANDARD,
                vat_rate="25.0",
            ),
        ),
        allowances=(
            attrs.evolve(LOYALTY, percentage="10.00", base_amount=Decimal("800.0")),
        ),
        charges=(attrs.evolve(FEE, amount="35.00", vat_rate=Decimal("25.00")),),
        memo="Booking 7",
    )
    assert again == first
    assert again.invoice.issue_date == date(2027, 1, 5)
    assert _written(world) == before


def test_a_session_taken_under_laxer_rules_is_still_returned_on_repeat(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repeat is checked against the session it repeats, not today's rules:
    a line discount without a reason, which an earlier release took and
    this one refuses for a new session, is still returned."""
    kari = world.customer()
    no_reason = AllowanceCharge(is_charge=False, amount=80, reason="")
    content = {"lines": [attrs.evolve(line(), allowances=(no_reason,))]}
    with monkeypatch.context() as earlier:  # the earlier release's checks
        earlier.setattr("recurbill.sessions.check_lines", lambda *_, **__: None)
        first = _record(world, kari, **content)
    before = _written(world)
    again = _record(world, kari, date(2027, 1, 6), **content)
    assert again.invoice == first.invoice
    assert _written(world) == before
    with pytest.raises(InvalidInvoiceError, match="no reason"):  # a new one is not
        world.billing.record_session(
            world.account.id, kari.id, now=at(date(2027, 1, 6)), **content
        )

"""One template that cannot be issued never stops the run for anyone else.

A fault is injected into invoice building for one template (as stored data that
breaks a rule would): the run issues and charges every other template, reports
the one that failed, leaves it due, and the next run issues it once it can.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from billing_helpers import World, at, make_world
from recurbill import daily
from recurbill.errors import InvalidInvoiceError, StorageUnavailableError
from recurbill.notify.render import render_summary
from recurbill.records import InvoiceStatus
from recurbill.storage.sql import SqlStorage

DAY = date(2027, 1, 31)


@pytest.fixture(params=["memory", "sqlite"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    if request.param == "memory":
        yield make_world(chunk_size=2)
        return
    with SqlStorage.sqlite(tmp_path / "billing.sqlite3") as storage:
        storage.migrate()
        yield make_world(storage=storage, chunk_size=2)


def _break(monkeypatch: pytest.MonkeyPatch, template_id: str, error: Exception) -> None:
    """Building an invoice of *template_id* raises *error*."""
    build = daily.build_invoice

    def failing(**fields: Any) -> Any:
        if fields.get("template_id") == template_id:
            raise error
        return build(**fields)

    monkeypatch.setattr(daily, "build_invoice", failing)


def _templates(world: World) -> list[str]:
    customers = [world.customer(f"Kunde {n}") for n in range(5)]
    return [world.template(c, start=DAY) for c in customers]


def test_a_template_that_cannot_be_issued_is_reported_and_the_rest_are_issued(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _templates(world)
    bad = ids[2]
    _break(monkeypatch, bad, InvalidInvoiceError(problem="broken", allowed="fix it"))
    (report,) = world.billing.run(at(DAY, 7))
    assert sorted(line.invoice_number for line in report.issued) == [
        f"INV-{n:06d}" for n in range(1, 5)
    ]  # gapless: the failed chunk's numbers were rolled back with it
    assert [c.status.value for c in report.charges] == ["succeeded"] * 4
    assert len(world.gateway.ledger) == 4
    (failed,) = report.failed
    assert failed.template_id == bad
    assert failed.customer_name == "Kunde 2"
    assert failed.problem == "broken; fix it"
    assert failed.error == "InvalidInvoiceError"
    assert not report.is_empty
    with world.storage.transaction() as tx:
        left = tx.get_template(world.account.id, bad)
    assert left.next_index == 0  # still due, nothing written for it

    summary = render_summary(world.account, report)
    assert summary.text.index("Kunne ikke utstedes (1)") < summary.text.index(
        "Utstedte fakturaer (4)"
    )
    assert "Ugyldige fakturalinjer" in summary.text  # the problem, in Norwegian
    assert "Kunde 2, Session: broken; fix it" in summary.text  # its details

    monkeypatch.undo()  # the template is corrected
    (report,) = world.billing.run(at(DAY + date.resolution, 7))
    assert [(line.issue_date, line.invoice_number) for line in report.issued] == [
        (DAY, "INV-000005")
    ]
    assert report.failed == ()
    invoices = world.storage_invoices()
    assert len(invoices) == 5
    assert {i.status for i in invoices} == {InvoiceStatus.PAID}
    assert len(world.gateway.ledger) == 5  # each card charged exactly once


def test_every_failing_template_is_reported_once(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _templates(world)
    build = daily.build_invoice

    def failing(**fields: Any) -> Any:
        if fields.get("template_id") in (ids[0], ids[4]):
            raise InvalidInvoiceError(problem="broken", allowed="fix it")
        return build(**fields)

    monkeypatch.setattr(daily, "build_invoice", failing)
    (report,) = world.billing.run(at(DAY, 7))
    assert len(report.issued) == 3
    assert sorted(line.template_id for line in report.failed) == sorted(
        [ids[0], ids[4]]
    )  # the second pass meets them again, the report lists them once


def test_a_storage_failure_still_stops_the_run(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _templates(world)
    outage = StorageUnavailableError(problem="the database went away", allowed="retry")
    _break(monkeypatch, ids[1], outage)
    with pytest.raises(StorageUnavailableError):
        world.billing.run(at(DAY, 7))

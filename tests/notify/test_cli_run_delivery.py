"""`recurbill run --smtp` delivers the outbox through a real SMTP server."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from smtp_servers import Server

from recurbill.billing import Billing
from recurbill.cli import main
from recurbill.errors import GatewayAuthenticationError, StorageUnavailableError
from recurbill.invoice import InvoiceLine
from recurbill.payments.memory import InMemoryGateway
from recurbill.payments.protocol import ChargeResult
from recurbill.storage.sql import SqlStorage


@pytest.fixture(autouse=True)
def _no_stripe(monkeypatch: pytest.MonkeyPatch) -> None:
    """The run charges through an in-memory gateway instead (no network)."""
    monkeypatch.setattr("recurbill.cli._stripe", InMemoryGateway)


def _database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'billing.sqlite3'}"
    with SqlStorage.from_url(url) as storage:
        storage.migrate()
        billing = Billing(storage=storage, gateway=InMemoryGateway())
        account = billing.create_account(
            account_id="fjord",
            name="Fjord Fysio AS",
            currency="NOK",
            locale="nb_NO",
            timezone="Europe/Oslo",
            summary_email="post@fjordfysio.no",
        )
        per = billing.add_customer(
            account.id,
            name="Per Ødegård",
            email="per@example.no",
            collection_method="send_invoice",
        )
        billing.create_template(
            account.id,
            per.id,
            lines=[
                InvoiceLine(
                    description="Oppfølging",
                    quantity=1,
                    unit_price="800",
                    vat_rate=Decimal(25),
                )
            ],
            start=date(2027, 1, 31),
            period="month",
            now=datetime(2027, 1, 1, tzinfo=timezone.utc),
        )
    return url


def test_run_delivers_the_invoice_and_the_summary(
    tmp_path: Path, smtp_server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _database(tmp_path)
    status = main(
        [
            "run",
            "--db",
            url,
            "--as-of",
            "2027-01-31T07:00:00+01:00",
            "--smtp",
            f"{smtp_server.host}:{smtp_server.port}",
            "--smtp-sender",
            "faktura@fjordfysio.no",
            "--smtp-security",
            "none",
        ]
    )
    assert status == 0
    assert "e-mail: 2 sent, 0 failed" in capsys.readouterr().out
    arrived = sorted(
        (r.rcpt_tos[0], r.email["Subject"]) for r in smtp_server.collector.received
    )
    assert [to for to, _ in arrived] == ["per@example.no", "post@fjordfysio.no"]
    assert all(subject for _, subject in arrived)
    main(["run", "--db", url, "--as-of",
          "2027-01-31T08:00:00+01:00", "--smtp",
          f"{smtp_server.host}:{smtp_server.port}", "--smtp-sender",
          "faktura@fjordfysio.no", "--smtp-security", "none"])  # fmt: skip
    assert len(smtp_server.collector.received) == 2  # nothing is sent twice


def test_smtp_needs_a_sender_and_a_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _database(tmp_path)
    assert main(["run", "--db", url, "--smtp", "mail"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err
    assert main(["run", "--db", url, "--smtp", "mail.example.no:25"]) == 2
    assert "--smtp-sender" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--smtp-sender", "faktura@fjordfysio.no"], "--smtp-sender needs --smtp"),
        (["--smtp-security", "tls"], "--smtp-security needs --smtp"),
        (
            ["--smtp-user", "faktura", "--smtp-sender", "faktura@fjordfysio.no"],
            "--smtp-sender and --smtp-user need --smtp",
        ),
    ],
)
@pytest.mark.parametrize("dry", [[], ["--dry-run"]])
def test_the_e_mail_options_without_smtp_are_refused(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    says: str,
    dry: list[str],
) -> None:
    """Not ignored: nothing runs, and the line names --smtp."""
    url = _database(tmp_path)
    as_of = ["--as-of", "2027-01-31T07:00:00+01:00"]
    assert main(["run", "--db", url, *as_of, *dry, *options]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"recurbill: {says} HOST:PORT, the server that sends the e-mail; give "
        f"--smtp too, or leave {'them' if ' and ' in says else 'it'} out\n"
    )
    with SqlStorage.from_url(url) as storage, storage.transaction() as tx:
        assert tx.list_invoices("fjord") == []


def _card_customers(url: str, names: list[str]) -> None:
    """A customer paying by card for each of *names*, with a monthly template
    due on 31 January 2027."""
    with SqlStorage.from_url(url) as storage:
        billing = Billing(storage=storage, gateway=InMemoryGateway())
        for name in names:
            email = name.lower().replace(" ", "") + "@example.no"
            customer = billing.add_customer("fjord", name=name, email=email)
            billing.save_card("fjord", customer.id, token="pm_card_visa")
            billing.create_template(
                "fjord",
                customer.id,
                lines=[
                    InvoiceLine(
                        description="Time", quantity=1, unit_price="800", vat_rate=25
                    )
                ],
                start=date(2027, 1, 31),
                period="month",
                now=datetime(2027, 1, 1, tzinfo=timezone.utc),
            )


class _KeyRefused(InMemoryGateway):
    """A gateway whose every charge is refused for the API key (a 401)."""

    def charge(self, *args: object, **kwargs: object) -> ChargeResult:
        raise GatewayAuthenticationError(problem="key refused", allowed="fix it")


def test_a_run_stopped_by_the_gateway_still_delivers_its_e_mail(
    tmp_path: Path,
    smtp_server: Server,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = _database(tmp_path)
    _card_customers(url, ["Kari"])
    monkeypatch.setattr("recurbill.cli._stripe", _KeyRefused)
    status = main(
        ["run", "--db", url, "--as-of", "2027-01-31T07:00:00+01:00",
         "--smtp", f"{smtp_server.host}:{smtp_server.port}",
         "--smtp-sender", "faktura@fjordfysio.no", "--smtp-security", "none"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert status == 1
    assert captured.err == "recurbill: key refused; fix it\n"  # one line
    assert captured.out.splitlines() == [
        "fjord: 2 issued, 0 charged, 0 declined, 1 awaiting an outcome, "
        "0 skipped, 0 ended",  # Kari's charge was saved but never sent
        "e-mail: 2 sent, 0 failed (kept in the outbox for the next run)",
    ]  # Per's invoice and the summary (Kari's waits for her charge)


def test_a_stopped_run_counts_the_charges_it_left_and_notes_what_failed(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three charges saved but never sent await an outcome; the template that
    could not be issued is still noted, and the summary lists the charges."""
    from recurbill import daily
    from recurbill.errors import InvalidInvoiceError

    url = _database(tmp_path)  # Per's invoice, which will fail below
    _card_customers(url, [f"Kari {n}" for n in range(3)])
    build = daily.build_invoice

    def failing(**fields: object) -> object:
        if fields["customer"].name == "Per Ødegård":  # type: ignore[attr-defined]
            raise InvalidInvoiceError(problem="broken", allowed="fix it")
        return build(**fields)  # type: ignore[arg-type]

    monkeypatch.setattr(daily, "build_invoice", failing)
    monkeypatch.setattr("recurbill.cli._stripe", _KeyRefused)
    status = main(["run", "--db", url, "--as-of", "2027-01-31T07:00:00+01:00"])
    captured = capsys.readouterr()
    assert status == 1
    assert captured.out.splitlines() == [
        "fjord: 3 issued, 0 charged, 0 declined, 3 awaiting an outcome, "
        "0 skipped, 0 ended, 1 failed"
    ]
    assert captured.err.splitlines() == [
        "recurbill: 1 recurring invoice(s) could not be issued; the daily "
        "summary says why (they are tried again next run)",
        "recurbill: key refused; fix it",
    ]
    with SqlStorage.from_url(url) as storage, storage.transaction() as tx:
        (summary,) = [
            n.text
            for n in tx.pending_notifications(limit=100)
            if n.kind == "daily_summary"
        ]
    assert "Kortbetalinger (3)" in summary
    assert "Ikke sendt ennå (3)" in summary


def test_a_message_that_cannot_be_read_is_named_and_the_run_fails(
    tmp_path: Path, smtp_server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _database(tmp_path)
    assert main(["run", "--db", url, "--as-of", "2027-01-31T07:00:00+01:00"]) == 0
    with SqlStorage.from_url(url) as storage, storage.transaction() as tx:
        oldest = tx.pending_notifications(limit=1)[0].id
    path = str(tmp_path / "billing.sqlite3")
    with closing(sqlite3.connect(path)) as db, db:  # a hand edit
        db.execute("UPDATE notifications SET headers = '[' WHERE id = ?", (oldest,))
    capsys.readouterr()
    deliver = [
        *("run", "--db", url, "--as-of", "2027-01-31T08:00:00+01:00"),
        *("--smtp", f"{smtp_server.host}:{smtp_server.port}"),
        *("--smtp-sender", "faktura@fjordfysio.no", "--smtp-security", "none"),
    ]

    assert main(deliver) == 1
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1] == (
        "e-mail: 1 sent, 0 failed (kept in the outbox for the next run)"
    )
    assert captured.err == (
        f"recurbill: outbox message {oldest!r} could not be read and was not "
        "sent; correct its row to what recurbill writes, or restore it from a "
        "backup, and the next run sends it\n"
    )
    assert len(smtp_server.collector.received) == 1

    with closing(sqlite3.connect(path)) as db, db:  # corrected
        db.execute("UPDATE notifications SET headers = '{}' WHERE id = ?", (oldest,))
    assert main(deliver) == 0
    assert "e-mail: 1 sent, 0 failed" in capsys.readouterr().out
    assert len(smtp_server.collector.received) == 2


def test_a_delivery_failure_after_a_stopped_run_keeps_the_runs_error(
    tmp_path: Path,
    smtp_server: Server,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = _database(tmp_path)
    _card_customers(url, ["Kari"])
    monkeypatch.setattr("recurbill.cli._stripe", _KeyRefused)

    def outbox_down(*args: object, **kwargs: object) -> None:
        raise StorageUnavailableError(problem="outbox down", allowed="try later")

    monkeypatch.setattr("recurbill.notify.delivery.deliver_pending", outbox_down)
    status = main(
        ["run", "--db", url, "--as-of", "2027-01-31T07:00:00+01:00",
         "--smtp", f"{smtp_server.host}:{smtp_server.port}",
         "--smtp-sender", "faktura@fjordfysio.no", "--smtp-security", "none"]
    )  # fmt: skip
    err = capsys.readouterr().err.splitlines()
    assert status == 1
    assert err == [
        "recurbill: e-mail not delivered: outbox down; try later",
        "recurbill: key refused; fix it",  # the run's error, as without e-mail
    ]

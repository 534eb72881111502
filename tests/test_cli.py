from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from billing_helpers import line
from recurbill.billing import Billing
from recurbill.cli import main
from recurbill.payments.memory import InMemoryGateway
from recurbill.storage.sql import SqlStorage


def test_preview_lists_month_end_dates(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        ["preview", "--start", "2027-01-31", "--period", "month", "--count", "4"]
    )
    assert status == 0
    dates = [row.split()[1] for row in capsys.readouterr().out.splitlines()]
    assert dates == ["2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30"]


def test_bad_input_is_one_line_and_a_non_zero_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert (
        main(["preview", "--start", "2027-01-31", "--period", "month", "--every", "0"])
        == 1
    )
    err = capsys.readouterr().err
    assert err.startswith("recurbill: ")
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert main(["preview", "--period", "month"]) == 2
    assert "needs --start" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["preview", "--start", "31/01/2027", "--period", "month"])
    assert exit_.value.code == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err


def _database(tmp_path: Path) -> tuple[str, str]:
    url = f"sqlite:///{tmp_path / 'billing.sqlite3'}"
    assert main(["migrate", "--db", url]) == 0
    with SqlStorage.from_url(url) as storage:
        billing = Billing(storage=storage, gateway=InMemoryGateway())
        account = billing.create_account(
            account_id="fjord",
            name="Fjord Fysio AS",
            currency="NOK",
            locale="nb_NO",
            timezone="Europe/Oslo",
            summary_email="post@fjordfysio.no",
        )
        customer = billing.add_customer(
            account.id,
            name="Per Olsen",
            email="per@example.no",
            collection_method="send_invoice",
        )
        template = billing.create_template(
            account.id,
            customer.id,
            lines=[line()],
            start=date(2027, 1, 31),
            period="month",
            now=datetime(2027, 1, 1, tzinfo=timezone.utc),
        )
    return url, template.id


def test_migrate_run_and_preview_a_stored_template(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, template_id = _database(tmp_path)
    assert "version" in capsys.readouterr().out
    assert (
        main(
            [
                "preview",
                "--db",
                url,
                "--account",
                "fjord",
                "--template",
                template_id,
                "--count",
                "2",
            ]
        )
        == 0
    )
    rows = capsys.readouterr().out.splitlines()
    assert [r.split()[1] for r in rows] == ["2027-01-31", "2027-02-28"]
    assert all("1\xa0000,00\xa0kr" in r for r in rows)
    assert (
        main(
            [
                "run",
                "--db",
                url,
                "--gateway",
                "memory",
                "--as-of",
                "2027-02-28T07:00:00+01:00",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip() == (
        "fjord: 2 issued, 0 charged, 0 skipped, 0 ended"
    )
    assert (
        main(
            [
                "run",
                "--db",
                url,
                "--gateway",
                "memory",
                "--as-of",
                "2027-02-28T08:00:00+01:00",
            ]
        )
        == 0
    )
    assert "0 issued" in capsys.readouterr().out


def test_run_without_a_stripe_key_says_what_to_do(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STRIPE_SECRET_KEY", raising=False)
    url, _ = _database(tmp_path)
    assert main(["run", "--db", url]) == 2
    assert "STRIPE_SECRET_KEY" in capsys.readouterr().err


def test_a_database_that_was_never_migrated_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    assert main(["run", "--db", url, "--gateway", "memory"]) == 1
    assert "migrate" in capsys.readouterr().err


def test_demo_runs_and_summarises_each_account(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "demo.sqlite3"
    assert main(["demo", "--db", str(db), "--days", "40", "--start", "2027-01-01"]) == 0
    out = capsys.readouterr().out
    for name in ("Fjord Fysio AS", "Stockholm Hosting AB", "Reykjavík Ráðgjöf ehf."):
        assert name in out
    assert "invoices issued" in out
    assert "charges declined" in out
    assert "skipped (paused)" in out
    assert db.exists()

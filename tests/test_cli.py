import argparse
import itertools
import re
import shlex
import sys
from contextlib import closing
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import attrs
import pytest

from billing_helpers import line
from recurbill.billing import Billing
from recurbill.cli import _parser, main
from recurbill.payments.memory import InMemoryGateway
from recurbill.storage import schema
from recurbill.storage.sql import SqlStorage


def test_preview_lists_month_end_dates(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        ["preview", "--start", "2027-01-31", "--period", "month", "--count", "4"]
    )
    assert status == 0
    header, *rows = capsys.readouterr().out.splitlines()
    dates = [row.split()[1] for row in rows]
    assert dates == ["2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30"]
    assert header == "schedule every month from 2027-01-31: the first 4 dates"


@pytest.mark.parametrize(
    ("options", "rhythm"),
    [
        (["--period", "week", "--every", "2"], "every 2 weeks"),
        (["--period", "month", "--month-end"], "every month on month ends"),
        (["--period", "quarter", "--end", "2027-12-31"], "every quarter"),
    ],
)
def test_a_schedules_preview_first_says_what_it_lists(
    capsys: pytest.CaptureFixture[str], options: list[str], rhythm: str
) -> None:
    argv = ["preview", "--start", "2027-01-31", "--count", "6", *options]
    assert main(argv) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    until = " to 2027-12-31" if "--end" in options else ""
    assert header == (
        f"schedule {rhythm} from 2027-01-31{until}: the first {len(rows)} dates"
    )
    assert rows
    assert all(re.fullmatch(r" +\d+  \d{4}-\d\d-\d\d", r) for r in rows)


def _status(argv: list[str]) -> int | str | None:
    """The exit status of ``main(argv)``, whether returned or raised by argparse."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


@pytest.mark.parametrize(
    ("options", "says"),
    [
        (["--every", "0"], "--every: '0' is not a whole number of 1 or more"),
        (["--every", "two"], "--every: 'two' is not a whole number of 1 or more"),
        (["--count", "0"], "--count: '0' is not a whole number of 1 or more"),
        (["--end", "2027-01-30"], "--end 2027-01-30 is before --start 2027-01-31"),
        (["--end", "31/12/2027"], "--end: '31/12/2027' is not a date; use YYYY-MM-DD"),
        (["--period", "day"], "--period: invalid choice: 'day'"),
        (["--period", "week", "--month-end"], "--month-end applies to --period month"),
    ],
)
def test_a_bad_option_value_is_a_usage_error_naming_it(
    capsys: pytest.CaptureFixture[str], options: list[str], says: str
) -> None:
    argv = ["preview", "--start", "2027-01-31", "--period", "month", *options]
    assert _status(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("recurbill: ")
    assert says in err
    assert err.count("\n") == 1


def test_bad_input_is_one_line_and_a_non_zero_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["preview", "--period", "month"]) == 2
    assert "needs --start" in capsys.readouterr().err
    assert main(["preview", "--account", "fjord"]) == 2
    err = capsys.readouterr().err
    assert "or --db alone (a list of the stored templates)" in err
    with pytest.raises(SystemExit) as exit_:
        main(["preview", "--start", "31/01/2027", "--period", "month"])
    assert exit_.value.code == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err


def _database(tmp_path: Path) -> tuple[str, str]:
    url = f"sqlite:///{tmp_path / 'billing.sqlite3'}"
    return url, _fill(url)


def _fill(url: str) -> str:
    """Migrate *url* and give it account ``fjord`` with a monthly template."""
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
    return template.id


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
    header, *rows = capsys.readouterr().out.splitlines()
    assert header == (
        f"template {template_id} of account fjord (Per Olsen, every month): "
        "the next 2 dates"
    )
    assert [r.split()[1] for r in rows] == ["2027-01-31", "2027-02-28"]
    assert all("1\xa0000,00\xa0kr" in r for r in rows)


def _more_templates(url: str) -> dict[str, str]:
    """Give ``fjord`` (see :func:`_fill`) templates paused until a date, paused
    until further notice and ended, and a second account ``lund`` one of its
    own; return their ids by what they show."""
    now = datetime(2027, 1, 1, tzinfo=timezone.utc)
    with SqlStorage.from_url(url) as storage:
        billing = Billing(storage=storage, gateway=InMemoryGateway())
        kari = billing.add_customer(
            "fjord", name="Kari Nordmann", email="kari@example.no"
        ).id
        paused, held, ended = (
            billing.create_template(
                "fjord", kari, lines=[line()], now=now, **schedule
            ).id
            for schedule in (
                {"start": date(2027, 1, 4), "period": "week", "every": 2},
                {"start": date(2027, 2, 15), "period": "month"},
                {
                    "start": date(2027, 1, 10),
                    "period": "year",
                    "end": date(2027, 1, 10),
                },
            )
        )
        billing.pause_template(
            "fjord", paused, on=date(2027, 1, 4), resume=date(2027, 2, 1)
        )
        billing.pause_template("fjord", held, on=date(2027, 2, 15))
        billing.run(datetime(2027, 1, 11, 12, tzinfo=timezone.utc))  # ends one
        billing.create_account(
            account_id="lund",
            name="Lund Fysio AB",
            currency="SEK",
            locale="sv_SE",
            timezone="Europe/Stockholm",
            summary_email="info@lundfysio.se",
        )
        asa = billing.add_customer("lund", name="Åsa Lind", email="asa@example.se").id
        lund = billing.create_template(
            "lund",
            asa,
            lines=[line()],
            start=date(2027, 3, 1),
            period="quarter",
            now=now,
        ).id
    return {"paused": paused, "held": held, "ended": ended, "lund": lund}


def _listed(out: str) -> tuple[str, list[dict[str, str]]]:
    """The first line of a template list, and its rows by column."""
    header, columns, *rows = out.splitlines()
    names = columns.split()
    assert names == ["account", "template", "customer", "period", "state", "next"]
    starts = [columns.index(name) for name in names]
    cells = [
        [row[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        for row in rows
    ]
    return header, [dict(zip(names, found, strict=True)) for found in cells]


def test_preview_with_only_a_database_lists_the_stored_templates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, monthly = _database(tmp_path)
    ids = _more_templates(url)
    capsys.readouterr()
    assert main(["preview", "--db", url]) == 0
    header, rows = _listed(capsys.readouterr().out)
    assert header == "5 stored templates; preview one with --account and --template"
    shown = {row["template"]: row for row in rows}
    assert [row["account"] for row in rows] == ["fjord"] * 4 + ["lund"]
    assert shown[monthly] == {
        "account": "fjord",
        "template": monthly,
        "customer": "Per Olsen",
        "period": "every month",
        "state": "active",
        "next": "2027-01-31",
    }
    seen = {what: (shown[i]["state"], shown[i]["next"]) for what, i in ids.items()}
    assert seen == {
        "paused": ("paused", "2027-02-01"),  # the first date after the pause
        "held": ("paused", "-"),  # paused until further notice
        "ended": ("ended", "-"),
        "lund": ("active", "2027-03-01"),
    }
    assert shown[ids["paused"]]["period"] == "every 2 weeks"
    assert shown[ids["lund"]]["customer"] == "Åsa Lind"


def test_the_template_list_agrees_with_each_templates_preview(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The next date listed is the first one its preview does not skip."""
    url, _ = _database(tmp_path)
    _more_templates(url)
    capsys.readouterr()
    assert main(["preview", "--db", url]) == 0
    _, rows = _listed(capsys.readouterr().out)
    for row in rows:
        ids = ["--account", row["account"], "--template", row["template"]]
        assert main(["preview", "--db", url, *ids, "--count", "8"]) == 0
        header, *dates = capsys.readouterr().out.splitlines()
        assert f"({row['customer']}, {row['period']})" in header
        issued = [d.split()[1] for d in dates if not d.endswith(")")]
        assert (issued[0] if issued else "-") == row["next"]


def test_the_template_list_reads_a_page_of_templates_at_a_time(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No read returns more than a page; the list is the same whatever the
    page's size (its columns are as wide as their widest cell in any page)."""
    from recurbill import cli
    from recurbill.storage.sql import SqlTransaction

    url, _ = _database(tmp_path)
    _more_templates(url)
    capsys.readouterr()
    assert main(["preview", "--db", url]) == 0
    whole = capsys.readouterr().out
    read = SqlTransaction.list_templates
    pages: list[tuple[str, int]] = []

    def paged(tx: SqlTransaction, account_id: str, **kwargs: Any) -> list[Any]:
        found = read(tx, account_id, **kwargs)
        pages.append((account_id, len(found)))
        return found

    monkeypatch.setattr(SqlTransaction, "list_templates", paged)
    monkeypatch.setattr(cli, "_PAGE", 2)
    assert main(["preview", "--db", url]) == 0
    assert capsys.readouterr().out == whole
    assert pages == [("fjord", 2), ("fjord", 2), ("fjord", 0), ("lund", 1)]


def test_preview_with_an_account_lists_only_its_templates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = _database(tmp_path)
    lund = _more_templates(url)["lund"]
    capsys.readouterr()
    assert main(["preview", "--db", url, "--account", "lund"]) == 0
    header, rows = _listed(capsys.readouterr().out)
    assert header == (
        "1 stored template of account lund; preview one with --account and --template"
    )
    assert [(row["account"], row["template"]) for row in rows] == [("lund", lund)]
    assert main(["preview", "--db", url, "--account", "nosuch"]) == 1
    assert capsys.readouterr().err == "recurbill: account 'nosuch' not found\n"


_SCHEDULE_HERE = ["--start", "2027-01-31", "--period", "month"]
_STORED = ["--db", "{url}", "--account", "fjord", "--template", "{template}"]
_MODES = {  # preview's modes: the options that choose one, what names it
    "schedule": (_SCHEDULE_HERE, "a schedule given here (--start and --period)"),
    "template": (_STORED, "a stored template (--template)"),
    "listing": (
        ["--db", "{url}"],
        "the list of stored templates (--db without --template)",
    ),
}
_FOR_A_SCHEDULE = "for a schedule given here"
_FOR_DATES = "for a schedule given here or a stored template"
_FOR_A_DATABASE = "for a stored template or the list of stored templates"


@pytest.mark.parametrize(
    ("mode", "extra", "taken_by"),
    [
        ("listing", ["--count", "3"], _FOR_DATES),
        ("listing", ["--count", "12"], _FOR_DATES),  # the default, given
        ("listing", ["--account", "fjord", "--every", "1"], _FOR_A_SCHEDULE),
        ("listing", ["--end", "2027-12-31"], _FOR_A_SCHEDULE),
        ("listing", ["--month-end"], _FOR_A_SCHEDULE),
        ("template", ["--every", "2"], _FOR_A_SCHEDULE),
        ("template", ["--every", "1"], _FOR_A_SCHEDULE),
        ("template", ["--start", "2027-01-31"], _FOR_A_SCHEDULE),
        ("template", ["--period", "week"], _FOR_A_SCHEDULE),
        ("template", ["--end", "2027-12-31"], _FOR_A_SCHEDULE),
        ("template", ["--month-end"], _FOR_A_SCHEDULE),
        ("schedule", ["--db", "{url}"], _FOR_A_DATABASE),
        ("schedule", ["--account", "fjord"], _FOR_A_DATABASE),
    ],
)
def test_an_option_the_mode_does_not_take_is_a_usage_error_naming_its_mode(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    mode: str,
    extra: list[str],
    taken_by: str,
) -> None:
    """Each would be ignored: without the option the command lists dates."""
    url, template = _database(tmp_path)
    chooses, named = _MODES[mode]
    argv = [a.format(url=url, template=template) for a in ["preview", *chooses]]
    option = [a for a in extra if a.startswith("--")][-1]
    capsys.readouterr()
    assert main([*argv, *extra]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"recurbill: {option} ({taken_by}) does not apply to {named}; leave it out\n"
    )
    assert main(argv) == 0


def test_the_options_a_mode_does_not_take_are_named_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = _database(tmp_path)
    capsys.readouterr()
    argv = ["preview", "--db", url, "--month-end", "--count", "3", "--every", "2"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "recurbill: --every and --month-end (for a schedule given here) and "
        "--count (for a schedule given here or a stored template) do not apply "
        "to the list of stored templates (--db without --template); leave them "
        "out\n"
    )


def test_without_count_and_every_a_preview_lists_twelve_dates_of_every_period(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["preview", *_SCHEDULE_HERE]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header == "schedule every month from 2027-01-31: the first 12 dates"
    assert [r.split()[1] for r in rows][:3] == [
        "2027-01-31",
        "2027-02-28",
        "2027-03-31",
    ]
    assert len(rows) == 12
    url, template = _database(tmp_path)
    capsys.readouterr()
    stored = [a.format(url=url, template=template) for a in _STORED]
    assert main(["preview", *stored]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.endswith("(Per Olsen, every month): the next 12 dates")
    assert len(rows) == 12


def test_the_template_list_only_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    url, _ = _database(tmp_path)
    path = tmp_path / "billing.sqlite3"

    def dump() -> list[str]:
        with closing(sqlite3.connect(path)) as db:
            return list(db.iterdump())

    before, stored = path.read_bytes(), dump()
    capsys.readouterr()
    assert main(["preview", "--db", url]) == 0
    assert path.read_bytes() == before
    assert dump() == stored
    other = tmp_path / "other.sqlite3"  # a database recurbill never migrated
    with closing(sqlite3.connect(other)) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
    assert main(["preview", "--db", str(other)]) == 1
    assert "recurbill migrate" in capsys.readouterr().err
    with closing(sqlite3.connect(other)) as db:
        tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        assert [name for (name,) in tables] == ["notes"]


def test_preview_lists_no_templates_in_a_new_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'new.sqlite3'}"
    assert main(["migrate", "--db", url]) == 0
    capsys.readouterr()
    assert main(["preview", "--db", url]) == 0
    assert capsys.readouterr().out == "no stored templates\n"


def _invoices(url: str) -> int:
    with SqlStorage.from_url(url) as storage, storage.transaction() as tx:
        return len(tx.list_invoices("fjord"))


def test_a_dry_run_reports_what_would_be_issued_and_saves_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = _database(tmp_path)
    path = tmp_path / "billing.sqlite3"
    capsys.readouterr()
    before = path.read_bytes()
    for _ in range(2):  # nothing saved: the second dry run sees the same
        assert (
            main(["run", "--db", url, "--dry-run", "--as-of", "2027-02-28T07:00+01:00"])
            == 0
        )
        assert capsys.readouterr().out.splitlines() == [
            "fjord: would issue 2, charge 0, skip 0, end 0",
            f"dry run on a copy of {path}: nothing was saved, no card was charged",
        ]
    assert path.read_bytes() == before
    assert _invoices(url) == 0


def test_a_dry_run_runs_where_production_is_declared(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A dry run on a copy of the production database charges nothing: the
    flag that keeps the in-memory gateway out of production does not stop it."""
    url, _ = _database(tmp_path)
    monkeypatch.setenv("RECURBILL_PRODUCTION", "1")
    capsys.readouterr()
    assert (
        main(["run", "--db", url, "--dry-run", "--as-of", "2027-02-28T07:00+01:00"])
        == 0
    )
    assert capsys.readouterr().out.splitlines()[0] == (
        "fjord: would issue 2, charge 0, skip 0, end 0"
    )
    assert _invoices(url) == 0


def test_a_dry_run_needs_a_sqlite_file_and_sends_no_mail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = _database(tmp_path)
    pg = "postgresql+psycopg://billing@localhost/billing"
    assert main(["run", "--db", pg, "--dry-run"]) == 2
    assert "SQLite file" in capsys.readouterr().err
    smtp = ["--smtp", "localhost:25", "--smtp-sender", "a@example.no"]
    assert main(["run", "--db", url, "--dry-run", *smtp]) == 2
    assert "leave out --smtp" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("not a database")
    assert main(["run", "--db", str(tmp_path / "notes.txt"), "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "cannot be copied for a dry run" in err
    assert err.count("\n") == 1


def test_the_real_run_issues_once(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, _ = _database(tmp_path)
    monkeypatch.setattr("recurbill.cli._stripe", InMemoryGateway)  # no network
    run = ["run", "--db", url, "--as-of"]
    capsys.readouterr()
    assert main([*run, "2027-02-28T07:00:00+01:00"]) == 0
    assert capsys.readouterr().out.strip() == (
        "fjord: 2 issued, 0 charged, 0 declined, 0 awaiting an outcome, "
        "0 skipped, 0 ended"
    )
    assert main([*run, "2027-02-28T08:00:00+01:00"]) == 0
    assert "0 issued" in capsys.readouterr().out
    assert _invoices(url) == 2


def test_run_without_a_stripe_key_says_what_to_do(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("STRIPE_SECRET_KEY", raising=False)
    url, _ = _database(tmp_path)
    assert main(["run", "--db", url]) == 2
    err = capsys.readouterr().err
    assert "STRIPE_SECRET_KEY" in err
    assert "--dry-run" in err


def test_run_without_the_stripe_extra_names_it(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_not_used")
    monkeypatch.setitem(sys.modules, "stripe", None)  # import stripe fails
    url, _ = _database(tmp_path)
    assert main(["run", "--db", url]) == 2
    err = capsys.readouterr().err
    assert "pip install '.[stripe]'" in err
    assert "Traceback" not in err


def test_a_database_that_was_never_migrated_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "empty.sqlite3"
    path.touch()
    assert main(["run", "--db", f"sqlite:///{path}", "--dry-run"]) == 1
    assert "migrate" in capsys.readouterr().err


@pytest.mark.parametrize(
    "db_form", ["{path}", "sqlite:///{path}", "sqlite+pysqlite:///{path}?timeout=5"]
)
def test_run_and_preview_create_no_file_for_a_missing_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], db_form: str
) -> None:
    path = tmp_path / "typo.sqlite3"
    db = db_form.format(path=path)
    commands = [
        ["run", "--db", db, "--dry-run"],
        ["run", "--db", db],
        ["preview", "--template", "tpl_1", "--account", "fjord", "--db", db],
    ]
    for command in commands:
        assert main(command) == 2
        assert f"no database at {path}; create one with: recurbill migrate" in (
            capsys.readouterr().err
        )
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_account_is_named_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, template_id = _database(tmp_path)
    preview = ["preview", "--template", template_id, "--db", url]
    assert main([*preview, "--account", "nosuch"]) == 1
    assert capsys.readouterr().err == "recurbill: account 'nosuch' not found\n"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("bogus://x", "database 'bogus' is not supported"),
        ("postgresql://bill:s3cret@db:notaport/x", "postgresql://bill:***@db"),
        ("sqlite+nosuch:///x.sqlite3", "SQLite URL"),
    ],
)
def test_a_bad_database_url_is_one_line_without_its_password(
    capsys: pytest.CaptureFixture[str], url: str, says: str
) -> None:
    assert main(["migrate", "--db", url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("recurbill: ")
    assert says in err
    assert err.count("\n") == 1
    assert "s3cret" not in err


def test_a_file_that_is_not_a_database_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "notes.sqlite3"
    path.write_text("shopping list")
    assert main(["migrate", "--db", str(path)]) == 1
    err = capsys.readouterr().err
    assert "file is not a database" in err
    assert err.count("\n") == 1
    assert path.read_text() == "shopping list"


@pytest.mark.parametrize(
    "as_of",
    [
        "0001-01-01T00:30:00+01:00",
        "0001-12-31T23:59:59+00:00",
        "0002-01-01T00:30:00+05:00",  # the year 1 in UTC
        "9999-01-01T00:00:00+00:00",
        "9999-12-31T23:30:00-05:00",
        "9998-12-31T23:00:00-23:59",  # the year 9999 in UTC
    ],
)
@pytest.mark.parametrize("dry_run", [["--dry-run"], []])
def test_an_instant_at_the_ends_of_the_calendar_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], as_of: str, dry_run: list[str]
) -> None:
    url, _ = _database(tmp_path)
    capsys.readouterr()
    assert _status(["run", "--db", url, *dry_run, "--as-of", as_of]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"recurbill: argument --as-of: {as_of!r} is outside the calendar; give "
        "an instant in the years 2 to 9998 (in UTC) (see recurbill run --help)\n"
    )
    assert _invoices(url) == 0


@pytest.mark.parametrize(
    "as_of", ["0002-01-01T00:00:00+00:00", "9998-12-31T23:59:59+00:00"]
)
def test_the_first_and_last_instants_the_run_takes_are_taken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], as_of: str
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    assert main(["migrate", "--db", url]) == 0
    assert main(["run", "--db", url, "--dry-run", "--as-of", as_of]) == 0


def test_the_migrate_output_in_the_docs_is_the_current_version() -> None:
    page = Path(__file__).parent.parent / "docs" / "tutorials" / "storage.md"
    shown = re.findall(r"schema is at version (\d+)", page.read_text())
    assert shown
    assert {int(v) for v in shown} == {schema.LATEST_VERSION}


def test_demo_runs_and_summarises_each_account(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "demo.sqlite3"
    assert main(["demo", "--db", str(db), "--days", "40", "--start", "2027-01-01"]) == 0
    out = capsys.readouterr().out
    for name in ("Fjord Fysio AS", "Stockholm Hosting AB", "Reykjavík Ráðgjöf ehf."):
        assert name in out
    assert "invoices issued" in out
    assert "skipped (paused)" in out
    assert db.exists()


def test_the_demo_counts_declined_attempts_and_the_invoices_they_were_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A declined invoice is tried again: the summary says that it counts
    attempts, and for how many invoices (no note when there are none)."""
    from recurbill.records import PaymentStatus

    db = tmp_path / "demo.sqlite3"
    assert main(["demo", "--db", str(db), "--days", "40", "--start", "2027-01-01"]) == 0
    shown = re.findall(
        r"charge attempts declined +(\d+)(?:  \(for (\d+) invoices?\))?\n",
        capsys.readouterr().out,
    )
    with SqlStorage.sqlite(db) as storage, storage.transaction() as tx:
        counted = []
        for account_id in tx.list_account_ids():  # the summary's order
            payments = tx.list_payments(account_id)
            declined = [p for p in payments if p.status is PaymentStatus.DECLINED]
            invoices = {i for p in declined for i in p.invoice_ids}
            counted.append((str(len(declined)), str(len(invoices) or "")))
    assert shown == counted
    assert int(counted[0][0]) > int(counted[0][1]) > 0  # fjord-fysio retries
    assert ("0", "") in counted  # an account without declines: no note


def test_demo_runs_where_production_is_declared(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Test cards on a demo database move no money: the flag that keeps the
    in-memory gateway out of real billing does not stop the demo."""
    monkeypatch.setenv("RECURBILL_PRODUCTION", "1")
    db = tmp_path / "demo.sqlite3"
    assert main(["demo", "--db", str(db), "--days", "3", "--start", "2027-01-01"]) == 0
    assert "Fjord Fysio AS" in capsys.readouterr().out


def test_demo_sessions_are_dated_the_weekday_they_happen(tmp_path: Path) -> None:
    """In summer time too: the demo's day ends before midnight in every
    account's zone, so a Friday's sessions are not dated Saturday."""
    db = tmp_path / "demo.sqlite3"
    assert main(["demo", "--db", str(db), "--days", "14", "--start", "2027-06-01"]) == 0
    with SqlStorage.sqlite(db) as storage, storage.transaction() as tx:
        days = {
            invoice.issue_date.weekday()
            for account_id in tx.list_account_ids()
            for invoice in tx.list_invoices(account_id)
            if invoice.template_id is None
        }
    assert days == {0, 1, 2, 3, 4}


def test_demo_replaces_only_its_own_database(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = ["demo", "--days", "3", "--start", "2027-01-01", "--db"]
    db = tmp_path / "demo.sqlite3"
    assert main([*demo, str(db)]) == 0
    assert main([*demo, str(db)]) == 0  # an earlier demo database is replaced
    capsys.readouterr()
    notes = tmp_path / "notes.txt"
    notes.write_text("shopping list")
    url, _ = _database(tmp_path)  # billing.sqlite3, an account of its own
    for path in (notes, tmp_path / "billing.sqlite3"):
        before = path.read_bytes()
        assert main([*demo, str(path)]) == 1
        err = capsys.readouterr().err
        assert "is not a database the demo made" in err
        assert err.count("\n") == 1
        assert path.read_bytes() == before
    assert _invoices(url) == 0
    with SqlStorage.from_url(url) as storage, storage.transaction() as tx:
        assert tx.list_account_ids() == ["fjord"]


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str], says: str) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("recurbill: ")
    assert says in err
    assert err.count("\n") == 1


def _only_fjord_untouched(url: str) -> None:
    assert _invoices(url) == 0
    with SqlStorage.from_url(url) as storage, storage.transaction() as tx:
        assert tx.list_account_ids() == ["fjord"]
        assert tx.pending_notifications(limit=100) == []


@pytest.mark.parametrize(
    "spelling",
    [
        "sqlite+pysqlite:///{}",
        "sqlite:///{}?timeout=5",
        "sqlite+pysqlite:///file:{}?mode=rw&uri=true",
    ],
)
def test_demo_refuses_another_sqlite_database_however_its_url_is_spelled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], spelling: str
) -> None:
    url, _ = _database(tmp_path)
    path = tmp_path / "billing.sqlite3"
    before = path.read_bytes()
    capsys.readouterr()
    demo = ["demo", "--days", "40", "--start", "2027-01-01"]
    says = "is not a database the demo made"
    _refused(capsys, [*demo, "--db", spelling.format(path)], says)
    assert path.read_bytes() == before
    _only_fjord_untouched(url)


def test_demo_replaces_its_own_database_given_as_a_url(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+pysqlite:///{tmp_path / 'demo.sqlite3'}"
    demo = ["demo", "--days", "3", "--start", "2027-01-01", "--db", url]
    assert main(demo) == 0
    first = capsys.readouterr().out
    assert main(demo) == 0
    assert capsys.readouterr().out == first  # made again, not added to


def test_demo_refuses_a_postgresql_database_with_an_account(
    fresh_postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _fill(fresh_postgres_url)
    capsys.readouterr()
    demo = ["demo", "--days", "40", "--start", "2027-01-01"]
    _refused(capsys, [*demo, "--db", fresh_postgres_url], "is not empty")
    _only_fjord_untouched(fresh_postgres_url)


def test_demo_refuses_a_postgresql_database_with_tables_of_its_own(
    fresh_postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(fresh_postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA shop"))
        conn.execute(sa.text("CREATE TABLE shop.orders (id integer)"))
    demo = ["demo", "--days", "3", "--start", "2027-01-01"]
    _refused(capsys, [*demo, "--db", fresh_postgres_url], "is not empty")
    with engine.connect() as conn:
        assert sa.inspect(conn).get_table_names() == []  # no recurbill schema
    engine.dispose()


def test_demo_fills_an_empty_postgresql_database_once(
    fresh_postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = ["demo", "--days", "10", "--start", "2027-01-01"]
    assert main([*demo, "--db", fresh_postgres_url]) == 0
    assert capsys.readouterr().out.count("invoices issued") == 3
    says = "is not empty (an earlier demo)"
    _refused(capsys, [*demo, "--db", fresh_postgres_url], says)


def test_demo_runs_only_its_own_accounts(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, _ = _database(tmp_path)
    monkeypatch.setattr("recurbill.demo._make_room", lambda url: None)  # let it in
    capsys.readouterr()
    assert main(["demo", "--days", "40", "--start", "2027-01-01", "--db", url]) == 0
    assert capsys.readouterr().out.count("invoices issued") == 3
    assert _invoices(url) == 0


@pytest.mark.parametrize("days", ["0", "-5", "ten"])
def test_demo_needs_a_day_or_more(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], days: str
) -> None:
    db = tmp_path / "demo.sqlite3"
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--days", days, "--db", str(db)])
    assert exit_.value.code == 2
    assert f"--days: {days!r} is not a whole number of 1 or more" in (
        capsys.readouterr().err
    )
    assert not db.exists()


def test_run_demo_refuses_no_days(tmp_path: Path) -> None:
    import io

    from recurbill.demo import run_demo
    from recurbill.errors import InvalidInputError

    url = f"sqlite:///{tmp_path / 'demo.sqlite3'}"
    with pytest.raises(InvalidInputError, match=r"days=0; .*1 or more"):
        run_demo(url, start=date(2027, 1, 1), days=0, out=io.StringIO())
    assert not (tmp_path / "demo.sqlite3").exists()


@pytest.mark.parametrize("count", ["0", "-5"])
def test_preview_needs_a_count_of_one_or_more(
    capsys: pytest.CaptureFixture[str], count: str
) -> None:
    preview = ["preview", "--start", "2027-01-31", "--period", "month"]
    with pytest.raises(SystemExit) as exit_:
        main([*preview, "--count", count])
    assert exit_.value.code == 2
    assert f"--count: {count!r} is not a whole number of 1 or more" in (
        capsys.readouterr().err
    )


def test_a_template_that_cannot_be_issued_makes_the_run_exit_1(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from recurbill import daily
    from recurbill.errors import InvalidInvoiceError

    url, template_id = _database(tmp_path)
    build = daily.build_invoice

    def failing(**fields: object) -> object:
        if fields.get("template_id") == template_id:
            raise InvalidInvoiceError(problem="broken", allowed="fix it")
        return build(**fields)

    monkeypatch.setattr(daily, "build_invoice", failing)
    capsys.readouterr()
    run = ["run", "--db", url, "--dry-run", "--as-of", "2027-02-28T07:00+01:00"]
    assert main(run) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == (
        "fjord: would issue 0, charge 0, skip 0, end 0, 1 failed"
    )
    assert err == (
        "recurbill: 1 recurring invoice(s) could not be issued; the daily summary "
        "says why (they are tried again next run)\n"
    )


def test_a_dry_run_takes_any_url_sqlalchemy_reads_as_a_sqlite_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _database(tmp_path)
    path = tmp_path / "billing.sqlite3"
    for db in (f"sqlite:///{path}?timeout=5", f"sqlite+pysqlite:///{path}"):
        run = ["run", "--db", db, "--dry-run", "--as-of", "2027-02-28T07:00+01:00"]
        assert main(run) == 0
        assert "fjord: would issue 2" in capsys.readouterr().out


def test_a_sqlite_uri_filename_names_its_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _database(tmp_path)
    monkeypatch.chdir(tmp_path)
    db = "sqlite:///file:billing.sqlite3?mode=rw&uri=true"
    assert (
        main(["run", "--db", db, "--dry-run", "--as-of", "2027-02-28T07:00+01:00"]) == 0
    )
    assert "fjord: would issue 2" in capsys.readouterr().out


def test_a_run_counts_its_charges_by_outcome(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from recurbill.cli import _report
    from recurbill.money import Money
    from recurbill.records import ChargeLine, PaymentStatus, RunReport

    def charge(status: PaymentStatus) -> ChargeLine:
        return ChargeLine(
            invoice_number="INV-1",
            customer_name="Kari",
            amount=Money("100", "NOK"),
            status=status,
        )

    statuses = [
        PaymentStatus.SUCCEEDED,
        PaymentStatus.SUCCEEDED,
        PaymentStatus.DECLINED,
        PaymentStatus.FAILED_UNKNOWN,
        PaymentStatus.REQUIRES_ACTION,
    ]
    report = RunReport(
        account_id="fjord",
        as_of=datetime(2027, 2, 28, 6, tzinfo=timezone.utc),
        charges=tuple(charge(s) for s in statuses),
    )
    assert _report([report]) == 0
    assert _report([report], dry=True) == 0
    assert capsys.readouterr().out.splitlines() == [
        "fjord: 0 issued, 2 charged, 1 declined, 2 awaiting an outcome, "
        "0 skipped, 0 ended",
        "fjord: would issue 0, charge 5, skip 0, end 0",
    ]
    canceled = attrs.evolve(
        report, charges=(*report.charges, charge(PaymentStatus.CANCELED))
    )
    assert _report([canceled]) == 0
    assert capsys.readouterr().out.splitlines() == [  # counted, not "awaiting"
        "fjord: 0 issued, 2 charged, 1 declined, 2 awaiting an outcome, "
        "1 canceled, 0 skipped, 0 ended",
    ]


def test_rows_set_aside_make_the_run_exit_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from recurbill.cli import _report
    from recurbill.records import RunReport, UnreadableLine

    report = RunReport(
        account_id="fjord",
        as_of=datetime(2027, 2, 28, 6, tzinfo=timezone.utc),
        unreadable=(UnreadableLine(kind="payment", key="pay_1", problem="bad"),),
    )
    assert _report([report]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "fjord: 0 issued, 0 charged, 0 declined, 0 awaiting an outcome, "
        "0 skipped, 0 ended, 1 unreadable (set aside)"
    ]
    assert err == (
        "recurbill: 1 stored record(s) could not be read and were set aside; "
        "the daily summary names them (they are tried again next run)\n"
    )


def test_an_unreadable_account_prints_the_others_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sqlite3

    url, _ = _database(tmp_path)
    with SqlStorage.from_url(url) as storage:
        Billing(storage=storage, gateway=InMemoryGateway()).create_account(
            account_id="lund",
            name="Lund AS",
            currency="NOK",
            locale="nb_NO",
            timezone="Europe/Oslo",
            summary_email="post@lund.no",
        )
    with sqlite3.connect(tmp_path / "billing.sqlite3") as db:  # a hand edit
        db.execute("UPDATE accounts SET run_time = 'noon' WHERE id = 'lund'")
    capsys.readouterr()
    run = ["run", "--db", url, "--dry-run", "--as-of", "2027-02-28T07:00+01:00"]
    assert main(run) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[0].startswith("fjord: would issue 2")
    assert err.startswith("recurbill: stored account 'lund' of account 'lund' could")


def _commands() -> dict[str, argparse.ArgumentParser]:
    (commands,) = (
        action
        for action in _parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    return dict(commands.choices)


def _help(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """The help *argv* prints, its lines joined as one (the wrapping undone)."""
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("command", ["demo", "run", "preview", "migrate"])
def test_each_command_explains_its_options_and_shows_their_defaults(
    capsys: pytest.CaptureFixture[str], command: str
) -> None:
    shown = _help(capsys, [command])
    for action in _commands()[command]._actions:
        assert action.help, f"{command} {action.option_strings} has no help"
        if action.default not in (None, False, argparse.SUPPRESS):
            assert f"(default: {action.default})" in shown


def test_the_help_says_what_recurbill_does(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pyproject = (Path(__file__).parent.parent / "pyproject.toml").read_text()
    described = re.search(r'^description = "(.+)"$', pyproject, re.MULTILINE)
    assert described is not None
    assert described.group(1) in _help(capsys, [])


def test_the_run_help_gives_an_as_of_it_takes_and_the_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = _help(capsys, ["run"])
    example = re.search(r"with a UTC offset, e\.g\. (\S+) \(default: now\)", shown)
    assert example is not None
    url, _ = _database(tmp_path)
    capsys.readouterr()
    assert main(["run", "--db", url, "--dry-run", "--as-of", example[1]]) == 0
    assert "1 something could not be issued or charged" in shown
    smtp = _commands()["run"]._option_string_actions["--smtp"]
    assert "needs --smtp-sender" in str(smtp.help)
    assert "--dry-run refuses it" in str(smtp.help)


def test_the_preview_help_explains_both_modes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    shown = _help(capsys, ["preview"])
    assert "a schedule given here: --start and --period" in shown
    assert "a stored template: --db, --account and --template" in shown
    assert "give --db alone (or with --account): that lists the stored" in shown
    assert "2 the command line cannot be run: an option's value" in shown


def _shown_commands(page: Path) -> list[tuple[str, str]]:
    """Each one-line ``recurbill`` command in a text block of *page*, with the
    text block that follows it (what the page says it prints)."""
    blocks = re.findall(r"^```text\n(.*?)^```$", page.read_text(), re.M | re.S)
    return [
        (command.strip(), shown)
        for command, shown in itertools.pairwise(blocks)
        if command.startswith("recurbill ") and command.count("\n") == 1
    ]


def _as_a_terminal_shows(out: str) -> str:
    """*out* with the demo's progress lines drawn over each other, as on a
    terminal (the last one stays), and no-break spaces shown as spaces."""
    lines = out.replace("\xa0", " ").replace("\r", "").splitlines(keepends=True)
    progress = [i for i, line in enumerate(lines) if line.startswith("  simulating [")]
    return "".join(line for i, line in enumerate(lines) if i not in progress[:-1])


def test_the_getting_started_page_shows_what_its_commands_print(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Run in order, as a reader would (the demo first): the page's output
    blocks are what the commands print now."""
    page = Path(__file__).parent.parent / "docs" / "getting-started.md"
    commands = _shown_commands(page)
    assert [c.split()[1] for c, _ in commands] == [
        "demo", "run", "preview", "preview", "preview"
    ]  # fmt: skip
    monkeypatch.chdir(tmp_path)
    for command, shown in commands:
        capsys.readouterr()
        assert main(shlex.split(command)[1:]) == 0, command
        assert _as_a_terminal_shows(capsys.readouterr().out) == shown, command

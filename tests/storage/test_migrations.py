"""Schema steps on SQLite and PostgreSQL: an old database upgrades keeping its
data and behaviour, and every way to the latest version gives the same schema.

Version 4 added the accounts' payment reference scheme (two columns): a
database made by steps 1-3, with rows in it, upgrades and its accounts keep
the references versions 1-3 gave them. Version 5 added document-level
allowances and charges to templates, invoices and credit notes: those a
version-4 database holds read back with none. Version 6 added the digest of
the arguments add_customer added a customer with: a customer a version-5
database holds has none, and is known by its details as they are. Version 7
did the same for templates and create_template. Version 8 added the account's
payee account and VAT number: an account a version-7 database holds reads
back with neither, and takes them afterwards. Version 9 added the table of
daily summary lines not summarised yet: a version-8 database upgrades and its
next run queues its summary as before. Version 11 added the reopen choice
of refunds: a version-10 refund waiting for its answer gets the one its
status holds, an answered one none. Version 12 added the index of the
invoices each payment includes: a version-11 payment is found by each of
its invoices, one whose invoice list cannot be read by every invoice of its
customer (and is reported as unreadable there, as before), and a receipt by
its payment. It also added
an index on an account's templates by id: a version-11 database upgrades
with it, and its templates read a page at a time are the ones it lists at
once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa
from schema_at import columns_at, insert_at

from recurbill.billing import Billing
from recurbill.cli import main
from recurbill.errors import ConflictError, UnreadableRecordError
from recurbill.invoice import AllowanceCharge, InvoiceLine
from recurbill.money import Money
from recurbill.payee import PayeeAccount
from recurbill.payments.memory import InMemoryGateway
from recurbill.records import (
    Account,
    CreditNoteRecord,
    Receipt,
    ReceiptItem,
    RecurringTemplate,
    Refund,
)
from recurbill.references import ReferenceScheme
from recurbill.storage import migrations, rows, schema
from recurbill.storage.sql import SqlStorage
from recurbill.testing.storage import (
    make_account,
    make_customer,
    make_invoice,
    make_payment,
    make_template,
)

NewUrl = Callable[[], str]

_VERSION_3_ACCOUNT_COLUMNS = [
    "id",
    "name",
    "currency",
    "locale",
    "timezone",
    "run_time",
    "payment_terms_days",
    "invoice_series",
    "summary_email",
    "rounding",
]

_VERSION_8_ACCOUNT_COLUMNS = ["payee_kind", "payee_number", "payee_bic", "vat_number"]


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def new_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NewUrl]:
    """Makes URLs of new, empty databases on one backend (dropped afterwards)."""
    if request.param == "sqlite":
        files = iter(range(1, 100))
        yield lambda: f"sqlite:///{tmp_path / f'db{next(files)}.sqlite3'}"
        return
    from postgres_server import PostgresServer

    server = request.getfixturevalue("postgres_server")
    assert isinstance(server, PostgresServer)
    made: list[str] = []

    def new() -> str:
        name = f"recurbill_migrations_{uuid.uuid4().hex[:12]}"
        server.execute(f"CREATE DATABASE {name}")
        made.append(name)
        return server.url(name)

    yield new
    for name in made:
        server.execute(f"DROP DATABASE {name} WITH (FORCE)")


# -- a database at version 3, with rows ------------------------------------------

_LEGACY = {  # currency -> the reference versions 1-3 gave invoice 42
    "NOK": "422",  # KID, MOD10
    "SEK": "4242",  # OCR with length digit 4
    "ISK": "INV-000042",  # the invoice number
}


def _legacy_accounts() -> list[Account]:
    return [make_account(code.lower(), currency=code) for code in _LEGACY]


def _version_3_with_rows(storage: SqlStorage) -> None:
    """Steps 1-3 only, then rows written as version 3 stored them."""
    with storage.engine.begin() as conn:
        assert migrations.upgrade(conn, target=3) == 3
        for account in _legacy_accounts():
            insert_at(conn, 3, schema.accounts, rows.encode_account(account))
            customer = make_customer(
                f"cus-{account.id}",
                account_id=account.id,
                collection_method="send_invoice",
            )
            insert_at(conn, 3, schema.customers, rows.encode_customer(customer))
            insert_at(
                conn,
                3,
                schema.invoices,
                rows.encode_invoice(
                    make_invoice(
                        f"inv-{account.id}",
                        account_id=account.id,
                        customer_id=customer.id,
                        number=41,
                        currency=account.currency,
                        **_amounts(account),
                    )
                ),
            )
            counter = {"account_id": account.id, "series": "INV", "next_number": 42}
            insert_at(conn, 3, schema.counters, counter)


def _amounts(account: Account) -> dict[str, Any]:
    zero = Money(0, account.currency)
    return {
        "net_total": zero,
        "vat_total": zero,
        "total": zero,
        "paid": zero,
        "credited": zero,
    }


def _account_columns(engine: sa.Engine) -> list[str]:
    return [str(c["name"]) for c in sa.inspect(engine).get_columns("accounts")]


def _keeps_its_references(storage: SqlStorage) -> None:
    """Each old account is read with its currency's scheme and invoices as before."""
    with storage.transaction() as tx:
        for account in _legacy_accounts():
            stored = tx.get_account(account.id)
            assert stored == account
            assert stored.reference_scheme == ReferenceScheme.default_for(
                account.currency.code
            )
            assert tx.get_invoice(account.id, f"inv-{account.id}").number == 41
    billing = Billing(storage=storage, gateway=InMemoryGateway())
    line = InvoiceLine(description="Session", quantity=1, unit_price="800", vat_rate=25)
    now = datetime(2027, 3, 1, 12, tzinfo=timezone.utc)
    for account in _legacy_accounts():
        outcome = billing.record_session(
            account.id, f"cus-{account.id}", lines=[line], now=now
        )
        assert outcome.invoice.number == 42
        assert outcome.invoice.payment_reference == _LEGACY[account.currency.code]


def test_steps_1_to_3_make_accounts_without_reference_columns(
    new_url: NewUrl,
) -> None:
    with SqlStorage.from_url(new_url()) as storage:
        _version_3_with_rows(storage)
        assert _account_columns(storage.engine) == _VERSION_3_ACCOUNT_COLUMNS
        assert columns_at(schema.accounts, 3) == _VERSION_3_ACCOUNT_COLUMNS


def test_version_3_with_rows_upgrades_and_keeps_its_references(
    new_url: NewUrl,
) -> None:
    with SqlStorage.from_url(new_url()) as storage:
        _version_3_with_rows(storage)
        assert storage.migrate() == schema.LATEST_VERSION == 13
        assert _account_columns(storage.engine) == [
            *_VERSION_3_ACCOUNT_COLUMNS,
            "reference_method",
            "reference_length",
            *_VERSION_8_ACCOUNT_COLUMNS,
        ]
        _keeps_its_references(storage)


def test_recurbill_migrate_upgrades_a_version_3_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "billing.sqlite3"
    with SqlStorage.sqlite(path) as storage:
        _version_3_with_rows(storage)
    assert main(["migrate", "--db", str(path)]) == 0
    assert capsys.readouterr().out.split()[-1] == str(schema.LATEST_VERSION)
    with SqlStorage.sqlite(path) as storage:
        assert storage.schema_version() == schema.LATEST_VERSION
        _keeps_its_references(storage)


# -- a database at version 4, with rows ------------------------------------------

_DOCUMENT_COLUMNS = {"templates", "invoices", "credit_notes"}


def _version_4_with_rows(storage: SqlStorage) -> None:
    """Steps 1-4 only, then a template, an invoice and a credit note as
    version 4 stored them (no allowances or charges column)."""
    account = make_account("nok", currency="NOK")
    customer = make_customer("cus-nok", account_id="nok")
    template = make_template("tpl-nok", account_id="nok", customer_id=customer.id)
    invoice = make_invoice("inv-nok", account_id="nok", customer_id=customer.id)
    note = CreditNoteRecord(
        id="cn-nok",
        account_id="nok",
        customer_id=customer.id,
        invoice_id=invoice.id,
        number=1,
        series="CN",
        amount=Money("25.00", "NOK"),
        reason="Late",
        issue_date=invoice.issue_date,
    )
    with storage.engine.begin() as conn:
        assert migrations.upgrade(conn, target=4) == 4
        for table, row in (
            (schema.accounts, rows.encode_account(account)),
            (schema.customers, rows.encode_customer(customer)),
            (schema.templates, rows.encode_template(template)),
            (schema.invoices, rows.encode_invoice(invoice)),
            (schema.credit_notes, rows.encode_credit_note(note)),
            (schema.counters, {"account_id": "nok", "series": "INV", "next_number": 2}),
        ):
            assert "allowance_charges" not in columns_at(table, 4)
            insert_at(conn, 4, table, row)


def _columns(engine: sa.Engine, table: str) -> list[str]:
    return [str(c["name"]) for c in sa.inspect(engine).get_columns(table)]


def test_version_4_with_rows_upgrades_and_reads_back_no_allowances_or_charges(
    new_url: NewUrl,
) -> None:
    with SqlStorage.from_url(new_url()) as storage:
        _version_4_with_rows(storage)
        for table in _DOCUMENT_COLUMNS:
            assert "allowance_charges" not in _columns(storage.engine, table)
        assert storage.migrate() == schema.LATEST_VERSION
        for table in _DOCUMENT_COLUMNS:  # their order: the test of one schema
            assert "allowance_charges" in _columns(storage.engine, table)
        with storage.transaction() as tx:
            template = tx.get_template("nok", "tpl-nok")
            invoice = tx.get_invoice("nok", "inv-nok")
            (note,) = tx.list_credit_notes("nok")
        assert template == make_template(
            "tpl-nok", account_id="nok", customer_id="cus-nok"
        )
        assert invoice == make_invoice(
            "inv-nok", account_id="nok", customer_id="cus-nok"
        )
        for record in (template, invoice, note):
            assert record.allowances == record.charges == ()
        # the upgraded database takes new invoices with allowances and charges
        billing = Billing(storage=storage, gateway=InMemoryGateway())
        line = InvoiceLine(
            description="Session", quantity=1, unit_price="800", vat_rate=25
        )
        fee = AllowanceCharge(
            is_charge=True,
            amount=35,
            reason="Invoice fee",
            vat_category="S",
            vat_rate=25,
        )
        outcome = billing.record_session(
            "nok",
            "cus-nok",
            lines=[line],
            charges=[fee],
            now=datetime(2027, 3, 1, 12, tzinfo=timezone.utc),
        )
        assert outcome.invoice.charges == (fee,)
        assert outcome.invoice.total == Money("1043.75", "NOK")
        with storage.transaction() as tx:
            assert tx.get_invoice("nok", outcome.invoice.id) == outcome.invoice


# -- a database at version 5, with rows ------------------------------------------


def test_version_5_customers_upgrade_and_are_known_by_their_details(
    new_url: NewUrl,
) -> None:
    account = make_account("nok", currency="NOK", locale="nb_NO")
    kari = make_customer(
        "kari", account_id="nok", name="Kari", email="kari@example.no", locale="sv_SE"
    )
    with SqlStorage.from_url(new_url()) as storage:
        with storage.engine.begin() as conn:
            assert migrations.upgrade(conn, target=5) == 5
            insert_at(conn, 5, schema.accounts, rows.encode_account(account))
            insert_at(conn, 5, schema.customers, rows.encode_customer(kari))
        assert "added_with" not in _columns(storage.engine, "customers")
        assert storage.migrate() == schema.LATEST_VERSION
        assert _columns(storage.engine, "customers")[-1] == "added_with"
        with storage.transaction() as tx:
            assert tx.get_customer("nok", "kari") == kari
        assert kari.added_with is None
        billing = Billing(storage=storage, gateway=InMemoryGateway())
        add = partial(
            billing.add_customer,
            "nok",
            name="Kari",
            email="kari@example.no",
            locale="sv_SE",
            customer_id="kari",
        )
        with pytest.raises(ConflictError, match="the locale given is not its own"):
            add(locale=None)  # the account's: not hers, and nothing else known
        finished = add()  # her details as they are: repeated, and finished
        assert finished == attrs.evolve(
            kari, gateway_customer_id=finished.gateway_customer_id
        )
        assert finished.gateway_customer_id is not None


# -- a database at version 6, with rows ------------------------------------------


def test_version_6_templates_upgrade_and_are_known_by_their_details(
    new_url: NewUrl,
) -> None:
    account = make_account("nok", currency="NOK", locale="nb_NO")
    kari = make_customer("kari", account_id="nok")
    template = make_template("sub-1", account_id="nok", customer_id="kari")
    with SqlStorage.from_url(new_url()) as storage:
        with storage.engine.begin() as conn:
            assert migrations.upgrade(conn, target=6) == 6
            insert_at(conn, 6, schema.accounts, rows.encode_account(account))
            insert_at(conn, 6, schema.customers, rows.encode_customer(kari))
            insert_at(conn, 6, schema.templates, rows.encode_template(template))
        assert "created_with" not in _columns(storage.engine, "templates")
        assert storage.migrate() == schema.LATEST_VERSION
        assert _columns(storage.engine, "templates")[-1] == "created_with"
        with storage.transaction() as tx:
            assert tx.get_template("nok", "sub-1") == template
        assert template.created_with is None
        billing = Billing(storage=storage, gateway=InMemoryGateway())
        schedule = template.schedule
        create = partial(
            billing.create_template,
            "nok",
            "kari",
            lines=template.lines,
            start=schedule.start,
            period=schedule.period,
            now=template.created_at,
            memo=template.memo,
            template_id="sub-1",
        )
        assert create() == template  # its details as they are: a repeat
        with pytest.raises(
            ConflictError,
            match="the memo given is not its own, and the arguments it was "
            "created with are not known",
        ):
            create(memo="Another")  # and nothing else known of it


# -- a database at version 7, with rows ------------------------------------------


def test_version_7_accounts_upgrade_with_no_payee_account_or_vat_number(
    new_url: NewUrl,
) -> None:
    account = make_account("nok", currency="NOK", locale="nb_NO")
    with SqlStorage.from_url(new_url()) as storage:
        with storage.engine.begin() as conn:
            assert migrations.upgrade(conn, target=7) == 7
            insert_at(conn, 7, schema.accounts, rows.encode_account(account))
        assert columns_at(schema.accounts, 7) == _account_columns(storage.engine)
        assert storage.migrate() == schema.LATEST_VERSION
        added = _account_columns(storage.engine)[-len(_VERSION_8_ACCOUNT_COLUMNS) :]
        assert added == _VERSION_8_ACCOUNT_COLUMNS
        with storage.transaction() as tx:
            stored = tx.get_account("nok")
        assert stored == account
        assert stored.payee_account is stored.vat_number is None
        billing = Billing(storage=storage, gateway=InMemoryGateway())
        payee = PayeeAccount(kind="no_account", number="1234 56 78903")
        changed = billing.change_account(
            "nok", payee_account=payee, vat_number="NO 999 999 999 MVA"
        )
        with storage.transaction() as tx:
            assert tx.get_account("nok") == changed
        assert changed.payee_account == payee


# -- a database at version 8, with rows ------------------------------------------


def test_version_8_upgrades_with_a_summary_lines_table_and_runs(
    new_url: NewUrl,
) -> None:
    account = make_account("nok", currency="NOK", locale="nb_NO")
    with SqlStorage.from_url(new_url()) as storage:
        with storage.engine.begin() as conn:
            assert migrations.upgrade(conn, target=8) == 8
            insert_at(conn, 8, schema.accounts, rows.encode_account(account))
        tables = set(sa.inspect(storage.engine).get_table_names())
        assert "summary_lines" not in tables
        assert storage.migrate() == schema.LATEST_VERSION == 13
        billing = Billing(storage=storage, gateway=InMemoryGateway())
        kari = billing.add_customer(
            "nok",
            name="Kari",
            email="kari@example.no",
            collection_method="send_invoice",
        )
        line = InvoiceLine(description="Web", quantity=1, unit_price="800", vat_rate=25)
        start = datetime(2027, 3, 1, 12, tzinfo=timezone.utc)
        billing.create_template(
            "nok",
            kari.id,
            lines=[line],
            start=start.date() + timedelta(days=1),
            period="month",
            now=start,
        )
        (report,) = billing.run(start + timedelta(days=1))
        assert len(report.issued) == 1
        with storage.transaction() as tx:
            kinds = [n.kind for n in tx.pending_notifications()]
            assert tx.take_summary_lines(["nok"]) == []  # taken by the summary
        assert sorted(kinds) == ["daily_summary", "invoice"]


# -- a database at version 9, with rows ------------------------------------------

_CREATED = datetime(2027, 1, 15, 13, 0, tzinfo=timezone.utc)  # payments saved
_CHARGED = datetime(2027, 1, 15, 13, 0, 1, 250, tzinfo=timezone.utc)  # answer lost
_ISSUED = datetime(2027, 1, 18, 5, 15, tzinfo=timezone.utc)  # a later run found it
_VERSION_9_PAID = {  # receipt -> its invoices' paid_at, its items' amounts
    "lost": [(_CHARGED, "125.00")],  # settled by it: charged before it was issued
    "mass": [(_CHARGED, "125.00"), (_CHARGED, "125.00")],
    "credit": [(_CHARGED, "0.00")],  # settled another way while it waited
    "reopened": [(None, "125.00")],  # refunded and open again
    "repaid": [(_ISSUED + timedelta(days=9), "125.00")],  # paid again by transfer
}
_VERSION_10_PAID = {  # receipt -> its paid_at after the upgrade
    "lost": _CHARGED,
    "mass": _CHARGED,
    "credit": _ISSUED,
    "reopened": _ISSUED,
    "repaid": _ISSUED,
}


def _version_9_receipt(conn: sa.Connection, key: str) -> Receipt:
    """Receipt *key* of :data:`_VERSION_9_PAID`, with its payment and invoices,
    written as version 9 stored them (no ``paid_at`` column)."""
    paid = _VERSION_9_PAID[key]
    invoices = [
        make_invoice(
            f"inv-{key}-{n}",
            account_id="nok",
            customer_id="kari",
            number=list(_VERSION_9_PAID).index(key) * 10 + n + 1,
            status="open" if when is None else "paid",
            paid_at=when,
        )
        for n, (when, _) in enumerate(paid)
    ]
    payment = make_payment(
        f"pay-{key}",
        account_id="nok",
        customer_id="kari",
        invoice_ids=tuple(i.id for i in invoices),
        status="succeeded",
        created_at=_CREATED,
        updated_at=_ISSUED,
    )
    items = tuple(
        ReceiptItem(
            invoice_id=invoice.id,
            invoice_number=invoice.display_number,
            amount=Money(amount, "NOK"),
        )
        for invoice, (_, amount) in zip(invoices, paid, strict=True)
    )
    receipt = Receipt(
        id=f"rct-{key}",
        account_id="nok",
        customer_id="kari",
        number=f"R-{key}",
        payment_id=payment.id,
        items=items,
        amount=Money(Decimal("125.00") * len(items), "NOK"),
        credit=Money("125.00" if key == "credit" else "0.00", "NOK"),
        card_brand="visa",
        card_last4="4242",
        issued_at=_ISSUED,
        paid_at=_ISSUED,  # not stored: version 9 has no such column
    )
    for invoice in invoices:
        insert_at(conn, 9, schema.invoices, rows.encode_invoice(invoice))
    insert_at(conn, 9, schema.payments, rows.encode_payment(payment))
    insert_at(conn, 9, schema.receipts, rows.encode_receipt(receipt))
    return receipt


def test_version_9_receipts_upgrade_paid_when_their_invoices_were(
    new_url: NewUrl,
) -> None:
    """A receipt gets the paid_at of an invoice it applied money to, unless
    that is after the receipt was issued; else its issued_at."""
    account = make_account("nok", currency="NOK", locale="nb_NO")
    kari = make_customer("kari", account_id="nok")
    with SqlStorage.from_url(new_url()) as storage:
        with storage.engine.begin() as conn:
            assert migrations.upgrade(conn, target=9) == 9
            insert_at(conn, 9, schema.accounts, rows.encode_account(account))
            insert_at(conn, 9, schema.customers, rows.encode_customer(kari))
            written = {key: _version_9_receipt(conn, key) for key in _VERSION_9_PAID}
            counter = {"account_id": "nok", "series": "INV", "next_number": 100}
            insert_at(conn, 9, schema.counters, counter)
        assert "paid_at" not in _columns(storage.engine, "receipts")
        assert storage.migrate() == schema.LATEST_VERSION == 13
        assert _columns(storage.engine, "receipts")[-1] == "paid_at"
        with storage.transaction() as tx:
            stored = {r.id: r for r in tx.list_receipts("nok", "kari")}
        assert stored == {
            f"rct-{key}": attrs.evolve(receipt, paid_at=_VERSION_10_PAID[key])
            for key, receipt in written.items()
        }
        # the upgraded database stores new receipts with their own paid_at
        billing = Billing(storage=storage, gateway=InMemoryGateway())
        billing.save_card("nok", "kari", token="pm_card_visa")
        now = datetime(2027, 3, 1, 12, tzinfo=timezone.utc)
        outcome = billing.record_session(
            "nok", "kari", lines=[make_invoice().lines[0]], now=now
        )
        assert outcome.receipt is not None
        assert outcome.receipt.paid_at == now
        with storage.transaction() as tx:
            assert outcome.receipt in tx.list_receipts("nok", "kari")


def test_version_10_step_passes_over_instants_it_cannot_read(tmp_path: Path) -> None:
    """An unreadable invoice paid_at is left out (the receipt falls back to
    its issued_at); a receipt whose issued_at cannot be read keeps paid_at
    NULL and reads as unreadable, as before; the upgrade itself goes through."""
    account = make_account("nok", currency="NOK", locale="nb_NO")
    kari = make_customer("kari", account_id="nok")
    with SqlStorage.from_url(f"sqlite:///{tmp_path / 'v9.sqlite3'}") as storage:
        with storage.engine.begin() as conn:
            assert migrations.upgrade(conn, target=9) == 9
            insert_at(conn, 9, schema.accounts, rows.encode_account(account))
            insert_at(conn, 9, schema.customers, rows.encode_customer(kari))
            lost = _version_9_receipt(conn, "lost")
            _version_9_receipt(conn, "mass")
            conn.execute(
                sa.text("UPDATE invoices SET paid_at = 'not a time' WHERE id = :id"),
                {"id": "inv-lost-0"},
            )
            conn.execute(
                sa.text("UPDATE receipts SET issued_at = '2027-01-18' WHERE id = :id"),
                {"id": "rct-mass"},  # a date without a zone: not an instant
            )
        assert storage.migrate() == 13
        with storage.engine.connect() as conn:
            paid = dict(conn.execute(sa.text("SELECT id, paid_at FROM receipts")).all())
        assert paid == {"rct-lost": schema.utc_text(lost.issued_at), "rct-mass": None}
        with (
            storage.transaction() as tx,
            pytest.raises(UnreadableRecordError, match="issued_at"),
        ):
            tx.list_receipts("nok", "kari")


# -- a database at version 10, with rows -----------------------------------------


def test_version_10_refunds_upgrade_with_the_choice_their_status_holds(
    new_url: NewUrl,
) -> None:
    """A refund waiting for its answer gets the reopen its status holds; one
    answered keeps none (unknown)."""
    account = make_account("nok", currency="NOK", locale="nb_NO")
    kari = make_customer("kari", account_id="nok")
    payment = make_payment("pay-1", account_id="nok", customer_id="kari")
    statuses = {"asked": "requested", "credit": "requested_credit", "done": "pending"}
    written = {
        key: Refund(
            id=f"re-{key}",
            account_id="nok",
            payment_id="pay-1",
            amount=Money("10.00", "NOK"),
            idempotency_key=f"recurbill-re-{key}",
            status=status,
            created_at=datetime(2027, 1, 5, 12, tzinfo=timezone.utc),
        )
        for key, status in statuses.items()
    }
    with SqlStorage.from_url(new_url()) as storage:
        with storage.engine.begin() as conn:
            assert migrations.upgrade(conn, target=10) == 10
            insert_at(conn, 10, schema.accounts, rows.encode_account(account))
            insert_at(conn, 10, schema.customers, rows.encode_customer(kari))
            insert_at(conn, 10, schema.payments, rows.encode_payment(payment))
            for refund in written.values():
                insert_at(conn, 10, schema.refunds, rows.encode_refund(refund))
        assert "reopen" not in _columns(storage.engine, "refunds")
        assert storage.migrate() == schema.LATEST_VERSION == 13
        assert _columns(storage.engine, "refunds")[-1] == "reopen"
        with storage.transaction() as tx:
            stored = {r.id: r for r in tx.list_refunds("nok")}
        assert stored == {
            "re-asked": attrs.evolve(written["asked"], reopen=True),
            "re-credit": attrs.evolve(written["credit"], reopen=False),
            "re-done": written["done"],
        }
        assert written["done"].reopen is None


# -- a database at version 11, with rows -----------------------------------------

_VERSION_11_PAYMENTS = {  # payment -> (customer, its invoice_ids as stored)
    "pay-one": ("kari", '["inv-a"]'),
    "pay-retry": ("kari", '["inv-a"]'),
    "pay-mass": ("kari", '["inv-b","inv-a"]'),
    "pay-twice": ("kari", '["inv-b","inv-b"]'),
    "pay-odd": ("kari", '["' + "x" * 300 + '","inv-\\u0000c","inv-c"]'),
    "pay-bad": ("kari", "inv-c"),  # edited by hand: no JSON
    "pay-ola": ("ola", '["inv-o"]'),
}
_VERSION_12_FOUND = {  # invoice -> the payments of it the read finds
    "inv-a": ["pay-one", "pay-retry", "pay-mass"],
    "inv-b": ["pay-mass", "pay-twice"],
    "inv-c": ["pay-odd"],
    "inv-o": ["pay-ola"],
}


def _version_11_with_payments(conn: sa.Connection) -> Receipt:
    """:data:`_VERSION_11_PAYMENTS` with their customers and invoices, as
    version 11 stored them, and the receipt of ``pay-one``."""
    assert migrations.upgrade(conn, target=11) == 11
    insert_at(conn, 11, schema.accounts, rows.encode_account(make_account("nok")))
    invoices = {"inv-a": "kari", "inv-b": "kari", "inv-c": "kari", "inv-o": "ola"}
    for customer in ("kari", "ola"):
        row = rows.encode_customer(make_customer(customer, account_id="nok"))
        insert_at(conn, 11, schema.customers, row)
    for number, (key, customer) in enumerate(invoices.items(), start=1):
        invoice = make_invoice(
            key, account_id="nok", customer_id=customer, number=number
        )
        insert_at(conn, 11, schema.invoices, rows.encode_invoice(invoice))
    for n, (key, (customer, stored)) in enumerate(_VERSION_11_PAYMENTS.items()):
        payment = make_payment(
            key,
            account_id="nok",
            customer_id=customer,
            created_at=_CREATED + timedelta(minutes=n),
        )
        insert_at(
            conn,
            11,
            schema.payments,
            rows.encode_payment(payment) | {"invoice_ids": stored},
        )
    receipt = Receipt(
        id="rct-one",
        account_id="nok",
        customer_id="kari",
        number="R-1",
        payment_id="pay-one",
        items=(),
        amount=Money("125.00", "NOK"),
        credit=Money("0.00", "NOK"),
        card_brand="visa",
        card_last4="4242",
        issued_at=_ISSUED,
        paid_at=_CHARGED,
    )
    insert_at(conn, 11, schema.receipts, rows.encode_receipt(receipt))
    return receipt


def test_version_11_payments_upgrade_found_by_their_invoices(
    new_url: NewUrl,
) -> None:
    """Each payment is found by each invoice it includes; one whose invoice
    list cannot be read is met (and refused) by every invoice of its
    customer until it is corrected, then found by its own alone."""
    with SqlStorage.from_url(new_url()) as storage:
        with storage.engine.begin() as conn:
            receipt = _version_11_with_payments(conn)
        assert "payment_invoices" not in sa.inspect(storage.engine).get_table_names()
        assert storage.migrate() == schema.LATEST_VERSION == 13
        with storage.transaction() as tx:
            for invoice_id in ("inv-a", "inv-b", "inv-c"):
                with pytest.raises(UnreadableRecordError) as unreadable:
                    tx.list_payments("nok", invoice_id=invoice_id)
                assert unreadable.value.fields["key"] == "pay-bad"
            found = {
                invoice_id: [
                    p.id
                    for p in tx.list_payments(
                        "nok", invoice_id=invoice_id, skip_ids=["pay-bad"]
                    )
                ]
                for invoice_id in _VERSION_12_FOUND
            }
            assert tx.list_receipts("nok", payment_id="pay-one") == [receipt]
            assert tx.list_receipts("nok", payment_id="pay-retry") == []
        assert found == _VERSION_12_FOUND
        with storage.engine.begin() as conn:  # the row corrected by hand
            conn.execute(
                sa.update(schema.payments)
                .where(schema.payments.c.id == "pay-bad")
                .values(invoice_ids='["inv-c"]')
            )
        with storage.transaction() as tx:
            of_a = [p.id for p in tx.list_payments("nok", invoice_id="inv-a")]
            of_c = [p.id for p in tx.list_payments("nok", invoice_id="inv-c")]
        assert of_a == _VERSION_12_FOUND["inv-a"]
        assert of_c == ["pay-odd", "pay-bad"]


def _indexes(engine: sa.Engine, table: str) -> dict[str, list[str | None]]:
    return {
        str(index["name"]): index["column_names"]
        for index in sa.inspect(engine).get_indexes(table)
    }


def test_version_11_upgrades_with_an_index_to_page_an_accounts_templates_by(
    new_url: NewUrl,
) -> None:
    accounts = [make_account("nok", currency="NOK"), make_account("sek")]
    customers = [
        make_customer(f"cus-{account.id}-{n}", account_id=account.id)
        for account in accounts
        for n in range(3)
    ]
    templates = [  # 13 of nok, 12 of sek, each account's customers in turn
        make_template(
            f"tpl-{n:02d}",
            account_id=customers[n % 6].account_id,
            customer_id=customers[n % 6].id,
        )
        for n in range(25)
    ]
    with SqlStorage.from_url(new_url()) as storage:
        with storage.engine.begin() as conn:
            assert migrations.upgrade(conn, target=11) == 11
            for account in accounts:
                insert_at(conn, 11, schema.accounts, rows.encode_account(account))
            for customer in customers:
                insert_at(conn, 11, schema.customers, rows.encode_customer(customer))
            for template in templates:
                insert_at(conn, 11, schema.templates, rows.encode_template(template))
        assert "ix_templates_account_id" not in _indexes(storage.engine, "templates")
        assert storage.migrate() == schema.LATEST_VERSION == 13
        assert _indexes(storage.engine, "templates")["ix_templates_account_id"] == [
            "account_id",
            "id",
            "customer_id",
        ]
        with storage.transaction(read_only=True) as tx:
            for account in accounts:
                listed = [t for t in templates if t.account_id == account.id]
                paged: list[RecurringTemplate] = []
                for start in range(0, len(listed), 4):  # 13 or 12: 4 pages
                    after = paged[-1].id if paged else None
                    paged += tx.list_templates(account.id, after=after, limit=4)
                    assert len(paged) == min(start + 4, len(listed))
                assert paged == listed == tx.list_templates(account.id)


def test_a_page_of_templates_is_read_along_the_index_on_sqlite(tmp_path: Path) -> None:
    """Only the page's own rows: no scan and sort of all the account's."""
    with SqlStorage.from_url(f"sqlite:///{tmp_path / 'plan.sqlite3'}") as storage:
        storage.migrate()
        templates = schema.templates
        query = (
            sa.select(templates)
            .where(templates.c.account_id == "nok", templates.c.id > "tpl-1")
            .order_by(templates.c.id)
            .limit(100)
        )
        with storage.engine.connect() as conn:
            compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}").all()
        assert [str(step[-1]) for step in plan] == [
            "SEARCH templates USING INDEX ix_templates_account_id "
            "(account_id=? AND id>?)"
        ]


# -- every way to the latest version gives one schema ----------------------------


def _options(options: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """An index's dialect options (a partial index's WHERE) as plain text."""
    return tuple(sorted((name, str(value)) for name, value in options.items()))


def _shape(engine: sa.Engine) -> dict[str, dict[str, object]]:
    """The schema as the database reports it (reflected), table by table."""
    inspector = sa.inspect(engine)
    shape: dict[str, dict[str, object]] = {}
    for table in sorted(inspector.get_table_names()):
        shape[table] = {
            "columns": [
                (c["name"], repr(c["type"]), c["nullable"], c.get("default"))
                for c in inspector.get_columns(table)
            ],
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "foreign_keys": sorted(
                (
                    tuple(fk["constrained_columns"]),
                    fk["referred_table"],
                    tuple(fk["referred_columns"]),
                )
                for fk in inspector.get_foreign_keys(table)
            ),
            "indexes": sorted(
                (
                    str(index["name"]),
                    tuple(map(str, index["column_names"])),
                    bool(index["unique"]),
                    _options(index.get("dialect_options", {})),
                )
                for index in inspector.get_indexes(table)
            ),
            "unique": sorted(
                (str(u["name"]), tuple(u["column_names"]))
                for u in inspector.get_unique_constraints(table)
            ),
        }
    return shape


def test_fresh_upgraded_and_declared_schemas_are_the_same(new_url: NewUrl) -> None:
    with (
        SqlStorage.from_url(new_url()) as fresh,
        SqlStorage.from_url(new_url()) as upgraded,
        SqlStorage.from_url(new_url()) as from_4,
        SqlStorage.from_url(new_url()) as declared,
    ):
        fresh.migrate()
        _version_3_with_rows(upgraded)
        upgraded.migrate()
        _version_4_with_rows(from_4)
        from_4.migrate()
        schema.metadata.create_all(declared.engine)  # the table definitions
        expected = _shape(declared.engine)
        assert set(expected) == set(schema.metadata.tables)
        assert _shape(fresh.engine) == expected
        assert _shape(upgraded.engine) == expected
        assert _shape(from_4.engine) == expected


# -- a database at version 12, with refunds ---------------------------------------

_VERSION_12_REFUNDS = {  # refund -> (payment, amount as stored, status)
    "re-done": ("pay-1", "100.00", "succeeded"),
    "re-wait": ("pay-1", "50.00", "pending"),
    "re-lost": ("pay-1", "25.00", "failed_to_credit"),
    "re-no": ("pay-1", "300.00", "failed"),
    "re-asked": ("pay-1", "200.00", "requested"),
    "re-refused": ("pay-2", "80.00", "canceled"),
    "re-odd": ("pay-3", "10.00", "succeeded"),
    "re-bad": ("pay-3", "10.00", "succeeded"),  # edited by hand on SQLite
}


def test_version_12_payments_upgrade_with_what_their_refunds_took_back(
    new_url: NewUrl,
) -> None:
    """Each payment's ``refunded`` is the sum of its refunds the gateway
    accepted; none for one without such refunds, or whose sum is unknown."""
    payments = ("pay-1", "pay-2", "pay-3", "pay-4")
    with SqlStorage.from_url(new_url()) as storage:
        sqlite = storage.engine.dialect.name == "sqlite"
        with storage.engine.begin() as conn:
            assert migrations.upgrade(conn, target=12) == 12
            insert_at(conn, 12, schema.accounts, rows.encode_account(make_account()))
            insert_at(conn, 12, schema.customers, rows.encode_customer(make_customer()))
            for key in payments:
                insert_at(
                    conn, 12, schema.payments, rows.encode_payment(make_payment(key))
                )
            for key, (payment, amount, status) in _VERSION_12_REFUNDS.items():
                refund = Refund(
                    id=key,
                    account_id="acme",
                    payment_id=payment,
                    amount=Money(amount, "NOK"),
                    idempotency_key=f"recurbill-{key}",
                    status=status,
                    created_at=_CREATED,
                )
                insert_at(conn, 12, schema.refunds, rows.encode_refund(refund))
            if sqlite:
                conn.execute(
                    sa.text("UPDATE refunds SET amount = 'lots' WHERE id = 're-bad'")
                )
        assert storage.migrate() == schema.LATEST_VERSION == 13
        with storage.transaction() as tx:
            found = {key: tx.get_payment("acme", key).refunded for key in payments}
        assert found == {
            "pay-1": Money("175.00", "NOK"),
            "pay-2": None,
            "pay-3": None if sqlite else Money("20.00", "NOK"),
            "pay-4": None,
        }

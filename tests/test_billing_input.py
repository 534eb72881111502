"""Bad input to the service's entry points: a specific error, nothing written.

Each case runs on the in-memory storage and on SQLite, which must refuse alike
(before this, SQLite turned ``memo=None`` into a misleading uniqueness error).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path

import attrs
import pytest

from billing_helpers import World, at, line, make_world
from recurbill import (
    Account,
    AllowanceCharge,
    CollectionMethod,
    CurrencyMismatchError,
    Customer,
    InvalidInputError,
    InvalidInvoiceError,
    InvalidRecordError,
    Invoice,
    InvoiceLine,
    Money,
    RecurbillError,
    RetryPolicy,
    compute_totals,
    format_money,
)
from recurbill.storage.sql import SqlStorage

NOW = at(date(2027, 1, 10), 12)


@pytest.fixture(params=["memory", "sqlite"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    if request.param == "memory":
        yield make_world()
        return
    with SqlStorage.sqlite(tmp_path / "billing.sqlite3") as storage:
        storage.migrate()
        yield make_world(storage=storage)


def _written(world: World) -> tuple[int, int, int]:
    with world.storage.transaction() as tx:
        return (
            len(tx.list_invoices(world.account.id)),
            len(tx.list_templates(world.account.id)),
            len(tx.list_payments(world.account.id)),
        )


def _refused(
    world: World, call: Callable[[], object], error: type[RecurbillError], says: str
) -> None:
    before = _written(world)
    with pytest.raises(error, match=says):
        call()
    assert _written(world) == before  # nothing half-written


@pytest.mark.parametrize("memo", [None, 5, b"x"])
def test_a_memo_must_be_text(world: World, memo: object) -> None:
    kari = world.customer().id
    b, acct = world.billing, world.account.id
    kw = {"lines": [line()], "now": NOW, "memo": memo}
    _refused(
        world,
        lambda: b.record_session(acct, kari, **kw),
        InvalidRecordError,
        "memo is not text",
    )
    _refused(
        world,
        lambda: b.create_template(
            acct, kari, start=date(2027, 2, 1), period="month", **kw
        ),
        InvalidRecordError,
        "memo is not text",
    )


def test_a_credit_note_reason_must_be_text(world: World) -> None:
    kari = world.customer().id
    outcome = world.billing.record_session(
        world.account.id, kari, lines=[line()], now=NOW
    )
    _refused(
        world,
        lambda: world.billing.credit_invoice(
            world.account.id,
            outcome.invoice.id,
            amount=Money("100", "NOK"),
            reason=None,
            now=NOW,
        ),
        InvalidRecordError,
        "reason is empty or not text",
    )


@pytest.mark.parametrize("lines", [None, 5, "Training", line()])
def test_lines_must_be_a_sequence_of_lines(world: World, lines: object) -> None:
    kari = world.customer().id
    b, acct = world.billing, world.account.id
    tid = world.template(world.customer("Ola"), start=date(2027, 2, 1))
    calls: list[Callable[[], object]] = [
        lambda: b.record_session(acct, kari, lines=lines, now=NOW),
        lambda: b.create_template(
            acct,
            kari,
            lines=lines,
            start=date(2027, 2, 1),
            period="month",
            now=NOW,
        ),
    ]
    if lines is not None:  # change_template(lines=None) keeps the lines
        calls.append(lambda: b.change_template(acct, tid, lines=lines, now=NOW))
    for call in calls:
        _refused(world, call, InvalidInputError, "not a sequence of InvoiceLine")


@pytest.mark.parametrize("key", [5, "", "  ", None])
def test_session_ids_and_transfer_references_must_be_text(
    world: World, key: object
) -> None:
    kari = world.customer().id
    b, acct = world.billing, world.account.id
    if key is not None:  # None is "no session id": a one-off invoice
        _refused(
            world,
            lambda: b.record_session(
                acct, kari, lines=[line()], now=NOW, session_id=key
            ),
            InvalidInputError,
            "session_id .* is empty or not text; give session_id as a non-empty"
            " string, one per session and the same when the call is repeated",
        )
    _refused(
        world,
        lambda: b.record_bank_transfer(
            acct,
            kari,
            amount=Money("100", "NOK"),
            now=NOW,
            reference=key,
        ),
        InvalidInputError,
        "reference .* is empty or not text; .* one per bank transfer and",
    )


@pytest.mark.parametrize("on", [datetime(2027, 1, 1), "2027-01-01", None])
def test_the_overview_needs_a_date(world: World, on: object) -> None:
    kari = world.customer().id
    with pytest.raises(InvalidInputError, match="is not a date"):
        world.billing.overview(world.account.id, kari, on=on)


@pytest.mark.parametrize("amount", ["0.005", "100.001", "0.001"])
def test_amounts_given_back_or_received_must_fit_the_currency(
    world: World, amount: str
) -> None:
    kari = world.customer().id
    b, acct = world.billing, world.account.id
    paid = b.record_session(acct, kari, lines=[line()], now=NOW)
    assert paid.payment is not None
    money = Money(amount, "NOK")
    calls: list[Callable[[], object]] = [
        lambda: b.record_bank_transfer(
            acct, kari, amount=money, now=NOW, reference="r1"
        ),
        lambda: b.credit_invoice(
            acct, paid.invoice.id, amount=money, reason="x", now=NOW
        ),
        lambda: b.refund(acct, paid.payment.id, amount=money, now=NOW),
    ]
    for call in calls:
        _refused(world, call, InvalidInputError, "more decimals than NOK allows")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("unit_price", "1e30"),
        ("unit_price", "1000000000000"),
        ("quantity", "-1000000000000"),
        ("quantity", Decimal("1E-999999")),
        ("unit_price", Decimal("1E-29")),
        ("base_quantity", "1e12"),
    ],
)
def test_line_amounts_beyond_twelve_digits_or_28_decimals_are_refused(
    field: str, value: object
) -> None:
    fields: dict[str, object] = {"quantity": 1, "unit_price": "10", field: value}
    with pytest.raises(InvalidInvoiceError, match=r"at most 12 digits .* and 28 after"):
        InvoiceLine(description="Big", vat_rate=25, **fields)


def test_the_largest_line_amounts_round_as_exact_arithmetic_does() -> None:
    big = Decimal("999999999999.9999999999")
    tiny = Decimal("0." + "0" * 26 + "1")  # 28 decimals
    lines = [
        InvoiceLine(description="Big", quantity=big, unit_price=big, vat_rate=25),
        InvoiceLine(description="Big", quantity=big, unit_price=big, vat_rate=25),
        InvoiceLine(description="Tiny", quantity=tiny, unit_price="1", vat_rate=25),
        InvoiceLine(
            description="Hours", quantity=Decimal(4) / 3, unit_price=600, vat_rate=25
        ),
    ]
    totals = compute_totals(lines[:3], currency="KWD")
    with localcontext(prec=100):
        exact = (big * big).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP) * 2
    assert totals.tax_exclusive.amount == exact
    assert "," in format_money(totals.amount_due, "nb_NO")
    assert compute_totals(lines[3:], currency="NOK").tax_exclusive == Money(
        "800.00", "NOK"
    )


def test_exported_helpers_refuse_bad_arguments_clearly() -> None:
    with pytest.raises(InvalidInputError, match="locale 'xx_YY'"):
        format_money(Money("1", "NOK"), "xx_YY")
    with pytest.raises(InvalidInputError, match="is not Money"):
        format_money(5, "nb_NO")
    with pytest.raises(InvalidInvoiceError, match="not a sequence"):
        compute_totals(None, currency="NOK")
    with pytest.raises(InvalidInputError, match="not a sequence"):
        RetryPolicy(None)


def test_text_with_a_nul_character_is_refused_on_every_backend(world: World) -> None:
    with pytest.raises(InvalidRecordError, match="NUL"):
        world.billing.add_customer(
            world.account.id, name="Kari\x00Nordmann", email="kari@example.no"
        )
    kari = world.customer().id
    _refused(
        world,
        lambda: world.billing.record_session(
            world.account.id, kari, lines=[line()], now=NOW, memo="a\x00b"
        ),
        InvalidRecordError,
        "NUL",
    )


def test_trailing_zeros_do_not_count_as_decimals() -> None:
    line_ = InvoiceLine(
        description="Exact",
        quantity=Decimal("1." + "0" * 30),
        unit_price=Decimal("12.5" + "0" * 31),
        vat_rate=25,
    )
    totals = compute_totals([line_], currency="NOK")
    assert totals.tax_exclusive == Money("12.50", "NOK")


def test_zero_needs_no_decimals_however_it_is_written() -> None:
    free = InvoiceLine(
        description="Free trial",
        quantity=1,
        unit_price=Decimal("0." + "0" * 30),
        vat_rate=25,
    )
    assert compute_totals([free], currency="NOK").amount_due == Money("0.00", "NOK")


@pytest.mark.parametrize(
    ("account_ids", "problem"),
    [
        ("fjord", "'fjord' is not a sequence of ids"),
        (["fjord", "fjord"], "'fjord' is given twice"),
        (("fjord", 7), "7 is not a non-empty string"),
        ([""], "'' is not a non-empty string"),
    ],
)
def test_a_run_needs_distinct_account_ids(
    world: World, account_ids: object, problem: str
) -> None:
    world.template(
        world.customer(), start=date(2027, 1, 11), period="week", created=NOW.date()
    )
    with pytest.raises(InvalidInputError, match=problem):
        world.billing.run(
            at(date(2027, 1, 20)),
            account_ids=account_ids,  # type: ignore[arg-type]
            summary_when_empty=True,
        )
    assert world.storage_invoices() == []
    assert world.notification_kinds() == []
    (report,) = world.billing.run(at(date(2027, 1, 20)), account_ids=("fjord",))
    assert len(report.issued) == 2


def test_an_account_rounds_as_it_is_created_to(world: World) -> None:
    from decimal import ROUND_HALF_EVEN

    even = world.billing.create_account(
        account_id="even",
        name="Even AS",
        currency="NOK",
        summary_email="post@even.no",
        rounding=ROUND_HALF_EVEN,
    )
    assert even.rounding == ROUND_HALF_EVEN
    with world.storage.transaction() as tx:
        assert tx.get_account("even").rounding == ROUND_HALF_EVEN
    half = InvoiceLine(description="x", quantity=1, unit_price="0.125", vat_rate=25)
    for account_id, net in (("fjord", "0.13"), ("even", "0.12")):
        customer = world.billing.add_customer(
            account_id,
            name="Kari",
            email="kari@example.no",
            collection_method="send_invoice",
        )
        outcome = world.billing.record_session(
            account_id, customer.id, lines=[half], now=NOW
        )
        assert outcome.invoice.net_total == Money(net, "NOK")
    assert world.account.rounding == ROUND_HALF_UP  # the default


def _a_tie(is_charge: bool, **vat: object) -> AllowanceCharge:
    """12.5 % of 0.20: 0.025, a tie at two decimals."""
    return AllowanceCharge(
        is_charge=is_charge,
        percentage="12.5",
        base_amount="0.20",
        reason="Gebyr" if is_charge else "Rabatt",
        **vat,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("rounding", "vat", "allowed", "charged"),
    [
        ("ROUND_HALF_UP", "0.03", "9.97", "10.03"),
        ("ROUND_HALF_EVEN", "0.02", "9.98", "10.02"),
    ],
)
def test_the_accounts_rounding_reaches_vat_and_percentages(
    world: World, rounding: str, vat: str, allowed: str, charged: str
) -> None:
    """An issued invoice's VAT (0.10 at 25 % is 0.025) and its percentage
    allowances and charges, on a line and on the document, are rounded the
    account's way."""
    account = world.billing.create_account(
        account_id="rounded",
        name="Rounded AS",
        currency="NOK",
        summary_email="post@rounded.no",
        rounding=rounding,
    ).id
    customer = world.billing.add_customer(
        account, name="Kari", email="kari@example.no", collection_method="send_invoice"
    ).id
    ten = InvoiceLine(description="x", quantity=1, unit_price=10, vat_category="Z")

    def issued(
        lines: list[InvoiceLine],
        allowances: tuple[AllowanceCharge, ...] = (),
        charges: tuple[AllowanceCharge, ...] = (),
    ) -> Invoice:
        return world.billing.record_session(
            account,
            customer,
            lines=lines,
            now=NOW,
            allowances=allowances,
            charges=charges,
        ).invoice

    tenth = InvoiceLine(description="x", quantity=1, unit_price="0.10", vat_rate=25)
    assert issued([tenth]).vat_total == Money(vat, "NOK")
    on_line = attrs.evolve(ten, allowances=[_a_tie(False)])
    assert issued([on_line]).net_total == Money(allowed, "NOK")
    on_line = attrs.evolve(ten, charges=[_a_tie(True)])
    assert issued([on_line]).net_total == Money(charged, "NOK")
    document = _a_tie(False, vat_category="Z")
    assert issued([ten], allowances=(document,)).net_total == Money(allowed, "NOK")
    document = _a_tie(True, vat_category="Z")
    assert issued([ten], charges=(document,)).net_total == Money(charged, "NOK")


@pytest.mark.parametrize("rounding", ["half_up", "", None, 5])
def test_an_unknown_rounding_mode_is_refused(world: World, rounding: object) -> None:
    with pytest.raises(InvalidRecordError, match="ROUND_HALF_EVEN, ROUND_HALF_UP"):
        world.billing.create_account(
            account_id="odd",
            name="Odd AS",
            currency="NOK",
            summary_email="post@odd.no",
            rounding=rounding,  # type: ignore[arg-type]
        )
    with world.storage.transaction() as tx, pytest.raises(RecurbillError):
        tx.get_account("odd")


def test_an_amount_in_another_currency_is_a_currency_mismatch(world: World) -> None:
    """The service raised InvalidInputError with the Money repr as the problem."""
    account = world.account.id
    customer = world.customer(method=CollectionMethod.SEND_INVOICE)
    invoice = world.billing.record_session(
        account, customer.id, lines=[line("800")], now=at(date(2026, 3, 2))
    ).invoice
    sek = Money(100, "SEK")
    with pytest.raises(CurrencyMismatchError) as transfer:
        world.billing.record_bank_transfer(
            account, customer.id, amount=sek, now=at(date(2026, 3, 3)), reference="r1"
        )
    assert str(transfer.value) == (
        "transfer amount 100 SEK is in SEK, not NOK; give it in NOK, "
        "e.g. Money('100', 'NOK')"
    )
    with pytest.raises(CurrencyMismatchError, match="credit amount 100 SEK is in SEK"):
        world.billing.credit_invoice(
            account, invoice.id, amount=sek, reason="x", now=at(date(2026, 3, 3))
        )
    with pytest.raises(InvalidInputError, match="transfer amount 100 is not Money"):
        world.billing.record_bank_transfer(
            account, customer.id, amount=100, now=at(date(2026, 3, 3)), reference="r2"
        )


@pytest.mark.parametrize("rounding", ["bogus", 3.5, None, ["ROUND_UP"], "round_up"])
def test_account_rounding_must_be_a_decimal_rounding_mode(rounding: object) -> None:
    with pytest.raises(InvalidRecordError, match="is not a decimal rounding mode"):
        Account(
            id="acc",
            name="A",
            currency="NOK",
            summary_email="a@example.com",
            rounding=rounding,  # type: ignore[arg-type]
        )


@pytest.mark.parametrize("digest", ["", "abc", "A" * 64, "g" * 64, 7])
def test_a_customer_added_with_something_other_than_a_digest_is_refused(
    digest: object,
) -> None:
    with pytest.raises(InvalidRecordError, match="added_with"):
        Customer(
            id="c-1",
            account_id="fjord",
            name="Kari",
            email="kari@example.no",
            added_with=digest,  # type: ignore[arg-type]
        )
    assert (
        Customer(
            id="c-1", account_id="fjord", name="Kari", email="kari@example.no"
        ).added_with
        is None
    )


@pytest.mark.parametrize(
    "field", ["storage", "gateway", "ids", "retry_policy", "chunk_size"]
)
def test_a_billings_collaborators_are_fixed_once_it_is_made(field: str) -> None:
    """The parts Billing delegates to hold them: a new value would reach some
    calls and not others, so setting one is refused."""
    world = make_world()
    with pytest.raises(AttributeError):
        setattr(world.billing, field, getattr(world.billing, field))

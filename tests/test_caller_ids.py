"""Ids a caller chooses: unique across the database, refused clearly.

Accounts, customers and templates keep ids unique across all accounts. An id
another account uses is a ConflictError that says so (not which account), an
empty one is refused instead of being replaced by a generated one, and
create_template repeated with the same template_id and arguments returns the
stored template, as add_customer does.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_helpers import World, at, line, make_world
from invoice_strategies import InvoiceInput, invoice_inputs
from recurbill import ConflictError, InvalidInputError, Money, StateError
from recurbill.invoice import AllowanceCharge, InvoiceLine
from recurbill.records import RecurringTemplate
from recurbill.schedule import Schedule
from recurbill.storage.protocol import Storage
from recurbill.templates import _created_with

START = date(2027, 2, 1)
NOW = at(date(2027, 1, 15))


def _other_account(world: World) -> str:
    return world.billing.create_account(
        account_id="other",
        name="Other AS",
        currency="NOK",
        summary_email="post@other.no",
    ).id


def _add(world: World, account_id: str, **arguments: Any) -> str:
    fields = {"name": "Kari Nordmann", "email": "kari@example.no", **arguments}
    return world.billing.add_customer(
        account_id, collection_method="send_invoice", **fields
    ).id


def _create(
    world: World, customer_id: str, account_id: str = "fjord", **arguments: Any
) -> RecurringTemplate:
    fields = {
        "lines": [line("500.00", description="Membership")],
        "start": START,
        "period": "month",
        "now": NOW,
        "template_id": "sub-1",
        **arguments,
    }
    return world.billing.create_template(account_id, customer_id, **fields)


def _in_use(refused: pytest.ExceptionInfo[ConflictError], named: str) -> None:
    """The error says *named* is in use in the database, and not where."""
    message = str(refused.value)
    assert message.startswith(f"{named} is already in use in this database")
    assert "unique across all accounts" in message
    assert "prefixed with your own key for the account" in message
    assert "to get a generated one" in message
    assert "fjord" not in message  # the account that has it
    assert "Kari" not in message
    assert "constraint" not in message.lower()


# -- ids in use in another account ---------------------------------------------


def test_a_customer_id_another_account_uses_is_refused_clearly(
    storage: Storage,
) -> None:
    world = make_world(storage=storage)
    other = _other_account(world)
    _add(world, "fjord", customer_id="user-42")
    with pytest.raises(ConflictError) as refused:
        _add(world, other, customer_id="user-42", name="Per", email="per@example.no")
    _in_use(refused, "customer id 'user-42'")
    with storage.transaction(read_only=True) as tx:
        assert tx.list_customers(other) == []
    assert _add(world, other, customer_id="other-user-42") == "other-user-42"


def test_a_template_id_another_account_uses_is_refused_clearly(
    storage: Storage,
) -> None:
    world = make_world(storage=storage)
    other = _other_account(world)
    _create(world, _add(world, "fjord"))
    per = _add(world, other, name="Per", email="per@example.no")
    with pytest.raises(ConflictError) as refused:
        _create(world, per, other)
    _in_use(refused, "template id 'sub-1'")
    with storage.transaction(read_only=True) as tx:
        assert tx.list_templates(other) == []


def test_an_account_id_in_use_is_refused_clearly(storage: Storage) -> None:
    world = make_world(storage=storage)
    with pytest.raises(ConflictError) as refused:
        world.billing.create_account(
            account_id="fjord", name="Twin", currency="SEK", summary_email="a@b.se"
        )
    message = str(refused.value)
    assert message.startswith("account id 'fjord' is already in use in this database")
    assert "leave account_id out to get a generated one" in message
    with storage.transaction(read_only=True) as tx:
        assert tx.get_account("fjord") == world.account


# -- create_template repeated ------------------------------------------------------


def test_repeating_create_template_returns_the_stored_template(
    storage: Storage,
) -> None:
    world = make_world(storage=storage)
    kari = _add(world, "fjord")
    created = _create(world, kari, memo="Gold")
    later = at(date(2027, 1, 16))  # a retry after a timeout, the next day
    assert _create(world, kari, memo="Gold", now=later) == created
    assert _create(world, kari, memo="Gold", period=created.schedule.period) == created
    with storage.transaction(read_only=True) as tx:
        assert tx.list_templates("fjord") == [created]


_CHANGES: dict[str, Callable[[World], RecurringTemplate]] = {
    "lines": lambda world: world.billing.change_template(
        "fjord", "sub-1", now=NOW, lines=[line("550.00", description="Membership")]
    ),
    "memo+start": lambda world: world.billing.change_template(
        "fjord", "sub-1", now=NOW, memo="Silver", start=date(2027, 3, 1)
    ),
    "pause": lambda world: world.billing.pause_template(
        "fjord", "sub-1", on=date(2027, 4, 1), resume=date(2027, 6, 1)
    ),
    "end": lambda world: world.billing.end_template(
        "fjord", "sub-1", on=date(2027, 12, 31)
    ),
}


@pytest.mark.parametrize("change", _CHANGES.values(), ids=list(_CHANGES))
def test_repeating_create_template_after_a_change_returns_it_unchanged(
    storage: Storage, change: Callable[[World], RecurringTemplate]
) -> None:
    """The creation happened; its repeat returns the template as it is now
    and undoes nothing."""
    world = make_world(storage=storage)
    kari = _add(world, "fjord")
    created = _create(world, kari)
    changed = change(world)
    assert changed != created
    assert _create(world, kari) == changed
    with storage.transaction(read_only=True) as tx:
        assert tx.list_templates("fjord") == [changed]


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"memo": "Other"}, "the memo given is not its own"),
        (
            {"lines": [line("600.00", description="Membership")], "every": 2},
            "the lines and every given are not its own",
        ),
        (
            {"start": date(2027, 3, 1), "period": "week", "end": date(2027, 9, 1)},
            "the start, period and end given are not its own",
        ),
    ],
)
def test_another_template_under_an_existing_id_is_a_conflict(
    storage: Storage, arguments: dict[str, Any], says: str
) -> None:
    world = make_world(storage=storage)
    kari = _add(world, "fjord")
    created = _create(world, kari)
    with pytest.raises(ConflictError, match=says) as refused:
        _create(world, kari, **arguments)
    assert str(refused.value).startswith("template 'sub-1' exists already")
    assert "give a new template_id" in str(refused.value)
    with storage.transaction(read_only=True) as tx:
        assert tx.list_templates("fjord") == [created]


def test_a_template_of_another_customer_under_an_existing_id_is_a_conflict(
    storage: Storage,
) -> None:
    world = make_world(storage=storage)
    _create(world, _add(world, "fjord"))
    per = _add(world, "fjord", name="Per", email="per@example.no")
    with pytest.raises(ConflictError, match="the customer_id given is not its own"):
        _create(world, per)


# -- equal arguments spelled differently ------------------------------------------


_RATE = AllowanceCharge(
    is_charge=False,
    percentage=10,
    base_amount="500",
    reason="Loyalty",
    vat_category="S",
    vat_rate=25,
)


def _line(
    quantity: object = 1, price: object = "500", rate: object = 25
) -> InvoiceLine:
    return InvoiceLine(
        description="Membership", quantity=quantity, unit_price=price, vat_rate=rate
    )


@pytest.mark.parametrize(
    "spelled",
    [
        {"lines": [_line(quantity=Decimal("1.0"))]},
        {"lines": [_line(price="500.00")]},
        {"lines": [_line(price=Decimal("5E+2"))]},
        {"lines": [_line(rate=Decimal("25.0"))]},
        {"allowances": [attrs.evolve(_RATE, percentage=Decimal("10.00"))]},
        {"allowances": [attrs.evolve(_RATE, base_amount="500.0", vat_rate="25.00")]},
    ],
    ids=["quantity", "unit_price", "exponent", "vat_rate", "percentage", "base"],
)
def test_a_repeat_after_a_change_compares_the_arguments_as_values(
    storage: Storage, spelled: dict[str, Any]
) -> None:
    """Equal numbers spelled otherwise are the same arguments: the digest of
    the call that created the template knows them after a change too."""
    world = make_world(storage=storage)
    kari = _add(world, "fjord")
    _create(world, kari, lines=[_line()], allowances=[_RATE])
    changed = world.billing.change_template("fjord", "sub-1", now=NOW, memo="Gold")
    assert (
        _create(world, kari, **{"lines": [_line()], "allowances": [_RATE], **spelled})
        == changed
    )
    with storage.transaction(read_only=True) as tx:
        assert tx.list_templates("fjord") == [changed]


def test_a_refused_repeat_after_a_change_says_it_is_not_the_creating_call(
    storage: Storage,
) -> None:
    """After a change the details now are not the arguments it was created
    with: the error says the arguments given are neither, and names only
    what differs from the details now, as such."""
    world = make_world(storage=storage)
    kari = _add(world, "fjord")
    created = _create(world, kari)
    changed = world.billing.change_template("fjord", "sub-1", now=NOW, memo="Gold")
    with pytest.raises(ConflictError) as refused:
        _create(world, kari, lines=[line("600.00", description="Membership")])
    assert str(refused.value).startswith(
        "template 'sub-1' exists already with other details: the lines and memo "
        "given are not its own now, nor are these the arguments it was created "
        "with (it has changed since, and only their digest is kept, so which of "
        "them differ is not known); "
    )
    assert created.memo == ""  # the memo given is the one it was created with
    with storage.transaction(read_only=True) as tx:
        assert tx.list_templates("fjord") == [changed]


def test_a_refused_repeat_of_an_unchanged_template_names_what_differs_from_both(
    storage: Storage,
) -> None:
    world = make_world(storage=storage)
    kari = _add(world, "fjord")
    _create(world, kari)
    world.billing.pause_template("fjord", "sub-1", on=date(2027, 4, 1))
    with pytest.raises(ConflictError) as refused:
        _create(world, kari, memo="Gold")
    assert str(refused.value).startswith(
        "template 'sub-1' exists already with other details: the memo given is "
        "not its own, now or when it was created; "
    )


def _respelled(value: Any, zeros: int) -> Any:
    """*value* with *zeros* more trailing zeros on every Decimal in it."""
    if isinstance(value, Decimal):
        sign, digits, exponent = value.as_tuple()
        assert isinstance(exponent, int)
        return Decimal((sign, (*digits, *(0,) * zeros), exponent - zeros))
    if isinstance(value, tuple):
        return tuple(_respelled(item, zeros) for item in value)
    if attrs.has(type(value)):
        return attrs.evolve(
            value,
            **{
                field.name: _respelled(getattr(value, field.name), zeros)
                for field in attrs.fields(type(value))
                if field.init
            },
        )
    return value


def _template(lines: tuple[InvoiceLine, ...], **details: Any) -> RecurringTemplate:
    fields = {"currency": "NOK", **details}
    return RecurringTemplate(
        id="sub-1",
        account_id="fjord",
        customer_id="kari",
        lines=lines,
        schedule=Schedule(start=START, period="month"),
        created_at=NOW,
        **fields,
    )


@given(invoice_inputs(with_prepaid=False), st.integers(1, 3))
def test_equal_arguments_spelled_differently_give_one_digest(
    inputs: InvoiceInput, zeros: int
) -> None:
    template = _template(
        inputs.lines,
        currency=inputs.currency,
        allowances=inputs.allowances,
        charges=inputs.charges,
    )
    spelled = _respelled(template, zeros)
    assert spelled == template
    assert _created_with(spelled) == _created_with(template)
    first = template.lines[0]
    other = (attrs.evolve(first, quantity=first.quantity + 1), *template.lines[1:])
    assert _created_with(attrs.evolve(template, lines=other)) != _created_with(template)


def test_the_digest_keeps_every_digit_of_a_long_number() -> None:
    """Line numbers may have 40 digits, more than a default decimal context
    keeps: two that differ in the last one are other arguments."""
    long = Decimal("123456789012." + "1" * 28)
    other = Decimal("123456789012." + "1" * 27 + "2")
    template = _template((_line(quantity=long),))
    differing = attrs.evolve(template, lines=(_line(quantity=other),))
    assert _created_with(_respelled(template, 2)) == _created_with(template)
    assert _created_with(differing) != _created_with(template)


# -- empty ids are refused, not replaced -------------------------------------------


_CALLS: dict[str, Callable[[World, str], object]] = {
    "account_id": lambda world, id_: world.billing.create_account(
        account_id=id_, name="X", currency="NOK", summary_email="x@example.no"
    ),
    "customer_id": lambda world, id_: _add(world, "fjord", customer_id=id_),
    "template_id": lambda world, id_: _create(
        world, _add(world, "fjord", customer_id="kari"), template_id=id_
    ),
}


@pytest.mark.parametrize("empty", ["", "  "])
@pytest.mark.parametrize("name", list(_CALLS))
def test_an_empty_id_is_refused_not_replaced(
    storage: Storage, name: str, empty: str
) -> None:
    world = make_world(storage=storage)
    with pytest.raises(InvalidInputError) as refused:
        _CALLS[name](world, empty)
    assert str(refused.value) == (
        f"{name} {empty!r} is empty or not text; give {name} as a non-empty "
        f"string, one per {name.removesuffix('_id')}, or leave it out (None) "
        "to get a generated one"
    )
    with storage.transaction(read_only=True) as tx:
        assert tx.list_account_ids() == ["fjord"]
        assert tx.list_templates("fjord") == []
        assert [c.id for c in tx.list_customers("fjord")] in ([], ["kari"])


# -- a bank transfer recorded for another customer ---------------------------------


def test_a_bank_reference_recorded_for_another_customer_is_refused(
    storage: Storage,
) -> None:
    world = make_world(storage=storage)
    kari = _add(world, "fjord", customer_id="kari")
    per = _add(world, "fjord", customer_id="per", name="Per", email="per@example.no")
    amount = Money(Decimal("50.00"), "NOK")
    transfer = world.billing.record_bank_transfer
    transfer("fjord", kari, amount=amount, now=NOW, reference="SEB-0042")
    with pytest.raises(StateError) as refused:
        transfer("fjord", per, amount=amount, now=NOW, reference="SEB-0042")
    assert str(refused.value) == (
        "bank transfer 'SEB-0042' was already recorded (for customer 'kari'); "
        "record each transfer once, under its own reference"
    )
    with storage.transaction(read_only=True) as tx:
        assert tx.list_credit_entries("fjord", per) == []
        assert [e.amount for e in tx.list_credit_entries("fjord", kari)] == [amount]

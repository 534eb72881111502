"""Every public ``Billing`` method, one bad argument at a time.

For each method there is a builder of valid arguments (below, ``VALID``); the
sweep replaces one argument at a time with values of the wrong kind, chosen by
the parameter's annotation (``BAD``): None where a value is required, another
type, empty or blank text, numbers out of range, naive instants, a datetime
for a date, NaN and infinite amounts, bools for numbers, ids that are unknown
or of another account. Each call must raise a
:class:`~recurbill.errors.RecurbillError` with a message and leave every record
the storage can list (and the gateway's charges and refunds) as they were.

A world per storage kind is built once; a refused call changes nothing, so
every method sweeps the same world (one that was not refused renews it).

The other entry points exported from ``recurbill`` (the calculators, value
types, ``format_money``, ``deliver_pending``) are swept the same way
(``FUNCTIONS``).
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest

from billing_helpers import World, at, line, make_world
from recurbill import (
    Billing,
    CollectionMethod,
    InMemoryGateway,
    Invoice,
    Money,
    Outbox,
    Pause,
    PayeeAccount,
    RecurbillError,
    ReferenceScheme,
    RetryPolicy,
    Schedule,
    Totals,
    allocate,
    allocate_payment,
    amount_owed,
    cash_rounding,
    check_consistency,
    compute_totals,
    credit_note,
    creditable_amount,
    deliver_pending,
    due_at,
    format_money,
    full_credit_note,
    kid_mod10,
    kid_mod11,
    line_net,
    ocr,
    plan_settlement,
    reference_methods,
    totals_from_line_nets,
    validate_kid,
    validate_ocr,
)
from recurbill.storage.sql import SqlStorage

NOW = at(date(2027, 1, 10), 12)
UNKNOWN = "no-such-id"


@attrs.frozen
class Ids:
    """The records of one account the valid arguments refer to."""

    account: str
    kari: str  # charged automatically, with a card
    kari_card: str
    per: str  # sent invoices, with a card to pay them
    per_card: str
    template: str  # monthly from 1 February 2027, paused 1 April to 1 June
    open_invoice: str  # Per's
    paid_invoice: str  # Kari's, paid by card
    payment: str  # that card payment
    settlement: str  # Per's mass payment of another invoice
    webhook: tuple[bytes, str]  # the body and signature of the last event


def _populate(billing: Billing, account: str) -> Ids:
    def customer(name: str, method: CollectionMethod) -> tuple[str, str]:
        made = billing.add_customer(
            account,
            name=name,
            email=f"{name.lower()}@example.no",
            collection_method=method,
        )
        card = billing.save_card(account, made.id, token="pm_card_visa")
        return made.id, card.id

    kari, kari_card = customer("Kari", CollectionMethod.CHARGE_AUTOMATICALLY)
    per, per_card = customer("Per", CollectionMethod.SEND_INVOICE)
    template = billing.create_template(
        account,
        kari,
        lines=[line()],
        start=date(2027, 2, 1),
        period="month",
        now=NOW,
    ).id
    billing.pause_template(
        account, template, on=date(2027, 4, 1), resume=date(2027, 6, 1)
    )

    def session(customer_id: str) -> Any:
        return billing.record_session(account, customer_id, lines=[line()], now=NOW)

    settled = session(per).invoice.id
    settlement = billing.mass_pay(
        account, per, [settled], payment_method_id=per_card, now=NOW
    ).settlement.id
    paid = session(kari)
    return Ids(
        account=account,
        kari=kari,
        kari_card=kari_card,
        per=per,
        per_card=per_card,
        template=template,
        open_invoice=session(per).invoice.id,
        paid_invoice=paid.invoice.id,
        payment=paid.payment.id,
        settlement=settlement,
        webhook=_last_webhook(billing),
    )


def _last_webhook(billing: Billing) -> tuple[bytes, str]:
    gateway = billing.gateway
    assert isinstance(gateway, InMemoryGateway)
    event = gateway.events[-1].event_id
    return gateway.webhook(event, now=int(NOW.timestamp()))


@attrs.frozen
class Sweep:
    """A world with two accounts populated alike: ``ids`` (the one swept)
    and ``other`` (whose ids are "of another account")."""

    world: World
    ids: Ids
    other: Ids


def _sweep_world(storage: Any = None) -> Sweep:
    world = make_world(storage=storage)
    world.billing.create_account(
        account_id="beta",
        name="Beta AS",
        currency="NOK",
        summary_email="post@beta.no",
        timezone="Europe/Oslo",
    )
    return Sweep(
        world,
        _populate(world.billing, world.account.id),
        _populate(world.billing, "beta"),
    )


class Sweeps:
    """The world swept on one kind of storage; :meth:`renew` makes a fresh
    one (after a call that was not refused changed it)."""

    def __init__(self, kind: str, folder: Path, stack: ExitStack) -> None:
        self._kind, self._folder, self._stack = kind, folder, stack
        self._made = 0
        self.now = self.renew()

    def renew(self) -> Sweep:
        if self._kind == "memory":
            self.now = _sweep_world()
            return self.now
        self._made += 1
        path = self._folder / f"billing-{self._made}.sqlite3"
        storage = self._stack.enter_context(SqlStorage.sqlite(path))
        storage.migrate()
        self.now = _sweep_world(storage)
        return self.now


@pytest.fixture(scope="module", params=["memory", "sqlite"])
def sweeps(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Iterator[Sweeps]:
    with ExitStack() as stack:
        yield Sweeps(request.param, tmp_path_factory.mktemp("sweep"), stack)


# valid arguments ------------------------------------------------------------

Kwargs = dict[str, object]
LATER = date(2027, 3, 1)

VALID: dict[str, Callable[[Ids], Kwargs]] = {
    "create_account": lambda i: {
        "name": "New AS",
        "currency": "NOK",
        "summary_email": "post@new.no",
        "account_id": "new",
    },
    "add_customer": lambda i: {
        "account_id": i.account,
        "name": "Ola",
        "email": "ola@example.no",
        "customer_id": "ola",
    },
    "set_collection_method": lambda i: {
        "account_id": i.account,
        "customer_id": i.kari,
        "method": "send_invoice",
    },
    "change_customer": lambda i: {
        "account_id": i.account,
        "customer_id": i.kari,
        "name": "Kari N.",
    },
    "change_account": lambda i: {"account_id": i.account, "name": "Fjord AS"},
    "start_card_setup": lambda i: {"account_id": i.account, "customer_id": i.kari},
    "save_card": lambda i: {
        "account_id": i.account,
        "customer_id": i.kari,
        "token": "pm_card_mastercard",
    },
    "set_default_card": lambda i: {
        "account_id": i.account,
        "customer_id": i.kari,
        "method_id": i.kari_card,
    },
    "remove_card": lambda i: {
        "account_id": i.account,
        "customer_id": i.kari,
        "method_id": i.kari_card,
        "now": NOW,
    },
    "replace_card": lambda i: {
        "account_id": i.account,
        "customer_id": i.kari,
        "old_method_id": i.kari_card,
        "token": "pm_card_mastercard",
        "now": NOW,
    },
    "create_template": lambda i: {
        "account_id": i.account,
        "customer_id": i.kari,
        "lines": [line()],
        "start": date(2027, 2, 1),
        "period": "month",
        "now": NOW,
    },
    "change_template": lambda i: {
        "account_id": i.account,
        "template_id": i.template,
        "now": NOW,
        "memo": "New memo",
    },
    "pause_template": lambda i: {
        "account_id": i.account,
        "template_id": i.template,
        "on": date(2027, 8, 1),
    },
    "resume_template": lambda i: {
        "account_id": i.account,
        "template_id": i.template,
        "on": date(2027, 5, 1),
    },
    "cancel_pause": lambda i: {
        "account_id": i.account,
        "template_id": i.template,
        "start": date(2027, 4, 1),
    },
    "end_template": lambda i: {
        "account_id": i.account,
        "template_id": i.template,
        "on": date(2027, 12, 31),
    },
    "template_view": lambda i: {"account_id": i.account, "template_id": i.template},
    "run": lambda i: {"as_of": NOW, "account_ids": [i.account]},
    "record_session": lambda i: {
        "account_id": i.account,
        "customer_id": i.kari,
        "lines": [line()],
        "now": NOW,
    },
    "pay": lambda i: {
        "account_id": i.account,
        "invoice_id": i.open_invoice,
        "payment_method_id": i.per_card,
        "now": NOW,
    },
    "confirm_payment": lambda i: {
        "account_id": i.account,
        "payment_id": i.payment,
        "now": NOW,
    },
    "plan_mass_payment": lambda i: {
        "account_id": i.account,
        "customer_id": i.per,
        "invoice_ids": [i.open_invoice],
    },
    "mass_pay": lambda i: {
        "account_id": i.account,
        "customer_id": i.per,
        "invoice_ids": [i.open_invoice],
        "payment_method_id": i.per_card,
        "now": NOW,
    },
    "mass_payment": lambda i: {
        "account_id": i.account,
        "settlement_id": i.settlement,
    },
    "confirm_mass_payment": lambda i: {
        "account_id": i.account,
        "settlement_id": i.settlement,
        "now": NOW,
    },
    "record_bank_transfer": lambda i: {
        "account_id": i.account,
        "customer_id": i.per,
        "amount": Money("100", "NOK"),
        "now": NOW,
        "reference": "bank-1",
    },
    "apply_credit": lambda i: {
        "account_id": i.account,
        "customer_id": i.per,
        "now": NOW,
    },
    "overview": lambda i: {"account_id": i.account, "customer_id": i.per, "on": LATER},
    "void_invoice": lambda i: {
        "account_id": i.account,
        "invoice_id": i.open_invoice,
        "now": NOW,
    },
    "mark_uncollectible": lambda i: {
        "account_id": i.account,
        "invoice_id": i.open_invoice,
        "now": NOW,
    },
    "credit_invoice": lambda i: {
        "account_id": i.account,
        "invoice_id": i.paid_invoice,
        "amount": Money("100", "NOK"),
        "reason": "Goodwill",
        "now": NOW,
    },
    "refund": lambda i: {
        "account_id": i.account,
        "payment_id": i.payment,
        "now": NOW,
        "amount": Money("100", "NOK"),
        "refund_id": "refund-7",
    },
    "handle_webhook": lambda i: {
        "payload": i.webhook[0],
        "signature": i.webhook[1],
        "now": NOW,
    },
}
"""Each public method of Billing and valid arguments for it."""


def test_the_sweep_covers_every_public_method() -> None:
    public = {
        name
        for name, member in inspect.getmembers(Billing, inspect.isfunction)
        if not name.startswith("_")
    }
    assert public == set(VALID)


# bad values, by kind -----------------------------------------------------


@attrs.frozen
class OtherAccount:
    """Stands for the same argument's valid value in the other account."""


OTHER = OtherAccount()
AWARE = datetime(2027, 2, 1, 12, tzinfo=NOW.tzinfo)

HUGE = 10**30
TEXT: list[object] = [None, 5, 1.5, b"text", ["text"], "", "   "]
BAD: dict[str, list[object]] = {
    "text": TEXT,
    "id": [*TEXT, UNKNOWN, OTHER],
    "int": [None, "3", 2.5, True, Decimal("NaN"), -1, HUGE],
    "bool": [None, "no", 1],
    "instant": [
        None,
        "2027-01-10T12:00:00+01:00",
        datetime(2027, 1, 10, 12),
        date(2027, 1, 10),
        1799582400,
    ],
    "day": [None, "2027-02-01", AWARE, 20270201],
    "time": [None, "06:15", AWARE, 615],
    "money": [
        None,
        100,
        "100",
        1.5,
        Decimal("100"),
        Decimal("NaN"),
        Decimal("Infinity"),
        Money("0", "NOK"),
        Money("-100", "NOK"),
    ],
    "bytes": [None, "{}", 5, ["{}"]],
    "lines": [None, 5, "Session", b"Session", line(), [], [5]],
    "items": [None, 5, "Discount", b"Discount", [5]],
    "ids": [None, 5, "x", b"x", [5], [""], ["  "], [UNKNOWN], OTHER],
    "names": [None, 5, "vat_number", b"vat_number", [5], ["bogus"]],
    "choice": [None, 5, 1.5, b"month", ["month"], "", "  ", "bogus"],
    "value": [5, "kid", b"kid", ["kid"]],
}
"""Wrong values for each kind of parameter."""

EXTRA: dict[str, list[object]] = {"every": [0], "max_count": [0]}
"""More wrong values for some parameters (where zero is out of range)."""

MAY_BE_EMPTY = {"memo"}
"""Text parameters for which empty text is a valid value."""

UNBOUNDED = {"every", "max_count", "upcoming", "max_attempts"}
"""Counts for which a huge number is valid: the calendar bounds them (a
template every 10**30 months is issued once; at most 10**30 times, without
end; the upcoming invoices up to the year 9999; a message tried until it
is sent)."""

NONE_AS_EMPTY = {"reason"}
"""Text of the calculators where "" means none, as None does: a credit
note's reason, which the note keeps as "" and may be given back."""


def _kind(name: str, hint: object) -> str:
    """The kind of a parameter, from its annotation."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    given = [a for a in typing.get_args(hint) if a is not type(None)]
    args = given if union else [hint]
    first = typing.get_origin(args[0]) or args[0]
    inner = typing.get_args(args[0])
    if len(args) > 1:
        return "choice"  # Currency | str, Period | str, CollectionMethod | str
    if first is str:
        return "id" if name.endswith("_id") and hint is str else "text"
    if name == "clear":
        return "names"
    if inner and inner[0] is str:
        return "ids"
    if inner:
        return "lines" if inner[0].__name__ == "InvoiceLine" else "items"
    simple = {
        int: "int",
        bool: "bool",
        datetime: "instant",
        date: "day",
        time: "time",
        Money: "money",
        bytes: "bytes",
    }
    return simple.get(first, "value")


def _optional(hint: object) -> bool:
    return type(None) in typing.get_args(hint)


def _cases(method: str) -> Iterator[tuple[str, object]]:
    """(parameter, bad value) for each parameter of *method*."""
    hints = typing.get_type_hints(getattr(Billing, method))
    for name in inspect.signature(getattr(Billing, method)).parameters:
        if name == "self":
            continue
        for value in [*BAD[_kind(name, hints[name])], *EXTRA.get(name, [])]:
            if value is None and _optional(hints[name]):
                continue
            if name in MAY_BE_EMPTY and isinstance(value, str) and not value.strip():
                continue
            if name in UNBOUNDED and value == HUGE:
                continue
            yield name, value


# the sweep ---------------------------------------------------------------


def _snapshot(world: World) -> dict[str, object]:
    """Every record the storage can list, of every account; the gateway's
    charges and refunds."""
    state: dict[str, object] = {
        "charges": world.gateway.ledger,
        "refunds": world.gateway.refunds,
    }
    with world.storage.transaction(read_only=True) as tx:
        state["outbox"] = tx.pending_notifications(limit=100_000)
        for account in tx.list_account_ids():
            customers = tx.list_customers(account)
            templates = tx.list_templates(account)
            state[account] = (
                tx.get_account(account),
                customers,
                templates,
                [tx.list_occurrences(account, t.id) for t in templates],
                [tx.list_payment_methods(account, c.id) for c in customers],
                [tx.list_receipts(account, c.id) for c in customers],
                [tx.list_credit_entries(account, c.id) for c in customers],
                tx.list_invoices(account),
                tx.list_payments(account),
                tx.list_settlements(account),
                tx.list_credit_notes(account),
                tx.list_refunds(account),
            )
    return state


def _defect(sweeps: Sweeps, method: str, name: str, bad: object) -> str | None:
    """What is wrong with how *method* takes *bad* for *name*, if anything."""
    sweep = sweeps.now
    kwargs = VALID[method](sweep.ids)
    if isinstance(bad, OtherAccount):
        other = VALID[method](sweep.other)
        if name.startswith("account") or name not in other:
            return None  # another account's id is a valid account id
        if other[name] == kwargs[name]:
            return None  # not an id: the same in both accounts
        bad = other[name]
    kwargs[name] = bad
    call = f"{method}({name}={bad!r})"
    before = _snapshot(sweep.world)
    try:
        getattr(sweep.world.billing, method)(**kwargs)
    except RecurbillError as error:
        found = "" if str(error).strip() else f"{call}: an error without a message"
    except Exception as error:  # the defect the sweep reports
        found = f"{call} raised {type(error).__name__}: {error}"
    else:
        found = f"{call} was accepted"
    if _snapshot(sweep.world) != before:
        found += f" ({call} changed the storage)"
        sweeps.renew()  # the next cases start from the world as it was
    return found or None


@pytest.mark.parametrize("method", sorted(VALID))
def test_bad_arguments_are_refused_clearly_and_change_nothing(
    sweeps: Sweeps, method: str
) -> None:
    defects = [
        found
        for name, bad in _cases(method)
        if (found := _defect(sweeps, method, name, bad)) is not None
    ]
    assert defects == []


@pytest.mark.parametrize("method", sorted(VALID))
def test_the_valid_arguments_are_accepted(method: str) -> None:
    """So each refusal above is the bad argument's, not another's."""
    sweep = _sweep_world()
    getattr(sweep.world.billing, method)(**VALID[method](sweep.ids))


# the other entry points ----------------------------------------------------


@attrs.frozen
class Facts:
    """Values the functions' valid arguments are made of."""

    totals: Totals
    invoices: tuple[Invoice, ...]  # Per's open invoice first, then Kari's paid one
    world: World


def _facts() -> Facts:
    sweep = _sweep_world()
    invoices = {i.id: i for i in sweep.world.storage_invoices()}
    return Facts(
        totals=compute_totals([line()], currency="NOK"),
        invoices=(invoices[sweep.ids.open_invoice], invoices[sweep.ids.paid_invoice]),
        world=sweep.world,
    )


NOK = Money("800", "NOK")

FUNCTIONS: dict[str, tuple[Callable[..., object], Callable[[Facts], Kwargs]]] = {
    "compute_totals": (
        compute_totals,
        lambda f: {"lines": [line()], "currency": "NOK"},
    ),
    "totals_from_line_nets": (
        totals_from_line_nets,
        lambda f: {"lines": [line()], "line_nets": [NOK], "currency": "NOK"},
    ),
    "line_net": (line_net, lambda f: {"line": line(), "currency": "NOK"}),
    "check_consistency": (
        check_consistency,
        lambda f: {"lines": [line()], "line_nets": [NOK], "currency": "NOK"},
    ),
    "credit_note": (
        credit_note,
        lambda f: {"invoice_number": "INV-1", "invoice": f.totals, "lines": [line()]},
    ),
    "full_credit_note": (
        full_credit_note,
        lambda f: {"invoice_number": "INV-1", "invoice": f.totals, "lines": [line()]},
    ),
    "amount_owed": (
        amount_owed,
        lambda f: {"invoice_number": "INV-1", "invoice": f.totals},
    ),
    "creditable_amount": (
        creditable_amount,
        lambda f: {"invoice_number": "INV-1", "invoice": f.totals},
    ),
    "cash_rounding": (
        cash_rounding,
        lambda f: {"amount": NOK, "increment": Decimal("1")},
    ),
    "allocate": (allocate, lambda f: {"total": NOK, "weights": [1, 2]}),
    "allocate_payment": (
        allocate_payment,
        lambda f: {"amount": NOK, "invoices": f.invoices[:1]},
    ),
    "plan_settlement": (
        plan_settlement,
        lambda f: {
            "selection": [f.invoices[0].id],
            "invoices": f.invoices[:1],
            "account_id": f.invoices[0].account_id,
            "customer_id": f.invoices[0].customer_id,
        },
    ),
    "format_money": (format_money, lambda f: {"money": NOK, "locale": "nb_NO"}),
    "kid_mod10": (kid_mod10, lambda f: {"number": "1234"}),
    "kid_mod11": (kid_mod11, lambda f: {"number": "1234"}),
    "ocr": (ocr, lambda f: {"number": "1234"}),
    "validate_kid": (validate_kid, lambda f: {"kid": kid_mod10("1234")}),
    "validate_ocr": (validate_ocr, lambda f: {"ocr": ocr("1234")}),
    "reference_methods": (reference_methods, lambda f: {"currency": "NOK"}),
    "due_at": (
        due_at,
        lambda f: {"on": LATER, "run_time": time(6, 15), "zone": "Europe/Oslo"},
    ),
    "Schedule": (Schedule, lambda f: {"start": LATER, "period": "month"}),
    "Pause": (Pause, lambda f: {"start": LATER}),
    "PayeeAccount": (
        PayeeAccount,
        lambda f: {"kind": "no_account", "number": "1234 56 78903"},
    ),
    "ReferenceScheme": (ReferenceScheme, lambda f: {"method": "kid_mod10"}),
    "RetryPolicy": (RetryPolicy, lambda f: {"days": (3, 5)}),
    "Money": (Money, lambda f: {"amount": "12.50", "currency": "NOK"}),
    "deliver_pending": (
        deliver_pending,
        lambda f: {"storage": f.world.storage, "notifier": Outbox(), "now": NOW},
    ),
}
"""The other public functions and value types, and valid arguments for each."""

KINDS: dict[str, str] = {
    "currency": "choice",
    "period": "choice",
    "kind": "choice",
    "method": "choice",
    "zone": "text",
    "number": "text",
    "amount": "any money",
    "total": "any money",
    "money": "any money",
    "prepaid": "any money",
    "rounding_amount": "any money",
    "increment": "amount",
    "weights": "amounts",
    "days": "amounts",
    "invoice": "value",
    "invoices": "values",
    "selection": "ids",
    "line_nets": "values",
    "locale": "text",
    "pauses": "values",
    "previous": "values",
    "credit_notes": "values",
    "pending": "ids",
    "storage": "value",
    "notifier": "value",
    "line": "value",
}
"""Parameter kinds the annotations do not tell (``object``, protocols)."""

BAD.update(
    {
        "any money": BAD["money"][:-2],  # zero and below are amounts too
        "amount": [None, 1.5, "x", b"1", Decimal("NaN"), Decimal("Infinity"), True],
        "amounts": [None, 5, "12", [1.5], [Decimal("NaN")], [True]],
        "values": [None, 5, "x", b"x", [5]],
        "value": [None, 5, "x", b"x", [5]],
    }
)


def _function_cases(name: str) -> Iterator[tuple[str, object]]:
    function = FUNCTIONS[name][0]
    target = function.__init__ if isinstance(function, type) else function
    hints = typing.get_type_hints(target)
    for param in inspect.signature(function).parameters.values():
        hint = hints.get(param.name, object)
        kind = KINDS.get(param.name) or _kind(param.name, hint)
        if name == "Money" and param.name == "amount":
            kind = "amount"
        for value in BAD[kind]:
            if value is None and (_optional(hint) or param.default is None):
                continue
            if (
                value == [UNKNOWN]
                or (param.name in UNBOUNDED and value == HUGE)
                or (param.name in NONE_AS_EMPTY and value == "")
            ):
                continue  # no stored records here; a huge count is valid
            yield param.name, value


@pytest.fixture(scope="module")
def facts() -> Facts:
    return _facts()


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_the_other_entry_points_refuse_bad_arguments_clearly(
    facts: Facts, name: str
) -> None:
    function, valid = FUNCTIONS[name]
    function(**valid(facts))  # the valid arguments are accepted
    defects = []
    for param, bad in _function_cases(name):
        kwargs = {**valid(facts), param: bad}
        before = _snapshot(facts.world)
        try:
            function(**kwargs)
        except RecurbillError as error:
            if not str(error).strip():
                defects.append(f"{name}({param}={bad!r}): no message")
        except Exception as error:  # the defect the sweep reports
            defects.append(
                f"{name}({param}={bad!r}) raised {type(error).__name__}: {error}"
            )
        else:
            defects.append(f"{name}({param}={bad!r}) was accepted")
        assert _snapshot(facts.world) == before
    assert defects == []

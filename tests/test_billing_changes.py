"""Changing a customer or an account after it was made.

``change_customer`` changes what it is given and keeps the gateway's copy of
the name and e-mail address in step; ``change_account`` changes the settings
that apply from the next invoice on and refuses those that cannot change.
"""

from __future__ import annotations

import contextlib
import time as clock
from collections.abc import Iterator
from datetime import date, time, timezone
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing_helpers import CustomersMade, World, at, line, make_world, together
from recurbill import (
    Account,
    Billing,
    CollectionMethod,
    ConflictError,
    Customer,
    FixedSettingError,
    GatewayUnavailableError,
    InMemoryGateway,
    InvalidInputError,
    InvalidRecordError,
    NotFoundError,
    RecurbillError,
    ReferenceLengthError,
    ReferenceScheme,
    UnknownCurrencyError,
)
from recurbill.storage.protocol import Storage
from recurbill.storage.sql import SqlStorage

NOW = at(date(2027, 3, 1))


def _stored_customer(world: World, customer_id: str) -> Customer:
    with world.storage.transaction() as tx:
        return tx.get_customer(world.account.id, customer_id)


def _stored_account(world: World) -> Account:
    with world.storage.transaction() as tx:
        return tx.get_account(world.account.id)


def _kari(world: World) -> Customer:
    """Kari with her card saved, as stored."""
    return _stored_customer(world, world.customer().id)


def _at_gateway(world: World, customer: Customer) -> tuple[object, object]:
    assert customer.gateway_customer_id is not None
    kept = world.gateway.customer_details(customer.gateway_customer_id)
    return kept["email"], kept["name"]


def _updates(world: World) -> list[dict[str, object]]:
    return [
        dict(r.params)
        for r in world.gateway.requests
        if r.operation == "update_customer"
    ]


# -- change_customer ------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Kari Hansen"),
        ("email", "kari.hansen@example.no"),
        ("locale", "sv_SE"),
    ],
)
def test_change_customer_changes_what_it_is_given(field: str, value: str) -> None:
    world = make_world()
    kari = _kari(world)
    changed = world.billing.change_customer(world.account.id, kari.id, **{field: value})
    assert getattr(changed, field) == value
    for other in ("name", "email", "locale", "collection_method"):
        if other != field:
            assert getattr(changed, other) == getattr(kari, other)
    assert changed.default_payment_method_id == kari.default_payment_method_id
    assert _stored_customer(world, kari.id) == changed
    assert _at_gateway(world, changed) == (changed.email, changed.name)
    assert len(_updates(world)) == (0 if field == "locale" else 1)


def test_change_customer_changes_several_at_once() -> None:
    world = make_world()
    kari = _kari(world)
    changed = world.billing.change_customer(
        world.account.id,
        kari.id,
        name="Kari Hansen",
        email="kari.hansen@example.no",
        locale="is_IS",
    )
    assert (changed.name, changed.email, changed.locale) == (
        "Kari Hansen",
        "kari.hansen@example.no",
        "is_IS",
    )
    assert _updates(world) == [
        {
            "customer": kari.gateway_customer_id,
            "email": "kari.hansen@example.no",
            "name": "Kari Hansen",
        }
    ]


def test_change_customer_with_nothing_given_changes_nothing() -> None:
    world = make_world()
    kari = _kari(world)
    requests = len(world.gateway.requests)
    assert world.billing.change_customer(world.account.id, kari.id) == kari
    assert len(world.gateway.requests) == requests


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"name": ""}, "name is empty"),
        ({"name": "   "}, "name is empty"),
        ({"name": 42}, "name is empty or not text"),
        ({"name": "Kari\x00"}, "NUL"),
        ({"email": "kari"}, "is not a single e-mail address"),
        ({"email": "kari@example.no, ola@example.no"}, "single e-mail address"),
        ({"locale": "xx_YY"}, "locale 'xx_YY' is unknown"),
        ({"locale": 7}, "locale 7 is unknown"),
        # one bad value refuses the good ones with it
        ({"name": "Kari Hansen", "email": "nope"}, "e-mail address"),
    ],
)
def test_change_customer_refuses_bad_values_and_changes_nothing(
    arguments: dict[str, Any], says: str
) -> None:
    world = make_world()
    kari = _kari(world)
    requests = len(world.gateway.requests)
    with pytest.raises(InvalidRecordError, match=says):
        world.billing.change_customer(world.account.id, kari.id, **arguments)
    assert _stored_customer(world, kari.id) == kari
    assert len(world.gateway.requests) == requests


_CARD_LIKE = "Fjord AS 987 654 321 22 33 44 55"  # 17 digits, grouped


@pytest.mark.parametrize(
    "arguments",
    [
        {"name": _CARD_LIKE},
        {"email": "4242424242424242@example.no"},
        {"name": "Kari Hansen", "email": "kari.4242-4242-4242-4242@example.no"},
    ],
)
def test_change_customer_refuses_what_the_gateway_refuses_before_storing(
    arguments: dict[str, str],
) -> None:
    """The gateway's own check of a name and an address (no card numbers)
    refuses them before anything is stored: storage and gateway stay alike,
    and calling again is refused again, with nothing changed."""
    world = make_world()
    kari = _kari(world)
    requests = len(world.gateway.requests)
    for _ in range(2):
        with pytest.raises(InvalidInputError, match="looks like a card number"):
            world.billing.change_customer(world.account.id, kari.id, **arguments)
        assert _stored_customer(world, kari.id) == kari
        assert _at_gateway(world, kari) == ("kari@example.no", "Kari Nordmann")
        assert len(world.gateway.requests) == requests


def test_add_customer_refuses_what_the_gateway_refuses_before_storing() -> None:
    world = make_world()
    requests = len(world.gateway.requests)
    with pytest.raises(InvalidInputError, match="looks like a card number"):
        world.billing.add_customer(
            world.account.id, name=_CARD_LIKE, email="post@fjord.no", customer_id="c-1"
        )
    with world.storage.transaction() as tx:
        assert tx.list_customers(world.account.id) == []
    assert len(world.gateway.requests) == requests


def test_change_customer_finds_only_customers_of_the_account() -> None:
    world = make_world()
    kari = _kari(world)
    other = world.billing.create_account(
        account_id="other",
        name="Other AS",
        currency="NOK",
        summary_email="post@other.no",
    )
    with pytest.raises(NotFoundError, match="'nobody'"):
        world.billing.change_customer(world.account.id, "nobody", name="X")
    with pytest.raises(NotFoundError, match="not found in account 'other'"):
        world.billing.change_customer(other.id, kari.id, name="Stolen")
    with pytest.raises(NotFoundError, match="not found in account 'nope'"):
        world.billing.change_customer("nope", kari.id, name="X")
    assert _stored_customer(world, kari.id) == kari


def test_later_invoices_go_to_the_new_address_queued_ones_keep_theirs() -> None:
    world = make_world()
    per = world.customer("Per Olsen", card=None, method=CollectionMethod.SEND_INVOICE)
    world.billing.record_session(world.account.id, per.id, lines=[line()], now=NOW)
    world.billing.change_customer(
        world.account.id, per.id, email="per.olsen@example.com", locale="en_GB"
    )
    world.billing.record_session(world.account.id, per.id, lines=[line()], now=NOW)
    with world.storage.transaction() as tx:
        sent = [
            (n.recipient, n.subject.split()[0])
            for n in tx.pending_notifications()
            if n.kind == "invoice"
        ]
    assert sent == [("per@example.no", "Faktura"), ("per.olsen@example.com", "Invoice")]


def test_a_failed_gateway_update_is_finished_by_calling_again() -> None:
    world = make_world()
    kari = _kari(world)
    world.gateway.fail_next("unavailable", operation="update_customer")
    with pytest.raises(GatewayUnavailableError):
        world.billing.change_customer(
            world.account.id, kari.id, email="kari.hansen@example.no"
        )
    stored = _stored_customer(world, kari.id)
    assert stored.email == "kari.hansen@example.no"  # stored first
    assert _at_gateway(world, stored) == ("kari@example.no", "Kari Nordmann")
    again = world.billing.change_customer(
        world.account.id, kari.id, email="kari.hansen@example.no"
    )
    assert again == stored
    assert _at_gateway(world, again) == ("kari.hansen@example.no", "Kari Nordmann")


def test_a_customer_without_gateway_customer_gets_the_one_its_key_made() -> None:
    """add_customer's gateway call succeeded but its answer was lost: the
    change first finishes it with the details it was added with (found by
    its metadata), then updates it; nothing is made twice."""
    gateway = CustomersMade()
    world = make_world(gateway=gateway)
    gateway.fail_next("timeout_after", operation="create_customer")
    with pytest.raises(GatewayUnavailableError):
        world.billing.add_customer(
            world.account.id, name="Kari", email="kari@example.no", customer_id="kari"
        )
    assert _stored_customer(world, "kari").gateway_customer_id is None
    changed = world.billing.change_customer(
        world.account.id, "kari", email="kari.hansen@example.no"
    )
    assert gateway.made == {changed.gateway_customer_id}
    assert _at_gateway(world, changed) == ("kari.hansen@example.no", "Kari")
    world.billing.save_card(world.account.id, "kari", token="pm_card_visa")
    assert len(gateway.made) == 1


def test_a_locale_change_needs_no_gateway() -> None:
    gateway = InMemoryGateway(environ={})
    world = make_world(gateway=gateway)
    gateway.fail_next("unavailable", operation="create_customer")
    with pytest.raises(GatewayUnavailableError):
        world.billing.add_customer(
            world.account.id, name="Kari", email="kari@example.no", customer_id="kari"
        )
    requests = len(gateway.requests)
    changed = world.billing.change_customer(world.account.id, "kari", locale="en_GB")
    assert changed.locale == "en_GB"
    assert changed.gateway_customer_id is None
    assert len(gateway.requests) == requests


class _Meddling(InMemoryGateway):
    """Before applying the first update, lets another caller change the
    customer and update the gateway: the first update then lands last."""

    def __init__(self) -> None:
        super().__init__(environ={})
        self.meddle: Any = None

    def update_customer(self, customer: str, *, email: str, name: str) -> None:
        meddle, self.meddle = self.meddle, None
        if meddle is not None:
            meddle()
        super().update_customer(customer, email=email, name=name)


def test_a_change_stored_meanwhile_is_sent_after_a_stale_one() -> None:
    gateway = _Meddling()
    world = make_world(gateway=gateway)
    kari = _kari(world)
    gateway.meddle = lambda: world.billing.change_customer(
        world.account.id, kari.id, email="kari@example.com"
    )
    result = world.billing.change_customer(
        world.account.id, kari.id, email="kari.hansen@example.no"
    )
    assert result.email == "kari@example.com"  # the customer as it is now
    assert _stored_customer(world, kari.id) == result
    assert _at_gateway(world, result) == ("kari@example.com", "Kari Nordmann")
    assert [u["email"] for u in _updates(world)] == [
        "kari@example.com",  # the other call's
        "kari.hansen@example.no",  # this call's, stale by now
        "kari@example.com",  # read again and sent
    ]


def test_a_customer_that_never_stops_changing_is_a_conflict() -> None:
    gateway = _Meddling()
    world = make_world(gateway=gateway)
    kari = _kari(world)
    rounds = iter(range(100))

    def meddle() -> None:
        gateway.meddle = meddle  # again before the next update
        with world.storage.transaction() as tx:
            customer = tx.get_customer(world.account.id, kari.id)
            email = f"kari{next(rounds)}@example.no"
            tx.update_customer(attrs.evolve(customer, email=email))
            tx.commit()

    gateway.meddle = meddle
    with pytest.raises(ConflictError, match="changed again"):
        world.billing.change_customer(world.account.id, kari.id, name="Kari Hansen")
    assert _stored_customer(world, kari.id).name == "Kari Hansen"


_NAMES = st.sampled_from(["Kari Nordmann", "Kari Hansen", "K. Hansen"])
_EMAILS = st.sampled_from(["kari@example.no", "kari@example.com", "k@example.se"])
_LOCALES = st.sampled_from(["nb_NO", "sv_SE", "is_IS", "en_GB"])
_CHANGES = st.lists(
    st.fixed_dictionaries(
        {},
        optional={"name": _NAMES, "email": _EMAILS, "locale": _LOCALES},
    ),
    max_size=6,
)


@settings(max_examples=40, deadline=None)
@given(changes=_CHANGES)
def test_each_detail_is_the_last_one_given(changes: list[dict[str, str]]) -> None:
    world = make_world()
    kari = _kari(world)
    expected = {"name": kari.name, "email": kari.email, "locale": kari.locale}
    for change in changes:
        world.billing.change_customer(world.account.id, kari.id, **change)
        expected.update(change)
    stored = _stored_customer(world, kari.id)
    assert {f: getattr(stored, f) for f in expected} == expected
    assert stored.collection_method is kari.collection_method
    assert stored.default_payment_method_id == kari.default_payment_method_id
    assert _at_gateway(world, stored) == (stored.email, stored.name)


# -- add_customer repeated after a change ------------------------------------------


_KARI = {"name": "Kari Nordmann", "email": "kari@example.no", "customer_id": "kari"}


def _add_kari(world: World, **arguments: Any) -> Customer:
    return world.billing.add_customer(world.account.id, **{**_KARI, **arguments})


def _creates(world: World) -> int:
    return len([r for r in world.gateway.requests if r.operation == "create_customer"])


_LATER_CHANGES = [
    {"locale": "en_GB"},
    {"email": "kari.hansen@example.no"},
    {"name": "Kari Hansen"},
    {"name": "Kari Hansen", "email": "kari.hansen@example.no", "locale": "sv_SE"},
]


@pytest.mark.parametrize("change", _LATER_CHANGES, ids=lambda c: "+".join(c))
def test_repeating_add_customer_after_a_change_returns_it_unchanged(
    storage: Storage, change: dict[str, str]
) -> None:
    """The creation happened; its repeat returns the customer as it is now
    and does not undo the change (neither in storage nor at the gateway)."""
    world = make_world(storage=storage)
    added = _add_kari(world)
    changed = world.billing.change_customer(world.account.id, "kari", **change)
    requests = len(world.gateway.requests)
    assert _add_kari(world) == changed  # the call that added her, repeated
    assert _add_kari(world, **change) == changed  # her details as they are now
    assert _stored_customer(world, "kari") == changed
    assert _at_gateway(world, changed) == (changed.email, changed.name)
    assert len(world.gateway.requests) == requests  # nothing sent, nothing made
    for field, value in change.items():
        assert getattr(changed, field) == value != getattr(added, field)
        assert str(getattr(added, field)) not in repr(changed)  # not kept


def test_repeating_add_customer_after_a_collection_method_change(
    storage: Storage,
) -> None:
    world = make_world(storage=storage)
    _add_kari(world, collection_method="send_invoice")
    changed = world.billing.set_collection_method(
        world.account.id, "kari", "charge_automatically"
    )
    assert _add_kari(world, collection_method="send_invoice") == changed
    assert _stored_customer(world, "kari") == changed
    assert changed.collection_method is CollectionMethod.CHARGE_AUTOMATICALLY


def test_a_repeat_after_a_locale_change_finishes_the_gateway_customer(
    storage: Storage,
) -> None:
    """Added while the gateway was down, then given another locale: the
    repeat creates the gateway customer and keeps the new locale."""
    world = make_world(storage=storage)
    world.gateway.fail_next("unavailable", operation="create_customer")
    with pytest.raises(GatewayUnavailableError):
        _add_kari(world)
    world.billing.change_customer(world.account.id, "kari", locale="is_IS")
    finished = _add_kari(world)
    assert finished.locale == "is_IS"
    assert finished.gateway_customer_id is not None
    assert _stored_customer(world, "kari") == finished
    assert _at_gateway(world, finished) == ("kari@example.no", "Kari Nordmann")
    assert _creates(world) == 2  # the failed one and the one that made it


def test_a_repeat_with_the_locale_left_out_is_the_same_once_the_account_changes(
    storage: Storage,
) -> None:
    """Left out, the locale is the account's: a repeat leaving it out asks for
    the same customer though the account's locale is another by now."""
    world = make_world(storage=storage)
    added = _add_kari(world)
    assert added.locale == "nb_NO"  # the account's
    world.billing.change_account(world.account.id, locale="en_GB")
    assert _add_kari(world) == added
    with pytest.raises(ConflictError, match="the locale given is not its own"):
        _add_kari(world, locale="en_GB")  # the account's now: not hers


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (
            {"name": "Ola Nordmann", "email": "ola@example.no", "locale": "sv_SE"},
            "the name and email given are not its own",
        ),
        ({"locale": "en_GB"}, "the locale given is not its own"),
        (  # left out, the locale is the account's: neither hers nor as added
            {"collection_method": "send_invoice"},
            "the locale and collection_method given are not its own",
        ),
        (  # neither as she was added nor as she is now
            {"email": "kari.hansen@example.no", "locale": "en_GB"},
            "the email and locale given are not its own",
        ),
        (
            {"name": "Ola", "email": "ola@example.no", "locale": "is_IS"},
            "the name, email and locale given are not its own",
        ),
    ],
)
def test_another_customer_under_an_existing_id_is_a_conflict(
    storage: Storage, arguments: dict[str, str], says: str
) -> None:
    world = make_world(storage=storage)
    _add_kari(world)
    kari = world.billing.change_customer(world.account.id, "kari", locale="sv_SE")
    requests = len(world.gateway.requests)
    with pytest.raises(ConflictError, match=says) as refused:
        _add_kari(world, **arguments)
    message = str(refused.value)
    assert message.startswith("customer 'kari' exists already with other details")
    assert "nor was it added with these arguments" in message
    assert "give a new customer_id" in message
    assert "change_customer or set_collection_method" in message
    assert _stored_customer(world, "kari") == kari  # nothing changed
    assert len(world.gateway.requests) == requests


# -- change_account -------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Fjord Fysioterapi AS"),
        ("payment_terms_days", 30),
        ("payment_terms_days", 0),
        ("summary_email", "regnskap@fjordfysio.no"),
        ("locale", "en_GB"),
        ("reference_scheme", ReferenceScheme(method="kid_mod11", length=10)),
    ],
)
def test_change_account_changes_what_it_is_given(field: str, value: object) -> None:
    world = make_world()
    changed = world.billing.change_account(world.account.id, **{field: value})
    assert getattr(changed, field) == value
    for other in (
        "name",
        "payment_terms_days",
        "summary_email",
        "locale",
        "reference_scheme",
        "currency",
        "timezone",
        "run_time",
        "invoice_series",
        "rounding",
    ):
        if other != field:
            assert getattr(changed, other) == getattr(world.account, other)
    assert _stored_account(world) == changed


def test_change_account_with_nothing_given_changes_nothing() -> None:
    world = make_world()
    assert world.billing.change_account(world.account.id) == world.account


def test_changes_apply_to_invoices_issued_after_them() -> None:
    world = make_world()
    per = world.customer("Per Olsen", card=None, method=CollectionMethod.SEND_INVOICE)
    before = world.billing.record_session(
        world.account.id, per.id, lines=[line()], now=NOW
    ).invoice
    world.billing.change_account(
        world.account.id,
        name="Fjord Fysioterapi AS",
        payment_terms_days=30,
        reference_scheme=ReferenceScheme(method="kid_mod11", length=10),
    )
    after = world.billing.record_session(
        world.account.id, per.id, lines=[line()], now=NOW
    ).invoice
    assert (before.number, after.number) == (1, 2)  # no gap
    assert before.due_date == date(2027, 3, 15)  # 14 days, as issued
    assert before.payment_reference == "18"  # MOD10, as issued
    assert after.due_date == date(2027, 3, 31)
    assert after.payment_reference == "0000000027"
    (issued_before,) = [i for i in world.storage_invoices() if i.id == before.id]
    assert issued_before == before  # issued invoices never change
    with world.storage.transaction() as tx:
        subjects = [n.subject for n in tx.pending_notifications()]
    assert subjects == [
        "Faktura INV-000001 fra Fjord Fysio AS",
        "Faktura INV-000002 fra Fjord Fysioterapi AS",
    ]


def test_the_next_summary_goes_to_the_new_address_in_the_new_locale() -> None:
    world = make_world()
    kari = _kari(world)
    world.template(kari, start=date(2027, 3, 2))
    world.billing.change_account(
        world.account.id, summary_email="regnskap@fjordfysio.no", locale="en_GB"
    )
    world.billing.run(at(date(2027, 3, 2), 7))
    with world.storage.transaction() as tx:
        (summary,) = [
            n for n in tx.pending_notifications() if n.kind == "daily_summary"
        ]
    assert summary.recipient == "regnskap@fjordfysio.no"
    assert summary.subject.startswith("Billing summary for Fjord Fysio AS")


def test_customers_keep_their_locale_new_ones_get_the_new_default() -> None:
    world = make_world()
    kari = _kari(world)
    world.billing.change_account(world.account.id, locale="sv_SE")
    assert _stored_customer(world, kari.id).locale == "nb_NO"
    ola = world.billing.add_customer(
        world.account.id, name="Ola", email="ola@example.no"
    )
    assert ola.locale == "sv_SE"


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"name": ""}, "name is empty"),
        ({"name": 7}, "name is empty or not text"),
        ({"payment_terms_days": -1}, "payment_terms_days -1 is invalid"),
        ({"payment_terms_days": 366}, "payment_terms_days 366 is invalid"),
        ({"payment_terms_days": True}, "payment_terms_days True is invalid"),
        ({"payment_terms_days": "30"}, "payment_terms_days '30' is invalid"),
        ({"summary_email": "post"}, "not a single e-mail address"),
        ({"summary_email": ""}, "summary_email is empty"),
        ({"locale": "xx_YY"}, "locale 'xx_YY' is unknown"),
        ({"reference_scheme": "kid_mod11"}, "is not a ReferenceScheme"),
        (
            {"reference_scheme": ReferenceScheme(method="ocr")},
            "an account billing in NOK may use 'kid_mod10' or 'kid_mod11'",
        ),
        (
            {"reference_scheme": ReferenceScheme(method="invoice_number")},
            "invoice number reference is not used in NOK",
        ),
        # one bad value refuses the good ones with it
        ({"name": "Renamed", "payment_terms_days": 400}, "payment_terms_days"),
    ],
)
def test_change_account_refuses_bad_values_and_changes_nothing(
    arguments: dict[str, Any], says: str
) -> None:
    world = make_world()
    with pytest.raises(InvalidRecordError, match=says):
        world.billing.change_account(world.account.id, **arguments)
    assert _stored_account(world) == world.account


def test_an_unknown_account_is_not_found() -> None:
    world = make_world()
    with pytest.raises(NotFoundError, match="account 'nope' not found"):
        world.billing.change_account("nope", name="X")


@pytest.mark.parametrize(
    ("setting", "value", "says", "instead"),
    [
        ("currency", "SEK", "from NOK to SEK", "new account"),
        ("timezone", "Europe/Stockholm", "would move the occurrences", "new account"),
        ("run_time", time(7, 0), "from 06:15 to 07:00", "call run()"),
        ("invoice_series", "F", "repeat the references", "keep the series"),
        ("rounding", ROUND_HALF_EVEN, "change how they read", "keep the mode"),
    ],
)
def test_fixed_settings_are_refused_with_why_and_what_instead(
    setting: str, value: object, says: str, instead: str
) -> None:
    world = make_world()
    with pytest.raises(FixedSettingError, match=says) as info:
        world.billing.change_account(
            world.account.id, name="Renamed", **{setting: value}
        )
    assert info.value.fields["setting"] == setting
    assert instead in str(info.value.fields["allowed"])
    assert _stored_account(world) == world.account  # the name did not change


def test_fixed_settings_given_unchanged_are_accepted() -> None:
    world = make_world()
    changed = world.billing.change_account(
        world.account.id,
        name="Renamed",
        currency="nok",
        timezone="Europe/Oslo",
        run_time=time(6, 15),
        invoice_series="INV",
        rounding=ROUND_HALF_UP,
    )
    assert changed.name == "Renamed"
    assert changed.currency == world.account.currency


@pytest.mark.parametrize(
    "arguments",
    [
        {"run_time": time(6, 15, tzinfo=timezone.utc)},  # the account's 06:15
        {"run_time": "06:15"},
        {"timezone": "Mars/Base"},
        {"timezone": 5},
        {"rounding": "bogus"},
        {"currency": 578},
        {"currency": "XXY"},
        {"invoice_series": "RCPT"},
        {"invoice_series": "F-1"},
    ],
)
def test_fixed_settings_are_checked_as_create_account_checks_them(
    arguments: dict[str, Any],
) -> None:
    """A bad value of a fixed setting is a bad value (the error create_account
    raises for it), not a change refused."""
    world = make_world()
    settings = {
        "name": "Other AS",
        "currency": "NOK",
        "summary_email": "post@other.no",
        **arguments,
    }
    with pytest.raises(RecurbillError) as made:
        world.billing.create_account(**settings)
    with pytest.raises(type(made.value)) as changed:
        world.billing.change_account(world.account.id, name="Renamed", **arguments)
    assert not isinstance(changed.value, FixedSettingError)
    assert str(changed.value) == str(made.value)
    assert _stored_account(world) == world.account


def test_an_unknown_currency_is_bad_input() -> None:
    world = make_world()
    with pytest.raises(UnknownCurrencyError):
        world.billing.change_account(world.account.id, currency="XXY")


def _issue(world: World, customer: Customer, count: int) -> None:
    for _ in range(count):
        world.billing.record_session(
            world.account.id, customer.id, lines=[line()], now=NOW
        )


def test_a_scheme_must_hold_the_next_invoice_number() -> None:
    world = make_world()
    per = world.customer("Per Olsen", card=None, method=CollectionMethod.SEND_INVOICE)
    # before any invoice, a 2-digit KID holds the first numbers
    world.billing.change_account(
        world.account.id, reference_scheme=ReferenceScheme(method="kid_mod10", length=2)
    )
    _issue(world, per, 9)
    with pytest.raises(ReferenceLengthError, match="up to 9") as info:
        world.billing.change_account(
            world.account.id,
            reference_scheme=ReferenceScheme(method="kid_mod11", length=2),
        )
    assert info.value.fields["number"] == 10
    # the scheme it has, given again (a settings form), is no change
    same = ReferenceScheme(method="kid_mod10", length=2)
    renamed = world.billing.change_account(
        world.account.id, reference_scheme=same, name="Renamed"
    )
    assert renamed.name == "Renamed"
    grown = world.billing.change_account(
        world.account.id, reference_scheme=ReferenceScheme(method="kid_mod10", length=3)
    )
    assert grown.reference_scheme.length == 3
    _issue(world, per, 1)
    numbers = sorted(i.number for i in world.storage_invoices())
    assert numbers == list(range(1, 11))  # looking ahead left no gap
    assert max(world.storage_invoices(), key=lambda i: i.number).payment_reference == (
        "109"
    )


def test_the_ocr_length_digit_cannot_be_dropped_once_invoices_are_issued() -> None:
    world = make_world(currency="SEK")
    plain = ReferenceScheme(method="ocr", length=8)
    with_digit = ReferenceScheme(method="ocr_length_digit", length=8)
    # before the first invoice, any SEK scheme may follow any other
    world.billing.change_account(world.account.id, reference_scheme=plain)
    world.billing.change_account(world.account.id, reference_scheme=with_digit)
    per = world.customer("Per Olsen", card=None, method=CollectionMethod.SEND_INVOICE)
    _issue(world, per, 1)
    with pytest.raises(FixedSettingError, match="length digit") as info:
        world.billing.change_account(world.account.id, reference_scheme=plain)
    assert info.value.fields["setting"] == "reference_scheme"
    assert _stored_account(world).reference_scheme == with_digit
    # its length may grow; the same scheme again changes nothing
    longer = ReferenceScheme(method="ocr_length_digit", length=10)
    assert (
        world.billing.change_account(
            world.account.id, reference_scheme=longer
        ).reference_scheme
        == longer
    )
    world.billing.change_account(world.account.id, reference_scheme=longer)


def test_adding_the_length_digit_after_invoices_is_allowed() -> None:
    world = make_world(
        currency="SEK", reference_scheme=ReferenceScheme(method="ocr", length=8)
    )
    per = world.customer("Per Olsen", card=None, method=CollectionMethod.SEND_INVOICE)
    _issue(world, per, 1)
    changed = world.billing.change_account(
        world.account.id, reference_scheme=ReferenceScheme(method="ocr_length_digit")
    )
    assert changed.reference_scheme.method.value == "ocr_length_digit"


_LENGTHS = st.none() | st.integers(3, 12)
_SCHEMES = st.builds(
    ReferenceScheme,
    method=st.sampled_from(["kid_mod10", "kid_mod11", "ocr", "ocr_length_digit"]),
    length=_LENGTHS,
)


@settings(max_examples=300)
@given(
    old=_SCHEMES,
    new=_SCHEMES,
    issued=st.integers(1, 10**6),
    later=st.integers(1, 10**8),
)
def test_only_dropping_the_length_digit_can_repeat_a_reference(
    old: ReferenceScheme, new: ReferenceScheme, issued: int, later: int
) -> None:
    """The rule change_account enforces is the whole story: an invoice issued
    under one scheme and a later one under another never share a reference,
    except with an OCR length digit dropped (KID and OCR are not mixed: the
    currency decides)."""
    later += issued  # issued after it
    if old.method.value[:3] != new.method.value[:3]:
        return  # KID (NOK) and OCR (SEK) never follow each other in one account
    try:
        before = old.reference(issued, series="INV")
        after = new.reference(later, series="INV")
    except ReferenceLengthError:
        return
    if before == after:
        assert (old.method.value, new.method.value) == ("ocr_length_digit", "ocr")


def test_dropping_the_length_digit_does_repeat_one() -> None:
    with_digit = ReferenceScheme(method="ocr_length_digit")
    plain = ReferenceScheme(method="ocr")
    assert with_digit.reference(47, series="F") == plain.reference(474, series="F")


# -- two changes at once ------------------------------------------------------------


class _SlowReads:
    """A storage whose transactions pause after reading an account or a
    customer, so that two changes read before either writes, unless a lock
    makes the second wait."""

    def __init__(self, inner: SqlStorage) -> None:
        self.inner = inner

    @contextlib.contextmanager
    def transaction(self, *, read_only: bool = False) -> Iterator[Any]:
        with self.inner.transaction(read_only=read_only) as tx:
            yield _SlowReadTransaction(tx)


class _SlowReadTransaction:
    def __init__(self, tx: Any) -> None:
        self._tx = tx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    def get_account(self, *args: Any, **kw: Any) -> Any:
        found = self._tx.get_account(*args, **kw)
        clock.sleep(0.3)
        return found

    def get_customer(self, *args: Any, **kw: Any) -> Any:
        found = self._tx.get_customer(*args, **kw)
        clock.sleep(0.3)
        return found


def test_two_account_changes_at_once_keep_both(sql_storage: SqlStorage) -> None:
    billing = Billing(storage=sql_storage, gateway=InMemoryGateway(environ={}))
    account = billing.create_account(
        name="Fjord Fysio AS", currency="NOK", summary_email="post@fjordfysio.no"
    )
    slow = Billing(storage=_SlowReads(sql_storage), gateway=billing.gateway)  # type: ignore[arg-type]
    results = together(
        lambda: slow.change_account(account.id, name="Fjord Fysioterapi AS"),
        lambda: slow.change_account(account.id, payment_terms_days=30),
        stagger=0.1,
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    with sql_storage.transaction() as tx:
        stored = tx.get_account(account.id)
    assert (stored.name, stored.payment_terms_days) == ("Fjord Fysioterapi AS", 30)


def test_two_customer_changes_at_once_keep_both(sql_storage: SqlStorage) -> None:
    gateway = InMemoryGateway(environ={})
    billing = Billing(storage=sql_storage, gateway=gateway)
    account = billing.create_account(
        name="Fjord Fysio AS", currency="NOK", summary_email="post@fjordfysio.no"
    )
    kari = billing.add_customer(account.id, name="Kari", email="kari@example.no")
    slow = Billing(storage=_SlowReads(sql_storage), gateway=gateway)  # type: ignore[arg-type]
    results = together(
        lambda: slow.change_customer(account.id, kari.id, email="kari@example.com"),
        lambda: slow.change_customer(account.id, kari.id, locale="sv_SE"),
        lambda: slow.set_collection_method(account.id, kari.id, "send_invoice"),
        stagger=0.1,
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    with sql_storage.transaction() as tx:
        stored = tx.get_customer(account.id, kari.id)
    assert (stored.email, stored.locale, stored.collection_method) == (
        "kari@example.com",
        "sv_SE",
        CollectionMethod.SEND_INVOICE,
    )
    assert stored.gateway_customer_id is not None
    kept = gateway.customer_details(stored.gateway_customer_id)
    assert (kept["email"], kept["name"]) == ("kari@example.com", "Kari")

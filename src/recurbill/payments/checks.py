"""Input checks shared by every gateway adapter.

Card numbers and CVCs never enter recurbill: a value that looks like a card
number (13 to 19 digits, possibly grouped by spaces or dashes) is refused
wherever a gateway id, a token, an idempotency key, a description or metadata
is accepted. Make your own ids and keys without long digit runs (a millisecond
timestamp has 13 digits): :mod:`recurbill.ids` uses base32 for that reason.

>>> check_token("pm_card_visa", what="payment_method")
'pm_card_visa'
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

from recurbill.addresses import EMAIL_ALLOWED, is_email_address
from recurbill.errors import InvalidInputError
from recurbill.money import Money
from recurbill.payments.minor_units import check_charge_amount, to_minor_units
from recurbill.payments.protocol import (
    DECLINE_METADATA_KEY,
    IDEMPOTENCY_METADATA_KEY,
)

__all__ = [
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "ChargeRequest",
    "check_amount",
    "check_charge",
    "check_customer",
    "check_email",
    "check_id",
    "check_idempotency_key",
    "check_lookup",
    "check_metadata",
    "check_refund_amount",
    "check_text",
    "check_token",
    "looks_like_card_number",
]

MAX_IDEMPOTENCY_KEY_LENGTH = 255
"""Longest idempotency key accepted (Stripe's limit)."""

_CARD_NUMBER = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_CARD_FIELDS = re.compile(r"(?i)\b(cvc2?|cvv2?|cid|card_?number|pan)\b")
_KEY_CHARS = re.compile(r"[\x21-\x7e]+")


def looks_like_card_number(text: str) -> bool:
    """Whether *text* contains 13 to 19 digits in a row (spaces or dashes allowed).

    >>> looks_like_card_number("4242 4242 4242 4242"), looks_like_card_number("pm_1")
    (True, False)
    """
    return _CARD_NUMBER.search(text) is not None


def _refuse_card_data(value: str, what: str) -> None:
    if looks_like_card_number(value):
        raise InvalidInputError(
            problem=f"{what} looks like a card number",
            allowed=(
                "recurbill never accepts card numbers or CVCs; pass the "
                "gateway's payment method token (pm_…) instead"
            ),
        )


def check_id(value: object, *, what: str) -> str:
    """A gateway id (customer, charge, setup): a non-empty string without spaces."""
    if isinstance(value, str):
        _refuse_card_data(value, what)
    if not isinstance(value, str) or not _KEY_CHARS.fullmatch(value):
        raise InvalidInputError(
            problem=f"{what} {value!r} is not a gateway id",
            allowed="give the non-empty id the gateway returned (no spaces)",
        )
    return value


def check_token(value: object, *, what: str = "token") -> str:
    """A payment method token: a gateway id, never a card number."""
    return check_id(value, what=what)


def check_idempotency_key(value: object) -> str:
    """An idempotency key: 1 to 255 printable ASCII characters, no card number."""
    if isinstance(value, str):
        _refuse_card_data(value, "idempotency key")
    if (
        not isinstance(value, str)
        or not _KEY_CHARS.fullmatch(value)
        or len(value) > MAX_IDEMPOTENCY_KEY_LENGTH
    ):
        raise InvalidInputError(
            problem=f"idempotency key {value!r} is not usable",
            allowed=(
                "give 1 to 255 printable ASCII characters without spaces, "
                "derived from a record saved before the call"
            ),
        )
    return value


def check_text(value: object, *, what: str) -> str:
    """Free text sent to the gateway (a description, a name): no card data."""
    if not isinstance(value, str):
        raise InvalidInputError(
            problem=f"{what} must be text, not {type(value).__name__}",
            allowed="give a string",
        )
    _refuse_card_data(value, what)
    return value


_METADATA_KEYS = 50
"""How many metadata keys Stripe keeps, recurbill's own among them."""
_OURS = ("its idempotency key",)
_CHARGE_OURS = (*_OURS, "the decline of a declined charge it cancels")

_RESERVED = (IDEMPOTENCY_METADATA_KEY, DECLINE_METADATA_KEY)
"""Keys an adapter writes itself: given by a caller they would mislead it."""
_METADATA_KEY_LENGTH = 40
_METADATA_VALUE_LENGTH = 500


def check_metadata(value: object, *, charge: bool = False) -> dict[str, str]:
    """Metadata: string keys and values, no card numbers, no CVC-like keys,
    within Stripe's limits (50 keys with recurbill's own, so 49, or 48 for a
    *charge*; keys of at most 40 characters without square brackets, values
    of at most 500)."""
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            problem=f"metadata must be a mapping, not {type(value).__name__}",
            allowed="give a mapping of strings to strings",
        )
    ours = _CHARGE_OURS if charge else _OURS
    most = _METADATA_KEYS - len(ours)
    if len(value) > most:
        raise InvalidInputError(
            problem=f"metadata has {len(value)} keys",
            allowed=f"at most {most} (the gateway keeps {_METADATA_KEYS}, and "
            f"recurbill adds {' and '.join(ours)})",
        )
    result: dict[str, str] = {}
    for key, item in value.items():
        for part, text in (("key", key), ("value", item)):
            if isinstance(text, str):
                _refuse_card_data(text, f"a metadata {part}")
        if not isinstance(key, str) or not isinstance(item, str) or not key:
            raise InvalidInputError(
                problem=f"metadata entry {key!r}: {item!r} is not text",
                allowed="metadata keys and values must be strings (keys non-empty)",
            )
        if (
            len(key) > _METADATA_KEY_LENGTH
            or "[" in key
            or "]" in key
            or len(item) > _METADATA_VALUE_LENGTH
        ):
            raise InvalidInputError(
                problem=f"metadata entry {key[:60]!r} is too long or its key has "
                "square brackets",
                allowed=f"keys of at most {_METADATA_KEY_LENGTH} characters "
                f"without [ or ], values of at most {_METADATA_VALUE_LENGTH}",
            )
        if key in _RESERVED:
            raise InvalidInputError(
                problem=f"metadata key {key!r} is recurbill's own",
                allowed=f"keys other than {' and '.join(map(repr, _RESERVED))}, "
                "which the gateway adapter writes itself",
            )
        if _CARD_FIELDS.search(key):
            raise InvalidInputError(
                problem=f"metadata key {key!r} names card data",
                allowed="recurbill never sends card numbers or CVCs",
            )
        result[key] = item
    return result


def check_amount(value: object, *, what: str = "amount") -> Money:
    """An amount to move: positive Money with no more decimals than its currency."""
    if not isinstance(value, Money):
        raise InvalidInputError(
            problem=f"{what} must be Money, not {type(value).__name__}",
            allowed="give Money, e.g. Money('850.00', 'NOK')",
        )
    if value.amount <= 0 or not value.is_quantized:
        raise InvalidInputError(
            problem=f"{what} {value} cannot be moved",
            allowed=(
                "give a positive amount with at most "
                f"{value.currency.decimals} decimals for {value.currency}"
            ),
        )
    return value


@attrs.frozen(kw_only=True)
class ChargeRequest:
    """The checked arguments of :meth:`PaymentGateway.charge`.

    Two requests are equal when their parameters are, which is what an
    idempotency key's replay compares.
    """

    customer: str
    payment_method: str
    amount: Money
    idempotency_key: str
    off_session: bool
    description: str
    metadata: Mapping[str, str]

    @property
    def minor_units(self) -> int:
        """The amount as the gateway's integer minor units."""
        return to_minor_units(self.amount)


def check_charge(
    customer: object,
    *,
    payment_method: object,
    amount: object,
    idempotency_key: object,
    off_session: object,
    description: object,
    metadata: object,
) -> ChargeRequest:
    """Check every argument of a charge, including that the gateway can take the
    amount (:func:`~recurbill.payments.minor_units.check_charge_amount`)."""
    money = check_amount(amount)
    check_charge_amount(money)
    if not isinstance(off_session, bool):
        raise InvalidInputError(
            problem=f"off_session={off_session!r}", allowed="True or False"
        )
    return ChargeRequest(
        customer=check_id(customer, what="customer"),
        payment_method=check_token(payment_method, what="payment_method"),
        amount=money,
        idempotency_key=check_idempotency_key(idempotency_key),
        off_session=off_session,
        description=check_text(description, what="description"),
        metadata=check_metadata({} if metadata is None else metadata, charge=True),
    )


def check_lookup(
    idempotency_key: object, charge_id: object
) -> tuple[str, None] | tuple[None, str]:
    """Exactly one of a charge's idempotency key and its id, checked."""
    if idempotency_key is not None and charge_id is None:
        return check_idempotency_key(idempotency_key), None
    if idempotency_key is None and charge_id is not None:
        return None, check_id(charge_id, what="charge_id")
    raise InvalidInputError(
        problem="retrieve_charge() needs exactly one of idempotency_key and charge_id",
        allowed="give the key the charge was made with, or its id",
    )


def check_email(value: object) -> str:
    """A customer's e-mail address, by the rule the records use."""
    email = check_text(value, what="email")
    if not is_email_address(email):
        raise InvalidInputError(
            problem=f"email {email!r} is not a single e-mail address",
            allowed=f"give {EMAIL_ALLOWED}",
        )
    return email


def check_customer(*, email: object, name: object) -> tuple[str, str]:
    """A gateway customer's e-mail address and name, as every adapter checks
    them; :class:`~recurbill.Billing` checks a customer's details so before it
    stores them."""
    return check_email(email), check_text(name, what="name")


def check_refund_amount(value: object) -> Money | None:
    """A refund amount: None (all that is left) or Money the gateway can take."""
    if value is None:
        return None
    money = check_amount(value, what="refund amount")
    to_minor_units(money)
    return money

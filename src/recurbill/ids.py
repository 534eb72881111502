"""Record ids: random for new things, derived for things that must exist once.

A derived id is a pure function of what identifies the thing (a template and
an occurrence index, an invoice and an attempt number), so a rerun after a
crash computes the same id and the storage's uniqueness refuses a double.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from typing import Protocol

__all__ = ["IdFactory", "automatic_charge_id", "derived_id", "random_id"]

_NAMESPACE = uuid.UUID("5d0c3f0e-6a43-4b8e-9d55-8f1e2b0b7a11")
_NAMESPACE_BYTES = _NAMESPACE.bytes
# base32 (a-z, 2-7): short, and never a run of digits that looks like a card
# number to the gateways' card-data guards; two letters per 10 bits at a time
_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
_PAIRS = tuple(first + second for first in _ALPHABET for second in _ALPHABET)
_SHIFTS = tuple(range(120, -1, -10))
# the version and variant bits of a UUID (RFC 4122), as uuid.UUID sets them
_VARIANT_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_VERSION_4 = (0x8000 << 48) | (4 << 76)
_VERSION_5 = (0x8000 << 48) | (5 << 76)


class IdFactory(Protocol):
    """Makes a fresh id with a readable prefix (``inv``, ``cus``, ``pay``)."""

    def __call__(self, prefix: str) -> str:
        """A new, unique id starting with ``prefix_``."""
        ...


def _text(value: int) -> str:
    """The 128-bit *value* as 26 lowercase base32 characters (RFC 4648, no padding)."""
    value <<= 2  # 130 bits: 13 groups of 10
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def random_id(prefix: str) -> str:
    """A new random id: ``prefix_`` and 26 base32 characters (a UUID 4).

    >>> len(random_id("cus"))
    30
    """
    value = int.from_bytes(os.urandom(16), "big")
    return f"{prefix}_{_text((value & _VARIANT_CLEAR) | _VERSION_4)}"


def derived_id(prefix: str, *parts: str) -> str:
    """The id of the thing identified by *parts*; the same parts, the same id.

    It is the UUID 5 of the parts (joined by a unit separator) in recurbill's
    namespace, in base32, so ids stored by any version stay the ones a rerun
    computes.

    >>> derived_id("inv", "tpl_1", "3") == derived_id("inv", "tpl_1", "3")
    True
    """
    key = "\x1f".join(parts).encode()
    digest = hashlib.sha1(_NAMESPACE_BYTES + key, usedforsecurity=False).digest()
    value = int.from_bytes(digest[:16], "big")
    return f"{prefix}_{_text((value & _VARIANT_CLEAR) | _VERSION_5)}"


def automatic_charge_id(account_id: str, invoice_id: str, attempt: int) -> str:
    """The id of attempt number *attempt* (1, 2, …) to charge invoice
    *invoice_id* automatically (off session, the invoice alone): the first
    charge and each retry after a decline, so the attempts of one invoice
    are found by id, one after the other, without a list of the customer's
    payments."""
    return derived_id("pay", account_id, invoice_id, str(attempt))

"""Record ids: random for new things, derived for things that must exist once.

A derived id is a pure function of what identifies the thing (a template and
an occurrence index, an invoice and an attempt number), so a rerun after a
crash computes the same id and the storage's uniqueness refuses a double.
"""

from __future__ import annotations

import base64
import uuid
from typing import Protocol

__all__ = ["IdFactory", "derived_id", "random_id"]

_NAMESPACE = uuid.UUID("5d0c3f0e-6a43-4b8e-9d55-8f1e2b0b7a11")


class IdFactory(Protocol):
    """Makes a fresh id with a readable prefix (``inv``, ``cus``, ``pay``)."""

    def __call__(self, prefix: str) -> str:
        """A new, unique id starting with ``prefix_``."""
        ...


def _text(value: uuid.UUID) -> str:
    # base32 (a-z, 2-7): short, and never a run of digits that looks like a
    # card number to the gateways' card-data guards
    return base64.b32encode(value.bytes).decode().rstrip("=").lower()


def random_id(prefix: str) -> str:
    """A new random id: ``prefix_`` and 26 base32 characters.

    >>> len(random_id("cus"))
    30
    """
    return f"{prefix}_{_text(uuid.uuid4())}"


def derived_id(prefix: str, *parts: str) -> str:
    """The id of the thing identified by *parts*; the same parts, the same id.

    >>> derived_id("inv", "tpl_1", "3") == derived_id("inv", "tpl_1", "3")
    True
    """
    key = "\x1f".join(parts)
    return f"{prefix}_{_text(uuid.uuid5(_NAMESPACE, key))}"

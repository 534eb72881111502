"""Ids: derived ids never change between versions; random ids are UUID 4s."""

from __future__ import annotations

import base64
import uuid

from hypothesis import given
from hypothesis import strategies as st

from recurbill.ids import derived_id, random_id

_NAMESPACE = uuid.UUID("5d0c3f0e-6a43-4b8e-9d55-8f1e2b0b7a11")
_PARTS = st.lists(st.text(st.characters(exclude_categories=("Cs",))), max_size=4)


def _reference(prefix: str, *parts: str) -> str:
    """The derivation as first written: uuid5, then base32 without padding."""
    value = uuid.uuid5(_NAMESPACE, "\x1f".join(parts))
    return f"{prefix}_{base64.b32encode(value.bytes).decode().rstrip('=').lower()}"


def _uuid(id_: str) -> uuid.UUID:
    text = id_.partition("_")[2].upper() + "======"
    return uuid.UUID(bytes=base64.b32decode(text))


@given(_PARTS)
def test_a_derived_id_is_the_uuid5_of_its_parts_in_base32(parts: list[str]) -> None:
    assert derived_id("inv", *parts) == _reference("inv", *parts)


def test_derived_ids_stored_by_earlier_versions_are_computed_again() -> None:
    assert derived_id("inv", "tpl_1", "3") == "inv_dajul7rlhbok7ch7rlntakurim"
    assert _uuid(derived_id("pay", "inv_1", "2")).version == 5


def test_a_random_id_is_a_fresh_uuid4_in_base32() -> None:
    made = {random_id("cus") for _ in range(1000)}
    assert len(made) == 1000
    for id_ in made:
        assert id_.startswith("cus_")
        assert len(id_) == 30
        assert id_[4:].isalnum()
        assert id_[4:] == id_[4:].lower()
        value = _uuid(id_)
        assert value.version == 4
        assert value.variant == uuid.RFC_4122

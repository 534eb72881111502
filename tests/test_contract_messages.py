"""The contract suites' asserts are rewritten by pytest, so a failure shows values."""

from __future__ import annotations

import pytest
from _pytest.assertion.rewrite import AssertionRewritingHook

import recurbill.testing.payments
import recurbill.testing.storage


@pytest.mark.parametrize(
    "module", [recurbill.testing.storage, recurbill.testing.payments]
)
def test_a_contract_suite_is_loaded_with_its_asserts_rewritten(module: object) -> None:
    assert isinstance(module.__loader__, AssertionRewritingHook)  # type: ignore[attr-defined]

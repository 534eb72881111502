"""The daily summary, rendered for a fixed run, against reviewed golden files.

To accept a deliberate change, delete the golden file and run the test once:
it writes the new rendering and fails, asking you to review it.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest
from render_fixtures import CURRENCY, account, report

from recurbill.notify.render import render_summary

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize("locale", sorted(CURRENCY))
def test_daily_summary_matches_golden_file(locale: str) -> None:
    text = render_summary(account(locale), report(CURRENCY[locale])).text
    path = GOLDEN / f"summary_{locale}.txt"
    if not path.exists():
        path.write_text(text, encoding="utf-8")
        pytest.fail(f"wrote {path.name}; review it and run the tests again")
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=f"golden/{path.name}",
                tofile="rendered",
            )
        )
        pytest.fail(f"the {locale} summary differs from its golden file:\n{diff}")

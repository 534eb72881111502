"""The ``recurbill`` command."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the ``recurbill`` command; return its exit code."""
    print("recurbill: no commands yet", file=sys.stderr)
    return 2

"""Contract suites every adapter must pass, and factories for your own tests.

Subclass a contract in your test suite and provide its fixture to check your
own adapter the way recurbill checks its own.
"""

from __future__ import annotations

__all__: list[str] = []

"""Storage port and its adapters: in memory, and SQL (SQLite default, PostgreSQL)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from recurbill.storage.protocol import Storage, Transaction

if TYPE_CHECKING:
    from recurbill.storage.memory import InMemoryStorage
    from recurbill.storage.sql import SqlStorage

__all__ = ["InMemoryStorage", "SqlStorage", "Storage", "Transaction"]


def __getattr__(name: str) -> object:
    """Import adapters lazily so ``import recurbill.storage`` stays light."""
    if name == "InMemoryStorage":
        from recurbill.storage.memory import InMemoryStorage

        return InMemoryStorage
    if name == "SqlStorage":
        from recurbill.storage.sql import SqlStorage

        return SqlStorage
    raise AttributeError(f"module 'recurbill.storage' has no attribute {name!r}")

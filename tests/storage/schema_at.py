"""Write rows into a database at an older schema version, as that version had it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

from recurbill.storage import schema


def columns_at(table: sa.Table, version: int) -> list[str]:
    """The names of *table*'s columns at schema *version*, in order."""
    return [c.name for c in table.columns if c.info.get("since", 1) <= version]


def insert_at(
    conn: sa.Connection, version: int, table: sa.Table, row: Mapping[str, Any]
) -> None:
    """Insert *row* leaving out the columns *version* did not have yet."""
    known = set(columns_at(table, version))
    conn.execute(sa.insert(table), {k: v for k, v in row.items() if k in known})


def set_version(engine: sa.Engine, version: int) -> None:
    """Record *version* as the database's schema version (nothing else changes)."""
    with engine.begin() as conn:
        conn.execute(sa.update(schema.schema_version).values(version=version))

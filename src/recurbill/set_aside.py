"""What a daily run goes on past: rows it cannot read (set aside, reported,
read again by the next run) and gateway calls without an answer (counted,
until too many in a row stop the charging)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import attrs

from recurbill.errors import GatewayUnavailableError, UnreadableRecordError
from recurbill.storage.protocol import skipping

__all__ = [
    "MAX_SET_ASIDE",
    "UNKNOWN_IN_A_ROW",
    "SetAside",
    "Unanswered",
    "listed",
]

_R = TypeVar("_R")

UNKNOWN_IN_A_ROW = 5
"""Charges in a row without a gateway answer after which a batch stops."""


@attrs.define
class Unanswered:
    """Gateway calls in a row without an answer, counted across one run."""

    count: int = 0

    def after(self, answered: bool) -> GatewayUnavailableError | None:
        """Count one call; the error that stops charging once too many failed."""
        self.count = 0 if answered else self.count + 1
        if self.count < UNKNOWN_IN_A_ROW:
            return None
        return GatewayUnavailableError(
            problem=f"the gateway did not answer {self.count} calls in a row",
            allowed="run again once it answers: the charges without an answer "
            "are looked up first, the others are made then",
        )


MAX_SET_ASIDE = 100
"""A read of one account that meets more rows it cannot read than this stops
the run with the error (each one costs the read again): that many is no hand
edit, but a store to repair first."""


@attrs.define
class SetAside:
    """Rows a daily run could not read and went on without, per account: each
    is reported once and read again by the next run."""

    errors: dict[str, dict[tuple[str, str], UnreadableRecordError]] = attrs.Factory(
        dict
    )

    def add(self, account_id: str, error: UnreadableRecordError) -> None:
        """Set aside the row *error* names, read for *account_id*."""
        key = (str(error.fields.get("kind")), str(error.fields.get("key")))
        self.errors.setdefault(account_id, {}).setdefault(key, error)

    def ids(self, account_id: str, kind: str) -> list[str]:
        """The ids of *account_id*'s rows of *kind* set aside so far."""
        return [key for k, key in self.errors.get(account_id, {}) if k == kind]

    def read(
        self,
        account_id: str,
        kind: str,
        read: Callable[[list[str]], list[_R]],
    ) -> list[_R]:
        """*read* of *account_id*'s records, given the ids of its rows of *kind*
        to leave out; a row of that kind it cannot read is set aside and
        *read* asked again without it. Any other error is raised."""
        while True:
            skip = self.ids(account_id, kind)
            try:
                return read(skip)
            except UnreadableRecordError as error:
                key = error.fields.get("key")
                if (
                    error.fields.get("kind") != kind
                    or error.fields.get("account") != account_id
                    or not isinstance(key, str)
                    or key in skip  # left out, yet read again
                    or len(skip) >= MAX_SET_ASIDE
                ):
                    raise
                self.add(account_id, error)


def listed(
    list_records: Callable[..., list[_R]], account_id: str, statuses: Sequence[Any]
) -> Callable[[list[str]], list[_R]]:
    """The read of *account_id*'s records in *statuses* by *list_records*
    (``list_payments``, ``list_refunds``) but the ids it is given, for
    :meth:`SetAside.read` (``skip_ids`` only when there are some: older
    adapters lack it)."""
    return lambda skip: list_records(account_id, statuses=statuses, **skipping(skip))

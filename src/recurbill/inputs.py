"""Checks of an argument's kind, shared by the calculators and value types.

The low layers (:mod:`~recurbill.money`, :mod:`~recurbill.invoice`,
:mod:`~recurbill.references`, :mod:`~recurbill.settlement`, outbox delivery)
sit below :mod:`recurbill.arguments`, so they check what they are given
here. Each check returns the value, or raises
:class:`~recurbill.errors.InvalidInputError` (or the subclass given as
``error``, the one its module raises) whose message names the parameter and
what is allowed.

>>> sequence([1, 2], "weights")
(1, 2)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

from recurbill.errors import InvalidInputError

__all__ = ["flag", "has_attributes", "instance", "sequence", "text"]

_T = TypeVar("_T")


def flag(
    value: object, name: str, *, error: type[InvalidInputError] = InvalidInputError
) -> bool:
    """*value* if it is True or False (not 1, None or "no", which would be
    taken as true or false without saying)."""
    if value is True or value is False:
        return value
    raise error(
        problem=f"{name}={value!r} is not True or False",
        allowed=f"give {name} as True or False",
    )


def text(
    value: object,
    name: str,
    *,
    allowed: str | None = None,
    error: type[InvalidInputError] = InvalidInputError,
) -> str:
    """*value* if it is text that is not blank."""
    if isinstance(value, str) and value.strip():
        return value
    raise error(
        problem=f"{name} {value!r} is empty or not text",
        allowed=allowed or f"give {name} as a non-empty string",
    )


def sequence(
    value: object,
    name: str,
    *,
    of: type[_T] | None = None,
    allowed: str | None = None,
    error: type[InvalidInputError] = InvalidInputError,
) -> tuple[_T, ...]:
    """*value*, a list, tuple or other iterable of values, as a tuple; text,
    bytes, a mapping or a lone value is refused.

    With *of*, every item must be an instance of it. A tuple is returned as
    it is; the items' own values are not checked here.
    """
    what = f"a sequence of {of.__name__} values" if of else "a sequence"
    if type(value) is not tuple and (
        isinstance(value, (str, bytes, bytearray, Mapping))
        or not isinstance(value, Iterable)
    ):
        raise error(
            problem=f"{name} {value!r} is not {what}",
            allowed=allowed or f"give {name} as a list or tuple",
        )
    items: tuple[_T, ...] = value if type(value) is tuple else tuple(value)
    if of is not None:
        for item in items:
            if not isinstance(item, of):
                raise error(
                    problem=f"{name} contain {item!r}, not {of.__name__}",
                    allowed=allowed or f"give {name} as a list of {of.__name__}",
                )
    return items


def instance(
    value: object,
    kind: type[_T],
    name: str,
    *,
    allowed: str,
    error: type[InvalidInputError] = InvalidInputError,
) -> _T:
    """*value* if it is a *kind* (a Money, a Totals)."""
    if isinstance(value, kind):
        return value
    raise error(problem=f"{name} {value!r} is not {kind.__name__}", allowed=allowed)


def has_attributes(
    value: object,
    name: str,
    attributes: Iterable[str],
    *,
    allowed: str,
    error: type[InvalidInputError] = InvalidInputError,
) -> None:
    """Refuse *value* unless it has every one of *attributes*: the methods or
    fields of the protocol it is used as (no subclassing needed)."""
    missing = [a for a in attributes if not hasattr(value, a)]
    if missing:
        raise error(
            problem=f"{name} {value!r} ({type(value).__name__}) has no "
            + ", ".join(missing),
            allowed=allowed,
        )

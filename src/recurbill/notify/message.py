"""The e-mail a notifier sends: a frozen value with a plain-text and an HTML part.

It lives in its own module, below both the renderer that builds it and the
notifiers that send it, so neither has to import the other.
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping

import attrs

from recurbill.addresses import EMAIL_ALLOWED, is_email_address
from recurbill.errors import InvalidInputError

__all__ = ["RESERVED_HEADERS", "Message"]

RESERVED_HEADERS = frozenset(
    {
        "bcc",
        "cc",
        "content-transfer-encoding",
        "content-type",
        "from",
        "mime-version",
        "sender",
        "subject",
        "to",
    }
)
"""Header names a message may not set: its fields and the notifier set them."""

_HEADER_NAME = re.compile(r"[!-9;-~]+")  # printable ASCII without ':' or space


def _address(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str):
        raise InvalidInputError(
            problem=f"{attribute.name} {value!r} is not text",
            allowed="give one e-mail address such as 'kari@example.no'",
        )
    if not is_email_address(value):
        raise InvalidInputError(
            problem=f"{attribute.name} {value!r} is not a single e-mail address",
            allowed=f"give {EMAIL_ALLOWED}",
        )


def _one_line(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(
            problem=f"{attribute.name} {value!r} is empty or not text",
            allowed=f"{attribute.name} must be non-empty text",
        )
    if "\r" in value or "\n" in value:
        raise InvalidInputError(
            problem=f"{attribute.name} {value!r} contains a line break",
            allowed=f"{attribute.name} must be a single line",
        )


def _text(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInputError(
            problem=f"{attribute.name} is empty or not text ({type(value).__name__})",
            allowed="every message needs a readable plain-text body",
        )


def _html(
    instance: object, attribute: attrs.Attribute[str | None], value: str | None
) -> None:
    if value is not None and not isinstance(value, str):
        raise InvalidInputError(
            problem=f"html is {type(value).__name__}, not text",
            allowed="give the HTML alternative as a string, or None for text only",
        )


def _freeze_headers(value: object) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            problem=f"headers {value!r} is not a mapping",
            allowed="give headers as a mapping of name to value",
        )
    frozen: dict[str, str] = {}
    for name, text in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise InvalidInputError(
                problem=f"header name {name!r} is invalid",
                allowed="use printable ASCII without spaces or ':', e.g. 'Reply-To'",
            )
        if name.lower() in RESERVED_HEADERS:
            raise InvalidInputError(
                problem=f"header {name!r} is set from the message's fields",
                allowed="use recipient and subject; other headers such as "
                "'Reply-To' or 'Message-ID' may be given",
            )
        if not isinstance(text, str) or "\r" in text or "\n" in text:
            raise InvalidInputError(
                problem=f"header {name!r} has the value {text!r}",
                allowed="header values must be single-line text",
            )
        frozen[name] = text
    return types.MappingProxyType(frozen)


@attrs.frozen(kw_only=True)
class Message:
    """One e-mail to one recipient: subject, a plain-text body and an HTML alternative.

    The plain text must be readable on its own; ``html`` is optional. ``headers``
    adds headers such as ``Reply-To``, ``Message-ID`` or ``Date`` (the fields set
    ``To`` and ``Subject``; the notifier sets ``From``). Values are checked, so a
    line break can never smuggle in a header.

    >>> message = Message(
    ...     recipient="kari@example.no", subject="Kvittering", text="Takk!"
    ... )
    >>> message.html is None
    True
    """

    recipient: str = attrs.field(validator=_address)
    subject: str = attrs.field(validator=_one_line)
    text: str = attrs.field(validator=_text)
    html: str | None = attrs.field(default=None, validator=_html)
    headers: Mapping[str, str] = attrs.field(
        factory=dict, converter=_freeze_headers, hash=False
    )

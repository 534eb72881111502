"""The one rule for an e-mail address, shared by the records and the messages.

An account's or a customer's address is checked when it is stored, with the
same rule the e-mail is checked with when it is sent, so an address that was
accepted can always be written to.
"""

from __future__ import annotations

__all__ = ["EMAIL_ALLOWED", "is_email_address"]

EMAIL_ALLOWED = "one bare address such as 'kari@example.no' (no name, no list)"
"""What an address may be, for error messages."""

_NOT_IN_ADDRESS = frozenset('<>,;"')


def is_email_address(value: object) -> bool:
    """Whether *value* is one bare e-mail address: ``local@domain.tld``.

    No display name, no angle brackets, no list, no quotes and no spaces: the
    shape every notifier can put in a ``To`` header as it is.

    >>> is_email_address("kari@example.no"), is_email_address("<kari@example.no>")
    (True, False)
    """
    if not isinstance(value, str):
        return False
    local, at, domain = value.rpartition("@")
    return (
        bool(local and at)
        and "." in domain
        and not any(c.isspace() or c in _NOT_IN_ADDRESS for c in value)
    )

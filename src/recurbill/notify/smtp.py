"""Send e-mail over SMTP with the standard library (:mod:`smtplib`).

Each message becomes a MIME ``multipart/alternative`` with a UTF-8 plain-text
part and, when given, an HTML alternative; both are quoted-printable, so the
message is 7-bit clean for any server, and non-ASCII headers (``Kvittering
fra Bakeriet Ærlig``) are RFC 2047 encoded words. Every ``smtplib``, ``ssl``
and socket error becomes :class:`~recurbill.errors.DeliveryError`.

One connection per message keeps the notifier stateless and thread-safe; the
outbox sends in small batches, where reconnecting costs little.
"""

from __future__ import annotations

import contextlib
import math
import smtplib
import socket
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import parseaddr
from typing import Literal, NoReturn

from recurbill.errors import DeliveryError, InvalidInputError
from recurbill.notify.protocol import Message

__all__ = ["Security", "SmtpNotifier", "ascii_domain", "build_email"]

Security = Literal["starttls", "tls", "none"]
"""How the connection is protected: STARTTLS upgrade, implicit TLS, or none."""

_SECURITY = ("starttls", "tls", "none")


def _sender(value: object) -> tuple[str, str]:
    if not isinstance(value, str) or "\r" in value or "\n" in value:
        raise InvalidInputError(
            problem=f"sender {value!r} is not a single-line address",
            allowed="give 'billing@example.no' or 'Bakeriet <billing@example.no>'",
        )
    name, address = parseaddr(value)
    local, at, domain = address.rpartition("@")
    if not (local and at and "." in domain):
        raise InvalidInputError(
            problem=f"sender {value!r} has no e-mail address",
            allowed="give 'billing@example.no' or 'Bakeriet <billing@example.no>'",
        )
    return name, address


def ascii_domain(address: str) -> str:
    """*address* with an internationalised domain in its ASCII form (IDNA).

    ``kari@bæreriet.no`` becomes ``kari@xn--breriet-mxa.no``, which every
    server takes; only a non-ASCII local part still needs a server that
    offers SMTPUTF8. A domain that would not come back the same (the codec
    is IDNA 2003, which turns ``straße.de`` into another domain,
    ``strasse.de``) or cannot be encoded is left as it is.

    >>> ascii_domain("kari@bæreriet.no"), ascii_domain("kari@straße.de")
    ('kari@xn--breriet-mxa.no', 'kari@straße.de')
    """
    local, at, domain = address.rpartition("@")
    if not at or domain.isascii():
        return address
    try:
        encoded = domain.encode("idna")
        same = encoded.decode("idna").lower() == domain.lower()
    except UnicodeError:
        return address
    return f"{local}@{encoded.decode('ascii')}" if same else address


def build_email(message: Message, *, sender: str) -> EmailMessage:
    """The MIME message :class:`SmtpNotifier` sends for *message* from *sender*.

    Exposed so an application can inspect or archive exactly what goes out.
    """
    name, address = _sender(sender)
    email = EmailMessage(policy=SMTP_POLICY)
    # The body first: set_content() drops Content-* headers set before it.
    email.set_content(message.text, subtype="plain", cte="quoted-printable")
    if message.html is not None:
        email.add_alternative(message.html, subtype="html", cte="quoted-printable")
    local, _, domain = ascii_domain(address).rpartition("@")
    email["From"] = Address(display_name=name, username=local, domain=domain)
    email["To"] = ascii_domain(message.recipient)
    email["Subject"] = message.subject
    for header, value in message.headers.items():
        email[header] = value
    return email


class SmtpNotifier:
    """A ``Notifier`` that hands each message to an SMTP server.

    *security* is ``"starttls"`` (port 587: connect, then upgrade),
    ``"tls"`` (port 465: TLS from the first byte) or ``"none"`` (a local relay).
    Credentials are only sent over an encrypted connection, and the password
    never appears in ``repr()``, errors or logs. *ssl_context* defaults to
    :func:`ssl.create_default_context` (certificate and host name checked).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        security: Security,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
    ) -> None:
        if not isinstance(host, str) or not host.strip():
            raise InvalidInputError(
                problem=f"SMTP host {host!r} is empty or not text",
                allowed="give a host name or address such as 'smtp.example.no'",
            )
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise InvalidInputError(
                problem=f"SMTP port {port!r} is invalid",
                allowed="give a port from 1 to 65535 (587 starttls, 465 tls, 25)",
            )
        _sender(sender)
        if security not in _SECURITY:
            raise InvalidInputError(
                problem=f"security {security!r} is unknown",
                allowed="use 'starttls', 'tls' or 'none'",
            )
        if (username is None) != (password is None):
            raise InvalidInputError(
                problem="only one of username and password was given",
                allowed="give both to log in, or neither",
            )
        if username is not None and security == "none":
            raise InvalidInputError(
                problem="credentials would be sent over an unencrypted connection",
                allowed="use security='starttls' or 'tls' to log in",
            )
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise InvalidInputError(
                problem=f"timeout {timeout!r} is invalid",
                allowed="give a number of seconds greater than 0",
            )
        self.host = host
        self.port = port
        self.sender = sender
        self.security: Security = security
        self.username = username
        self._password = password
        self.timeout = float(timeout)
        self._ssl_context = ssl_context
        self._local_hostname = local_hostname

    def __repr__(self) -> str:
        login = "" if self.username is None else f", username={self.username!r}"
        return (
            f"SmtpNotifier({self.host!r}, {self.port}, sender={self.sender!r}, "
            f"security={self.security!r}{login})"
        )

    @property
    def _where(self) -> str:
        return f"SMTP server {self.host}:{self.port}"

    def _context(self) -> ssl.SSLContext:
        return self._ssl_context or ssl.create_default_context()

    def send(self, message: Message) -> None:
        """Deliver *message* to the server, or raise ``DeliveryError``.

        Returns once the server accepted the message for its recipient.
        """
        if not isinstance(message, Message):
            raise InvalidInputError(
                problem=f"cannot send {type(message).__name__}",
                allowed="send a recurbill.notify.Message",
            )
        email = build_email(message, sender=self.sender)
        envelope_from = ascii_domain(_sender(self.sender)[1])
        client: smtplib.SMTP | None = None
        try:
            client = self._connect()
            if self.security == "starttls":
                client.ehlo()
                client.starttls(context=self._context())
            if self.username is not None and self._password is not None:
                client.login(self.username, self._password)
            refused = client.send_message(
                email,
                from_addr=envelope_from,
                to_addrs=[ascii_domain(message.recipient)],
            )
            if refused:
                self._refused(refused)
            # Accepted already: a failed QUIT does not undo the delivery.
            with contextlib.suppress(smtplib.SMTPException, OSError):
                client.quit()
        except smtplib.SMTPRecipientsRefused as exc:
            self._refused(exc.recipients, exc)
        except smtplib.SMTPAuthenticationError as exc:
            self._fail(
                f"{self._where} refused the login of user {self.username!r} "
                f"({exc.smtp_code})",
                "check the SMTP username and password",
                exc,
                permanent=True,
            )
        except smtplib.SMTPSenderRefused as exc:
            self._fail(
                f"{self._where} refused the sender {exc.sender!r}: "
                f"{exc.smtp_code} {_text(exc.smtp_error)}",
                "use a sender address the server accepts for this account",
                exc,
                permanent=exc.smtp_code >= 500,
            )
        except smtplib.SMTPNotSupportedError as exc:
            self._fail(
                f"{self._where} does not support what was needed: {exc}",
                "check security= and the port (587 is usually 'starttls', 465 "
                "'tls'); logging in needs a server that offers AUTH, and a "
                "non-ASCII address one that offers SMTPUTF8",
                exc,
                permanent=True,
            )
        except smtplib.SMTPResponseException as exc:
            self._fail(
                f"{self._where} answered {exc.smtp_code} {_text(exc.smtp_error)}",
                "the message was not sent; retry later",
                exc,
                permanent=exc.smtp_code >= 500,
            )
        except smtplib.SMTPServerDisconnected as exc:
            if isinstance(exc.__context__, TimeoutError):
                self._timed_out(exc)
            self._fail(
                f"{self._where} closed the connection ({exc})",
                "the message was not sent; retry later",
                exc,
            )
        except smtplib.SMTPException as exc:
            self._fail(f"{self._where} failed: {exc}", "the message was not sent", exc)
        except ssl.SSLError as exc:
            self._fail(
                f"TLS with {self._where} failed ({exc.reason or exc})",
                "check security= (465 is 'tls', 587 is 'starttls') and the "
                "server's certificate",
                exc,
            )
        except TimeoutError as exc:
            self._timed_out(exc)
        except ConnectionRefusedError as exc:
            self._fail(
                f"{self._where} refused the connection",
                "check host and port; the message was not sent",
                exc,
            )
        except socket.gaierror as exc:
            self._fail(
                f"SMTP host {self.host!r} could not be resolved ({exc})",
                "check the host name; the message was not sent",
                exc,
            )
        except OSError as exc:
            self._fail(
                f"{self._where} could not be reached ({exc})",
                "the message was not sent; retry later",
                exc,
            )
        finally:
            if client is not None:
                client.close()

    def _connect(self) -> smtplib.SMTP:
        if self.security == "tls":
            return smtplib.SMTP_SSL(
                self.host,
                self.port,
                timeout=self.timeout,
                local_hostname=self._local_hostname,
                context=self._context(),
            )
        return smtplib.SMTP(
            self.host,
            self.port,
            timeout=self.timeout,
            local_hostname=self._local_hostname,
        )

    def _timed_out(self, exc: BaseException) -> NoReturn:
        self._fail(
            f"{self._where} did not answer within {self.timeout:g} s",
            "the message was not sent; retry later",
            exc,
        )

    def _refused(
        self,
        recipients: dict[str, tuple[int, bytes]],
        exc: BaseException | None = None,
    ) -> NoReturn:
        parts = [
            f"{address} ({code} {_text(reply)})"
            for address, (code, reply) in recipients.items()
        ]
        self._fail(
            f"{self._where} refused the recipient {', '.join(parts)}",
            "check the recipient's e-mail address; the message was not sent",
            exc,
            permanent=all(code >= 500 for code, _ in recipients.values()),
            recipients=tuple(recipients),
        )

    @staticmethod
    def _fail(
        problem: str,
        allowed: str,
        exc: BaseException | None,
        *,
        permanent: bool = False,
        recipients: tuple[str, ...] = (),
    ) -> NoReturn:
        error = DeliveryError(
            problem=problem,
            allowed=allowed,
            permanent=permanent,
            recipients=recipients,
        )
        if exc is None:
            raise error
        raise error from exc


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        return reply.decode("utf-8", "replace")
    return reply

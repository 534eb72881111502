"""SmtpNotifier against real SMTP servers on loopback."""

from __future__ import annotations

import re

import pytest
from smtp_servers import Server, client_context, free_port

from recurbill.errors import DeliveryError, InvalidInputError
from recurbill.notify.message import Message
from recurbill.notify.smtp import SmtpNotifier, ascii_domain, build_email

SENDER = "Bakeriet Ærlig AS <faktura@bakeriet.no>"


def message(recipient: str = "kari@example.no", **changes: object) -> Message:
    fields: dict[str, object] = {
        "recipient": recipient,
        "subject": "Kvittering fra Bakeriet Ærlig – Þórður, Guðrún, Åsa",
        "text": "Hei Kari,\n\nTakk for betalingen på 1\xa0234,50\xa0kr.\nØre: 50\n",
        "html": "<p>Hei Kari,</p><p>Takk for betalingen på 1&nbsp;234,50&nbsp;kr.</p>",
        "headers": {"Reply-To": "post@bakeriet.no", "Message-ID": "<n-1@recurbill>"},
    }
    fields.update(changes)
    return Message(**fields)  # type: ignore[arg-type]


def plain(server: Server, **options: object) -> SmtpNotifier:
    return SmtpNotifier(
        server.host,
        server.port,
        sender=SENDER,
        security="none",
        local_hostname="localhost",
        **options,  # type: ignore[arg-type]
    )


def test_plain_smtp_delivers_both_parts_and_encoded_headers(
    smtp_server: Server,
) -> None:
    plain(smtp_server).send(message())

    [received] = smtp_server.received
    assert received.mail_from == "faktura@bakeriet.no"
    assert received.rcpt_tos == ["kari@example.no"]
    raw_headers = received.content.split(b"\r\n\r\n", 1)[0]
    assert raw_headers.isascii()  # 7-bit clean: encoded words, no raw UTF-8
    assert b"=?utf-8?" in raw_headers
    email = received.email
    assert email["Subject"] == "Kvittering fra Bakeriet Ærlig – Þórður, Guðrún, Åsa"
    assert email["From"] == SENDER
    assert email["To"] == "kari@example.no"
    assert email["Reply-To"] == "post@bakeriet.no"
    assert email["Message-ID"] == "<n-1@recurbill>"
    assert email.get_content_type() == "multipart/alternative"
    text_part, html_part = email.iter_parts()
    assert text_part.get_content_type() == "text/plain"
    assert html_part.get_content_type() == "text/html"
    for part in (text_part, html_part):
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert text_part.get_content().replace("\r\n", "\n") == message().text
    assert "1&nbsp;234,50&nbsp;kr" in html_part.get_content()
    assert received.content.isascii()


@pytest.mark.parametrize("domain", ["bæreriet.no", "Bæreriet.NO"])
def test_a_nordic_domain_reaches_a_server_without_smtputf8(
    smtp_server: Server, domain: str
) -> None:
    plain(smtp_server).send(message(f"kari@{domain}"))
    [received] = smtp_server.received  # aiosmtpd offers no SMTPUTF8 by default
    assert [r.lower() for r in received.rcpt_tos] == ["kari@xn--breriet-mxa.no"]
    assert received.email["To"].lower() == "kari@xn--breriet-mxa.no"
    assert received.content.isascii()


def test_a_domain_idna_2003_would_change_is_left_as_it_is() -> None:
    assert ascii_domain("kari@straße.de") == "kari@straße.de"  # not strasse.de


def test_text_only_message_is_a_single_plain_part(smtp_server: Server) -> None:
    plain(smtp_server).send(message(html=None))

    email = smtp_server.received[0].email
    assert email.get_content_type() == "text/plain"
    assert email.get_content().replace("\r\n", "\n") == message().text


def test_implicit_tls(tls_server: Server) -> None:
    notifier = SmtpNotifier(
        tls_server.host,
        tls_server.port,
        sender=SENDER,
        security="tls",
        ssl_context=client_context(),
        local_hostname="localhost",
    )
    notifier.send(message())

    assert tls_server.received[0].email["Subject"].startswith("Kvittering")


def test_starttls(starttls_server: Server) -> None:
    notifier = SmtpNotifier(
        starttls_server.host,
        starttls_server.port,
        sender=SENDER,
        security="starttls",
        ssl_context=client_context(),
        local_hostname="localhost",
    )
    notifier.send(message())

    assert starttls_server.received[0].rcpt_tos == ["kari@example.no"]


def test_untrusted_certificate_is_a_delivery_error(tls_server: Server) -> None:
    notifier = SmtpNotifier(
        tls_server.host,
        tls_server.port,
        sender=SENDER,
        security="tls",
        local_hostname="localhost",
    )  # the default context does not trust the self-signed test certificate
    with pytest.raises(DeliveryError, match="TLS with SMTP server"):
        notifier.send(message())
    assert tls_server.received == []


def test_starttls_against_a_server_without_it(smtp_server: Server) -> None:
    notifier = SmtpNotifier(
        smtp_server.host,
        smtp_server.port,
        sender=SENDER,
        security="starttls",
        local_hostname="localhost",
    )
    with pytest.raises(DeliveryError, match="does not support"):
        notifier.send(message())


def test_refused_recipient_names_the_address(smtp_server: Server) -> None:
    with pytest.raises(DeliveryError) as caught:
        plain(smtp_server).send(message("refused@example.no"))

    text = str(caught.value)
    assert "refused@example.no" in text
    assert "550" in text
    assert caught.value.fields["permanent"] is True
    assert caught.value.fields["recipients"] == ("refused@example.no",)
    assert smtp_server.received == []


def test_closed_port_is_a_delivery_error() -> None:
    port = free_port()
    notifier = SmtpNotifier(
        "127.0.0.1", port, sender=SENDER, security="none", local_hostname="localhost"
    )
    with pytest.raises(
        DeliveryError, match=re.escape(f"127.0.0.1:{port} refused the connection")
    ):
        notifier.send(message())


def test_silent_server_times_out(silent_port: int) -> None:
    notifier = SmtpNotifier(
        "127.0.0.1",
        silent_port,
        sender=SENDER,
        security="none",
        timeout=0.2,
        local_hostname="localhost",
    )
    with pytest.raises(DeliveryError, match=re.escape("did not answer within 0.2 s")):
        notifier.send(message())


def test_login_needs_an_encrypted_connection() -> None:
    with pytest.raises(InvalidInputError, match="unencrypted"):
        SmtpNotifier(
            "smtp.example.no",
            25,
            sender=SENDER,
            security="none",
            username="u",
            password="p",
        )


def test_password_is_never_shown(starttls_server: Server) -> None:
    notifier = SmtpNotifier(
        starttls_server.host,
        starttls_server.port,
        sender=SENDER,
        security="starttls",
        username="bakeriet",
        password="hunter2-secret",
        ssl_context=client_context(),
        local_hostname="localhost",
    )
    assert "hunter2" not in repr(notifier)
    assert "bakeriet" in repr(notifier)
    with pytest.raises(DeliveryError) as caught:  # the test server accepts no login
        notifier.send(message())
    assert "refused the login of user 'bakeriet'" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert starttls_server.received == []


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"host": ""}, "host"),
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"port": True}, "port"),
        ({"sender": "not an address"}, "sender"),
        ({"sender": "a@b.no\r\nBcc: x@y.no"}, "sender"),
        ({"security": "ssl"}, "security"),
        ({"username": "u"}, "username and password"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
    ],
)
def test_bad_configuration_is_refused(changes: dict[str, object], match: str) -> None:
    options: dict[str, object] = {
        "host": "smtp.example.no",
        "port": 587,
        "sender": SENDER,
        "security": "starttls",
    }
    options.update(changes)
    with pytest.raises(InvalidInputError, match=match):
        SmtpNotifier(**options)  # type: ignore[arg-type]


def test_build_email_sets_from_with_an_encoded_display_name() -> None:
    email = build_email(message(), sender=SENDER)
    assert str(email["From"]) == SENDER
    assert "=?utf-8?" in email.as_string().split("\n\n")[0]

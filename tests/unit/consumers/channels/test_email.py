"""The mail a notice becomes, the SMTP settings, and what an SMTP failure means."""

from __future__ import annotations

import email
import email.policy
import smtplib
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest

from consumers.channels.email import EmailChannel, Security, smtp_result, split_smarthost
from stationwatch.errors import ConfigurationError
from tests.unit.consumers.channels.golden import check_golden
from tests.unit.consumers.channels.notices import NOTICE

PASSWORD = "s3cret pass"  # noqa: S105 - the tests' own


def channel(**overrides: Any) -> EmailChannel:
    settings: dict[str, Any] = {
        "sender": "驿站监控 <stationwatch@example.org>",
        "to": ["duty@example.org", "konggang@example.org"],
    }
    settings.update(overrides)
    return EmailChannel("smtp.example.org:587", **settings)


def test_message_golden() -> None:
    message = channel().message(NOTICE)
    headers = "".join(f"{name}: {value}\n" for name, value in message.items())
    check_golden("email.txt", f"{headers}\n{message.get_content()}")


def test_message_is_7bit_on_the_wire_and_reads_back_in_utf8() -> None:
    wire = channel().message(NOTICE).as_bytes()
    assert wire.isascii()
    parsed = email.message_from_bytes(wire, policy=email.policy.default)
    assert parsed["Subject"] == "[stationwatch] 空港街道: 2 个驿站离线，1 个已恢复"
    assert str(parsed["From"]) == "驿站监控 <stationwatch@example.org>"
    assert parsed["Message-ID"] == "<3e1f0c6a-2b4d-4f8e-9a7b-5c6d7e8f9a0b@example.org>"
    assert parsed["Date"] == "Mon, 30 Nov 2026 08:10:05 +0800"
    body = parsed.get_body(("plain",))
    assert body is not None
    assert "空港祥云工会驿站 (SY-0001) 离线" in body.get_content()


@pytest.mark.parametrize(
    ("smarthost", "security", "expected"),
    [
        ("smtp.example.org:587", "starttls", ("smtp.example.org", 587)),
        ("smtp.example.org", "starttls", ("smtp.example.org", 587)),
        ("smtp.example.org", "tls", ("smtp.example.org", 465)),
        ("smtp.example.org", "none", ("smtp.example.org", 25)),
        ("[::1]:2525", "none", ("::1", 2525)),
        ("127.0.0.1:1025", "none", ("127.0.0.1", 1025)),
    ],
)
def test_smarthost(smarthost: str, security: Security, expected: tuple[str, int]) -> None:
    assert split_smarthost(smarthost, security) == expected


@pytest.mark.parametrize("smarthost", ["smtp.example.org:port", ":25", "smtp.example.org:99999"])
def test_bad_smarthost(smarthost: str) -> None:
    with pytest.raises(ConfigurationError, match="smarthost"):
        split_smarthost(smarthost, "starttls")


def test_password_file_is_read_once_without_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "smtp.password"
    path.write_text(f"{PASSWORD}\n", encoding="utf-8")
    built = channel(username="stationwatch", password_file=path)
    path.unlink()  # read when built: a later change of the file needs a restart
    assert built._password == PASSWORD


def test_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no recipient"):
        channel(to=[])
    with pytest.raises(ConfigurationError, match="password file"):
        channel(username="stationwatch")
    with pytest.raises(ConfigurationError, match="cannot read"):
        channel(username="stationwatch", password_file=tmp_path / "missing")


def refused(*codes: int) -> smtplib.SMTPRecipientsRefused:
    return smtplib.SMTPRecipientsRefused(
        {f"user{n}@example.org": (code, b"no") for n, code in enumerate(codes)}
    )


@pytest.mark.parametrize(
    ("exc", "retriable", "code"),
    [
        (smtplib.SMTPSenderRefused(451, b"try again later", "a@example.org"), True, 451),
        (smtplib.SMTPSenderRefused(553, b"sender not allowed", "a@example.org"), False, 553),
        (smtplib.SMTPDataError(452, b"insufficient storage"), True, 452),
        (smtplib.SMTPDataError(554, b"message refused"), False, 554),
        (smtplib.SMTPAuthenticationError(535, b"bad credentials"), False, 535),
        (smtplib.SMTPAuthenticationError(454, b"temporary auth failure"), True, 454),
        (smtplib.SMTPConnectError(421, b"too busy"), True, 421),
        (smtplib.SMTPHeloError(501, b"bad hello"), False, 501),
        (refused(450, 550), True, 550),  # one greylisted address is worth another try
        (refused(550, 553), False, 553),
        (smtplib.SMTPServerDisconnected("gone"), True, None),
        (smtplib.SMTPNotSupportedError("STARTTLS extension not supported"), False, None),
        (smtplib.SMTPException("No suitable authentication method found."), False, None),
        (ConnectionRefusedError(111, "Connection refused"), True, None),
        (TimeoutError("timed out"), True, None),
        (socket.gaierror(-2, "Name or service not known"), True, None),
        (ssl.SSLCertVerificationError("certificate verify failed"), False, None),
        (ssl.SSLError("handshake cut short"), True, None),
    ],
)
def test_smtp_failure_classification(exc: Exception, retriable: bool, code: int | None) -> None:
    result = smtp_result(exc)
    assert (result.ok, result.retriable, result.status_code) == (False, retriable, code)

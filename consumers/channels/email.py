"""E-mail through an SMTP smarthost, with the standard library (in a thread, as smtplib blocks).

Security: ``starttls`` (the default: plain connection, then STARTTLS before anything else is
said), ``tls`` (implicit TLS, usually port 465) or ``none``. With a username the channel logs in
with the password read from ``password_file`` when it is built.

Classification: an SMTP 4xx (mailbox busy, greylisting, try later) and a dropped or refused
connection are worth retrying; a 5xx (no such user, authentication failed, message refused), a
server without STARTTLS or AUTH, and a certificate that does not verify are final.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from consumers.channels import render
from consumers.channels.secret_file import read_secret
from consumers.notice import DeliveryResult, Notice
from stationwatch.errors import ConfigurationError

logger = logging.getLogger(__name__)

Security = Literal["starttls", "tls", "none"]
DEFAULT_PORT: dict[Security, int] = {"starttls": 587, "tls": 465, "none": 25}
DEFAULT_TIMEOUT_S = 10.0
# What a Message-ID may hold left of its "@" (RFC 5322 dot-atom text).
_NOT_ATEXT = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]")


def smtp_result(exc: Exception) -> DeliveryResult:
    """What a failed SMTP conversation means: 4xx and lost connections retriable, 5xx final."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        refused = ", ".join(
            f"{address} ({code} {message.decode(errors='replace')})"
            for address, (code, message) in exc.recipients.items()
        )
        return DeliveryResult(
            ok=False,
            detail=f"every recipient refused: {refused}",
            retriable=any(code < 500 for code in codes),
            status_code=max(codes, default=None),
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = exc.smtp_error
        text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
        return DeliveryResult(
            ok=False,
            detail=f"SMTP {exc.smtp_code}: {text}",
            retriable=not 500 <= exc.smtp_code < 600,
            status_code=exc.smtp_code,
        )
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return DeliveryResult(ok=False, detail=f"connection lost: {exc}", retriable=True)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return DeliveryResult(ok=False, detail=f"certificate refused: {exc}")
    if isinstance(exc, smtplib.SMTPException):  # no STARTTLS, no AUTH, no common AUTH method
        return DeliveryResult(ok=False, detail=f"{type(exc).__name__}: {exc}")
    # connection refused or reset, name not resolved, timeout, TLS handshake cut short
    return DeliveryResult(ok=False, detail=f"{type(exc).__name__}: {exc}", retriable=True)


def split_smarthost(smarthost: str, security: Security) -> tuple[str, int]:
    """``host:port`` (``[::1]:25`` for IPv6) → host and port; the port defaults by security."""
    try:
        parts = urlsplit(f"//{smarthost}")
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise ConfigurationError(f"smarthost {smarthost!r}: {exc}") from exc
    if not host:
        raise ConfigurationError(f"smarthost {smarthost!r} names no host")
    return host, port or DEFAULT_PORT[security]


class EmailChannel:
    """Sends one plain-text UTF-8 mail per notice to every address in ``to``."""

    kind = "email"

    def __init__(
        self,
        smarthost: str,
        *,
        sender: str,
        to: Sequence[str],
        security: Security = "starttls",
        username: str | None = None,
        password_file: str | Path | None = None,
        hello: str = "localhost",
        language: render.Language = "zh",
        limit: int = render.DEFAULT_LIMIT,
        timeout: float = DEFAULT_TIMEOUT_S,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``sender``: the From address (a display name may come with it); ``hello``: the name
        said in EHLO; ``timeout``: for each step of the conversation; ``ssl_context``: how to
        verify the server (default: the system's trusted authorities)."""
        if not to:
            raise ConfigurationError("e-mail: no recipient")
        if (username is None) != (password_file is None):
            raise ConfigurationError("e-mail: a username needs a password file, and back")
        self.host, self.port = split_smarthost(smarthost, security)
        self.sender = sender
        self.to = tuple(to)
        self._security = security
        self._username = username
        self._password = read_secret(password_file) if password_file is not None else None
        self._hello = hello
        self._language = language
        self._limit = limit
        self._timeout = timeout
        self._ssl_context = ssl_context or ssl.create_default_context()

    def message(self, notice: Notice) -> EmailMessage:
        """The mail: subject and body from the notice, dated when the notice was made, its
        Message-ID from the notice's id (a resend is recognisably the same mail)."""
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(self.to)
        message["Subject"] = render.subject(notice, self._language)
        message["Date"] = format_datetime(notice.created_at)
        domain = self.sender.rpartition("@")[2].rstrip(">").strip() or "stationwatch"
        message["Message-ID"] = f"<{_NOT_ATEXT.sub('-', notice.notice_id)}@{domain}>"
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
        text = render.plain(notice, self._language, limit=self._limit, footer=True)
        message.set_content(text, charset="utf-8")
        return message

    def _connect(self) -> smtplib.SMTP:
        if self._security == "tls":
            return smtplib.SMTP_SSL(
                self.host,
                self.port,
                local_hostname=self._hello,
                timeout=self._timeout,
                context=self._ssl_context,
            )
        return smtplib.SMTP(self.host, self.port, local_hostname=self._hello, timeout=self._timeout)

    def _send(self, message: EmailMessage) -> dict[str, tuple[int, bytes]]:
        with contextlib.closing(self._connect()) as smtp:
            if self._security == "starttls":
                smtp.starttls(context=self._ssl_context)
            if self._username is not None and self._password is not None:
                smtp.login(self._username, self._password)
            refused = smtp.send_message(message)
            # the mail is accepted: a failed goodbye must not make it look undelivered
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
            return refused

    async def deliver(self, notice: Notice) -> DeliveryResult:
        try:
            message = self.message(notice)
            refused = await asyncio.to_thread(self._send, message)
        except (smtplib.SMTPException, OSError) as exc:
            return smtp_result(exc)
        except Exception as exc:  # a channel never raises: the notifier records the failure
            logger.exception("unexpected failure sending mail through %s", self.host)
            return DeliveryResult(ok=False, detail=f"{type(exc).__name__}: {exc}")
        if refused:
            listed = ", ".join(f"{address} ({code})" for address, (code, _) in refused.items())
            return DeliveryResult(ok=True, detail=f"sent; refused: {listed}", status_code=250)
        return DeliveryResult(ok=True, detail=f"sent to {len(self.to)}", status_code=250)

    async def close(self) -> None:
        """Nothing held: each notice opens its own connection."""

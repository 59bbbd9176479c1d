"""Every channel against something real on 127.0.0.1: an HTTP server standing in for the
webhook receiver and the WeCom and DingTalk robots, an SMTP server (aiosmtpd; plain, login,
STARTTLS and implicit TLS) and a real Alertmanager (Debian's ``prometheus-alertmanager``)."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import hashlib
import hmac
import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from consumers.channels import (
    AlertmanagerChannel,
    DingTalkChannel,
    EmailChannel,
    WebhookChannel,
    WeComChannel,
)
from consumers.notice import Notice, NoticeAlert, delivery_key
from stationwatch.broker import free_port
from tests.integration.harness import wait_for
from tests.unit.consumers.channels.notices import NOTICE, station_alert
from tests.unit.consumers.channels.notices import notice as make_notice

pytestmark = pytest.mark.integration

DINGTALK_SECRET = "SECtest0123456789abcdef0123456789abcdef0123456789abcdef0123456789"  # noqa: S105
ROBOT_TOKEN = "t0k"  # noqa: S105 - the test robot's own
SMTP_USER, SMTP_PASSWORD = "stationwatch", "s3cret pass"  # the test server's own account

# ---------------------------------------------------------------------------------------------
# An HTTP server that records what it is sent and answers as each path says


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def last(self, path: str) -> Received:
        return [r for r in self.requests if r.path == path][-1]


def robot_answer(errcode: int) -> web.Response:
    return web.json_response({"errcode": errcode, "errmsg": "ok" if errcode == 0 else "refused"})


def dingtalk_sign_ok(query: dict[str, str]) -> bool:
    """DingTalk's check: a timestamp within the hour and the HMAC of it under the secret."""
    timestamp = query.get("timestamp", "")
    if not timestamp.isdigit() or abs(int(timestamp) - time.time() * 1000) > 3_600_000:
        return False
    digest = hmac.new(
        DINGTALK_SECRET.encode(), f"{timestamp}\n{DINGTALK_SECRET}".encode(), hashlib.sha256
    ).digest()
    return hmac.compare_digest(query.get("sign", ""), base64.b64encode(digest).decode())


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver(url="")

    async def handle(request: web.Request) -> web.StreamResponse:
        body = json.loads((await request.read()).decode("utf-8"))
        query = dict(request.query)
        state.requests.append(Received(request.path, query, dict(request.headers), body))
        path = request.path
        if path == "/hook":
            return web.Response(text="ok")
        if path.startswith("/status/"):
            return web.Response(status=int(path.rpartition("/")[2]), text="answered as told")
        if path == "/slow":
            await asyncio.wait_for(state.release.wait(), timeout=10)
            return web.Response(text="too late")
        if path == "/wecom":
            return robot_answer({"ok": 0, "limited": 45009}.get(query.get("key", ""), 93000))
        if path == "/dingtalk":
            if query.get("access_token") == "limited":
                return robot_answer(130101)
            return robot_answer(0 if dingtalk_sign_ok(query) else 310000)
        return web.Response(status=404)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}"
    yield state
    state.release.set()
    await runner.cleanup()


async def test_webhook_posts_the_alertmanager_payload(receiver: Receiver) -> None:
    channel = WebhookChannel(
        f"{receiver.url}/hook",
        headers={"Authorization": "Bearer hook-token"},
        station_url="http://stationwatch.example/stations/{station_id}",
    )
    try:
        result = await channel.deliver(NOTICE)
    finally:
        await channel.close()
    assert (result.ok, result.status_code) == (True, 200)
    got = receiver.last("/hook")
    assert got.headers["Authorization"] == "Bearer hook-token"
    assert got.headers["Content-Type"].startswith("application/json")
    assert got.headers["Idempotency-Key"] == f'"{delivery_key(NOTICE)}"'
    assert got.body == channel.payload(NOTICE)
    assert got.body["version"] == "4"
    assert [a["labels"]["name"] for a in got.body["alerts"]] == [
        "空港祥云工会驿站",
        "空港花园驿站",
        "天竺综保区驿站",
    ]


@pytest.mark.parametrize(
    ("path", "retriable", "status"),
    [
        ("/status/500", True, 500),
        ("/status/503", True, 503),
        ("/status/429", True, 429),
        ("/status/400", False, 400),
        ("/status/404", False, 404),
        ("/status/302", False, 302),
    ],
)
async def test_webhook_failures_are_classified(
    receiver: Receiver, path: str, retriable: bool, status: int
) -> None:
    channel = WebhookChannel(f"{receiver.url}{path}")
    try:
        result = await channel.deliver(NOTICE)
    finally:
        await channel.close()
    assert (result.ok, result.retriable, result.status_code) == (False, retriable, status)


async def test_no_answer_in_time_and_nobody_listening_are_retriable(receiver: Receiver) -> None:
    slow = WebhookChannel(f"{receiver.url}/slow", timeout=0.3)
    nobody = WebhookChannel(f"http://127.0.0.1:{free_port()}/hook", timeout=2)
    try:
        started = time.monotonic()
        late = await slow.deliver(NOTICE)
        assert time.monotonic() - started < 3
        refused = await nobody.deliver(NOTICE)
    finally:
        receiver.release.set()
        await slow.close()
        await nobody.close()
    assert (late.ok, late.retriable) == (False, True)
    assert "0.3 s" in late.detail
    assert (refused.ok, refused.retriable) == (False, True)


async def test_an_invalid_url_is_final() -> None:
    channel = WebhookChannel("not a url")
    try:
        result = await channel.deliver(NOTICE)
    finally:
        await channel.close()
    assert (result.ok, result.retriable) == (False, False)


async def test_channels_share_a_given_session_and_leave_it_open(receiver: Receiver) -> None:
    async with aiohttp.ClientSession() as session:
        first = WebhookChannel(f"{receiver.url}/hook", session=session)
        second = WebhookChannel(f"{receiver.url}/hook", session=session)
        assert (await first.deliver(NOTICE)).ok
        await first.close()
        assert not session.closed
        assert (await second.deliver(NOTICE)).ok


@pytest.mark.parametrize(
    ("key", "ok", "retriable"),
    [("ok", True, False), ("limited", False, True), ("wrong", False, False)],
)
async def test_wecom(receiver: Receiver, key: str, ok: bool, retriable: bool) -> None:
    channel = WeComChannel(f"{receiver.url}/wecom?key={key}")
    try:
        result = await channel.deliver(NOTICE)
    finally:
        await channel.close()
    assert (result.ok, result.retriable, result.status_code) == (ok, retriable, 200)
    got = receiver.last("/wecom")
    assert got.query == {"key": key}
    assert got.body["msgtype"] == "markdown"
    assert got.body["markdown"]["content"].startswith("### 空港街道: 2 个驿站离线，1 个已恢复\n")


async def test_wecom_server_error_is_retriable(receiver: Receiver) -> None:
    channel = WeComChannel(f"{receiver.url}/status/502?key=ok")
    try:
        result = await channel.deliver(NOTICE)
    finally:
        await channel.close()
    assert (result.ok, result.retriable, result.status_code) == (False, True, 502)


async def test_dingtalk_signed_request_is_accepted(receiver: Receiver) -> None:
    channel = DingTalkChannel(
        f"{receiver.url}/dingtalk?access_token={ROBOT_TOKEN}", secret=DINGTALK_SECRET
    )
    try:
        result = await channel.deliver(NOTICE)
    finally:
        await channel.close()
    assert result.ok, result.detail
    got = receiver.last("/dingtalk")
    assert set(got.query) == {"access_token", "timestamp", "sign"}
    assert got.query["access_token"] == ROBOT_TOKEN
    assert got.body["markdown"]["title"] == "空港街道: 2 个驿站离线，1 个已恢复"
    assert "空港祥云工会驿站 (SY-0001)" in got.body["markdown"]["text"]


@pytest.mark.parametrize(
    ("token", "secret", "clock_offset_s", "retriable"),
    [
        (ROBOT_TOKEN, "SECwrong", 0.0, False),  # signature refused
        (ROBOT_TOKEN, DINGTALK_SECRET, -7200.0, False),  # a clock two hours behind
        (ROBOT_TOKEN, None, 0.0, False),  # no signature at all
        ("limited", DINGTALK_SECRET, 0.0, True),  # more than 20 a minute
    ],
)
async def test_dingtalk_refusals(
    receiver: Receiver, token: str, secret: str | None, clock_offset_s: float, retriable: bool
) -> None:
    channel = DingTalkChannel(
        f"{receiver.url}/dingtalk?access_token={token}",
        secret=secret,
        clock=lambda: time.time() + clock_offset_s,
    )
    try:
        result = await channel.deliver(NOTICE)
    finally:
        await channel.close()
    assert (result.ok, result.retriable) == (False, retriable)
    assert "errcode" in result.detail


# ---------------------------------------------------------------------------------------------
# A real SMTP server


@dataclass
class Mailbox:
    """What the SMTP server accepted, with the login it was sent under."""

    messages: list[tuple[Envelope, EmailMessage, str | None]] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        local = address.partition("@")[0]
        if local == "nobody":
            return "550 5.1.1 no such user"
        if local == "busy":
            return "450 4.2.1 mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        login = session.auth_data if session.authenticated else None
        user = login.decode() if isinstance(login, bytes) else None
        self.messages.append((envelope, parsed, user))
        return "250 OK queued"


def authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == SMTP_USER.encode()
        and auth_data.password == SMTP_PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data.login if ok else None)


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed: no certificate for the TLS tests")
    folder = tmp_path_factory.mktemp("tls")
    made = Certificate(folder / "cert.pem", folder / "key.pem")
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(made.key), "-out", str(made.cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return made


@dataclass
class SmtpServer:
    port: int
    mailbox: Mailbox

    @property
    def smarthost(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
def smtp_server(request: pytest.FixtureRequest) -> Iterator[SmtpServer]:
    """An SMTP server on a free port; ``request.param`` adds aiosmtpd's SMTP arguments."""
    mailbox = Mailbox()
    options: dict[str, Any] = dict(getattr(request, "param", {}))
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=authenticate,
        auth_require_tls=options.pop("auth_require_tls", False),
        ready_timeout=10,
        **options,
    )
    controller.start()
    try:
        yield SmtpServer(controller.port, mailbox)
    finally:
        controller.stop()


def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "smtp.password"
    path.write_text(SMTP_PASSWORD + "\n", encoding="utf-8")
    return path


def check_mail(server: SmtpServer, *, to: list[str], user: str | None) -> None:
    assert len(server.mailbox.messages) == 1
    envelope, message, login = server.mailbox.messages[0]
    assert envelope.mail_from == "stationwatch@example.org"
    assert envelope.rcpt_tos == to
    assert login == user
    assert message["Subject"] == "[stationwatch] 空港街道: 2 个驿站离线，1 个已恢复"
    assert str(message["From"]) == "驿站监控 <stationwatch@example.org>"
    assert message["To"] == ", ".join(to)
    assert message["Message-ID"] == "<3e1f0c6a-2b4d-4f8e-9a7b-5c6d7e8f9a0b@example.org>"
    body = message.get_body(("plain",))
    assert body is not None
    assert body.get_content_charset() == "utf-8"
    text = body.get_content()
    assert text.startswith("空港街道: 2 个驿站离线，1 个已恢复\n")
    assert "- 空港祥云工会驿站 (SY-0001) 离线，自 2026-11-30T08:05:00+08:00" in text


def mail(server: SmtpServer, **settings: Any) -> EmailChannel:
    settings.setdefault("sender", "驿站监控 <stationwatch@example.org>")
    settings.setdefault("to", ["duty@example.org"])
    settings.setdefault("security", "none")
    return EmailChannel(server.smarthost, timeout=5, **settings)


async def test_email_plain(smtp_server: SmtpServer) -> None:
    to = ["duty@example.org", "konggang@example.org"]
    result = await mail(smtp_server, to=to).deliver(NOTICE)
    assert result.ok, result.detail
    check_mail(smtp_server, to=to, user=None)


async def test_email_login(smtp_server: SmtpServer, tmp_path: Path) -> None:
    channel = mail(smtp_server, username=SMTP_USER, password_file=password_file(tmp_path))
    result = await channel.deliver(NOTICE)
    assert result.ok, result.detail
    check_mail(smtp_server, to=["duty@example.org"], user=SMTP_USER)


async def test_email_wrong_password_is_final(smtp_server: SmtpServer, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not it\n", encoding="utf-8")
    result = await mail(smtp_server, username=SMTP_USER, password_file=wrong).deliver(NOTICE)
    assert (result.ok, result.retriable, result.status_code) == (False, False, 535)
    assert smtp_server.mailbox.messages == []


@pytest.mark.parametrize(
    ("to", "retriable", "code"),
    [(["nobody@example.org"], False, 550), (["busy@example.org"], True, 450)],
)
async def test_email_refused_recipient(
    smtp_server: SmtpServer, to: list[str], retriable: bool, code: int
) -> None:
    result = await mail(smtp_server, to=to).deliver(NOTICE)
    assert (result.ok, result.retriable, result.status_code) == (False, retriable, code)


async def test_email_one_refused_recipient_of_two_is_delivered(smtp_server: SmtpServer) -> None:
    channel = mail(smtp_server, to=["duty@example.org", "nobody@example.org"])
    result = await channel.deliver(NOTICE)
    assert result.ok
    assert "nobody@example.org (550)" in result.detail
    assert smtp_server.mailbox.messages[0][0].rcpt_tos == ["duty@example.org"]


async def test_email_nobody_listening_is_retriable() -> None:
    channel = EmailChannel(
        f"127.0.0.1:{free_port()}", sender="a@example.org", to=["b@example.org"], security="none"
    )
    result = await channel.deliver(NOTICE)
    assert (result.ok, result.retriable) == (False, True)


@pytest.fixture
def starttls_server(certificate: Certificate) -> Iterator[SmtpServer]:
    mailbox = Mailbox()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=authenticate,
        tls_context=certificate.server_context(),
        require_starttls=True,
        auth_require_tls=True,
        ready_timeout=10,
    )
    controller.start()
    try:
        yield SmtpServer(controller.port, mailbox)
    finally:
        controller.stop()


async def test_email_login_over_starttls(
    starttls_server: SmtpServer, certificate: Certificate, tmp_path: Path
) -> None:
    channel = mail(
        starttls_server,
        security="starttls",
        username=SMTP_USER,
        password_file=password_file(tmp_path),
        ssl_context=certificate.client_context(),
    )
    result = await channel.deliver(NOTICE)
    assert result.ok, result.detail
    check_mail(starttls_server, to=["duty@example.org"], user=SMTP_USER)


async def test_email_untrusted_certificate_is_final(
    starttls_server: SmtpServer, tmp_path: Path
) -> None:
    channel = mail(
        starttls_server,
        security="starttls",
        username=SMTP_USER,
        password_file=password_file(tmp_path),
    )
    result = await channel.deliver(NOTICE)
    assert (result.ok, result.retriable) == (False, False)
    assert "certificate" in result.detail
    assert starttls_server.mailbox.messages == []


async def test_email_without_starttls_where_it_is_required_is_refused(
    starttls_server: SmtpServer,
) -> None:
    result = await mail(starttls_server).deliver(NOTICE)
    assert (result.ok, result.retriable, result.status_code) == (False, False, 530)


async def test_email_implicit_tls(certificate: Certificate, tmp_path: Path) -> None:
    mailbox = Mailbox()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=authenticate,
        ssl_context=certificate.server_context(),
        auth_require_tls=False,  # aiosmtpd counts only STARTTLS as TLS; this whole line is TLS
        ready_timeout=10,
    )
    controller.start()
    try:
        server = SmtpServer(controller.port, mailbox)
        channel = mail(
            server,
            security="tls",
            username=SMTP_USER,
            password_file=password_file(tmp_path),
            ssl_context=certificate.client_context(),
        )
        result = await channel.deliver(NOTICE)
    finally:
        controller.stop()
    assert result.ok, result.detail
    check_mail(server, to=["duty@example.org"], user=SMTP_USER)


# ---------------------------------------------------------------------------------------------
# A real Alertmanager


def alertmanager_binary() -> str | None:
    for candidate in (
        os.environ.get("STATIONWATCH_TEST_ALERTMANAGER", ""),
        "prometheus-alertmanager",  # Debian's package and its binary
        "alertmanager",  # the upstream release's name
    ):
        if candidate and (found := shutil.which(candidate)):
            return found
    return None


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running Alertmanager with a receiver that sends nothing; yields its base URL."""
    binary = alertmanager_binary()
    if binary is None:
        pytest.skip(
            "no Alertmanager binary: `apt-get install prometheus-alertmanager` "
            "(/usr/bin/prometheus-alertmanager) or set STATIONWATCH_TEST_ALERTMANAGER"
        )
    folder = tmp_path_factory.mktemp("alertmanager")
    config = folder / "alertmanager.yml"
    config.write_text('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = folder / "alertmanager.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *(binary, f"--config.file={config}", f"--storage.path={folder / 'data'}"),
                *(f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"Alertmanager exited:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as answer:  # noqa: S310
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"Alertmanager not ready:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def alerts_in(url: str, station_ids: set[str]) -> list[dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/api/v2/alerts") as answer,
    ):
        assert answer.status == 200
        alerts: list[dict[str, Any]] = await answer.json()
    return [a for a in alerts if a["labels"].get("station_id") in station_ids]


def live_notice(prefix: str) -> Notice:
    """Two stations offline since five minutes ago (Alertmanager judges times against now)."""
    now = datetime.now(UTC).astimezone(NOTICE.created_at.tzinfo)
    alerts: tuple[NoticeAlert, ...] = (
        station_alert(f"{prefix}-1", "空港祥云工会驿站", starts_at=now - timedelta(minutes=5)),
        station_alert(f"{prefix}-2", "空港花园驿站", starts_at=now - timedelta(minutes=4)),
    )
    return replace(make_notice(alerts), created_at=now)


async def test_alertmanager_receives_then_resolves(alertmanager: str) -> None:
    prefix = f"IT{uuid.uuid4().hex[:6].upper()}"
    firing = live_notice(prefix)
    ids = {a.station_id for a in firing.alerts}
    channel = AlertmanagerChannel(
        alertmanager,
        station_url="http://sw.example/stations/{station_id}",
        resend_within=3600,  # firing for an hour unless resolved or sent again
    )
    try:
        result = await channel.deliver(firing)
        assert (result.ok, result.status_code) == (True, 200), result.detail

        async def both_active() -> list[dict[str, Any]]:
            alerts = await alerts_in(alertmanager, ids)
            return alerts if len(alerts) == 2 else []

        seen = {
            a["labels"]["station_id"]: a
            for a in await wait_for(
                both_active, timeout_s=10, what="Alertmanager to list both alerts"
            )
        }
        first = seen[f"{prefix}-1"]
        assert first["labels"] == {
            "alertname": "offline",
            "category": "smart_24h",
            "district": "顺义区",
            "kind": "offline",
            "name": "空港祥云工会驿站",
            "severity": "critical",
            "station_id": f"{prefix}-1",
            "street": "空港街道",
        }
        assert first["annotations"] == {
            "summary": f"空港祥云工会驿站 ({prefix}-1) has sent no heartbeat for 5 min"
        }
        assert first["status"]["state"] == "active"
        ends = datetime.fromisoformat(first["endsAt"].replace("Z", "+00:00"))
        assert ends > datetime.now(UTC) + timedelta(minutes=55)
        assert first["generatorURL"] == f"http://sw.example/stations/{prefix}-1"
        assert [r["name"] for r in first["receivers"]] == ["null"]

        ended = firing.created_at - timedelta(seconds=1)
        resolved = replace(
            firing,
            status="resolved",
            alerts=tuple(replace(a, status="resolved", ends_at=ended) for a in firing.alerts),
        )
        assert (await channel.deliver(resolved)).ok

        async def none_listed() -> bool:
            return not await alerts_in(alertmanager, ids)

        await wait_for(none_listed, timeout_s=10, what="Alertmanager to drop resolved alerts")
    finally:
        await channel.close()


async def test_alertmanager_refusal_is_final(alertmanager: str) -> None:
    now = datetime.now(UTC)
    backwards = station_alert(  # ends before it starts: Alertmanager answers 400
        "IT-BAD", "驿站", status="resolved", starts_at=now, ends_at=now - timedelta(hours=1)
    )
    channel = AlertmanagerChannel(alertmanager)
    try:
        result = await channel.deliver(make_notice((backwards,)))
    finally:
        await channel.close()
    assert (result.ok, result.retriable, result.status_code) == (False, False, 400)
    assert "start time must be before end time" in result.detail

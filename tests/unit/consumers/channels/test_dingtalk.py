"""The DingTalk robot's Markdown message and its signed URL."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path
from urllib.parse import parse_qs, quote_plus, urlsplit

import pytest

from consumers.channels.dingtalk import DingTalkChannel, sign, signed_url
from stationwatch.errors import ConfigurationError
from tests.unit.consumers.channels.golden import check_golden_json
from tests.unit.consumers.channels.notices import NOTICE

URL = "https://oapi.dingtalk.com/robot/send?access_token=0123456789abcdef"
SECRET = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"  # noqa: S105
NOW_MS = 1_795_997_405_000  # 2026-11-30 08:10:05 +08:00


def reference_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's documented recipe, step by step."""
    string_to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode("utf-8"), string_to_sign, digestmod=hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest))


def test_signature_known_vector() -> None:
    assert sign(SECRET, NOW_MS) == "fKqDizRW9L%2BKTqWcnw2EcJFUgvlTDEM8umlp%2BgGhFWk%3D"
    assert sign(SECRET, NOW_MS) == reference_sign(SECRET, NOW_MS)
    assert sign("this is secret", 1_577_836_800_000) == reference_sign(
        "this is secret", 1_577_836_800_000
    )


def test_signed_url_carries_timestamp_and_sign_from_the_clock() -> None:
    channel = DingTalkChannel(URL, secret=SECRET, clock=lambda: NOW_MS / 1000)
    url = channel.request_url()
    assert url == f"{URL}&timestamp={NOW_MS}&sign={reference_sign(SECRET, NOW_MS)}"
    query = parse_qs(urlsplit(url).query)
    assert query["access_token"] == ["0123456789abcdef"]
    expected = base64.b64encode(
        hmac.new(SECRET.encode(), f"{NOW_MS}\n{SECRET}".encode(), hashlib.sha256).digest()
    ).decode()
    assert query["sign"] == [expected]  # decoded back, it is the plain base64


def test_signed_url_without_a_query() -> None:
    assert signed_url("http://robot.example/send", "s", 1).startswith(
        "http://robot.example/send?timestamp=1&sign="
    )


def test_unsigned_without_a_secret() -> None:
    assert DingTalkChannel(URL).request_url() == URL


def test_secret_file_is_read_without_its_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "dingtalk.secret"
    path.write_text(SECRET + "\n", encoding="utf-8")
    channel = DingTalkChannel(URL, secret_file=path, clock=lambda: NOW_MS / 1000)
    assert channel.request_url().endswith(f"&sign={reference_sign(SECRET, NOW_MS)}")


def test_secret_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        DingTalkChannel(URL, secret_file=tmp_path / "missing")
    with pytest.raises(ConfigurationError, match="not both"):
        DingTalkChannel(URL, secret=SECRET, secret_file=tmp_path / "missing")


def test_payload_golden() -> None:
    check_golden_json("dingtalk.json", DingTalkChannel(URL, secret=SECRET).payload(NOTICE))


def test_title_is_the_notice_title() -> None:
    body = DingTalkChannel(URL).payload(NOTICE)
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == "空港街道: 2 个驿站离线，1 个已恢复"

"""The WeCom robot's Markdown message for a notice, within its 4096-byte limit."""

from __future__ import annotations

from consumers.channels.wecom import MAX_CONTENT_BYTES, WeComChannel
from tests.unit.consumers.channels.golden import check_golden_json
from tests.unit.consumers.channels.notices import NOTICE, many

URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=00000000-0000-0000-0000-000000000000"


def test_payload_golden() -> None:
    check_golden_json("wecom.json", WeComChannel(URL).payload(NOTICE))


def test_a_large_notice_lists_fewer_stations_to_fit_4096_bytes() -> None:
    big = many(60, name="空港街道航空物流园区第{n}号户外劳动者工会驿站")
    content = WeComChannel(URL, limit=60).payload(big)["markdown"]["content"]
    size = len(content.encode())
    assert size <= MAX_CONTENT_BYTES
    assert size > MAX_CONTENT_BYTES - 300  # one more line would not have fit
    assert content.startswith("### 空港街道: 60 个驿站离线\n")
    shown = content.count("\n- ") - 1
    assert content.rstrip().endswith(f"…还有 {60 - shown} 个")


def test_english() -> None:
    content = WeComChannel(URL, language="en").payload(NOTICE)["markdown"]["content"]
    assert content.startswith("### 空港街道: 2 stations offline, 1 resolved\n")

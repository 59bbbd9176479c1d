"""What an HTTP answer means for a delivery: the classification every HTTP channel shares."""

from __future__ import annotations

import json

import pytest

from consumers.channels import dingtalk, wecom
from consumers.channels.http import Answer, classify_status, errcode_result, redact


@pytest.mark.parametrize(
    ("status", "ok", "retriable"),
    [
        (200, True, False),
        (202, True, False),
        (204, True, False),
        (301, False, False),  # a redirect: the URL is wrong, and a POST must not become a GET
        (400, False, False),
        (401, False, False),
        (403, False, False),
        (404, False, False),
        (413, False, False),
        (422, False, False),
        (429, False, True),
        (500, False, True),
        (502, False, True),
        (503, False, True),
        (504, False, True),
    ],
)
def test_status_classification(status: int, ok: bool, retriable: bool) -> None:
    result = classify_status(status, "body")
    assert (result.ok, result.retriable, result.status_code) == (ok, retriable, status)


def robot(errcode: int | None, status: int = 200) -> Answer:
    body = {"errmsg": "message"} if errcode is None else {"errcode": errcode, "errmsg": "message"}
    return Answer(status, json.dumps(body))


@pytest.mark.parametrize(
    ("answer", "ok", "retriable"),
    [
        (robot(0), True, False),
        (robot(45009), False, True),  # more than 20 messages a minute
        (robot(-1), False, True),  # system busy
        (robot(93000), False, False),  # invalid webhook URL (a wrong key)
        (robot(40008), False, False),  # invalid message type
        (robot(None), False, False),
        (Answer(200, "<html>a proxy's login page</html>"), False, False),
        (robot(0, status=502), False, True),
        (robot(0, status=404), False, False),
    ],
)
def test_wecom_errcodes(answer: Answer, ok: bool, retriable: bool) -> None:
    result = errcode_result(answer, retriable_codes=wecom.RETRIABLE_ERRCODES, service="WeCom")
    assert (result.ok, result.retriable) == (ok, retriable)


@pytest.mark.parametrize(
    ("answer", "ok", "retriable"),
    [
        (robot(0), True, False),
        (robot(130101), False, True),  # more than 20 messages a minute
        (robot(-1), False, True),
        (robot(310000), False, False),  # signature or keyword refused
        (robot(300001), False, False),  # bad access token
        (robot(45009), False, False),  # WeCom's limit code means nothing to DingTalk
        (robot(0, status=429), False, True),
    ],
)
def test_dingtalk_errcodes(answer: Answer, ok: bool, retriable: bool) -> None:
    result = errcode_result(answer, retriable_codes=dingtalk.RETRIABLE_ERRCODES, service="DingTalk")
    assert (result.ok, result.retriable) == (ok, retriable)


def test_a_failure_says_the_code_and_message() -> None:
    result = errcode_result(robot(93000), retriable_codes=frozenset(), service="WeCom")
    assert result.detail == "WeCom errcode 93000: message"
    assert result.status_code == 200


def test_redact_keeps_the_key_out_of_details() -> None:
    url = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=secret-key"
    assert redact(url) == "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"

"""DingTalk (钉钉) group robot: one Markdown message per notice, signed when a secret is set.

Signing (the robot's "加签" setting): the request URL gets ``&timestamp=<ms>&sign=<s>`` where
``s`` is the URL-encoded base64 of HMAC-SHA256 keyed with the secret over
``f"{timestamp}\\n{secret}"``; DingTalk refuses a timestamp more than an hour off.

Delivered when the robot answers ``errcode`` 0; ``130101`` (more than 20 messages a minute) and
``-1`` (system busy) are worth retrying, any other code (a bad token or signature, a missing
keyword) is final.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import aiohttp

from consumers.channels import render
from consumers.channels.http import DEFAULT_TIMEOUT_S, JsonPoster, errcode_result
from consumers.channels.secret_file import read_secret
from consumers.notice import DeliveryResult, Notice
from stationwatch.errors import ConfigurationError

# DingTalk takes far longer texts than WeCom; a notice stays well inside this.
MAX_TEXT_BYTES = 20_000
RETRIABLE_ERRCODES = frozenset({130101, -1})


def sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature of ``timestamp_ms``, URL-encoded as the query wants it."""
    digest = hmac.new(
        secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return quote_plus(base64.b64encode(digest).decode())


def signed_url(url: str, secret: str, timestamp_ms: int) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}timestamp={timestamp_ms}&sign={sign(secret, timestamp_ms)}"


class DingTalkChannel:
    """Posts to a DingTalk robot's URL (``https://oapi.dingtalk.com/robot/send?access_token=…``)."""

    kind = "dingtalk"

    def __init__(
        self,
        url: str,
        *,
        secret: str | None = None,
        secret_file: str | Path | None = None,
        language: render.Language = "zh",
        limit: int = render.DEFAULT_LIMIT,
        timeout: float = DEFAULT_TIMEOUT_S,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``secret`` or ``secret_file`` (read now): sign each request; ``clock``: seconds since
        the epoch, for the signature's timestamp."""
        if secret is not None and secret_file is not None:
            raise ConfigurationError("DingTalk: give a secret or a secret file, not both")
        self.url = url
        self._secret = read_secret(secret_file) if secret_file is not None else secret
        self._language = language
        self._limit = limit
        self._clock = clock
        self._poster = JsonPoster(timeout=timeout, session=session)

    def request_url(self) -> str:
        """The URL to post to now: signed with the current time when there is a secret."""
        if not self._secret:
            return self.url
        return signed_url(self.url, self._secret, round(self._clock() * 1000))

    def payload(self, notice: Notice) -> dict[str, Any]:
        def lines(limit: int) -> str:
            return render.markdown(notice, self._language, limit=limit)

        text = render.fit(lines, MAX_TEXT_BYTES, limit=self._limit)
        return {
            "msgtype": "markdown",
            "markdown": {"title": render.title(notice, self._language), "text": text},
        }

    async def deliver(self, notice: Notice) -> DeliveryResult:
        answer = await self._poster.post(self.request_url(), partial(self.payload, notice))
        if isinstance(answer, DeliveryResult):
            return answer
        return errcode_result(answer, retriable_codes=RETRIABLE_ERRCODES, service="DingTalk")

    async def close(self) -> None:
        await self._poster.close()

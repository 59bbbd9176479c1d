"""WeCom (企业微信) group robot: one Markdown message per notice.

The robot answers HTTP 200 with ``{"errcode": 0, "errmsg": "ok"}`` when it took the message;
any other ``errcode`` is a failure even on HTTP 200. ``45009`` (too many messages: a robot takes
20 a minute) and ``-1`` (system busy) are worth retrying; the rest (a wrong key, a bad body) are
not. The Markdown content may be at most 4096 bytes of UTF-8: longer notices list fewer
stations.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import aiohttp

from consumers.channels import render
from consumers.channels.http import DEFAULT_TIMEOUT_S, JsonPoster, errcode_result
from consumers.notice import DeliveryResult, Notice

MAX_CONTENT_BYTES = 4096
RETRIABLE_ERRCODES = frozenset({45009, -1})


class WeComChannel:
    """Posts to a WeCom robot's URL (``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…``)."""

    kind = "wecom"

    def __init__(
        self,
        url: str,
        *,
        language: render.Language = "zh",
        limit: int = render.DEFAULT_LIMIT,
        timeout: float = DEFAULT_TIMEOUT_S,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        """``limit``: at most this many station lines, fewer if the content would not fit."""
        self.url = url
        self._language = language
        self._limit = limit
        self._poster = JsonPoster(timeout=timeout, session=session)

    def content(self, notice: Notice) -> str:
        def lines(limit: int) -> str:
            return render.markdown(notice, self._language, limit=limit)

        return render.fit(lines, MAX_CONTENT_BYTES, limit=self._limit)

    def payload(self, notice: Notice) -> dict[str, Any]:
        return {"msgtype": "markdown", "markdown": {"content": self.content(notice)}}

    async def deliver(self, notice: Notice) -> DeliveryResult:
        answer = await self._poster.post(self.url, partial(self.payload, notice))
        if isinstance(answer, DeliveryResult):
            return answer
        return errcode_result(answer, retriable_codes=RETRIABLE_ERRCODES, service="WeCom")

    async def close(self) -> None:
        await self._poster.close()

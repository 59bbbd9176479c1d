"""What every HTTP channel shares: one POST of JSON with a deadline, and what its answer means.

Classification (the notifier retries only what is worth retrying):

- connection refused or reset, DNS failure, timeout, 5xx, 429 → retriable;
- any other 4xx, a redirect, an invalid URL → final (the configuration is wrong);
- 2xx → delivered, unless the channel reads a failure in the body (the robots' ``errcode``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from consumers.notice import DeliveryResult

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 10.0
# How much of an answer's body a result's detail quotes.
DETAIL_CHARS = 300


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer: its status and the start of its body."""

    status: int
    text: str

    def json(self) -> Any:
        """The body as JSON, or ``None`` when it is not JSON."""
        try:
            return json.loads(self.text)
        except ValueError:
            return None


def classify_status(status: int, detail: str = "") -> DeliveryResult:
    """What an HTTP status alone says about a delivery."""
    if 200 <= status < 300:
        return DeliveryResult(ok=True, detail=detail, status_code=status)
    retriable = status == 429 or status >= 500
    return DeliveryResult(
        ok=False, detail=f"HTTP {status}: {detail}", retriable=retriable, status_code=status
    )


def errcode_result(
    answer: Answer, *, retriable_codes: frozenset[int], service: str
) -> DeliveryResult:
    """A robot's answer (WeCom, DingTalk): delivered only on HTTP 200 with ``errcode`` 0."""
    if answer.status != 200:
        return classify_status(answer.status, answer.text[:DETAIL_CHARS])
    body = answer.json()
    errcode = body.get("errcode") if isinstance(body, dict) else None
    if not isinstance(errcode, int):
        return DeliveryResult(
            ok=False,
            detail=f"{service} answered without an errcode: {answer.text[:DETAIL_CHARS]}",
            status_code=answer.status,
        )
    if errcode == 0:
        return DeliveryResult(ok=True, detail="errcode 0", status_code=answer.status)
    errmsg = body.get("errmsg", "") if isinstance(body, dict) else ""
    return DeliveryResult(
        ok=False,
        detail=f"{service} errcode {errcode}: {errmsg}",
        retriable=errcode in retriable_codes,
        status_code=answer.status,
    )


def redact(url: str) -> str:
    """The URL without its query: robots carry their key or token there."""
    return url.split("?", 1)[0]


class JsonPoster:
    """POSTs JSON with a total deadline through one session, its own unless one is given."""

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        headers: Mapping[str, str] | None = None,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        self._session = session
        self._owned = session is None

    async def post(
        self, url: str, build: Callable[[], Any], *, headers: Mapping[str, str] | None = None
    ) -> Answer | DeliveryResult:
        """POST the JSON ``build()`` makes (built here, so a notice that cannot be rendered is a
        final failure too): the answer, or a failed result when no answer came. Never raises.
        ``headers``: this request's own, over the poster's."""
        try:
            data = json.dumps(build(), ensure_ascii=False, separators=(",", ":")).encode()
            async with self._open().post(
                url,
                data=data,
                headers={**self._headers, **(headers or {})},
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                text = (await response.read()).decode(errors="replace")
                return Answer(response.status, text)
        except (aiohttp.InvalidURL, ValueError) as exc:
            return DeliveryResult(ok=False, detail=f"invalid request to {redact(url)}: {exc}")
        except aiohttp.ClientConnectorCertificateError as exc:
            return DeliveryResult(ok=False, detail=f"certificate refused: {exc}")
        except TimeoutError:
            return DeliveryResult(
                ok=False, detail=f"no answer within {self._timeout.total} s", retriable=True
            )
        except (aiohttp.ClientError, OSError) as exc:
            return DeliveryResult(ok=False, detail=f"{type(exc).__name__}: {exc}", retriable=True)
        except Exception as exc:  # a channel never raises: the notifier records the failure
            logger.exception("unexpected failure posting to %s", redact(url))
            return DeliveryResult(ok=False, detail=f"{type(exc).__name__}: {exc}")

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def close(self) -> None:
        if self._owned and self._session is not None:
            await self._session.close()
            self._session = None

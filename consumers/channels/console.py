"""Print each notice as readable lines: the demo's receiver, and a way to watch what the
notifier would send without sending it anywhere."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from consumers.channels import render
from consumers.notice import DeliveryResult, Notice

logger = logging.getLogger(__name__)


class ConsoleChannel:
    """Writes each notice's text, preceded by a rule naming its receiver and time, to ``stream``
    (standard output, looked up at each notice, when none is given)."""

    kind = "console"

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        language: render.Language = "zh",
        limit: int = render.DEFAULT_LIMIT,
    ) -> None:
        self._stream = stream
        self._language = language
        self._limit = limit

    def text(self, notice: Notice) -> str:
        # in the zone the alerts' own times are written in, so one notice shows one clock
        zone = notice.alerts[0].starts_at.tzinfo if notice.alerts else None
        rule = f"── {notice.receiver} · {render.clock(notice.created_at.astimezone(zone))} ──"
        return f"{rule}\n{render.plain(notice, self._language, limit=self._limit)}\n"

    async def deliver(self, notice: Notice) -> DeliveryResult:
        stream = self._stream or sys.stdout
        try:
            stream.write(self.text(notice))
            stream.flush()
        except (OSError, ValueError) as exc:  # a closed or broken stream
            return DeliveryResult(ok=False, detail=f"cannot write: {exc}")
        except Exception as exc:  # a channel never raises: the notifier records the failure
            logger.exception("unexpected failure printing notice %s", notice.notice_id)
            return DeliveryResult(ok=False, detail=f"{type(exc).__name__}: {exc}")
        return DeliveryResult(ok=True)

    async def close(self) -> None:
        """The stream is the caller's: left open."""

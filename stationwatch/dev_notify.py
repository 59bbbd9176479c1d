"""The notifier of `stationwatch dev`: it runs in the dev process, prints every notice on the
console, and a local webhook sink (``http://127.0.0.1:<port>/hook``) prints what any receiver
pointed at it delivers. ``STATIONWATCH_NOTIFY_CONFIG``, when set, replaces the demo routes."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from consumers.config import NotifyConfig, load_config, load_config_text

SINK_PATH = "/hook"


def demo_config(sink_url: str) -> str:
    """Every alert to the console, grouped by street and kind; over_capacity and offline also
    to the local webhook sink (as a real receiver would get them)."""
    return f"""
route:
  receiver: console
  group_by: [street, kind]
  group_wait: 10s
  group_interval: 1m
  repeat_interval: 1h
  routes:
    - match_re: {{kind: "offline|over_capacity"}}
      receiver: console
      continue: true
    - match_re: {{kind: "offline|over_capacity"}}
      receiver: local-webhook
receivers:
  - name: console
    console: {{}}
  - name: local-webhook
    webhook: {{url: "{sink_url}"}}
"""


def dev_config(user_config: Path | None, sink_url: str) -> NotifyConfig:
    if user_config is not None:
        return load_config(user_config)
    return load_config_text(demo_config(sink_url), source="<dev demo routes>")


class Relay(io.TextIOBase):
    """A text stream whose complete lines go to ``emit`` (the dev console)."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self._emit = emit
        self._buffer = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._buffer += text
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            self._emit(line)
        return len(text)


def sink_line(body: dict[str, Any]) -> str:
    """One line about a webhook body (Alertmanager's payload)."""
    alerts = body.get("alerts") or []
    firing = sum(1 for a in alerts if a.get("status") == "firing")
    labels = body.get("groupLabels") or {}
    where = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()))
    return (
        f"webhook sink received ({body.get('receiver')}, {where}): "
        f"{firing} firing, {len(alerts) - firing} resolved"
    )


async def start_sink(emit: Callable[[str], None], port: int) -> web.AppRunner:
    async def hook(request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "not JSON"}, status=400)
        emit(sink_line(body if isinstance(body, dict) else {}))
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post(SINK_PATH, hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner

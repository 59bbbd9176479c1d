"""Run the real `stationwatch notifier` as a subprocess, a webhook receiver to hear it, and a way
to produce alert messages as the worker does."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

from aiohttp import web

from stationwatch.broker import free_port
from streams.liveness import alert_id
from tests.integration.harness import Producer, WorkerProcess, worker_env


@dataclass
class Sink:
    """A webhook receiver on 127.0.0.1: records every body; answers ``fail_first`` times 500."""

    fail_first: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    arrivals: list[datetime] = field(default_factory=list)  # when each body arrived
    answers: list[int] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def answer(self, body: dict[str, Any]) -> web.Response:
        """What the receiver answers to a body (and what it keeps of it)."""
        if len(self.answers) < self.fail_first:
            self.answers.append(500)
            return web.Response(status=500, text="not now")
        return self.accept(body)

    def accept(self, body: dict[str, Any]) -> web.Response:
        self.answers.append(200)
        self.bodies.append(body)
        self.arrivals.append(datetime.now(UTC))
        return web.Response(text="ok")

    async def start(self) -> Self:
        async def hook(request: web.Request) -> web.Response:
            return self.answer(await request.json())

        app = web.Application()
        app.router.add_post("/hook", hook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def alerts(self, status: str | None = None) -> list[dict[str, Any]]:
        return [
            alert
            for body in self.bodies
            for alert in body["alerts"]
            if status is None or alert["status"] == status
        ]


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def webhook_config(url: str, *, group_wait: str = "1s", group_interval: str = "2s") -> str:
    return f"""
route:
  receiver: hook
  group_by: [street, kind]
  group_wait: {group_wait}
  group_interval: {group_interval}
  repeat_interval: 1h
receivers:
  - name: hook
    webhook: {{url: "{url}"}}
"""


def notifier_env(worker_env: dict[str, str], config: Path) -> dict[str, str]:
    return {
        **worker_env,
        "STATIONWATCH_NOTIFY_CONFIG": str(config),
        "STATIONWATCH_NOTIFIER_PORT": str(free_port()),
        "STATIONWATCH_NOTIFY_RETRY_BASE_S": "0.2",
        "STATIONWATCH_NOTIFY_RETRY_MAX_S": "1",
    }


@dataclass
class NotifierProcess(WorkerProcess):
    """`stationwatch notifier`, its HTTP on STATIONWATCH_NOTIFIER_PORT."""

    command: str = "notifier"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.env['STATIONWATCH_NOTIFIER_PORT']}"

    async def metrics_text(self) -> str:
        return (await self.get("/metrics")).text


def notifier_env_for(
    kafka_url: str, database_url: str, token: str, tmp_path: Path, config: Path
) -> dict[str, str]:
    """Settings for a test notifier: its own topics and group (as a test worker's), ``config``."""
    base = worker_env(
        kafka_url=kafka_url, database_url=database_url, token=token, data_dir=tmp_path / "d"
    )
    return notifier_env(base, config)


def alert(
    station_id: str,
    kind: str,
    state: str,
    starts_at: datetime,
    *,
    street: str = "空港街道",
    district: str = "顺义区",
    ends_at: datetime | None = None,
) -> dict[str, Any]:
    """An alert message as the worker emits it."""
    fingerprint = f"{station_id}:{kind}"
    severity = {"offline": "critical", "over_capacity": "info"}.get(kind, "warning")
    return {
        "alert_id": alert_id(fingerprint, starts_at),
        "fingerprint": fingerprint,
        "station_id": station_id,
        "kind": kind,
        "state": state,
        "severity": severity,
        "starts_at": starts_at.isoformat(),
        "ends_at": ends_at.isoformat() if ends_at else None,
        "detected_at": datetime.now(UTC).isoformat(),
        "last_heartbeat_at": (starts_at - timedelta(minutes=5)).isoformat(),
        "labels": {
            "district": district,
            "street": street,
            "category": "standard",
            "name": f"测试驿站 {station_id}",
        },
        "summary": f"测试驿站 {station_id} ({station_id}) has sent no heartbeat for 5 min",
    }


async def send_alerts(producer: Producer, alerts: Iterable[dict[str, Any]]) -> None:
    for message in alerts:
        await producer.send(
            "station.alerts",
            message["station_id"],
            json.dumps(message, ensure_ascii=False).encode(),
        )
    await producer.flush()


def station_ids(prefix: str, count: int) -> list[str]:
    token = uuid.uuid4().hex[:4].upper()
    return [f"{prefix}-{token}{i:03d}" for i in range(count)]


@dataclass
class RefusingSink(Sink):
    """A webhook receiver that answers ``status`` (400: refused for good) to its first
    ``refuse_first`` requests (None: to all), then 200. ``refused`` holds the bodies it
    refused; ``bodies`` and ``answers`` are kept as :class:`Sink` keeps them."""

    status: int = 400
    refuse_first: int | None = None
    refused: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, body: dict[str, Any]) -> web.Response:
        if self.refuse_first is None or len(self.answers) < self.refuse_first:
            self.answers.append(self.status)
            self.refused.append(body)
            return web.Response(status=self.status, text="refused: not a payload we take")
        return self.accept(body)

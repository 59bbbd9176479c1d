"""The notifier's own HTTP port: ``/metrics`` (Prometheus) and ``/health``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from consumers.notifier import Notifier


def health(notifier: Notifier) -> tuple[bool, dict[str, Any]]:
    """Healthy: in the consumer group with partitions, and reaching PostgreSQL."""
    problems = []
    if not notifier.status.assigned:
        problems.append("no partitions assigned yet")
    if not notifier.status.database:
        problems.append("database unavailable, retrying")
    body = {
        "status": "ok" if not problems else "unavailable",
        "problems": problems,
        "groups": len(notifier.grouper.group_keys()),
        "deliveries_under_way": len(notifier.inflight),
        "receivers": sorted(notifier.channels),
        "active_silences": sum(1 for s in notifier.silences if s.is_active(_now())),
    }
    return not problems, body


def _now() -> datetime:
    return datetime.now(UTC)


def build_app(notifier: Notifier) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(notifier.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0]
        )

    async def healthz(request: web.Request) -> web.Response:
        ok, body = health(notifier)
        return web.Response(
            body=orjson.dumps(body), status=200 if ok else 503, content_type="application/json"
        )

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", healthz)
    return app


async def serve(notifier: Notifier, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(build_app(notifier), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner

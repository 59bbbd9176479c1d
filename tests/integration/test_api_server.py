"""The worker's API server process: started with the worker, fed by it, started again when it
dies, gone when the worker dies, and honest in /health when the worker stops reporting."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from stationwatch.broker import EmbeddedBroker, free_port
from stationwatch.settings import Settings
from streams.feed import ApiFeed
from tests.factories import dumps, profile
from tests.integration.harness import Producer, WorkerProcess, wait_for, worker_env

pytestmark = pytest.mark.integration

STATIONS = 40
CENTER = (40.13, 116.65)


def children(pid: int) -> list[int]:
    """Processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited


def api_server_pid(worker: WorkerProcess) -> int:
    assert worker.process is not None
    (pid,) = children(worker.process.pid)
    return pid


def env_for(broker: EmbeddedBroker, database_url: str, tmp: Path) -> dict[str, str]:
    return worker_env(
        kafka_url=broker.url,
        database_url=database_url,
        token=uuid.uuid4().hex[:8],
        data_dir=tmp / "data",
    )


async def register(broker: EmbeddedBroker, prefix: str, token: str) -> list[str]:
    ids = []
    async with Producer(broker.url, prefix) as producer:
        for i in range(STATIONS):
            sid = f"AS-{token}{i:02d}"
            angle, distance = i * 2.4, 100.0 * (i + 1)
            lat = CENTER[0] + distance / 111_195 * math.cos(angle)
            lon = CENTER[1] + distance / 85_000 * math.sin(angle)
            location = {"lat": round(lat, 6), "lon": round(lon, 6)}
            ids.append(sid)
            await producer.send(
                "station.registry",
                sid,
                dumps(profile(sid, location=location, heartbeat_interval_s=None)),
            )
        await producer.flush()
    return ids


async def serving(worker: WorkerProcess, count: int) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        answer = await worker.get("/summary")
        return answer.status_code == 200 and answer.json()["total"] == count
    return False


@pytest.fixture
async def fed_worker(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path
) -> AsyncIterator[tuple[WorkerProcess, list[str]]]:
    env = env_for(broker, database_url, tmp_path)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    try:
        await worker.wait_healthy()
        token = env["STATIONWATCH_APP_ID"][-5:].upper()
        ids = await register(broker, env["STATIONWATCH_TOPIC_PREFIX"], token)
        await wait_for(
            lambda: serving(worker, STATIONS), timeout_s=30, what="every station to be served"
        )
        yield worker, ids
    finally:
        worker.stop()


async def test_a_killed_api_server_is_started_again_with_every_station(
    fed_worker: tuple[WorkerProcess, list[str]],
) -> None:
    worker, ids = fed_worker
    first = api_server_pid(worker)
    os.kill(first, signal.SIGKILL)

    await wait_for(
        lambda: serving(worker, STATIONS), timeout_s=30, what="the API server to serve again"
    )
    second = api_server_pid(worker)
    assert second != first
    assert not alive(first)
    answer = await worker.get(f"/stations/{ids[7]}")
    assert answer.status_code == 200
    assert answer.json()["station_id"] == ids[7]
    near = (
        await worker.get("/stations/nearby", lat=CENTER[0], lon=CENTER[1], radius_m=5000)
    ).json()
    assert [item["station_id"] for item in near["items"][:3]] == ids[:3]
    assert near["complete"] is True
    assert await worker.metric("stationwatch_events_total", outcome="accepted") >= STATIONS
    assert "starting it again" in worker.log()


async def test_a_hung_api_server_is_replaced(
    fed_worker: tuple[WorkerProcess, list[str]],
) -> None:
    worker, _ = fed_worker
    hung = api_server_pid(worker)
    os.kill(hung, signal.SIGSTOP)
    try:

        async def replaced() -> bool:
            assert worker.process is not None
            return children(worker.process.pid) not in ([], [hung])

        await wait_for(replaced, timeout_s=40, what="the worker to replace the hung API server")
        await wait_for(
            lambda: serving(worker, STATIONS), timeout_s=30, what="the new API server to serve"
        )
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(hung, signal.SIGCONT)
    assert "was silent for" in worker.log() or "read nothing for" in worker.log()


async def test_the_api_server_exits_with_its_worker(
    fed_worker: tuple[WorkerProcess, list[str]],
) -> None:
    worker, _ = fed_worker
    server = api_server_pid(worker)
    worker.stop(signal.SIGKILL)

    async def gone() -> bool:
        return not alive(server)

    await wait_for(gone, timeout_s=10, what="the API server to exit")
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", worker.port))  # the port is free again


async def test_health_says_when_the_worker_stops_reporting(
    fed_worker: tuple[WorkerProcess, list[str]],
) -> None:
    worker, ids = fed_worker
    assert worker.process is not None

    async def counted() -> bool:
        return await worker.metric("stationwatch_events_total", outcome="accepted") >= STATIONS

    await wait_for(counted, timeout_s=10, what="the metrics to count the registry")
    worker.process.send_signal(signal.SIGSTOP)
    try:

        async def unhealthy() -> httpx.Response | None:
            answer = await worker.get("/health")
            return answer if answer.status_code == 503 else None

        answer = await wait_for(unhealthy, timeout_s=15, what="/health to report the silence")
        assert any("has not reported" in p for p in answer.json()["problems"])
        # The live state is still served meanwhile, as last fed.
        assert (await worker.get(f"/stations/{ids[0]}")).status_code == 200
        # Metrics as last reported, with their age.
        assert await worker.metric("stationwatch_events_total", outcome="accepted") >= STATIONS
        assert await worker.metric("stationwatch_worker_report_age_seconds") > 5
    finally:
        worker.process.send_signal(signal.SIGCONT)
    await worker.wait_healthy(timeout_s=30)


async def test_unknown_paths_and_methods_answer_json(
    fed_worker: tuple[WorkerProcess, list[str]],
) -> None:
    worker, _ = fed_worker
    missing = await worker.get("/no/such/path")
    assert missing.status_code == 404
    assert missing.json()["error"] == "Not Found"
    async with httpx.AsyncClient(base_url=worker.url) as client:
        post = await client.post("/stations", json={})
    assert post.status_code == 405
    assert "GET" in post.headers["Allow"]
    assert post.json()["error"] == "Method Not Allowed"
    assert await worker.metric("stationwatch_http_requests_total", route="/summary") >= 1
    assert await worker.metric("stationwatch_http_requests_total", route="unmatched") >= 1


async def test_a_taken_port_stops_the_worker_with_a_clear_message(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = env_for(broker, database_url, tmp_path)
        env["STATIONWATCH_WEB_PORT"] = str(taken.getsockname()[1])
        worker = WorkerProcess(env, tmp_path / "worker.log").start()
        assert worker.process is not None
        try:
            code = await asyncio.to_thread(worker.process.wait, 90)
        finally:
            log = worker.log()
            worker.stop(signal.SIGKILL)
    assert code != 0
    assert f"cannot listen on 127.0.0.1:{env['STATIONWATCH_WEB_PORT']}" in log, log[-3000:]


def api_servers() -> list[int]:
    """This test process's own API server processes (the broker is a child of it too)."""
    found = []
    for pid in children(os.getpid()):
        with contextlib.suppress(OSError):
            if b"streams.server" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
    return found


async def never_fatal(exc: BaseException) -> None:
    raise AssertionError(f"the feed gave up: {exc!r}")


async def test_an_api_server_launched_before_the_worker_starts_is_the_one_it_keeps() -> None:
    """The worker launches its API server before its group join (``ApiFeed.begin``), so the
    server's start-up overlaps the join: it answers meanwhile (not ready yet), and starting
    the feed afterwards keeps that server rather than starting a second one."""
    port = free_port()
    settings = Settings(web_bind="127.0.0.1", web_port=port)
    feed = ApiFeed(settings, snapshot=lambda: None, on_fatal=never_fatal)
    feed.begin(asyncio.get_running_loop())
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:

        async def answers() -> int | None:
            with contextlib.suppress(httpx.HTTPError):
                return (await client.get("/health")).status_code
            return None

        try:
            assert await wait_for(answers, timeout_s=30, what="the early server") == 503
            (server,) = api_servers()
            await feed.start()
            assert api_servers() == [server]
            assert await answers() == 503  # nothing fed yet: still starting
        finally:
            await feed.stop()
    await wait_for(lambda: asyncio.sleep(0, not alive(server)), timeout_s=10, what="its exit")


async def test_a_feed_stopped_while_its_server_starts_leaves_no_server() -> None:
    feed = ApiFeed(
        Settings(web_bind="127.0.0.1", web_port=free_port()), snapshot=lambda: None,
        on_fatal=never_fatal,
    )  # fmt: skip
    feed.begin(asyncio.get_running_loop())
    await wait_for(lambda: asyncio.sleep(0, api_servers()), timeout_s=10, what="a launch")
    (server,) = api_servers()
    await feed.stop()
    await wait_for(lambda: asyncio.sleep(0, not alive(server)), timeout_s=10, what="its exit")

"""The worker → API server feed over a real socket pair: what the server ends up holding is
exactly what the worker last said, whatever happened while frames were on their way."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from stationwatch.settings import Settings
from streams import feed as feed_module
from streams.api import Replica, build_app
from streams.feed import HEADER, PUT, ApiFeed, decode_put, encode_frame, encode_put, socket_pair
from streams.record import holding
from streams.server import Feed
from streams.state import StationState
from streams.state_codec import encode_state, state_json
from tests import factories


def state(station_id: str, *, padding: int = 0, occupants: int | None = None) -> bytes:
    """As the live table stores it; ``padding`` characters of its name that do not compress
    (hex digits, as many as bytes when stored)."""
    noise = "".join(
        hashlib.sha256(f"{station_id}/{n}".encode()).hexdigest() for n in range(padding // 64 + 1)
    )
    profile = factories.profile(station_id, name=f"驿站 {station_id} " + noise[:padding])
    return encode_state(
        StationState(station_id=station_id, **holding(profile), occupants=occupants)
    )


async def never_fatal(exc: BaseException) -> None:
    raise AssertionError(f"on_fatal called: {exc!r}")


@dataclass
class Pair:
    feed: ApiFeed
    replica: Replica
    server: Feed
    writer: asyncio.StreamWriter  # the worker's end
    writing: asyncio.Task[None]
    reading: asyncio.Task[None] | None = None

    def writer_blocked(self) -> bool:
        """The worker's writes are held up: more is buffered than the transport lets through."""
        transport = self.writer.transport
        return transport.get_write_buffer_size() > transport.get_write_buffer_limits()[1]

    def start_reading(self) -> None:
        self.reading = asyncio.create_task(self.server.run())

    async def until(self, condition: Callable[[], bool], timeout_s: float = 10) -> None:
        async with asyncio.timeout(timeout_s):
            while not condition():  # noqa: ASYNC110 - polling what another task changes
                await asyncio.sleep(0.01)


@pytest.fixture
async def pair(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Pair]:
    # small buffers everywhere: a few frames fill them, and the writer waits for the server
    monkeypatch.setattr(feed_module, "BUFFER_LIMIT", 64 * 1024)
    monkeypatch.setattr(feed_module, "DRAINED_BY", 16 * 1024)
    worker_end, server_end = socket.socketpair()
    worker_end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    server_end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    _, worker_writer = await asyncio.open_connection(sock=worker_end)
    server_reader, server_writer = await asyncio.open_connection(sock=server_end)
    feed = ApiFeed(Settings(), snapshot=lambda: None, on_fatal=never_fatal)
    replica = Replica(Settings(partitions=4))
    writing = asyncio.create_task(feed._write_loop(worker_writer))
    pair = Pair(feed, replica, Feed(replica, server_reader, server_writer), worker_writer, writing)
    yield pair
    for task in (pair.writing, pair.reading):
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
    worker_writer.close()
    server_writer.close()


async def test_a_reset_while_a_snapshot_is_on_its_way_leaves_exactly_the_new_one(
    pair: Pair,
) -> None:
    for n in range(2000):  # ~2 MB: the writer blocks, nobody reads yet
        pair.feed.put(f"OLD-{n:04d}", n % 4, state(f"OLD-{n:04d}", padding=2000))
    pair.feed.ready([0, 1, 2, 3])
    await pair.until(pair.writer_blocked)  # the snapshot is taken and on its way
    assert not pair.writing.done()
    pair.feed.reset()  # a rebalance: partitions 0 and 1 now
    for n in range(300):
        pair.feed.put(f"MID-{n:04d}", 0, state(f"MID-{n:04d}"))
    pair.feed.ready([0, 1])
    pair.start_reading()
    await pair.until(lambda: len(pair.replica.index.entries) > 0)  # part of it has arrived
    pair.feed.reset()  # and another: partitions 0 and 1 hold these 700 (more than a frame)
    new = {f"NEW-{n:04d}": state(f"NEW-{n:04d}", occupants=n) for n in range(700)}
    for sid, value in new.items():
        pair.feed.put(sid, 0, value)
    pair.feed.ready([0, 1])

    def settled() -> bool:
        index = pair.replica.index
        return index.ready and pair.replica.partitions == {0, 1} and set(index.entries) == set(new)

    await pair.until(settled)
    # An observation window, not a synchronisation: nothing that arrives later may change it.
    await asyncio.sleep(0.2)
    assert settled()
    assert {sid: e.state for sid, e in pair.replica.index.entries.items()} == {
        sid: orjson.loads(state_json(value)) for sid, value in new.items()
    }
    assert pair.replica.holds(0)
    assert not pair.replica.holds(2)


def frames_in(data: bytes) -> list[dict[str, object]]:
    frames, at = [], 0
    while at < len(data):
        (size,) = HEADER.unpack_from(data, at)
        body = data[at + HEADER.size : at + HEADER.size + size]
        frames.append(decode_put(body) if body[:1] == PUT else orjson.loads(body))
        at += HEADER.size + size
    return frames


async def test_stations_put_reach_the_server_while_the_worker_holds_its_event_loop() -> None:
    """While the worker indexes it holds its event loop, giving it a turn between two parts
    (``streams.owned.INDEX_PART`` stations). The stations it put before must reach the server
    within that one turn (the server parses them while the next part is indexed), not a frame
    per turn: here, without the loop turning again."""
    worker_end, server_end = socket_pair()
    _, writer = await asyncio.open_connection(sock=worker_end)
    feed = ApiFeed(Settings(), snapshot=lambda: None, on_fatal=never_fatal)
    writing = asyncio.create_task(feed._write_loop(writer))
    stations = [(f"SY-{n:05d}", n % 4, state(f"SY-{n:05d}")) for n in range(1000)]  # 2 frames
    size = sum(len(encode_put(stations[i : i + 500])) for i in range(0, len(stations), 500))
    # what a default kernel grants (net.core.wmem_max 212,992, doubled) takes the lot
    if worker_end.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) < 2 * size:
        pytest.skip("the kernel grants the feed's socket too small a send buffer")
    size += len(encode_frame({"op": "reset"}))
    size += len(encode_frame({"op": "ready", "partitions": [0, 1, 2, 3]}))
    received = bytearray()

    def read() -> None:
        while chunk := server_end.recv(1 << 20):
            received.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        await asyncio.sleep(0.1)  # the writer waits for something to send
        feed.reset()
        feed.put_many(stations)
        feed.ready([0, 1, 2, 3])
        await asyncio.sleep(0)  # one turn of the loop
        # then the worker's indexing holds the loop (for up to 5 s here)
        deadline = time.monotonic() + 5
        while len(received) < size and time.monotonic() < deadline:
            time.sleep(0.01)  # noqa: ASYNC251 - holding the loop is the point
        arrived = bytes(received)
    finally:
        server_end.shutdown(socket.SHUT_RDWR)  # the writer's wait for room (if any) ends
        writing.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await writing
        writer.close()
        reader.join(5)
        server_end.close()
    assert len(arrived) == size, f"{len(arrived)} of {size} bytes arrived while the loop was held"
    frames = frames_in(arrived)
    assert frames[0] == {"op": "reset"}
    assert frames[-1] == {"op": "ready", "partitions": [0, 1, 2, 3]}
    put = [item for frame in frames[1:-1] for item in frame["items"]]  # type: ignore[attr-defined]
    assert put == stations


async def test_the_writer_stops_at_once_when_the_server_has_gone(pair: Pair) -> None:
    """Writes that do not wait would go on into a lost connection (asyncio drops them): the
    writer ends with an error instead, and the feed starts a new server."""
    pair.server.writer.transport.abort()  # the server's end is gone
    for n in range(3000):  # six frames, more than the fixture's buffers hold
        pair.feed.put(f"SY-{n:04d}", 0, state(f"SY-{n:04d}"))
    async with asyncio.timeout(10):
        with pytest.raises(ConnectionError):
            await pair.writing


async def test_the_newest_state_wins_and_removals_stick(pair: Pair) -> None:
    pair.start_reading()
    for occupants in range(50):
        pair.feed.put("SY-0001", 2, state("SY-0001", occupants=occupants))
    pair.feed.put("SY-0002", 2, state("SY-0002"))
    pair.feed.ready([2])
    await pair.until(lambda: pair.replica.index.ready)
    await pair.until(lambda: pair.replica.index.entries["SY-0001"].occupants == 49)
    pair.feed.remove("SY-0002")
    pair.feed.put("SY-0003", 2, state("SY-0003"))
    await pair.until(lambda: "SY-0003" in pair.replica.index.entries)
    assert set(pair.replica.index.entries) == {"SY-0001", "SY-0003"}


async def test_a_station_the_server_cannot_read_is_skipped_not_fatal(pair: Pair) -> None:
    worker_end, server_end = socket.socketpair()
    _, writer = await asyncio.open_connection(sock=worker_end)
    reader, server_writer = await asyncio.open_connection(sock=server_end)
    replica = Replica(Settings())
    feed = Feed(replica, reader, server_writer)
    running = asyncio.create_task(feed.run())
    writer.write(encode_put([("SY-0006", 1, b"\x01garbage")]))  # a damaged stored state
    writer.write(encode_put([("SY-0008", 1, encode_state(StationState(station_id="SY-0008"))[:9])]))
    writer.write(encode_put([("SY-0007", 1, state("SY-0007"))]))
    writer.write(encode_frame({"op": "ready", "partitions": [1]}))
    await writer.drain()
    await pair.until(lambda: replica.index.ready)
    assert set(replica.index.entries) == {"SY-0007"}
    writer.close()
    await asyncio.wait_for(running, 5)  # the worker closed the socket: the feed ends cleanly
    server_writer.close()


async def test_status_reports_reach_health_routes_and_metrics(pair: Pair) -> None:
    pair.start_reading()
    body = {"status": "ok", "problems": [], "partitions": 4, "lag": 0, "lag_by_topic": {}}
    routes = {"http://a:6066": [0, 1], "http://b:6066": [2, 3]}
    pair.feed.status((True, {**body, "database": "ok"}), routes, "http://a:6066", b"m_total 1\n")
    await pair.until(lambda: pair.replica.status_at is not None)
    assert pair.replica.health[0] is True
    assert pair.replica.owner_url("SY-0001") in routes
    assert pair.replica.others() == {"http://b:6066": {2, 3}}
    assert pair.replica.worker_metrics == b"m_total 1\n"
    assert 0 <= pair.replica.status_age() < 5


async def test_health_waits_for_the_stations_as_well_as_the_workers_report(pair: Pair) -> None:
    """The worker reports itself caught up while its stations may still be on their way (or
    being parsed): the server is healthy only once it holds them."""
    pair.start_reading()
    body = {"status": "ok", "problems": [], "partitions": 4, "lag": 0, "lag_by_topic": {}}
    client: TestClient[Any, Any] = TestClient(TestServer(build_app(pair.replica)))
    await client.start_server()
    try:
        pair.feed.reset()
        pair.feed.put("SY-0001", 1, state("SY-0001"))
        pair.feed.status((True, {**body, "database": "ok"}), {}, "http://a:6066", b"")
        await pair.until(lambda: pair.replica.status_at is not None)
        loading = await client.get("/health")
        assert loading.status == 503
        answer = await loading.json()
        assert answer["status"] == "unavailable"
        assert answer["problems"] == ["the API server is loading the worker's stations"]
        pair.feed.ready([0, 1, 2, 3])
        await pair.until(lambda: pair.replica.index.ready)
        served = await client.get("/health")
        assert served.status == 200
        assert (await served.json())["problems"] == []
    finally:
        await client.close()
        await pair.replica.close()


def test_the_api_server_reads_back_exactly_the_workers_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import SecretStr

    from stationwatch.settings import Settings
    from streams.feed import settings_env

    settings = Settings(
        partitions=3,
        alert_pending_s={"over_capacity": 5.0, "stale": 1.5},
        alert_keep_firing_s={},
        api_token=SecretStr("t0ken"),
    )
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    assert Settings() == settings


def test_a_put_frame_carries_stations_as_stored_and_removals() -> None:
    stored = state("SY-0001", occupants=3)
    frame = encode_put([("SY-0001", 7, stored), ("驿站-2", 0, None), ("SY-0003", 65535, b"x")])
    body = frame[4:]
    assert int.from_bytes(frame[:4], "big") == len(body)
    assert decode_put(body) == {
        "op": "put",
        "items": [("SY-0001", 7, stored), ("SY-0003", 65535, b"x")],
        "removed": ["驿站-2"],
    }
    assert orjson.loads(state_json(stored))["occupants"] == 3


def test_a_put_frame_cut_short_is_refused() -> None:
    body = encode_put([("SY-0001", 1, state("SY-0001"))])[4:]
    with pytest.raises((ValueError, struct.error)):
        decode_put(body[:-3] + b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")

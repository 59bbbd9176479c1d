"""The worker's side of its API server: it starts `streams.server` as a process of its own and
keeps it fed with the live state of the stations this worker owns.

Why a process: the HTTP API must answer in milliseconds while the worker ingests. In one
process the answers wait for the interpreter lock, which the agent, Faust's producer and the
garbage collector hold most of the time (measured: station lookup p99 9 ms, nearby 21 ms, with
150,000 stations). The server process has its own interpreter and gets a core when a request
comes in.

The two talk over a socket pair, in frames (4-byte big-endian length, then a JSON object, or
for stations a binary body):

worker → server
  ``{"op": "reset"}``                              forget every station (a rebalance began)
  ``P`` then per station ``>HHI`` (id length, partition, state length), id, state as the
  live table stores it (:mod:`streams.state_codec`; length 0: the station is removed). The
  server decompresses and parses each state once; as JSON inside a JSON frame it was parsed,
  encoded again and parsed anew (at 150,000 stations, most of a restarted worker's wait).
  ``{"op": "ready", "partitions": [p, …]}``        every station of these partitions was put
  ``{"op": "status", "health": [ok, body], "routes": {url: [p, …]}, "own": url,
     "metrics": "…"}``                             each second: health, who owns what, metrics

server → worker
  ``{"op": "listening"}``                          the HTTP port is bound
  ``{"op": "alive"}``                              each second

Updates are coalesced per station until written, so a slow server never holds up the agent
and never receives more than the newest state of a station. A server that dies, or stops
answering for ``HUNG_AFTER_S``, is killed and started again, and gets a fresh snapshot. A
server that cannot start when the worker starts (its port is taken) stops the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
import sys
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import orjson

from stationwatch.allocator import as_before_restart
from stationwatch.settings import Settings

logger = logging.getLogger(__name__)

HEADER = struct.Struct(">I")
PUT = b"P"  # first byte of a binary put frame (a JSON frame starts with "{")
STATION = struct.Struct(">HHI")  # id length, partition, stored state length
FRAME_ITEMS = 500  # stations per "put" frame
COALESCE_S = 0.02  # after a change, wait this long for more to send them in one go
# The worker's end of the socket asks for a send buffer this large. Linux grants twice the
# request, up to twice net.core.wmem_max (208 KiB by default: 416 KiB), which takes a part of
# the indexing's stations (streams.owned.INDEX_PART, ~400 kB) at once; a larger one takes
# more of a snapshot to a restarted server.
SOCKET_BUFFER = 4 * 1024 * 1024
# What the worker holds unsent beyond the kernel's buffer before a write waits for the
# server to read (until less than BUFFER_LIMIT - DRAINED_BY is left)
BUFFER_LIMIT = 8 * 1024 * 1024
DRAINED_BY = 1024 * 1024
FRAMES_PER_TURN = 64  # put frames encoded and written before the event loop gets a turn
MAX_FRAME = 64 * 1024 * 1024
STARTUP_TIMEOUT_S = 30.0
ALIVE_INTERVAL_S = 1.0  # the server's "alive" frames
HUNG_AFTER_S = 15.0  # no frame from the server, or a full buffer stuck this long: it is killed
RESTART_DELAY_S = (0.5, 1.0, 2.0, 5.0, 10.0)
STABLE_AFTER_S = 60.0  # a server that ran this long starts the restart delays over
EXIT_CANNOT_BIND = 3  # the server's exit code when its port cannot be bound

Snapshot = tuple[list[int], Iterable[tuple[str, int, bytes]]]  # states as stored


class ServerStartError(RuntimeError):
    """The API server process exited before it could serve."""


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next frame, or None at the end of the stream."""
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError:
        return None
    (size,) = HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes is larger than {MAX_FRAME}")
    try:
        body = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        return None
    if body[:1] == PUT:
        return decode_put(body)
    frame: dict[str, Any] = orjson.loads(body)
    return frame


def encode_frame(frame: dict[str, Any]) -> bytes:
    body = orjson.dumps(frame)
    return HEADER.pack(len(body)) + body


def encode_put(stations: Iterable[tuple[str, int, bytes | None]]) -> bytes:
    """A frame of stations: ``(id, partition, state as stored)``, None for a removed one."""
    parts = [PUT]
    for station_id, partition, stored in stations:
        key = station_id.encode()
        parts += (STATION.pack(len(key), partition, len(stored or b"")), key, stored or b"")
    body = b"".join(parts)
    return HEADER.pack(len(body)) + body


def decode_put(body: bytes) -> dict[str, Any]:
    """A put frame as ``{"op": "put", "items": [(id, partition, stored)], "removed": [id]}``."""
    items: list[tuple[str, int, bytes]] = []
    removed: list[str] = []
    at, end = len(PUT), len(body)
    view = memoryview(body)
    while at < end:
        key_len, partition, size = STATION.unpack_from(body, at)
        at += STATION.size
        station_id = str(view[at : at + key_len], "utf-8")
        at += key_len
        if size:
            items.append((station_id, partition, bytes(view[at : at + size])))
        else:
            removed.append(station_id)
        at += size
    if at != end:
        raise ValueError("a put frame that ends inside a station")
    return {"op": "put", "items": items, "removed": removed}


def socket_pair() -> tuple[socket.socket, socket.socket]:
    """The worker's end and the server's end of the feed, the worker's with a send buffer of
    ``SOCKET_BUFFER`` where the kernel grants it (else as large as it allows)."""
    ours, theirs = socket.socketpair()
    with contextlib.suppress(OSError):
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
    return ours, theirs


def settings_env(settings: Settings) -> dict[str, str]:
    """The settings as ``STATIONWATCH_*`` variables, so the server reads exactly the worker's."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        # complex values (mappings, lists) are read back as JSON
        text = json.dumps(value) if isinstance(value, dict | list) else str(value)
        env[f"STATIONWATCH_{name.upper()}"] = text
    return env


class ApiFeed:
    """Starts, feeds and supervises the worker's API server process."""

    def __init__(
        self,
        settings: Settings,
        *,
        snapshot: Callable[[], Snapshot | None],
        on_fatal: Callable[[BaseException], Awaitable[None]],
    ) -> None:
        self.settings = settings
        self._snapshot = snapshot  # (partitions, their stations), or None while not known
        self._on_fatal = on_fatal
        # What the server has not been sent yet: a reset first, then these stations (None:
        # removed), then "ready" with the partitions, then the newest status.
        self._reset = False
        self._pending: dict[str, tuple[int, bytes] | None] = {}
        self._ready: list[int] | None = None
        self._status: dict[str, Any] | None = None
        self._wake = asyncio.Event()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._starting: asyncio.Task[None] | None = None
        self._stopping = False
        self.restarts = 0
        self.resets = 0  # a reset forgets every station put before it

    # -- what the worker tells the server (never blocks) ----------------------------------

    def put(self, station_id: str, partition: int, state: bytes) -> None:
        """``state`` as the live table stores it (:mod:`streams.state_codec`)."""
        self._pending[station_id] = (partition, state)
        self._wake.set()

    def put_many(self, stations: Iterable[tuple[str, int, bytes]]) -> None:
        """``(station id, partition, state as stored)`` of many stations at once."""
        self._pending.update((sid, (partition, state)) for sid, partition, state in stations)
        self._wake.set()

    def remove(self, station_id: str) -> None:
        self._pending[station_id] = None
        self._wake.set()

    def reset(self) -> None:
        """Forget every station (the partitions are being reassigned, or a new server starts)."""
        self.resets += 1
        self._reset = True
        self._pending.clear()
        self._ready = None
        self._wake.set()

    def ready(self, partitions: Iterable[int]) -> None:
        """Every station of ``partitions`` has been put since the last reset."""
        self._ready = sorted(partitions)
        self._wake.set()

    def status(
        self,
        health: tuple[bool, dict[str, Any]],
        routes: dict[str, list[int]],
        own: str,
        metrics: bytes,
    ) -> None:
        self._status = {
            "op": "status",
            "health": list(health),
            "routes": routes,
            "own": own,
            "metrics": metrics.decode(),
        }
        self._wake.set()

    # -- the process -----------------------------------------------------------------------

    def begin(self, loop: asyncio.AbstractEventLoop) -> asyncio.Task[None]:
        """Launch the server on ``loop`` without waiting for it (once; the launch is returned):
        its start-up (a second of imports) then overlaps the worker's own start and group join.
        :meth:`start` waits for it."""
        if self._starting is None:
            self._starting = loop.create_task(self._spawn(), name="api-server-start")
        return self._starting

    async def start(self) -> None:
        """Start the server (or wait for the launch :meth:`begin` made); raises
        :class:`ServerStartError` when it cannot serve."""
        await self.begin(asyncio.get_running_loop())
        self._supervisor = asyncio.create_task(self._supervise(), name="api-server-supervisor")
        self._supervisor.add_done_callback(self._supervisor_ended)

    async def stop(self) -> None:
        self._stopping = True
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._starting
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._supervisor
        await self._terminate()

    def _supervisor_ended(self, task: asyncio.Task[None]) -> None:
        if self._stopping or task.cancelled():
            return
        exc = task.exception() or RuntimeError("the API server's supervisor ended")
        logger.critical("API server supervision failed: %r; stopping the worker", exc)
        asyncio.ensure_future(self._on_fatal(exc))  # noqa: RUF006 - the worker is stopping

    async def _spawn(self) -> None:
        ours, theirs = socket_pair()
        try:
            environ = as_before_restart(os.environ)  # the worker's allocator is its own
            env = {**environ, **settings_env(self.settings), "PYTHONUNBUFFERED": "1"}
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "streams.server",
                "--fd",
                str(theirs.fileno()),
                pass_fds=(theirs.fileno(),),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        reader, writer = await asyncio.open_connection(sock=ours)
        self._reader, self._writer = reader, writer
        try:
            first = await asyncio.wait_for(read_frame(reader), STARTUP_TIMEOUT_S)
        except (TimeoutError, ValueError, orjson.JSONDecodeError):
            first = None
        if first is None or first.get("op") != "listening":
            code = await self._terminate()
            address = f"{self.settings.web_bind}:{self.settings.web_port}"
            if code == EXIT_CANNOT_BIND:
                raise ServerStartError(f"the API server cannot listen on {address}: is it free?")
            raise ServerStartError(
                f"the API server for {address} did not start (exit code {code}); its log is above"
            )
        logger.info(
            "API server (pid %d) listening on %s:%d",
            self._process.pid,
            self.settings.web_bind,
            self.settings.web_port,
        )
        # A new server knows nothing: the whole picture first.
        self.reset()
        known = self._snapshot()
        if known is not None:
            partitions, stations = known
            self.put_many(stations)
            self.ready(partitions)

    async def _terminate(self) -> int | None:
        writer, self._writer = self._writer, None
        if writer is not None:
            # what asyncio still holds (up to BUFFER_LIMIT) is dropped; what the kernel holds
            # the server reads before it sees the end
            writer.transport.abort()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 5)
        process, self._process = self._process, None
        if process is None:
            return None
        try:
            return await asyncio.wait_for(process.wait(), 5)  # it exits when the socket closes
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            return await process.wait()

    async def _supervise(self) -> None:
        while not self._stopping:
            began = asyncio.get_running_loop().time()
            try:
                await self._serve_connection()
                logger.error("API server connection closed")
            except Exception as exc:  # noqa: BLE001 - whatever it was, the server is restarted
                logger.error("API server connection failed: %r", exc)  # noqa: TRY400 - no trace
            if self._stopping:
                return
            code = await self._terminate()
            if asyncio.get_running_loop().time() - began > STABLE_AFTER_S:
                self.restarts = 0
            delay = RESTART_DELAY_S[min(self.restarts, len(RESTART_DELAY_S) - 1)]
            self.restarts += 1
            logger.error("API server exited (code %s); starting it again in %.1f s", code, delay)
            await asyncio.sleep(delay)
            try:
                await self._spawn()
            except (ServerStartError, OSError) as exc:
                logger.error("%s", exc)  # noqa: TRY400 - the reason is the message; no trace

    async def _serve_connection(self) -> None:
        """Until the server goes away or hangs: write what changed, hear that it lives."""
        if self._reader is None or self._writer is None:
            raise ConnectionError("no API server")
        tasks = {
            asyncio.create_task(self._read_loop(self._reader), name="api-server-read"),
            asyncio.create_task(self._write_loop(self._writer), name="api-server-write"),
        }
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for task in done:
            exc = task.exception()
            if exc is not None:
                raise exc

    @staticmethod
    async def _read_loop(reader: asyncio.StreamReader) -> None:
        while True:
            try:
                frame = await asyncio.wait_for(read_frame(reader), HUNG_AFTER_S)
            except TimeoutError:
                raise ConnectionError(
                    f"the API server was silent for {HUNG_AFTER_S:.0f} s"
                ) from None
            if frame is None:
                return  # it has gone

    async def _write_loop(self, writer: asyncio.StreamWriter) -> None:
        async def send(frame: dict[str, Any]) -> None:
            await send_bytes(encode_frame(frame))

        async def send_bytes(frame: bytes) -> None:
            """Write a frame; wait only once ``BUFFER_LIMIT`` is held unsent. A wait per frame
            (``drain`` under ``wait_for``, on Python 3.11 a task of its own) costs a turn of the
            event loop, and the indexing gives the loop a turn per part of its stations."""
            if writer.transport.is_closing():  # the server has gone: its reader says so too
                raise ConnectionResetError("the API server's connection is closed")
            writer.write(frame)
            if writer.transport.get_write_buffer_size() <= BUFFER_LIMIT:
                return
            try:
                await asyncio.wait_for(writer.drain(), HUNG_AFTER_S)
            except TimeoutError:
                raise ConnectionError(
                    f"the API server did not bring its unsent feed below {low / 2**20:.1f} MiB "
                    f"in {HUNG_AFTER_S:.0f} s"
                ) from None

        low = max(0, BUFFER_LIMIT - DRAINED_BY)  # drain() waits until the unsent part is below
        writer.transport.set_write_buffer_limits(high=BUFFER_LIMIT, low=low)
        self._wake.set()  # whatever is already pending
        while True:
            await self._wake.wait()
            if len(self._pending) < FRAME_ITEMS:  # a full frame is sent at once
                await asyncio.sleep(COALESCE_S)
            self._wake.clear()
            # Take everything at once: reset, stations and ready stay consistent whatever the
            # agent does while the frames are written.
            reset, self._reset = self._reset, False
            pending, self._pending = self._pending, {}
            ready, self._ready = self._ready, None
            status, self._status = self._status, None
            if reset:
                await send({"op": "reset"})
            items = list(pending.items())
            for frame, i in enumerate(range(0, len(items), FRAME_ITEMS), start=1):
                chunk = items[i : i + FRAME_ITEMS]
                await send_bytes(
                    encode_put(
                        (sid, v[0], v[1]) if v is not None else (sid, 0, None) for sid, v in chunk
                    )
                )
                if frame % FRAMES_PER_TURN == 0:  # a whole snapshot: the agent runs meanwhile
                    await asyncio.sleep(0)
            if ready is not None:
                await send({"op": "ready", "partitions": ready})
            if status is not None:
                await send(status)

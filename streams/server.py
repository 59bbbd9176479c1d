"""A worker's API server process: serves the HTTP API (`streams.api`) from a replica of the
worker's live table, fed over the socket the worker passes as ``--fd`` (protocol in
`streams.feed`). Started by the worker, never by hand; it exits when the worker closes the
socket or dies.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import itertools
import logging
import signal
import socket
import sys
import time
from typing import Any

from aiohttp import web

from stationwatch.settings import Settings
from streams.api import Replica, build_app
from streams.feed import encode_frame, read_frame
from streams.readmodel import build_tree

logger = logging.getLogger("streams.server")

BIND_RETRY_S = 10.0  # a previous server on the same port may still be closing
REBUILD_INTERVAL_S = 1.0


class Feed:
    """Applies the worker's frames to the replica and asks the worker for its metrics."""

    def __init__(
        self, replica: Replica, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.replica = replica
        self.reader = reader
        self.writer = writer
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[bytes]] = {}
        self._rebuild = asyncio.Event()
        replica.worker_metrics = self.worker_metrics

    async def send(self, frame: dict[str, Any]) -> None:
        self.writer.write(encode_frame(frame))
        await self.writer.drain()

    async def worker_metrics(self) -> bytes:
        ask_id = next(self._ids)
        waiting: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[ask_id] = waiting
        try:
            await self.send({"op": "metrics", "id": ask_id})
            return await waiting
        finally:
            self._waiting.pop(ask_id, None)

    async def run(self) -> None:
        """Until the worker closes the socket."""
        index = self.replica.index
        while True:
            frame = await read_frame(self.reader)
            if frame is None:
                return
            op = frame.get("op")
            if op == "put":
                for station_id, partition, state in frame["items"]:
                    index.put(station_id, partition, state)
                for station_id in frame["removed"]:
                    index.remove(station_id)
                if index.ready and index.needs_rebuild:
                    self._rebuild.set()
            elif op == "reset":
                index.reset()
            elif op == "ready":
                await self.rebuild()  # the tree first: nearby is then fast from the start
                index.ready = True
                logger.info("serving %d stations", len(index))
            elif op == "status":
                self.replica.report(frame["health"], frame["routes"], frame["own"])
            elif op == "metrics":
                waiting = self._waiting.get(frame.get("id", -1))
                if waiting is not None and not waiting.done():
                    waiting.set_result(str(frame.get("text", "")).encode())
            else:
                logger.warning("ignoring an unknown frame %r", op)

    async def rebuild(self) -> None:
        """Rebuild the KD-tree in a thread, from a snapshot of the entries."""
        index = self.replica.index
        started = time.perf_counter()
        generation, entries = index.snapshot()
        built = await asyncio.get_running_loop().run_in_executor(None, build_tree, entries)
        index.install(generation, built)
        logger.debug(
            "KD-tree of %d stations in %.3f s", len(entries), time.perf_counter() - started
        )

    async def rebuild_when_moved(self) -> None:
        """At most once a second, when stations were placed or moved."""
        while True:
            await self._rebuild.wait()
            self._rebuild.clear()
            if self.replica.index.ready and self.replica.index.needs_rebuild:
                await self.rebuild()
            await asyncio.sleep(REBUILD_INTERVAL_S)


async def listen(app: web.Application, settings: Settings) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    deadline = time.monotonic() + BIND_RETRY_S
    while True:
        site = web.TCPSite(runner, settings.web_bind, settings.web_port, backlog=1024)
        try:
            await site.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                await runner.cleanup()
                raise
            await asyncio.sleep(0.2)
        else:
            return runner


async def serve(settings: Settings, fd: int) -> int:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock)
    replica = Replica(settings)
    feed = Feed(replica, reader, writer)
    try:
        runner = await listen(build_app(replica), settings)
    except OSError as exc:
        logger.error(  # noqa: TRY400 - the reason is the message; no trace
            "cannot serve HTTP on %s:%d: %s", settings.web_bind, settings.web_port, exc
        )
        return 1
    stop = asyncio.get_running_loop().create_future()
    with contextlib.suppress(NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.cancel)
    rebuilding = asyncio.create_task(feed.rebuild_when_moved())
    running = asyncio.create_task(feed.run())
    try:
        await feed.send({"op": "listening"})
        await asyncio.wait({running, stop}, return_when=asyncio.FIRST_COMPLETED)
        if running.done() and running.exception() is not None:
            logger.error("the worker's feed failed: %s", running.exception())
            return 1
        return 0
    finally:
        for task in (rebuilding, running):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await runner.cleanup()
        await replica.close()
        writer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.server", description=__doc__)
    parser.add_argument("--fd", type=int, required=True, help="the worker's end of the feed")
    args = parser.parse_args(argv)
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Ctrl-C reaches the whole process group: the worker stops first, then closes the feed.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The KD-tree build thread runs Python too: give requests the interpreter back quickly.
    sys.setswitchinterval(0.001)
    return asyncio.run(serve(settings, args.fd))


if __name__ == "__main__":
    sys.exit(main())

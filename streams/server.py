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
import gc
import logging
import signal
import socket
import sys
import time
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from stationwatch.errors import ConfigurationError
from stationwatch.heap import keep_released
from stationwatch.settings import Settings
from stationwatch.zone import configure_logging
from streams.api import Replica, build_app
from streams.feed import ALIVE_INTERVAL_S, EXIT_CANNOT_BIND, encode_frame, read_frame
from streams.holidays import HolidayWatch, follow_holidays_file
from streams.readmodel import build_tree

logger = logging.getLogger("streams.server")

BIND_RETRY_S = 10.0  # a previous server on the same port may still be closing
REBUILD_INTERVAL_S = 1.0


def loading() -> None:
    """A snapshot of the worker's stations follows (until "ready"): the garbage collector
    pauses. Parsing it makes many objects and no cycles; with the collector on, its passes
    over the growing replica cost more than the parsing itself (measured at 150,000
    stations: the snapshot took 17.5 s)."""
    gc.disable()


def loaded() -> None:
    """The snapshot is in: collect once, then keep the replica out of later collections
    (entries are replaced whole, so a frozen one that leaves is freed by its count)."""
    gc.enable()
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class Feed:
    """Applies the worker's frames to the replica; tells the worker it is alive."""

    def __init__(
        self, replica: Replica, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.replica = replica
        self.reader = reader
        self.writer = writer
        self._rebuild = asyncio.Event()

    async def send(self, frame: dict[str, Any]) -> None:
        self.writer.write(encode_frame(frame))
        await self.writer.drain()

    async def keep_alive(self) -> None:
        while True:
            await self.send({"op": "alive"})
            await asyncio.sleep(ALIVE_INTERVAL_S)

    async def run(self) -> None:
        """Until the worker closes the socket."""
        index = self.replica.index
        while True:
            frame = await read_frame(self.reader)
            if frame is None:
                return
            op = frame.get("op")
            if op == "put":
                for station_id, partition, stored in frame["items"]:
                    try:
                        index.put_stored(station_id, partition, stored)
                    except (TypeError, ValueError, AttributeError) as exc:
                        logger.error("skipping a station the worker sent: %r (%s)", station_id, exc)  # noqa: TRY400
                for station_id in frame["removed"]:
                    index.remove(station_id)
                if index.ready and index.needs_rebuild:
                    self._rebuild.set()
            elif op == "reset":
                index.reset()
                self.replica.partitions = frozenset()
                loading()
            elif op == "ready":
                self.replica.partitions = frozenset(frame["partitions"])
                index.ready = True
                loaded()
                self._rebuild.set()  # until it lands, nearby checks the stations one by one
                logger.info("serving %d stations of partitions %s", len(index), frame["partitions"])
            elif op == "status":
                self.replica.report(
                    frame["health"], frame["routes"], frame["own"], frame["metrics"]
                )
            else:
                logger.warning("ignoring an unknown frame %r", op)

    async def rebuild_when_moved(self) -> None:
        """Rebuild the KD-tree in a thread, from a snapshot of the entries, when stations were
        placed or moved; at most once a second."""
        index = self.replica.index
        loop = asyncio.get_running_loop()
        while True:
            await self._rebuild.wait()
            self._rebuild.clear()
            if index.ready and index.needs_rebuild:
                started = time.perf_counter()
                try:
                    generation, entries = index.snapshot()
                    index.install(generation, await loop.run_in_executor(None, build_tree, entries))
                except Exception:
                    logger.exception(
                        "KD-tree rebuild failed; nearby checks new stations one by one"
                    )
                else:
                    logger.debug(
                        "KD-tree of %d stations in %.3f s",
                        len(entries),
                        time.perf_counter() - started,
                    )
            await asyncio.sleep(REBUILD_INTERVAL_S)


async def listen(app: web.Application, settings: Settings) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2)
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


def holiday_watch(settings: Settings) -> HolidayWatch:
    """The worker's holiday calendar (open_now, scheduled_open). The worker has checked the
    file at its start; should it have turned invalid since, the package's calendar serves
    until a valid version is back."""
    try:
        return HolidayWatch.start(settings, announce=False)
    except ConfigurationError as exc:
        logger.error("%s; using the package's calendar until it is valid again", exc)  # noqa: TRY400
        zone = ZoneInfo(settings.timezone)
        return HolidayWatch(
            settings.holidays_file, zone, settings.holidays_warn_days, announce=False
        )


async def serve(settings: Settings, fd: int) -> int:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock)
    replica = Replica(settings)
    feed = Feed(replica, reader, writer)
    loading()  # the first snapshot
    try:
        runner = await listen(build_app(replica), settings)
    except OSError as exc:
        logger.error(  # noqa: TRY400 - the reason is the message; no trace
            "cannot serve HTTP on %s:%d: %s", settings.web_bind, settings.web_port, exc
        )
        return EXIT_CANNOT_BIND
    stop = asyncio.get_running_loop().create_future()
    with contextlib.suppress(NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.cancel)
    await feed.send({"op": "listening"})
    holidays = asyncio.create_task(follow_holidays_file(holiday_watch(settings)))
    rebuilding = asyncio.create_task(feed.rebuild_when_moved())
    beating = asyncio.create_task(feed.keep_alive())
    running = asyncio.create_task(feed.run())
    releasing = asyncio.create_task(keep_released())
    try:
        await asyncio.wait({running, beating, stop}, return_when=asyncio.FIRST_COMPLETED)
        for task in (running, beating):
            if task.done() and not task.cancelled() and task.exception() is not None:
                logger.error("the connection to the worker failed: %r", task.exception())
                return 1
        return 0
    finally:
        for task in (holidays, rebuilding, beating, running, releasing):
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
    configure_logging(settings.log_level, settings.timezone)
    # Ctrl-C reaches the whole process group: the worker stops first, then closes the feed.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The KD-tree build thread runs Python too: give requests the interpreter back quickly.
    sys.setswitchinterval(0.001)
    return asyncio.run(serve(settings, args.fd))


if __name__ == "__main__":
    sys.exit(main())

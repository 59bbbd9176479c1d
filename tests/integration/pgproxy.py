"""A TCP proxy a test can cut and restore: a real outage, as the worker sees it (connections
dropped, new ones refused). In front of PostgreSQL, or — terminating TLS with ``ssl`` — in front
of the embedded broker, which speaks plaintext only."""

from __future__ import annotations

import asyncio
import contextlib
import ssl as tls

from stationwatch.broker import free_port


class CuttableProxy:
    def __init__(
        self, target_host: str, target_port: int, *, ssl: tls.SSLContext | None = None
    ) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.ssl = ssl
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, ssl=self.ssl
        )

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        await self.cut()

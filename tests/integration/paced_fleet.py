"""A fleet that keeps sending: every beating station one heartbeat per period, for the fault
tests' larger fleets (hundreds to thousands of stations)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

import psycopg

from streams.tracker import partition_for
from tests.factories import dumps, heartbeat
from tests.integration.harness import Producer


class PacedFleet:
    def __init__(self, producer: Producer, period_s: float) -> None:
        self.producer = producer
        self.period_s = period_s
        self.beating: set[str] = set()
        self.seq: Counter[str] = Counter()
        self.sent = 0  # heartbeats sent
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def register(self, profiles: Iterable[dict[str, Any]]) -> None:
        for message in profiles:
            await self.producer.send("station.registry", message["station_id"], dumps(message))
        await self.producer.flush()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            began = time.monotonic()
            now = datetime.now(UTC)
            for sid in sorted(self.beating):
                self.seq[sid] += 1
                await self.producer.send(
                    "station.heartbeat", sid, dumps(heartbeat(sid, now, self.seq[sid]))
                )
                self.sent += 1
            await self.producer.flush()
            # the pace of the fleet, not a synchronisation
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._stopping.wait(), max(0.0, self.period_s - (time.monotonic() - began))
                )

    async def stop(self) -> None:
        """Stop after the round under way, every heartbeat of it sent and counted."""
        if self._task is not None:
            self._stopping.set()
            await asyncio.wait_for(self._task, timeout=60)
            self._task = None

    @classmethod
    @contextlib.asynccontextmanager
    async def running(
        cls, kafka_url: str, prefix: str, period_s: float
    ) -> AsyncIterator[PacedFleet]:
        async with Producer(kafka_url, prefix) as producer:
            fleet = cls(producer, period_s)
            fleet._task = asyncio.create_task(fleet._run())
            try:
                yield fleet
            finally:
                await fleet.stop()


def missing_heartbeats(
    database_url: str, fleet: PacedFleet, partitions: int
) -> dict[str, list[int]]:
    """The heartbeats (sequence numbers) the fleet sent that have no row, by station with its
    partition: the evidence a failed "every heartbeat written" needs."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT station_id, array_agg(seq) FROM stationwatch.heartbeats "
            "WHERE station_id = ANY(%s) GROUP BY station_id",
            (list(fleet.seq),),
        ).fetchall()
    written = {sid: set(seqs) for sid, seqs in rows}
    missing = {}
    for sid, last in sorted(fleet.seq.items()):
        gone = [n for n in range(1, last + 1) if n not in written.get(sid, set())]
        if gone:
            missing[f"{sid} (partition {partition_for(sid, partitions)})"] = gone
    return missing

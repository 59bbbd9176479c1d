"""What the bench sends and reads on the broker: records produced ahead, heartbeats as devices
send them (a steady load, and stations told to beat or fall silent), the raw consume baseline,
and the alerts the worker emits, each with the moment it arrived."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from schemas.topics import HEARTBEAT, REGISTRY

Message = tuple[bytes, bytes]


def partition_of(station_id: str, partitions: int) -> int:
    """The partition the producers here (aiokafka's default partitioner) give a station."""
    every = list(range(partitions))
    return int(DefaultPartitioner()(station_id.encode(), every, every))


def producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=10, max_batch_size=256 * 1024, acks=1
    )


async def send_all(sender: AIOKafkaProducer, topic: str, messages: Iterable[Message]) -> int:
    count = 0
    for key, value in messages:
        await sender.send(topic, value=value, key=key)
        count += 1
    return count


async def produce(bootstrap: str, topic: str, messages: list[Message]) -> float:
    """Send every message and wait until the broker has them; returns messages/s."""
    sender = producer(bootstrap)
    try:
        await sender.start()
        started = time.perf_counter()
        await send_all(sender, topic, messages)
        await sender.flush()
    finally:
        await sender.stop()
    return len(messages) / (time.perf_counter() - started)


async def raw_consume_rate(bootstrap: str, topic: str, expected: int) -> float:
    """Baseline: a bare aiokafka consumer reading and parsing the first ``expected`` records."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    seen = 0
    started = time.perf_counter()
    try:
        while seen < expected:
            batch = await consumer.getmany(timeout_ms=2000, max_records=5000)
            if not batch:
                break
            for records in batch.values():
                for record in records:
                    orjson.loads(record.value)
                seen += len(records)
    finally:
        await consumer.stop()
    return seen / (time.perf_counter() - started)


class Heartbeats:
    """Heartbeat messages as devices send them: full fields, a per-station ``seq``, and a
    ``sent_at`` that never repeats (so every message is a row of its own in PostgreSQL)."""

    def __init__(self) -> None:
        self.seq: Counter[str] = Counter()
        self._last_us = 0

    def message(self, station_id: str) -> tuple[Message, float]:
        """The message and its ``sent_at`` in seconds since the epoch."""
        now_us = max(time.time_ns() // 1000, self._last_us + 1)
        self._last_us = now_us
        self.seq[station_id] += 1
        seq = self.seq[station_id]
        value = orjson.dumps(
            {
                "station_id": station_id,
                "sent_at": datetime.fromtimestamp(now_us / 1e6, UTC).isoformat(),
                "device_id": f"gw-{station_id}",
                "seq": seq,
                "uptime_s": 86_400 + seq,
                "battery_pct": 97.5,
                "on_mains": True,
                "temperature_c": 21.5,
                "firmware": "1.4.2",
            }
        )
        return (station_id.encode(), value), now_us / 1e6

    def many(self, station_ids: Iterable[str]) -> list[Message]:
        return [self.message(sid)[0] for sid in station_ids]


class Load:
    """Heartbeats until stopped: ``background_per_s`` for random stations of ``bulk``, and
    every ``period_s`` one for each station in ``beating`` (whose last ``sent_at`` is kept in
    ``last_sent``)."""

    def __init__(
        self, bootstrap: str, prefix: str, beats: Heartbeats, bulk: list[str], seed: int
    ) -> None:
        self._producer = producer(bootstrap)
        self.prefix = prefix
        self.topic = prefix + HEARTBEAT
        self.beats = beats
        self.bulk = bulk
        self.rng = random.Random(seed)  # noqa: S311 - load generation
        self.background_per_s = 0.0
        self.beating: set[str] = set()
        self.period_s = 1.0
        self.last_sent: dict[str, float] = {}
        self._round = asyncio.Lock()  # a round of beats is sent whole, before a silence
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Load:
        await self._producer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self._producer.stop()

    async def register(self, profiles: list[Message]) -> None:
        await send_all(self._producer, self.prefix + REGISTRY, profiles)
        await self._producer.flush()

    async def silence(self, station_ids: Iterable[str]) -> None:
        """Stop their heartbeats (after the round being sent, if any)."""
        async with self._round:
            self.beating.difference_update(station_ids)

    async def _run(self) -> None:
        owed = 0.0
        next_beat = time.monotonic()
        while True:
            tick = time.monotonic()
            owed += self.background_per_s / 10
            for _ in range(int(owed)):
                key, value = self.beats.message(self.rng.choice(self.bulk))[0]
                await self._producer.send(self.topic, value=value, key=key)
            owed -= int(owed)
            if tick >= next_beat:
                next_beat = tick + self.period_s
                async with self._round:
                    for sid in sorted(self.beating):
                        (key, value), sent = self.beats.message(sid)
                        await self._producer.send(self.topic, value=value, key=key)
                        self.last_sent[sid] = sent
            await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))


class AlertWatch:
    """Every message on the alerts topic, with the wall-clock time it reached the bench."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
            fetch_max_wait_ms=50,
        )
        self.received: list[tuple[float, dict[str, Any]]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> AlertWatch:
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def _run(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=200)
            arrived = time.time()
            for records in batch.values():
                self.received.extend((arrived, orjson.loads(r.value)) for r in records)

    def offline_since(self, station_ids: Iterable[str], after: float) -> dict[str, float]:
        """The first firing offline alert's arrival per station, among those after ``after``."""
        wanted = set(station_ids)
        found: dict[str, float] = {}
        for arrived, alert in self.received:
            sid = alert.get("station_id")
            if (
                arrived >= after
                and sid in wanted
                and sid not in found
                and alert.get("kind") == "offline"
                and alert.get("state") == "firing"
            ):
                found[sid] = arrived
        return found

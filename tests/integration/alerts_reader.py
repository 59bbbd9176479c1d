"""Collect what arrives on a topic in the background (an independent consumer, no group)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiokafka import AIOKafkaConsumer

from stationwatch.broker import bootstrap_servers


class TopicCollector:
    def __init__(self, kafka_url: str, topic: str) -> None:
        self.topic = topic
        self.records: list[dict[str, Any]] = []
        self._consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap_servers(kafka_url),
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            group_id=None,
        )
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> TopicCollector:
        await self._consumer.start()
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        async for record in self._consumer:
            self.records.append(json.loads(record.value))

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    def of(self, station_id: str) -> list[tuple[str, str]]:
        return [(a["kind"], a["state"]) for a in self.records if a["station_id"] == station_id]

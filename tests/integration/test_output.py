"""The worker's producer of alerts and dead letters, against the real broker: a burst of 500
records (a street losing power) goes out together, each delivered once and in order per
station; a stop delivers what was handed over, and a send after it is refused as stopping."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from stationwatch.broker import EmbeddedBroker, bootstrap_servers, ensure_topics
from stationwatch.errors import WorkerStoppingError
from stationwatch.settings import Settings
from streams.output import OutputProducer

pytestmark = pytest.mark.integration


async def read_all(
    broker: EmbeddedBroker, topic: str, count: int
) -> list[tuple[bytes, dict[str, Any]]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap_servers(broker.url), auto_offset_reset="earliest"
    )
    await consumer.start()
    found: list[tuple[bytes, dict[str, Any]]] = []
    try:
        deadline = time.monotonic() + 30
        while len(found) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                found.extend((r.key, orjson.loads(r.value)) for r in records)
    finally:
        await consumer.stop()
    return found


async def producer_for(
    broker: EmbeddedBroker, unique: str, name: str, partitions: int
) -> tuple[str, OutputProducer]:
    """A topic of its own, and a worker's output producer for this broker."""
    topic = f"outputs-{unique}.{name}"
    await ensure_topics(broker.url, [topic], partitions)
    return topic, OutputProducer(Settings(kafka=broker.url, app_id=f"outputs-{unique}"))


async def test_a_burst_of_alerts_is_delivered_once_and_in_order_per_station(
    broker: EmbeddedBroker, unique: str
) -> None:
    topic, outputs = await producer_for(broker, unique, "station.alerts", 4)
    stations = [f"SY-{n:04d}" for n in range(1, 251)]
    try:
        deliveries = []
        for state in ("firing", "resolved"):  # two per station, the firing one first
            for sid in stations:
                value = orjson.dumps({"station_id": sid, "state": state})
                deliveries.append(await outputs.send(topic, sid.encode(), value))
        await asyncio.gather(*deliveries)
    finally:
        await outputs.stop()
    found = await read_all(broker, topic, 500)
    assert len(found) == 500
    by_station: dict[bytes, list[str]] = {}
    for key, alert in found:
        by_station.setdefault(key, []).append(alert["state"])
    assert by_station == {sid.encode(): ["firing", "resolved"] for sid in stations}


async def test_stopping_delivers_what_was_handed_over_and_refuses_more(
    broker: EmbeddedBroker, unique: str
) -> None:
    topic, outputs = await producer_for(broker, unique, "station.deadletter", 2)
    handed = [await outputs.send(topic, None, orjson.dumps({"n": n})) for n in range(20)]
    await outputs.stop()  # without awaiting the deliveries first
    assert all(asyncio.ensure_future(d).done() for d in handed)
    with pytest.raises(WorkerStoppingError):
        await outputs.send(topic, None, b"{}")
    assert sorted(v["n"] for _, v in await read_all(broker, topic, 20)) == list(range(20))

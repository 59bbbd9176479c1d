"""Publish changed registry records to ``station.registry`` (key = station id), as the worker
reads them: under ``STATIONWATCH_TOPIC_PREFIX``, acknowledged by every in-sync replica."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from schemas import topics
from schemas.registry import StationProfile
from stationwatch.broker import bootstrap_servers, ensure_topics
from stationwatch.errors import BrokerUnavailableError
from stationwatch.settings import Settings

SEND_TIMEOUT_S = 30.0


async def publish(settings: Settings, records: Iterable[StationProfile]) -> None:
    """Send the records and wait until the broker holds every one of them."""
    topic = settings.topic(topics.REGISTRY)
    await ensure_topics(
        settings.kafka,
        [topic],
        settings.partitions,
        compacted=[topic],
        replication_factor=settings.replication_factor,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers(settings.kafka),
        client_id="stationwatch-registry",
        acks="all",
        enable_idempotence=False,
    )
    try:
        await producer.start()
        for record in records:
            await asyncio.wait_for(
                producer.send_and_wait(
                    topic,
                    record.model_dump_json().encode("utf-8"),
                    key=record.station_id.encode("utf-8"),
                ),
                SEND_TIMEOUT_S,
            )
    except (KafkaError, TimeoutError) as exc:
        raise BrokerUnavailableError(
            f"broker {settings.kafka}: could not publish to {topic}: {exc!r}"
        ) from exc
    finally:
        await producer.stop()

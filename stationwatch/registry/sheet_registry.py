"""The live registry for spreadsheets: read from the `stations` table (the profile documents the
worker writes there), changes published to `station.registry`."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import asyncpg
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from schemas import topics
from schemas.registry import StationProfile
from stationwatch.broker import ensure_topics
from stationwatch.errors import (
    ConfigurationError,
    DatabaseUnavailableError,
    StationwatchError,
)
from stationwatch.kafka_auth import client_auth, start_producer
from stationwatch.settings import Settings

logger = logging.getLogger(__name__)

Record = tuple[str, StationProfile | None]  # station id, profile (None: a tombstone)


class PublishError(StationwatchError):
    """Some records could not be delivered to the broker."""


async def live_registry(settings: Settings) -> dict[str, StationProfile]:
    """Every station of the `stations` table, by id."""
    try:
        conn = await asyncpg.connect(settings.dsn, timeout=10)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailableError(f"database unreachable: {exc}") from exc
    try:
        rows = await conn.fetch(
            "SELECT station_id, profile::text AS profile FROM stationwatch.stations "
            "ORDER BY station_id"
        )
    except asyncpg.UndefinedTableError as exc:
        raise ConfigurationError(
            "the database has no table stationwatch.stations: run `stationwatch migrate` "
            "and a worker first"
        ) from exc
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailableError(f"reading the registry failed: {exc}") from exc
    finally:
        await conn.close()
    registry: dict[str, StationProfile] = {}
    for row in rows:
        try:
            registry[row["station_id"]] = StationProfile.model_validate_json(row["profile"])
        except ValidationError as exc:
            # the worker validated it; an older schema may have let something through
            logger.warning("station %s: stored profile no longer valid: %s", row["station_id"], exc)
            raise ConfigurationError(
                f"station {row['station_id']}: its stored profile does not match the registry "
                f"schema any more ({exc.error_count()} errors); fix it with a registry message"
            ) from exc
    return registry


async def publish(
    settings: Settings, records: Sequence[Record], on_sent: Callable[[int], None]
) -> int:
    """Send ``records`` to `station.registry` (key = station id) and wait for every delivery;
    ``on_sent(n)`` after each. Returns the count delivered; :class:`PublishError` names the
    first failure when any failed."""
    topic = settings.topic(topics.REGISTRY)
    await ensure_topics(
        settings.kafka,
        [topic],
        settings.partitions,
        compacted=[topic],
        replication_factor=settings.replication_factor,
        auth=client_auth(settings),
    )
    producer = await start_producer(
        settings,
        client_id="stationwatch-registry",
        acks="all",
        linger_ms=5,
        max_batch_size=max(settings.producer_max_batch_bytes, 1),
    )
    failed: list[tuple[str, BaseException]] = []
    delivered = 0
    try:
        pending = []
        for station_id, profile in records:
            value = profile.model_dump_json().encode() if profile is not None else None
            future = await producer.send(topic, value, key=station_id.encode())
            pending.append((station_id, future))
        # each delivery as its batch is acknowledged, so the progress bar moves as they do
        for station_id, future in pending:
            try:
                await future
            except KafkaError as exc:
                failed.append((station_id, exc))
                continue
            delivered += 1
            on_sent(1)
    except (TimeoutError, KafkaError) as exc:
        raise PublishError(f"publishing to {topic} failed after {delivered}: {exc}") from exc
    finally:
        await producer.stop()
    if failed:
        first_id, first_error = failed[0]
        raise PublishError(
            f"{len(failed)} of {len(records)} records not delivered to {topic} "
            f"(first: {first_id}: {first_error}); importing the same file again sends what "
            "is missing"
        )
    return delivered

"""The ingest step of the worker: one batch of input records → dead letters, live-state updates
and database rows. Called by the ingest agent; knows nothing of Faust beyond the record parts."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas import DeadLetter, Heartbeat, Occupancy, StationProfile, StatusEvent
from schemas.deadletter import RAW_LIMIT
from stationwatch.db.sink import Batch, station_row
from stationwatch.metrics import WorkerMetrics
from streams.decode import Rejected, Tombstone, decode
from streams.state import (
    StationState,
    apply_heartbeat,
    apply_occupancy,
    apply_profile,
    apply_status,
    new_state,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Record:
    """The parts of one consumed record the ingest step needs."""

    topic: str  # the contract's name, without a deployment prefix
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    ref: Any = None  # the Faust event, handed back when the table is written for its key


@dataclass
class Outcome:
    batch: Batch = field(default_factory=Batch)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    # station id → (new state as JSON, or None to delete; the record whose partition it goes to)
    state_writes: dict[str, tuple[dict[str, Any] | None, Any]] = field(default_factory=dict)


def dead_letter(record: Record, topic_name: str, error: str, at: datetime) -> DeadLetter:
    raw = record.value.decode("utf-8", errors="replace") if record.value is not None else ""
    key = record.key.decode("utf-8", errors="replace") if record.key is not None else None
    return DeadLetter(
        topic=topic_name,
        partition=record.partition,
        offset=record.offset,
        key=key,
        error=error,
        raw=raw[:RAW_LIMIT],
        at=at,
    )


def heartbeat_row(
    beat: Heartbeat, received_at: datetime, interval_s: int | None
) -> tuple[Any, ...]:
    return (
        beat.sent_at,
        beat.station_id,
        beat.seq,
        received_at,
        beat.device_id,
        beat.uptime_s,
        beat.battery_pct,
        beat.on_mains,
        beat.temperature_c,
        beat.firmware,
        interval_s,
    )


def process_records(
    records: Iterable[Record],
    states: MutableMapping[str, Any] | Any,
    *,
    now: datetime,
    topic_prefix: str,
    max_bytes: int,
    max_skew: timedelta,
    metrics: WorkerMetrics | None = None,
) -> Outcome:
    """Decode, fold and collect: pure but for reading ``states`` (the live table)."""
    out = Outcome()
    loaded: dict[str, tuple[StationState | None, StationState | None, Any]] = {}

    def current(station_id: str) -> StationState | None:
        if station_id not in loaded:
            raw = states.get(station_id)
            state = StationState.from_json(raw) if raw else None
            loaded[station_id] = (state, state, None)
        return loaded[station_id][1]

    def store(station_id: str, state: StationState | None, ref: Any) -> None:
        original = loaded[station_id][0]
        loaded[station_id] = (original, state, ref)

    for record in records:
        decoded = decode(
            record.topic,
            record.key,
            record.value,
            received_at=now,
            max_bytes=max_bytes,
            max_skew=max_skew,
        )
        if isinstance(decoded, Rejected):
            out.dead_letters.append(
                dead_letter(record, topic_prefix + record.topic, decoded.error, now)
            )
            if metrics:
                metrics.deadletters.labels(record.topic, decoded.reason_class).inc()
                metrics.events.labels(record.topic, "deadletter").inc()
            continue
        if metrics:
            metrics.events.labels(record.topic, "accepted").inc()
        if isinstance(decoded, Tombstone):
            current(decoded.station_id)
            store(decoded.station_id, None, record.ref)
            out.batch.stations[decoded.station_id] = None
            continue
        station_id: str = decoded.station_id  # type: ignore[attr-defined]
        state = current(station_id) or new_state(station_id, now)
        if isinstance(decoded, Heartbeat):
            out.batch.heartbeats.append(heartbeat_row(decoded, now, state.heartbeat_interval_s))
            state = apply_heartbeat(state, decoded, now)
        elif isinstance(decoded, Occupancy):
            out.batch.occupancy.append(
                (
                    decoded.observed_at,
                    station_id,
                    decoded.occupants,
                    decoded.capacity,
                    decoded.source,
                    now,
                )
            )
            state = apply_occupancy(state, decoded, now)
        elif isinstance(decoded, StatusEvent):
            out.batch.status_events.append(
                (decoded.at, station_id, decoded.state, decoded.reason, decoded.actor, now)
            )
            state = apply_status(state, decoded, now)
        elif isinstance(decoded, StationProfile):
            state = apply_profile(state, decoded, now)
            if state.profile is not None and state.profile_updated_at is not None:
                out.batch.stations[station_id] = station_row(
                    state.profile, state.profile_updated_at
                )
        store(station_id, state, record.ref)

    for station_id, (original, final, ref) in loaded.items():
        if final is None:
            if original is not None:
                out.state_writes[station_id] = (None, ref)
        elif final != original:
            out.state_writes[station_id] = (final.to_json(), ref)
    return out


async def send_dead_letters(
    letters: list[DeadLetter],
    send: Callable[[bytes | None, bytes], Awaitable[Any]],
) -> None:
    """Send every dead letter and wait until the broker has each one."""
    for letter in letters:
        key = letter.key.encode("utf-8") if letter.key is not None else None
        await send(key, letter.model_dump_json().encode("utf-8"))
    if letters:
        logger.info("dead-lettered %d records", len(letters))


def utcnow() -> datetime:
    return datetime.now(UTC)

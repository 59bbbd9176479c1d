"""The ingest step of the worker: one batch of input records → dead letters, live-state updates
and database rows. Called by the ingest agent; knows nothing of Faust beyond the record parts."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import msgspec
import orjson

from schemas import Alert, DeadLetter, Heartbeat, Occupancy, StationProfile, StatusEvent
from schemas.deadletter import RAW_LIMIT
from stationwatch.db.sink import Batch, Refused, station_row
from stationwatch.metrics import WorkerMetrics
from stationwatch.registry.history import registry_change
from stationwatch.zone import wire
from streams.decode import MAX_AGE, Rejected, Tombstone, decode
from streams.expected import ExpectedChange, removed
from streams.liveness import Clock, LivenessConfig, evaluate, resolve_all
from streams.record import record_of
from streams.state import (
    StationState,
    apply_heartbeat,
    apply_occupancy,
    apply_profile,
    apply_status,
    evolve,
    new_state,
)
from streams.state_codec import decode_state, encode_state
from streams.tracker import partition_for

logger = logging.getLogger(__name__)


class Record(msgspec.Struct, frozen=True):
    """The parts of one consumed record the ingest step needs. (Structs, here and below:
    made several times per record, in C at a tenth of a frozen dataclass's cost.)"""

    topic: str  # the contract's name, without a deployment prefix
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    ref: Any = None  # the Faust event, handed back when the table is written for its key


class StateSource(Protocol):
    """Where a batch reads stations' stored states: an :class:`Overlay` of the live table, or
    a plain mapping of station ids to stored states."""

    def get(self, station_id: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class Tick:
    """Evaluate these stations of ``partition`` now (they are due)."""

    partition: int
    station_ids: list[str]
    ref: Any = None


class StateWrite(msgspec.Struct, frozen=True):
    """What becomes of one station after the batch."""

    ref: Any  # the record whose partition the changelog entry goes to
    partition: int
    value: bytes | None = None  # the new state as stored (streams.state_codec); None: unchanged
    state: StationState | None = None  # the new state itself, when changed
    remove: bool = False  # the station left the registry
    next_due: datetime | None = None  # None: judge as soon as the partition's clock is known
    liveness: str = "unknown"
    listed: bool = False  # changed, with another registry record than before (or new)


@dataclass(frozen=True, slots=True)
class Misplaced:
    """A station whose records arrive on another partition than expected: ``expected`` is
    where the default partitioner (murmur2 of the key) puts it, or where its earlier records
    arrived (``moved``)."""

    station_id: str
    topic: str
    arrived: int
    expected: int
    moved: bool  # True: its records now arrive on another partition than before


@dataclass
class Outcome:
    batch: Batch = field(default_factory=Batch)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    state_writes: dict[str, StateWrite] = field(default_factory=dict)
    misplaced: list[Misplaced] = field(default_factory=list)
    # (topic, event time) of every telemetry input, for stationwatch_processing_delay_seconds
    event_times: list[tuple[str, datetime]] = field(default_factory=list)

    def add_alert_row(self, row: tuple[Any, ...]) -> None:
        alert_id = row[0]
        earlier = self.batch.alerts.get(alert_id)
        if earlier is not None:  # fired and resolved in one batch: one row, firing's detection
            row = (*row[:_DETECTED_AT], earlier[_DETECTED_AT], *row[_DETECTED_AT + 1 :])
        self.batch.alerts[alert_id] = row

    def merge(self, later: Outcome) -> None:
        """Add the outcome of the next part of the same batch."""
        self.batch.heartbeats.extend(later.batch.heartbeats)
        self.batch.occupancy.extend(later.batch.occupancy)
        self.batch.status_events.extend(later.batch.status_events)
        self.batch.liveness_changes.extend(later.batch.liveness_changes)
        self.batch.station_history.extend(later.batch.station_history)
        self.batch.expected_changes.extend(later.batch.expected_changes)
        self.batch.stations.update(later.batch.stations)
        self.batch.origins.update(later.batch.origins)
        for row in later.batch.alerts.values():
            self.add_alert_row(row)
        self.dead_letters.extend(later.dead_letters)
        self.alerts.extend(later.alerts)
        self.misplaced.extend(later.misplaced)
        self.event_times.extend(later.event_times)
        for station_id, write in later.state_writes.items():
            earlier = self.state_writes.get(station_id)
            if earlier is not None and not write.remove:
                if write.value is None:
                    write = msgspec.structs.replace(
                        write,
                        value=earlier.value,
                        state=earlier.state,
                        remove=earlier.remove,
                        listed=earlier.listed,
                    )
                elif earlier.listed and not write.listed:  # its record changed in the batch
                    write = msgspec.structs.replace(write, listed=True)
            self.state_writes[station_id] = write


class Overlay:
    """The live table as a later part of a batch sees it: earlier parts' writes first."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.pending: dict[str, StateWrite] = {}
        # the live table reads a partition's database first; a plain mapping has no partitions
        self._stored: Callable[[str, int], Any] | None = getattr(table, "stored", None)
        self._stored_many: Callable[[dict[str, int]], dict[str, Any]] | None = getattr(
            table, "stored_many", None
        )
        # read ahead for the part about to be folded: station id → (partition asked, state)
        self.read: dict[str, tuple[int, Any]] = {}

    def get(self, station_id: str) -> Any:
        return self.stored(station_id, None)

    def stored(self, station_id: str, partition: int | None) -> Any:
        """The station's state as the batch so far left it; ``partition``: where its record
        arrived, which the table asks first (:meth:`streams.runtime.StationTable.stored`)."""
        write = self._written(station_id)
        if write is None:
            if partition is not None and self._stored is not None:
                read = self.read.pop(station_id, None)
                if read is None or read[0] != partition:  # not read ahead, or elsewhere
                    return self._stored(station_id, partition)
                return read[1]
            return self.table.get(station_id)
        return None if write.remove else write.value

    def _written(self, station_id: str) -> StateWrite | None:
        """An earlier part's write that holds the station's state (a new state, or its
        removal; None: the table's state stands)."""
        write = self.pending.get(station_id)
        if write is None or (write.value is None and not write.remove):
            return None
        return write

    def read_ahead(self, records: Iterable[Record], ticks: Iterable[Tick] = ()) -> None:
        """Read the stored states of the stations a part names (its ticks' due stations, its
        records' keys: an accepted record's key is its station id) in one go, where the
        table reads many at once; what the part does not take is dropped at the next. A
        station is read by the partition of the first record naming it: should the fold ask
        by another (that record was refused), it is read again, as without this."""
        self.read = {}
        if self._stored_many is None:
            return
        wanted: dict[str, int] = {}
        for tick in ticks:
            for station_id in tick.station_ids:
                wanted.setdefault(station_id, tick.partition)
        for record in records:
            if record.key:
                try:
                    wanted.setdefault(record.key.decode(), record.partition)
                except UnicodeDecodeError:
                    continue  # a dead letter
        for station_id in [s for s in wanted if self._written(s) is not None]:
            del wanted[station_id]  # an earlier part's state, not the table's
        if wanted:
            found = self._stored_many(wanted)
            self.read = {
                station_id: (wanted[station_id], found[station_id]) for station_id in found
            }

    def absorb(self, outcome: Outcome) -> None:
        self.pending = outcome.state_writes


@dataclass(frozen=True)
class IngestConfig:
    topic_prefix: str
    max_bytes: int
    max_skew: timedelta
    liveness: LivenessConfig
    max_age: timedelta = MAX_AGE  # telemetry older than this when received is dead-lettered
    partitions: int = 0  # of the input topics, to see keys partitioned unlike murmur2 (0: don't)
    # fingerprint of ``liveness``, stored with each state's next due time (streams.state_codec)
    basis: int = 0


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


def expected_row(change: ExpectedChange) -> tuple[Any, ...]:
    return (change.time, change.station_id, change.expected, change.reason)


_DETECTED_AT = 7


def alert_row(alert: Alert) -> tuple[Any, ...]:
    resolved = alert.state == "resolved"
    return (
        alert.alert_id,
        alert.fingerprint,
        alert.station_id,
        alert.kind,
        alert.severity,
        alert.starts_at,
        alert.ends_at,
        alert.detected_at,  # kept from the firing row when the episode's row exists
        alert.detected_at if resolved else None,
        alert.last_heartbeat_at,
        orjson.dumps(alert.labels).decode(),
        alert.summary,
    )


def process_records(
    records: Iterable[Record],
    states: StateSource,
    *,
    now: datetime,
    clocks: Mapping[int, Clock | None],
    config: IngestConfig,
    ticks: Iterable[Tick] = (),
    metrics: WorkerMetrics | None = None,
) -> Outcome:
    """Decode, fold, judge and collect. Pure but for reading ``states`` (the live table).

    ``clocks`` gives each partition's judging clock (``None`` while it cannot be known:
    stations are then folded but judged later).
    """
    fold = _Fold(states, now=now, clocks=clocks, config=config, metrics=metrics)
    for tick in ticks:
        fold.tick(tick)
    for record in records:
        fold.record(record)
    if metrics:
        for topic, count in fold.accepted.items():
            metrics.events.labels(topic, "accepted").inc(count)
    fold.judge()
    for alert in fold.out.alerts:
        fold.out.add_alert_row(alert_row(alert))
    return fold.out


class _Fold:
    """One call of :func:`process_records`: the stations it touched, each loaded once, folded
    record by record, then judged once."""

    def __init__(
        self,
        states: StateSource,
        *,
        now: datetime,
        clocks: Mapping[int, Clock | None],
        config: IngestConfig,
        metrics: WorkerMetrics | None,
    ) -> None:
        self.states, self.now, self.clocks, self.config = states, now, clocks, config
        self.metrics = metrics
        self.out = Outcome()
        # station id → (state as loaded, state now, ref, partition)
        self.loaded: dict[str, tuple[StationState | None, StationState | None, Any, int]] = {}
        self.checked: set[str] = set()
        self.accepted: Counter[str] = Counter()  # by topic: counted once per call

    # -- the stations touched -------------------------------------------------------------
    def current(self, station_id: str, ref: Any, partition: int) -> StationState | None:
        if station_id not in self.loaded:
            if isinstance(self.states, Overlay):
                raw = self.states.stored(station_id, partition)
            else:
                raw = self.states.get(station_id)
            state = decode_state(raw) if raw else None
            self.loaded[station_id] = (state, state, ref, partition)
        return self.loaded[station_id][1]

    def store(self, station_id: str, state: StationState | None, ref: Any) -> None:
        original, _, _, partition = self.loaded[station_id]
        self.loaded[station_id] = (original, state, ref, partition)

    def check_partition(self, record: Record, station_id: str) -> None:
        """Records are owned by the partition they arrive on; say when that is not where the
        default partitioner or the station's earlier records put them."""
        if station_id in self.checked:
            return
        self.checked.add(station_id)
        state = self.loaded[station_id][0]
        if state is not None and state.partition is not None:
            if state.partition != record.partition:
                self.out.misplaced.append(
                    Misplaced(station_id, record.topic, record.partition, state.partition, True)
                )
            return  # known: the murmur2 check was made when it was first seen
        if self.config.partitions:
            expected = partition_for(station_id, self.config.partitions)
            if expected != record.partition:
                self.out.misplaced.append(
                    Misplaced(station_id, record.topic, record.partition, expected, False)
                )

    # -- input ----------------------------------------------------------------------------
    def tick(self, tick: Tick) -> None:
        """Due stations: loaded, so that they are judged."""
        for due_id in tick.station_ids:
            if self.current(due_id, tick.ref, tick.partition) is not None:
                self.store(due_id, self.loaded[due_id][1], tick.ref)

    def record(self, record: Record) -> None:
        config, metrics = self.config, self.metrics
        decoded = decode(
            record.topic,
            record.key,
            record.value,
            received_at=self.now,
            max_bytes=config.max_bytes,
            max_skew=config.max_skew,
            max_age=config.max_age,
            zone=config.liveness.zone,
        )
        if isinstance(decoded, Rejected):
            self.out.dead_letters.append(
                dead_letter(record, config.topic_prefix + record.topic, decoded.error, self.now)
            )
            if metrics:
                metrics.deadletters.labels(record.topic, decoded.reason_class).inc()
                metrics.events.labels(record.topic, "deadletter").inc()
            return
        self.accepted[record.topic] += 1
        if isinstance(decoded, Tombstone):
            self.removal(record, decoded.station_id)
            return
        station_id: str = decoded.station_id  # type: ignore[attr-defined]
        previous = self.current(station_id, record.ref, record.partition)
        state = previous or new_state(station_id, self.now)
        self.check_partition(record, station_id)
        if isinstance(decoded, StationProfile):
            state = self.profile(record, state, decoded)
        else:
            state = self.telemetry(record, state, decoded)
        self.store(station_id, state, record.ref)

    def removal(self, record: Record, station_id: str) -> None:
        """The station left the registry: its episodes end, it is no longer expected."""
        out = self.out
        previous = self.current(station_id, record.ref, record.partition)
        if previous is not None:
            gone_at = self.clocks.get(record.partition) or Clock(self.now, self.now)
            if previous.episodes:
                out.alerts.extend(resolve_all(previous, gone_at).alerts)
            out.batch.expected_changes.extend(
                expected_row(c) for c in removed(previous, gone_at.judge)
            )
        self.store(station_id, None, record.ref)
        out.batch.stations[station_id] = None
        if previous is not None:
            _add_history(out, previous.record, None, record, self.now)

    def profile(self, record: Record, state: StationState, decoded: StationProfile) -> StationState:
        out, now = self.out, self.now
        held = state.profile
        as_json = decoded.model_dump(mode="json")
        state = apply_profile(state, decoded, now, as_json=as_json)
        if state.profile is not held:  # the state now holds this record's JSON
            applied: dict[str, Any] | None = as_json
            _add_history(out, record_of(held), applied, record, now)
        else:
            applied = state.record
        if applied is not None and state.profile_updated_at is not None:
            row = station_row(applied, state.profile_updated_at)
            out.batch.stations[state.station_id] = row
            out.batch.origins[id(row)] = record
        return state

    def telemetry(self, record: Record, state: StationState, decoded: Any) -> StationState:
        """A heartbeat, an occupancy count or an open/closed event: its row, and the state."""
        out, now, station_id = self.out, self.now, state.station_id
        if isinstance(decoded, Heartbeat):
            interval = state.heartbeat_interval_s
            out.batch.add("heartbeats", heartbeat_row(decoded, now, interval), record)
            gap_limit = interval * self.config.liveness.stale_after if interval else None
            out.event_times.append((record.topic, decoded.sent_at))
            return apply_heartbeat(state, decoded, now, gap_limit_s=gap_limit)
        if isinstance(decoded, Occupancy):
            out.batch.add(
                "occupancy",
                (
                    decoded.observed_at,
                    station_id,
                    decoded.occupants,
                    decoded.capacity,
                    decoded.source,
                    now,
                ),
                record,
            )
            out.event_times.append((record.topic, decoded.observed_at))
            return apply_occupancy(state, decoded, now)
        assert isinstance(decoded, StatusEvent)  # noqa: S101 - decode's last kind
        out.batch.add(
            "status_events",
            (decoded.at, station_id, decoded.state, decoded.reason, decoded.actor, now),
            record,
        )
        out.event_times.append((record.topic, decoded.at))
        return apply_status(state, decoded, now)

    # -- judging --------------------------------------------------------------------------
    def judge(self) -> None:
        """Every station touched, judged by its partition's clock (when known), and what
        becomes of it."""
        out = self.out
        for station_id, (original, final, ref, partition) in self.loaded.items():
            if final is None:
                if original is not None:
                    out.state_writes[station_id] = StateWrite(ref, partition, remove=True)
                continue
            if final.partition != partition:
                final = evolve(final, partition=partition)
            clock = self.clocks.get(partition)
            next_due: datetime | None = None
            if clock is not None:
                judged = evaluate(final, clock, self.config.liveness)
                final, next_due = judged.state, judged.next_due
                out.alerts.extend(judged.alerts)
                out.batch.liveness_changes.extend(
                    (c.time, c.station_id, c.from_liveness, c.to_liveness) for c in judged.changes
                )
                out.batch.expected_changes.extend(expected_row(c) for c in judged.expected_changes)
            changed = final != original
            out.state_writes[station_id] = StateWrite(
                ref,
                partition,
                value=encode_state(final, next_due, self.config.basis) if changed else None,
                state=final if changed else None,
                next_due=next_due,
                liveness=final.liveness,
                listed=changed and (original is None or final.profile != original.profile),
            )


def _add_history(
    out: Outcome,
    old: dict[str, Any] | None,
    new: dict[str, Any] | None,
    record: Record,
    now: datetime,
) -> None:
    """A ``station_history`` row when the registry record applied differs from the one held."""
    entry = registry_change(old, new, removed_at=now)
    if entry is not None:
        out.batch.add("station_history", entry.row(), record)


def refused_letters(
    batch: Batch,
    refused: Iterable[Refused],
    *,
    config: IngestConfig,
    now: datetime,
    metrics: WorkerMetrics | None = None,
) -> list[DeadLetter]:
    """Dead letters for the input records whose rows of ``batch`` the database refused. A
    refused row that no input record stands behind (a liveness change, an alert) is logged
    and counted."""
    letters: list[DeadLetter] = []
    for item in refused:
        if metrics:
            metrics.rows_refused.labels(item.table).inc()
        record = batch.origin(item.row)
        if not isinstance(record, Record):
            logger.error(
                "database refused a %s row, dropped: %s (%r)", item.table, item.error, item.row
            )
            continue
        error = f"database refused the {item.table} row: {item.error}"
        letters.append(dead_letter(record, config.topic_prefix + record.topic, error[:2000], now))
        logger.warning(
            "dead-lettered %s/%d@%d: %s", record.topic, record.partition, record.offset, error
        )
        if metrics:
            metrics.deadletters.labels(record.topic, "database").inc()
    return letters


async def send_dead_letters(
    letters: list[DeadLetter],
    send: Callable[[bytes | None, bytes], Awaitable[Awaitable[Any]]],
    *,
    zone: ZoneInfo | None = None,
) -> None:
    """Send every dead letter and wait until the broker has each one; ``at`` in ``zone``
    (the display zone) when given. ``send`` hands a record to the producer and returns its
    delivery: all are sent, then awaited together."""
    deliveries = []
    for letter in letters:
        key = letter.key.encode("utf-8") if letter.key is not None else None
        value = (
            orjson.dumps(wire(letter, zone))
            if zone is not None
            else letter.model_dump_json().encode()
        )
        deliveries.append(await send(key, value))
    await asyncio.gather(*deliveries)
    if letters:
        logger.info("dead-lettered %d records", len(letters))


def utcnow() -> datetime:
    return datetime.now(UTC)

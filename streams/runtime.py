"""What the agents, the timers and the views of one worker share (:class:`Runtime`), the live
table (:class:`StationTable`), and the settings they are built from."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP
from prometheus_client import CollectorRegistry

from schemas.topics import HEARTBEAT
from stationwatch.db.sink import CurrentWriter, TimescaleSink
from stationwatch.errors import StationwatchError
from stationwatch.kafka_auth import start_offset_reader, start_record_reader
from stationwatch.metrics import WorkerMetrics
from stationwatch.settings import Settings
from streams.changelog import TableWriter
from streams.feed import ApiFeed
from streams.holes import ReadAgain, last_offset, read_again
from streams.ingest import IngestConfig, utcnow
from streams.liveness import Clock, LivenessConfig
from streams.output import OutputProducer
from streams.state import StationState
from streams.state_codec import settings_basis
from streams.store import ROCKSDB_OPTIONS, StationStore
from streams.tracker import DueIndex, Watermarks

logger = logging.getLogger(__name__)

END_MAX_AGE_S = 2.0  # an older answer does not make a partition caught up


def ticks_topic_name(settings: Settings) -> str:
    return settings.topic(f"{settings.app_id}-liveness-ticks")


@dataclass
class Runtime:
    """What the agents, the timer and the views of one worker share."""

    settings: Settings
    app: faust.App
    table: Any
    sink: TimescaleSink
    metrics: WorkerMetrics
    registry: CollectorRegistry
    config: IngestConfig
    # next offset to process, per input partition this worker has processed
    positions: dict[TP, int] = field(default_factory=dict)
    due: DueIndex = field(default_factory=DueIndex)
    indexed: bool = False  # the owned stations are scheduled and fed to the API server
    # stations to write to station_current: their new state, or None to read it from the table
    current_dirty: dict[str, StationState | None] = field(default_factory=dict)
    current_removed: set[str] = field(default_factory=set)
    # of those, the ones whose row is written whole: their registry record changed (or their
    # row was found missing); the others' rows are written without the registry columns
    current_listed: set[str] = field(default_factory=set)
    # stations whose station_current row is written again after a rebalance, a part at a time
    # behind the ones that changed (streams.owned.refresh_current)
    current_resync: deque[str] = field(default_factory=deque)
    health: tuple[bool, dict[str, Any]] = (False, {"status": "starting", "problems": ["starting"]})
    feed: ApiFeed | None = None
    current: CurrentWriter = field(default_factory=lambda: CurrentWriter(""))
    outputs: OutputProducer | None = None  # alerts and dead letters (streams.output)
    writer: TableWriter | None = None  # the live table's writes (streams.changelog)
    watermarks: Watermarks = field(default_factory=Watermarks)
    ticks_pending: set[int] = field(default_factory=set)
    misplaced_reported: set[str] = field(default_factory=set)  # stations already logged
    started_at: datetime = field(default_factory=utcnow)
    # per input partition: the broker's last answer for its end offset, and when it was asked
    end_offsets: dict[TP, tuple[datetime, int]] = field(default_factory=dict)
    offset_reader: AIOKafkaConsumer | None = None  # the client that asks for them
    record_reader: AIOKafkaConsumer | None = None  # reads skipped records again (streams.holes)
    reader_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one read at a time
    # one start of the offset reader, however many ask for it at once (two timers, a rebalance)
    offset_reader_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # the tables hold the current assignment's state (from Faust's rebalance signals)
    recovered: bool = False
    assignments: int = 0  # rebalances completed: indexing that outlived its assignment stops

    def contract_topic(self, broker_topic: str) -> str:
        prefix = self.settings.topic_prefix
        return broker_topic[len(prefix) :] if prefix else broker_topic

    async def end_offset_reader(self) -> AIOKafkaConsumer:
        """The client that asks for end offsets and the group's committed offsets, started
        on first use (once: callers that ask while it starts wait for it, rather than each
        starting a client of their own, all but one left running unclosed)."""
        async with self.offset_reader_lock:
            if self.offset_reader is None:
                self.offset_reader = await start_offset_reader(self.settings)
            return self.offset_reader

    async def read_again(self, topic: str, partition: int, first: int, end: int) -> list[ReadAgain]:
        """Offsets ``first`` to ``end - 1`` of a partition read again from the broker
        (:mod:`streams.holes`), by one client, one read at a time."""
        async with self.reader_lock:
            return await read_again(await self._reader(), topic, partition, first, end)

    async def last_offset(self, tp: TP, first: int, timeout_s: float) -> int | None:
        """The offset of the last record of a partition, read from ``first`` on by the same
        client as :meth:`read_again` (None when nothing is there)."""
        async with self.reader_lock:
            return await last_offset(await self._reader(), tp.topic, tp.partition, first, timeout_s)

    async def _reader(self) -> AIOKafkaConsumer:
        """The record reader, started on first use (under ``reader_lock``)."""
        if self.record_reader is None:
            self.record_reader = await start_record_reader(self.settings)
        return self.record_reader

    def active_partitions(self) -> set[int]:
        heartbeat = self.settings.topic(HEARTBEAT)
        return {
            tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == heartbeat
        }

    async def clock(
        self,
        partition: int,
        fetched: dict[TP, int | None] | None = None,
        assigned: set[TP] | None = None,
    ) -> Clock | None:
        """The time stations of ``partition`` are judged at, or None while it cannot be known.

        Caught up: when the broker was last asked for the partition's end offset (at most
        ``END_MAX_AGE_S`` ago, by :func:`install_end_offsets`) and everything up to that end has
        been processed — then every heartbeat sent before that moment has been seen. The fetch
        highwater alone is not enough: it is as old as the partition's last fetch, which a
        worker busy with a backlog may not have repeated for seconds, and the stations whose
        heartbeats arrived since would be judged silent. Behind: the broker time of the newest
        heartbeat processed there, so a backlog is not mistaken for silence.

        ``fetched`` and ``assigned`` (the consumer's assignment) are asked once per batch by
        the caller: the consumer builds its assignment anew at every question.
        """
        wall = utcnow()
        tp = TP(self.settings.topic(HEARTBEAT), partition)
        consumer = self.app.consumer
        if tp not in (assigned if assigned is not None else consumer.assignment()):
            return None
        highwater = consumer.highwater(tp)
        if highwater is None:
            return None  # nothing fetched yet since the assignment
        position = self.positions.get(tp)
        if position is None:
            # nothing processed there since the assignment: the fetch position, asked once
            # per batch (``fetched``: a question to the consumer's thread costs a round trip)
            if fetched is not None and tp in fetched:
                position = fetched[tp]
            else:
                position = await consumer.position(tp)
                if fetched is not None:
                    fetched[tp] = position
            if position is None:
                return None
        lag = self.settings.caught_up_lag
        known = self.end_offsets.get(tp)
        if known is not None and highwater - position <= lag:
            asked, end = known
            if end - position <= lag and (wall - asked).total_seconds() <= END_MAX_AGE_S:
                return Clock(judge=min(asked, wall), wall=wall)
        mark = self.watermarks.get(partition)
        if mark is None:
            return None
        return Clock(judge=min(mark, wall), wall=wall)


class StationTable(faust.Table):  # type: ignore[type-arg] # faust's generics are untyped
    """The live table. Written by :class:`streams.changelog.TableWriter` only, which files a
    station's state and its changelog record under the partition its input arrived on
    (whatever its producers' partitioner); a write through Faust's table is refused."""

    def partition_for_key(self, key: Any) -> int | None:
        raise TypeError(f"{key!r}: the live table is written by streams.changelog only")

    def stored(self, key: str, partition: int) -> Any:
        """A station's stored state or None, read once (``get`` asks the store twice), from
        the partition its records arrive on when the store keeps partitions apart."""
        store = self.data
        if isinstance(store, StationStore):
            return store.fetch(key, partition)
        try:
            return store[key]
        except KeyError:
            return None

    def stored_many(self, wanted: Mapping[str, int]) -> dict[str, Any]:
        """:meth:`stored` for many stations at once (station id → the partition its record
        arrived on), where the store reads many at once; else nothing (read one by one)."""
        store = self.data
        return store.fetch_many(wanted) if isinstance(store, StationStore) else {}

    def _new_store_by_url(self, url: Any) -> Any:
        """``rocksdb://``: :class:`streams.store.StationStore`; otherwise Faust's store."""
        if str(url).startswith("rocksdb:"):
            return StationStore(
                url,
                self.app,
                self,
                table_name=self.name,
                key_type=self.key_type,
                key_serializer=self.key_serializer,
                value_serializer=self.value_serializer,
                value_type=self.value_type,
                loop=self.loop,
                options={**ROCKSDB_OPTIONS, **(self.options or {})},
            )
        return super()._new_store_by_url(url)


STATE_TABLE = "station_state"


def add_station_table(app: faust.App, partitions: int) -> Any:
    """The live table (a :class:`StationTable`), declared on ``app``: station ids as keys,
    each hashed like the input keys, and states as stored (:mod:`streams.state_codec`)."""
    return app.tables.add(
        StationTable(
            app,
            name=STATE_TABLE,
            default=None,
            beacon=app.tables.beacon,
            partitions=partitions,
            key_type=str,  # raw bytes on the changelog, hashed like the input keys
            value_type=bytes,  # raw, as stored: streams.state_codec
        )
    )


class DeclaredTables(TableManager):
    """Faust's table manager without its grace second: Faust waits 1 s at start for tables
    declared late, then finalizes them; this worker declares its one table in ``create_app``,
    before it starts, so the wait only delays the group join (and every restart) by a second.

    Its recovery is :class:`EndCheckedRecovery`, which reads a changelog's last record where
    the broker's end offset falls short of the table's (``last_offset``: set by
    ``create_app``)."""

    last_offset: Callable[[TP, int, float], Awaitable[int | None]] | None = None

    async def on_start(self) -> None:
        if not self.should_stop:
            await self._update_channels()
            await self.recovery.start()

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = EndCheckedRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


# All of a recovery's reads of changelog ends take at most this long, well within Faust's
# broker_request_timeout (90 s) around the step: a partition left unread keeps its reported end.
END_READ_BUDGET_S = 20.0
END_READ_TIMEOUT_S = 5.0  # for one partition


class EndCheckedRecovery(Recovery):
    """Faust's table recovery, with a changelog's end read again where the broker reports it
    below the offset the table has already reached.

    The embedded broker (Tansu) reports a partition's end offset as the first record of its
    newest producer batch plus one. The live table's writer sends each partition's last record
    in a batch of its own (:mod:`streams.changelog`), so the reported end is right, but for a
    worker killed between a batch and that last record. A worker that read the whole batch
    (the standby copy, or the next start's recovery) then stored an offset beyond the reported
    end, and Faust's recovery refused to start, at every later start: "the persisted offset
    ... is higher than the last offset in that topic". The records are there: a fetch from the
    reported end gives the real end (its high-water mark), and recovery goes on with it.

    Where no record lies beyond the reported end (a topic made anew, shorter, under a kept
    store), the reported end stays and Faust's error stands. A topic made anew and already
    longer than the store's offset goes unnoticed, as it would on Apache Kafka, where the
    reported end is right and a partition is read only when the table is ahead of it."""

    async def _build_highwaters(
        self, consumer: Any, tps: set[TP], destination: Counter[TP], title: str
    ) -> None:
        await super()._build_highwaters(consumer, tps, destination, title)
        tables = self.tables
        if not isinstance(tables, DeclaredTables) or tables.last_offset is None:
            return
        read = tables.last_offset
        # what Faust compares the highwater with: the offsets it will start from
        starts = (
            self.active_offsets if destination is self.active_highwaters else self.standby_offsets
        )
        deadline = asyncio.get_running_loop().time() + END_READ_BUDGET_S
        for tp in sorted(tps):
            table = self.tp_to_table.get(tp)
            stored = table.persisted_offset(tp) if table is not None else None
            ahead = max((o for o in (stored, starts.get(tp)) if o is not None), default=-1)
            reported = destination.get(tp)
            # An end of 0 (-1 here): on the embedded broker there is no batch at all.
            if reported is None or reported < 0 or ahead <= reported:
                continue
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                logger.warning("%s: its end is not read again (no time left)", tp)
                continue
            try:
                last = await read(tp, reported, min(left, END_READ_TIMEOUT_S))
            except (KafkaError, StationwatchError, TimeoutError, OSError) as exc:
                logger.warning(
                    "%s: reported last offset %d, the table at %d; its last record could not "
                    "be read (%s)",
                    tp,
                    reported,
                    ahead,
                    exc,
                )
                continue  # Faust's check decides, as without this reading
            if last is not None and last > reported:
                logger.warning(
                    "%s: the broker reports its last offset as %d, the table has reached %d, "
                    "and the last record there is at %d: recovering up to it",
                    tp,
                    reported,
                    ahead,
                    last,
                )
                destination[tp] = last


def liveness_config(settings: Settings) -> LivenessConfig:
    from zoneinfo import ZoneInfo

    return LivenessConfig(
        stale_after=settings.stale_after,
        offline_after=settings.offline_after,
        recovery_beats=settings.recovery_heartbeats,
        flap_changes=settings.flap_changes,
        flap_window=timedelta(seconds=settings.flap_window_s),
        closed_grace=timedelta(seconds=settings.closed_grace_s),
        zone=ZoneInfo(settings.timezone),
        pending={k: timedelta(seconds=v) for k, v in settings.alert_pending_s.items()},
        keep_firing={k: timedelta(seconds=v) for k, v in settings.alert_keep_firing_s.items()},
    )


def ingest_config(settings: Settings) -> IngestConfig:
    liveness = liveness_config(settings)
    return IngestConfig(
        topic_prefix=settings.topic_prefix,
        max_bytes=settings.max_message_bytes,
        max_skew=timedelta(seconds=settings.max_clock_skew_s),
        max_age=timedelta(seconds=settings.max_message_age_s),
        liveness=liveness,
        partitions=settings.partitions,
        basis=settings_basis(liveness),
    )

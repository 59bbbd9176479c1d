"""The stations this worker owns: indexed after a rebalance (scheduled for judging, fed to the
API server), and written to ``station_current`` as they change."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections import deque
from collections.abc import Iterator
from typing import Any

from stationwatch.db.sink import CurrentRows
from stationwatch.errors import DatabaseUnavailableError
from streams.batch import PART
from streams.freshness import fresh_until
from streams.ingest import utcnow
from streams.runtime import Runtime
from streams.state import StationState
from streams.state_codec import decode_state, stored_partition, stored_schedule
from streams.store import StationStore
from streams.tracker import partition_for
from streams.views import current_row, live_row

logger = logging.getLogger(__name__)

RESYNC_PART = 5000  # station_current rows written again per refresh after a rebalance
# Stations read, scheduled and fed per turn of the event loop while indexing (about 15 ms at
# 150,000 stations): the agent and the feed's writer run between two parts, and the kernel
# takes a part's frames (~400 kB) at each turn even with its default socket buffer.
INDEX_PART = 2000


def owned_parts(runtime: Runtime, partition: int) -> Iterator[list[tuple[str, int, bytes]]]:
    """The partition's stations (as :func:`owned_states`), ``INDEX_PART`` at a time, each
    part read from the live table only when it is asked for: a station the agent writes while
    the caller waits between two parts is read with that write, or was read before it (and
    the agent's write comes after). On disk only; a table in memory is read whole at once."""
    store = runtime.table.data
    if not isinstance(store, StationStore):
        yield list(owned_states(runtime, {partition}))
        return
    after: bytes | None = None
    while True:
        part, after = store.partition_part(partition, after, INDEX_PART)
        yield part
        if after is None:
            return


def owned_states(runtime: Runtime, active: set[int]) -> Iterator[tuple[str, int, bytes]]:
    """Every station of the ``active`` partitions, from the live table: a station belongs to
    the partition its records arrive on (kept in its state; states stored before that was
    kept are placed by the default partitioner). On disk (:mod:`streams.store`) each
    partition's stations are read from its own database, without decoding their states."""
    store = runtime.table.data
    if isinstance(store, StationStore):
        yield from store.partition_items(active)
        return
    partitions = runtime.settings.partitions
    for station_id, value in list(runtime.table.items()):
        if not value:
            continue
        partition = stored_partition(value)
        if partition is None:
            partition = partition_for(station_id, partitions)
        if partition in active:
            yield station_id, partition, value


async def index_owned_stations(runtime: Runtime) -> bool:
    """After a rebalance: every station of the partitions this worker now owns is scheduled
    for judging (at the time stored with its state, else at once), is written again to
    station_current (behind the changes), and is fed to the API server.

    A part of a partition at a time (:func:`owned_parts`), yielding between them: the API
    server parses one part's stations while the next is read, and the agent works off its
    backlog meanwhile (a station it writes is read here with that write, or written again by
    it after). Returns False when a rebalance came meanwhile (the assignment's own indexing
    follows it)."""
    feed = runtime.feed
    if feed is not None:
        feed.reset()
        fed_since = feed.resets
    assignment = runtime.assignments
    active = runtime.active_partitions()
    resync: deque[str] = deque()
    count = 0
    for partition in sorted(active):
        for stations in owned_parts(runtime, partition):
            if feed is not None:
                feed.put_many(stations)
            resync.extend(station_id for station_id, _, _ in stations)
            count += runtime.due.rebuild(schedules(stations, runtime.config.basis), compact=False)
            await asyncio.sleep(0)
            if runtime.assignments != assignment or not runtime.recovered:
                logger.info("indexing stopped: the partitions are being reassigned")
                return False
        runtime.due.compact(partition)
    if feed is not None:
        if feed.resets != fed_since:  # a new API server started meanwhile: it has none
            feed.put_many(owned_states(runtime, active))
        feed.ready(active)
    runtime.indexed = True
    runtime.current_resync = resync
    logger.info("watching %d stations on partitions %s", count, sorted(active))
    freeze_long_lived(runtime)
    return True


def schedules(
    stations: list[tuple[str, int, bytes]], basis: int
) -> Iterator[tuple[str, int, float | None, str | None]]:
    """Each station's next due time and liveness, from its stored header (a state stored
    before the header: judged at once, its liveness unknown)."""
    for station_id, partition, value in stations:
        header = stored_schedule(value, basis)
        if header is None:
            yield station_id, partition, None, None
        else:
            yield station_id, partition, header.due, header.liveness


def freeze_long_lived(runtime: Runtime) -> None:
    """Once the tables are recovered and indexed: collect everything, then move what survives
    (the worker's and Faust's long-lived structures) out of the collector's reach, so later
    full collections stay short. The live states are bytes the collector never tracks. What
    an earlier rebalance froze is collected again first, so nothing frozen leaks."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    runtime.metrics.gc_frozen.set(gc.get_freeze_count())


def current_rows(
    runtime: Runtime, changed: list[tuple[str, StationState | None]], listed: set[str]
) -> CurrentRows:
    """``station_current`` rows of these stations: from the state the batch left (None: as
    the table holds it); whole for the stations in ``listed`` and those read from the table,
    else without the registry columns."""
    now = utcnow()
    config = runtime.config.liveness
    rows = CurrentRows()
    for station_id, state in changed:
        whole = state is None or station_id in listed
        if state is None:
            partition = runtime.due.partition(station_id)
            if partition is None:
                continue  # no longer owned here
            value = runtime.table.stored(station_id, partition)
            if not value:
                continue
            state = decode_state(value)
        make, into = (current_row, rows.whole) if whole else (live_row, rows.live)
        into.append(make(state, config.zone, now, fresh_until(state, config)))
    return rows


def resync_allowed(health: tuple[bool, dict[str, Any]], backlog_limit: int) -> bool:
    """Whether the re-sync may take its part now: once the last health report shows no more
    than ``backlog_limit`` unprocessed messages. A restarted or taking-over worker first works
    off its backlog (the judging clock waits for it); the re-sync, about as costly per station
    as a record and over the whole fleet, would otherwise slow that by half."""
    lag = health[1].get("lag")
    return lag is not None and lag <= backlog_limit


def take_resync(
    resync: deque[str], changed: dict[str, StationState | None], limit: int = RESYNC_PART
) -> list[str]:
    """Add up to ``limit`` of the stations written again after a rebalance to those that
    changed, and return them (their rows are written whole). Their rows are most likely right
    already (written before the rebalance, by this worker or the one before): the re-sync
    covers the changes a crash left unwritten, and must not hold up the judging of a fleet
    taken over (a station's row is marked out of date by its own ``fresh_until``
    meanwhile)."""
    taken = []
    for _ in range(min(limit, len(resync))):
        station_id = resync.popleft()
        changed.setdefault(station_id, None)
        taken.append(station_id)
    return taken


async def refresh_current(runtime: Runtime) -> None:
    """Write the stations that changed to ``station_current`` (Grafana's live view), then a
    part of those written again after a rebalance (once the backlog is worked off); on a
    database outage they are kept for the next time. A row is written whole when its
    station's record changed, else only what a heartbeat or a judgement changes (a station
    whose row turns out to be missing is written whole the next time)."""
    if not runtime.current_dirty and not runtime.current_removed and not runtime.current_resync:
        return
    changed, runtime.current_dirty = runtime.current_dirty, {}
    listed, runtime.current_listed = runtime.current_listed, set()
    if resync_allowed(runtime.health, runtime.settings.batch_size):
        listed.update(take_resync(runtime.current_resync, changed))
    if not changed and not runtime.current_removed:
        return  # only a re-sync pending, and it waits
    gone, runtime.current_removed = runtime.current_removed, set()
    rows = CurrentRows()
    pending = list(changed.items())
    for i in range(0, len(pending), PART):
        rows.extend(current_rows(runtime, pending[i : i + PART], listed))
        await asyncio.sleep(0)
    try:
        written = await runtime.current.write(rows.whole, sorted(gone), live=rows.live)
    except DatabaseUnavailableError as exc:
        runtime.current_dirty = changed | runtime.current_dirty  # next time, newest first
        runtime.current_listed |= listed
        runtime.current_removed |= gone
        logger.warning("station_current not refreshed (%s); will retry", exc)
        return
    for station_id in written.missing:  # whole, the next time
        runtime.current_dirty.setdefault(station_id, changed.get(station_id))
        runtime.current_listed.add(station_id)
    if written.refused:
        logger.error("station_current: the database refused the rows of %s", written.refused)

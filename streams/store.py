"""The live table on disk: Faust's RocksDB store (``STATIONWATCH_STORE=rocksdb://``), with the
partition of every write named by the writer and memory bounded for a large fleet.

Why not Faust's store as it is: it files a write under the partition of the event being
processed (``current_event()``) and looks a key up there. A batch of the ingest agent spans
partitions and the ticks' topic, so the current event is not the station's own; a station's
state belongs to the partition its records arrive on, which the table's writer
(:mod:`streams.changelog`) names. Here a write goes to that partition's database, and a
lookup asks that database first, then the one the store's key index names, else each open
one (a bloom filter answers most of them without a read); a part of a batch asks for all
its stations at once, one multi-get per database.

Why RocksDB: the memory store replays the whole changelog at every start and holds every
state in the heap. RocksDB keeps the states on disk with the changelog offset they reflect,
so a restarted worker reads only the changelog written since, and a survivor takes over a
partition from its standby copy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import cache, cached_property
from typing import Any

import msgspec
import orjson
from faust.stores.rocksdb import RocksDBOptions
from faust.stores.rocksdb import Store as RocksStore
from rocksdict import (
    BlockBasedIndexType,
    BlockBasedOptions,
    Cache,
    DBCompressionType,
    Options,
    WriteBatch,
    WriteBufferManager,
)

MIB = 1024 * 1024
# stations remembered as read where their records arrive, or as kept nowhere (5 batches)
FOUND_LIMIT = 10_000
# One memory budget for every database of the process (a worker opens one per partition it
# holds, active or standby): a block cache they share, and their write buffers (memtables)
# charged to it. Faust's sizes are per database (and its defaults, 64 MiB write buffers,
# three of them, a 2 GiB cache, are made for one large table per process), so a worker's
# RocksDB memory grew with its partitions. Measured on RocksDB alone, 150,000 states of 170
# bytes, each read and written back 400,000 times: with 4 MiB write buffers (two) and an
# 8 MiB cache per database, 100 MiB at 8 partitions and 137 MiB at 32; with a shared budget
# of 32 + 16 MiB, 61 and 70 MiB, at 10 and 13 µs of CPU per read and write instead of 7 and
# 11. Smaller again, RocksDB alone (150,000 states of 170 bytes, 300,000 reads and writes,
# CPU of every thread; the resident memory is the whole test process), at 8 and 16
# databases (a worker's 8 partitions, with their standby copies beside another worker's):
#     32 + 16 MiB: 103 MiB resident, 10.9 and 11.4 µs per read and write
#     16 +  8 MiB:  83 MiB,          12.6 and 14.9 µs
#      8 +  4 MiB:  74 MiB,          21.0 and 34.0 µs (memtables flushed at a fraction of
#                                    their size: many small files, compacted again)
# 12 + 6 MiB since: the worker's resident memory at 150,000 stations stood at 1,010-1,042
# bytes a station in seven bench runs (issue 13's target: 1,024), and at that size the cache
# holds under half the states (about 30 MB) either way. With tools/store_scaling.py (the
# worker's store, 8 databases, 185-byte states, 200,000 reads and writes; three runs each,
# alternating): 10.6 µs of CPU per state (10.3-10.9) at 16 + 8 MiB, 11.1 (11.0-11.3) at
# 12 + 6: half a percent of the worker's CPU per heartbeat (about 90 µs) for 4 MiB. Four
# bench runs with it: 975-1,009 bytes a station; the worker's CPU per heartbeat at 150,000
# stations 11.8 µs above 10,000's on average, against 9.0 in the seven runs before, and
# pipeline_scaling 0.891 against 0.914 (both unmet): about 3 µs more at 150,000, more than
# the store alone shows, for the one memory target met again.
#
# The files are not compressed: a stored state is zstd already (:mod:`streams.state_codec`),
# so Snappy saved nothing on disk, and at 150,000 stations, where most reads miss the cache,
# each one decompressed a whole block. RocksDB alone (as above, 8 databases, a read and a
# write per state, three runs each), CPU of the reading thread per state: 9.6–10.0 µs
# uncompressed against 11.5–15.6 µs with Snappy; at 10,000 stations (every block cached)
# 5.2–5.4 against 5.3–6.1.
#
# Each memtable has a Bloom filter of whole keys. A station asked of a database that does not
# keep it (a new one is asked of every database: :meth:`StationStore._ask_every_database`)
# is then not searched for in that database's memtables. RocksDB alone, 150,000 stations
# registered in parts of 25 (8 databases): 5.0–6.2 µs per new station to ask every database,
# against 10.6–12.3 µs without; reading and writing back known states, 0.4–0.9 µs less per
# state. The filter takes MEMTABLE_BLOOM_RATIO of each memtable's size (41 KiB, about 37
# bits per key at 2 MiB memtables of 230-byte states), inside the memtables' budget. With it,
# every memtable takes its first arena block at once, even a database nothing is written to
# (a standby's, an empty partition's): 256 KiB by default (an eighth of the write buffer),
# 2.25 MiB of the memtables' budget (8 MiB then) for 8 empty databases, enough at some 30
# databases to flush at every write. Arena blocks of ARENA_BLOCK_BYTES: 0.5 MiB for 8, at the
# same speed.
MEMTABLE_BLOOM_RATIO = 0.02
ARENA_BLOCK_BYTES = 64 * 1024
BLOCK_CACHE_BYTES = 12 * MIB
WRITE_BUFFERS_BYTES = 6 * MIB  # all memtables together, inside the block cache's budget
ROCKSDB_OPTIONS: dict[str, Any] = {
    "write_buffer_size": 2 * MIB,
    "max_write_buffer_number": 2,
    "target_file_size_base": 16 * MIB,
    "block_cache_size": BLOCK_CACHE_BYTES,
    "block_cache_compressed_size": 0,
    "bloom_filter_size": 10,  # bits per key
}


class SharedBudgetOptions(RocksDBOptions):
    """Faust's RocksDB options (rocksdict driver), with the block cache and the write buffer
    budget of every database opened through them shared by the process."""

    def as_options(self) -> Options:
        options: Options = super().as_options()
        if not self.use_rocksdict:
            return options
        cache, buffers = _shared_budget(self.block_cache_size)
        table = BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, block_based=True)
        table.set_block_cache(cache)
        table.set_index_type(BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table)
        options.set_write_buffer_manager(buffers)
        options.set_compression_type(DBCompressionType.none())
        options.set_memtable_whole_key_filtering(True)
        options.set_memtable_prefix_bloom_ratio(MEMTABLE_BLOOM_RATIO)
        options.set_arena_block_size(ARENA_BLOCK_BYTES)
        return options


@cache
def _shared_budget(cache_bytes: int) -> tuple[Cache, WriteBufferManager]:
    """The process's block cache and write buffer manager (one per cache size asked)."""
    shared = Cache(cache_bytes)
    buffers = WriteBufferManager.new_write_buffer_manager_with_cache(
        min(WRITE_BUFFERS_BYTES, cache_bytes // 2), False, shared
    )
    return shared, buffers


class StationStore(RocksStore):
    """Faust's RocksDB store, writing to the partition the table's writer names, its
    databases within the process's memory budget (:class:`SharedBudgetOptions`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        options = dict(self.options or {})
        self.rocksdb_options = SharedBudgetOptions(**options, use_rocksdict=self.use_rocksdict)

    def _set(self, key: bytes, value: bytes | None) -> None:
        raise TypeError(f"{key!r}: the live table is written by streams.changelog only")

    def _place(self, key: bytes, partition: int) -> None:
        """Before a station's write to ``partition``: out of the other partitions' databases,
        unless it is known to be kept in this one only, or in none."""
        if self._found.pop(key, None) != partition:
            if self._key_index.get(key) != partition:
                self._forget_elsewhere(key, partition)
            self._key_index[key] = partition

    def write_partition(self, partition: int, items: list[tuple[bytes, bytes | None]]) -> None:
        """Write states of one partition (encoded keys; a value of None removes the station)
        in one RocksDB write (:class:`streams.changelog.TableWriter` sends them on)."""
        db = self._db_for_partition(partition)
        batch = WriteBatch(raw_mode=True)
        for key, value in items:
            if value is None:  # from every database that may hold it, in order
                for other in self._dbs_for_key(key):
                    if other is not db:
                        other.delete(key)
                batch.delete(key)
                continue
            self._place(key, partition)
            batch.put(key, value)
        db.write(batch)

    def _forget_elsewhere(self, key: bytes, partition: int) -> None:
        """A station is kept once: when its records move to another partition (its producers
        changed partitioner), its state leaves the database of the old one."""
        for other, db in self._dbs.items():
            if other != partition and db.key_may_exist(key) and db.get(key) is not None:
                db.delete(key)

    def _get(self, key: bytes) -> bytes | None:
        found = self._get_bucket_for_key(key)
        return None if found is None else found.value

    def fetch(self, key: str, partition: int) -> bytes | None:
        """A station's stored state (:meth:`fetch_many` for one station)."""
        return self.fetch_many({key: partition})[key]

    def fetch_many(self, wanted: Mapping[str, int]) -> dict[str, bytes | None]:
        """Stations' stored states (station id → the partition its record arrived on), asked
        first of that partition's database, then of the others (a station seen there first,
        or moved): one multi-get per database asked, not a read (or a bloom filter's answer)
        per station and database. A part of a batch (about 25 records) asks for its stations
        at once."""
        found: dict[str, bytes | None] = {}
        keys = {station_id: self.station_key(station_id) for station_id in wanted}
        missed: dict[str, int] = {}
        for partition, station_ids in _by_partition(wanted).items():
            db = self._dbs.get(partition)
            asked = [keys[s] for s in station_ids]
            values = db.get(asked) if db is not None else [None] * len(asked)
            for station_id, value in zip(station_ids, values, strict=True):
                if value is None:
                    missed[station_id] = partition
                    continue
                # known to be there: its next write (most likely this batch's) need not ask
                # every other partition's database whether it is kept there too
                self._remember(keys[station_id], partition)
                found[station_id] = value
        unindexed: dict[str, int] = {}
        for station_id, partition in missed.items():
            key = keys[station_id]
            if self._key_index.get(key) in self._dbs:  # kept there or nowhere: ask there
                found[station_id] = self._elsewhere(key, self._get(key))
            else:
                unindexed[station_id] = partition
        if unindexed:
            found.update(self._ask_every_database(unindexed, keys))
        return found

    def _ask_every_database(
        self, wanted: dict[str, int], keys: dict[str, bytes]
    ) -> dict[str, bytes | None]:
        """Stations no database was known to keep, found as Faust's store finds them (the
        first database in order that keeps one, which the key index then names), but asking
        each database for all of them at once."""
        found: dict[str, bytes | None] = {}
        left = dict(wanted)
        # as before any of them is looked up (the index is an LRU cache, and each one found
        # goes into it)
        indexed = {station_id for station_id in wanted if keys[station_id] in self._key_index}
        for partition, db in list(self._dbs.items()):
            asked = [s for s, arrived in left.items() if arrived != partition]  # asked already
            if not asked:
                continue
            for station_id, value in zip(asked, db.get([keys[s] for s in asked]), strict=True):
                if value is not None:
                    self._key_index[keys[station_id]] = partition
                    found[station_id] = self._elsewhere(keys[station_id], value)
                    del left[station_id]
        for station_id, partition in left.items():
            if station_id not in indexed:
                # every database was asked and none keeps it (a new station): neither need
                # they be asked again at its first write
                self._remember(keys[station_id], partition)
            found[station_id] = None
        return found

    def _elsewhere(self, key: bytes, value: bytes | None) -> bytes | None:
        """A station's state found outside the database of the partition its record arrived
        on (since it was last remembered, a restore may have put it there): its write there
        takes it out of here."""
        if value is not None:
            self._found.pop(key, None)
        return value

    async def on_rebalance(self, *args: Any, **kwargs: Any) -> None:
        """What was remembered of where stations are kept may move with the partitions."""
        self._found.clear()
        await super().on_rebalance(*args, **kwargs)

    def _remember(self, key: bytes, partition: int) -> None:
        found = self._found
        if len(found) >= FOUND_LIMIT:
            found.clear()
        found[key] = partition

    @cached_property
    def _found(self) -> dict[bytes, int]:
        """Stations read from the database of the partition asked, or kept in none, since
        their last write (at most ``FOUND_LIMIT``: a station read and left unchanged stays
        until then)."""
        return {}

    def station_key(self, station_id: str) -> bytes:
        """A station id as the table's keys are stored: ``_encode_key``, without its layers
        of calls for the ``str`` keys the live table has (twice per station and batch)."""
        return self._station_key_encoder(station_id)

    @cached_property
    def _station_key_encoder(self) -> Callable[[str], bytes]:
        serializer = self.key_serializer or self.app.serializers.key_serializer
        if self.key_type is str and serializer in _STR_KEY_ENCODERS:
            return _STR_KEY_ENCODERS[serializer]
        return self._encode_key

    def _contains(self, key: bytes) -> bool:
        return self._get(key) is not None

    def partition_items(self, partitions: set[int]) -> Iterator[tuple[str, int, bytes]]:
        """Every station stored for these partitions, with its partition, without reading
        the states (each partition's database holds exactly that partition's stations)."""
        for partition in sorted(partitions):
            db = self._dbs.get(partition)
            if db is None:
                continue
            station_id = self._station_id_decoder()
            for key, value in self._visible_items(db):
                yield station_id(key), partition, value

    def partition_part(
        self, partition: int, after: bytes | None, limit: int
    ) -> tuple[list[tuple[str, int, bytes]], bytes | None]:
        """Up to ``limit`` stations stored for the partition, in key order after the key
        ``after`` (None: from the first), read now (not from a snapshot taken earlier); with
        the last key read, or None when the partition has no more."""
        db = self._dbs.get(partition)
        if db is None:
            return [], None
        if not self.use_rocksdict:  # python-rocksdb's iterators: the partition in one part
            return ([] if after is not None else list(self.partition_items({partition}))), None
        station_id = self._station_id_decoder()
        found: list[tuple[str, int, bytes]] = []
        last: bytes | None = None
        items = db.items() if after is None else db.items(from_key=after)
        for key, value in items:
            if key == after or key == self.offset_key:
                continue
            if len(found) == limit:  # there is more: the next part starts after ``last``
                return found, last
            found.append((station_id(key), partition, value))
            last = key
        return found, None

    def _station_id_decoder(self) -> Callable[[bytes], Any]:
        """How a stored key becomes its station id: the table's key serializer, without its
        layers of calls for the ``str`` keys the live table has (JSON by Faust's default for
        tables, or raw): 150,000 keys at every rebalance."""
        serializer = self.key_serializer or self.app.serializers.key_serializer
        if self.key_type is str and serializer in _STR_KEYS:
            return _STR_KEYS[serializer]
        return self._decode_key


def _utf8(key: bytes) -> str:
    return key.decode("utf-8")


def _utf8_bytes(station_id: str) -> bytes:
    return station_id.encode("utf-8")


_STR_KEYS: dict[str, Callable[[bytes], Any]] = {"json": orjson.loads, "raw": _utf8}
# Faust's JSON codec is orjson.dumps where orjson is installed (it is a dependency here).
# msgspec writes the same bytes for a string, in an object of its size: orjson's output takes
# 4 KiB of the heap whatever its length, and these keys are kept (the store's key index, the
# stations found where their records arrive: up to 11,000 of them, 44 MiB).
_STR_KEY_ENCODERS: dict[str, Callable[[str], bytes]] = {
    "json": msgspec.json.encode,
    "raw": _utf8_bytes,
}


def _by_partition(wanted: Mapping[str, int]) -> dict[int, list[str]]:
    grouped: dict[int, list[str]] = {}
    for station_id, partition in wanted.items():
        grouped.setdefault(partition, []).append(station_id)
    return grouped

"""The live table on disk: Faust's RocksDB store (``STATIONWATCH_STORE=rocksdb://``), with the
partition of every write named by the writer and memory bounded for a large fleet.

Why not Faust's store as it is: it files a write under the partition of the event being
processed (``current_event()``) and looks a key up there. A batch of the ingest agent spans
partitions and the ticks' topic, so the current event is not the station's own; a station's
state belongs to the partition its records arrive on, which the table's writer
(:mod:`streams.changelog`) names. Here a write goes to that partition's database, and a
lookup finds the database by the store's key index, else by asking each open one (a bloom
filter answers most of them without a read).

Why RocksDB: the memory store replays the whole changelog at every start and holds every
state in the heap. RocksDB keeps the states on disk with the changelog offset they reflect,
so a restarted worker reads only the changelog written since, and a survivor takes over a
partition from its standby copy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import cached_property
from typing import Any

import orjson
from faust.stores.rocksdb import Store as RocksStore
from rocksdict import WriteBatch

MIB = 1024 * 1024
FOUND_LIMIT = 10_000  # stations remembered as read where their records arrive (5 batches)
# Per partition database. Faust's defaults (64 MiB write buffers, three of them, a 2 GiB
# block cache) are sized for one large table per process; a worker holds up to one database
# per partition of one table of small values (≈ 150 bytes a station, streams.state_codec).
ROCKSDB_OPTIONS: dict[str, Any] = {
    "write_buffer_size": 4 * MIB,
    "max_write_buffer_number": 2,
    "target_file_size_base": 16 * MIB,
    "block_cache_size": 8 * MIB,
    "block_cache_compressed_size": 0,
    "bloom_filter_size": 10,  # bits per key
}


class StationStore(RocksStore):
    """Faust's RocksDB store, writing to the partition the table's writer names."""

    def _set(self, key: bytes, value: bytes | None) -> None:
        raise TypeError(f"{key!r}: the live table is written by streams.changelog only")

    def _place(self, key: bytes, partition: int) -> None:
        """Before a station's write to ``partition``: out of the other partitions' databases,
        unless it is known to be kept in this one."""
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
        """A station's stored state, asked first of the database of the partition its record
        arrived on (one read), then of the others (a station seen there first, or moved)."""
        encoded = self.station_key(key)
        db = self._dbs.get(partition)
        if db is not None:
            value = db.get(encoded)
            if value is not None:
                # known to be there: its next write (most likely this batch's) need not ask
                # every other partition's database whether it is kept there too
                found = self._found
                if len(found) >= FOUND_LIMIT:
                    found.clear()
                found[encoded] = partition
                return value  # type: ignore[no-any-return]
        return self._get(encoded)

    @cached_property
    def _found(self) -> dict[bytes, int]:
        """Stations read from the database of the partition asked, since their last write
        (at most ``FOUND_LIMIT``: a station read and left unchanged stays until then)."""
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
# Faust's JSON codec is orjson.dumps where orjson is installed (it is a dependency here)
_STR_KEY_ENCODERS: dict[str, Callable[[str], bytes]] = {"json": orjson.dumps, "raw": _utf8_bytes}

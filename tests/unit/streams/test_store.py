"""The live table's RocksDB store (streams.store): each write lands in the database of the
partition the writer names, whatever event Faust is processing, and is found again from any."""

from __future__ import annotations

import tempfile
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.store import (
    _STR_KEY_ENCODERS,
    ARENA_BLOCK_BYTES,
    BLOCK_CACHE_BYTES,
    MEMTABLE_BLOOM_RATIO,
    SharedBudgetOptions,
    StationStore,
    _shared_budget,
)
from tests.station_store import close_station_store, open_station_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StationStore]:
    opened = open_station_store(tmp_path)
    yield opened
    close_station_store(opened)


def write(store: StationStore, key: str, value: bytes | None, partition: int) -> None:
    """What ``streams.changelog.TableWriter`` does to the store, without the changelog."""
    store.write_partition(partition, [(store.station_key(key), value)])


def stored_in(store: StationStore, partition: int, key: str) -> bytes | None:
    value: bytes | None = store._dbs[partition].get(store._encode_key(key))
    return value


def test_the_rocksdb_url_gives_the_station_store(store: StationStore) -> None:
    assert isinstance(store, StationStore)
    assert isinstance(store.rocksdb_options, SharedBudgetOptions)
    assert store.rocksdb_options.write_buffer_size == 2 * 1024 * 1024


def test_the_databases_of_a_process_share_one_memory_budget(store: StationStore) -> None:
    """One block cache for every partition's database, their memtables charged to it: the
    usage each database reports is the shared cache's."""
    for partition in range(4):
        store.write_partition(
            partition,
            [(store.station_key(f"SY-{partition}-{n:04d}"), b"x" * 150) for n in range(2000)],
        )
    dbs = [store._db_for_partition(p) for p in range(4)]
    capacity = {db.property_int_value("rocksdb.block-cache-capacity") for db in dbs}
    usage = {db.property_int_value("rocksdb.block-cache-usage") for db in dbs}
    assert capacity == {BLOCK_CACHE_BYTES}
    assert len(usage) == 1
    assert usage.pop() > 0  # the memtables, charged to the cache


def test_the_files_are_not_compressed_again(store: StationStore) -> None:
    """Stored states are compressed already: the files keep them as they are (a block read
    from disk is not decompressed). Values that would shrink to almost nothing take their
    whole size on disk."""
    db = store._db_for_partition(1)
    store.write_partition(1, [(store.station_key(f"SY-{n:04d}"), b"x" * 150) for n in range(2000)])
    db.flush()
    files = db.live_files()
    assert files
    assert sum(f["size"] for f in files) > 2000 * 150


def test_each_memtable_filters_whole_keys(store: StationStore) -> None:
    """The options each database was opened with, as RocksDB wrote them beside it: a Bloom
    filter of whole keys in every memtable (a new station is asked of every database)."""
    db = store._db_for_partition(2)
    written = sorted(Path(db.path()).glob("OPTIONS-*"))[-1].read_text().splitlines()
    options = dict(line.strip().split("=", 1) for line in written if "=" in line)
    assert options["memtable_whole_key_filtering"] == "true"
    assert float(options["memtable_prefix_bloom_size_ratio"]) == MEMTABLE_BLOOM_RATIO


def test_a_database_nothing_is_written_to_takes_little_of_the_budget(
    store: StationStore,
) -> None:
    """A standby's or an empty partition's database: its memtable (with its filter) takes
    one small arena block of the shared budget, not an eighth of a write buffer."""
    cache, _ = _shared_budget(BLOCK_CACHE_BYTES)
    before = cache.get_usage()
    for partition in range(4):
        store._db_for_partition(partition)
    assert cache.get_usage() - before <= 4 * 2 * ARENA_BLOCK_BYTES


def test_each_write_lands_in_the_named_partition_and_is_found_from_any(
    store: StationStore,
) -> None:
    write(store, "SY-0001", b"one", 2)
    write(store, "SY-0002", b"two", 0)
    store._key_index.clear()  # found without the index: every open database is asked
    assert store["SY-0001"] == b"one"
    assert store["SY-0002"] == b"two"
    assert "SY-0001" in store
    assert "SY-9999" not in store
    assert stored_in(store, 2, "SY-0001") == b"one"
    assert stored_in(store, 0, "SY-0001") is None
    assert stored_in(store, 0, "SY-0002") == b"two"


def test_fetch_asks_the_partition_named_first_and_then_the_others(store: StationStore) -> None:
    write(store, "SY-0001", b"one", 2)
    store._key_index.clear()
    assert store.fetch("SY-0001", 2) == b"one"
    assert store.fetch("SY-0001", 1) == b"one"  # its records arrived elsewhere until now
    assert store.fetch("SY-9999", 2) is None


def test_a_removed_station_is_gone(store: StationStore) -> None:
    write(store, "SY-0001", b"one", 3)
    write(store, "SY-0001", None, 3)
    assert "SY-0001" not in store
    assert stored_in(store, 3, "SY-0001") is None


def test_a_write_without_a_named_partition_is_refused(store: StationStore) -> None:
    with pytest.raises(TypeError, match=r"written by streams\.changelog only"):
        store["SY-0001"] = b"one"
    table: Any = store.table  # and through Faust's table
    with pytest.raises(TypeError, match=r"written by streams\.changelog only"):
        table["SY-0001"] = b"one"


def test_a_station_whose_records_move_is_kept_once(store: StationStore) -> None:
    write(store, "SY-0001", b"old", 1)
    store._key_index.clear()  # as after a restart
    write(store, "SY-0001", b"new", 2)
    assert store["SY-0001"] == b"new"
    assert list(store.partition_items({0, 1, 2, 3})) == [("SY-0001", 2, b"new")]


def test_partition_items_gives_the_stations_of_the_partitions_asked(store: StationStore) -> None:
    write(store, "SY-0001", b"one", 0)
    write(store, "SY-0002", b"two", 1)
    write(store, "SY-0003", b"three", 1)
    assert sorted(store.partition_items({1})) == [
        ("SY-0002", 1, b"two"),
        ("SY-0003", 1, b"three"),
    ]


@pytest.mark.parametrize("serializer", ["json", "raw"])
def test_station_ids_are_read_as_the_key_serializer_reads_them(
    store: StationStore, serializer: str
) -> None:
    store.key_serializer = serializer  # JSON: Faust's default for table keys
    write(store, "顺义-0001", b"one", 0)  # a non-ASCII id survives the short way
    key = store._encode_key("顺义-0001")
    assert store._station_id_decoder()(key) == store._decode_key(key) == "顺义-0001"
    assert list(store.partition_items({0})) == [("顺义-0001", 0, b"one")]


def test_a_station_found_where_its_records_arrive_is_written_without_asking_the_others(
    store: StationStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(store, "SY-0001", b"one", 2)
    store._key_index.clear()
    assert store.fetch("SY-0001", 2) == b"one"

    def ask_others(key: bytes, partition: int) -> None:
        raise AssertionError("asked the other partitions' databases")

    monkeypatch.setattr(store, "_forget_elsewhere", ask_others)
    write(store, "SY-0001", b"two", 2)
    assert store.fetch("SY-0001", 2) == b"two"


def test_a_new_station_s_first_write_does_not_ask_the_databases_again(
    store: StationStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its fetch asked them all and none keeps it."""
    write(store, "SY-0002", b"other", 1)
    assert store.fetch("SY-0001", 2) is None

    def ask_others(key: bytes, partition: int) -> None:
        raise AssertionError("asked the other partitions' databases")

    monkeypatch.setattr(store, "_forget_elsewhere", ask_others)
    write(store, "SY-0001", b"one", 2)
    assert store.fetch("SY-0001", 2) == b"one"
    assert [p for p in store._dbs if stored_in(store, p, "SY-0001")] == [2]


def test_a_station_found_nowhere_then_kept_elsewhere_is_forgotten_there_at_its_write(
    store: StationStore,
) -> None:
    """Remembered as new, then put into another partition's database by a restore (which
    the key index does not see): the fetch that finds it there forgets what was remembered,
    and the write takes it out of there."""
    write(store, "SY-0009", b"other", 1)
    assert store.fetch("SY-0001", 2) is None  # remembered as kept nowhere
    key = store.station_key("SY-0001")
    store._dbs[1].put(key, b"restored")  # as a changelog restore writes it
    assert store.fetch("SY-0001", 2) == b"restored"
    write(store, "SY-0001", b"new", 2)
    assert [p for p in sorted(store._dbs) if stored_in(store, p, "SY-0001")] == [2]


async def test_a_rebalance_forgets_where_stations_were_found(store: StationStore) -> None:
    write(store, "SY-0001", b"one", 2)
    assert store.fetch("SY-0001", 2) == b"one"
    assert store._found
    await store.on_rebalance(set(), set(), set())
    assert not store._found


def test_a_station_missing_where_the_index_says_is_still_forgotten_elsewhere(
    store: StationStore,
) -> None:
    """Only the indexed database was asked: a write elsewhere still clears the others."""
    write(store, "SY-0001", b"old", 1)
    write(store, "SY-0009", b"other", 3)
    store._key_index[store.station_key("SY-0001")] = 3  # an index gone stale
    assert store.fetch("SY-0001", 2) is None
    write(store, "SY-0001", b"new", 2)
    assert [p for p in sorted(store._dbs) if stored_in(store, p, "SY-0001")] == [2]


def test_a_batch_of_writes_lands_in_its_partition_in_order(store: StationStore) -> None:
    write(store, "SY-0003", b"elsewhere", 0)
    store._key_index.clear()  # as after a restart
    key = store._encode_key
    store.write_partition(
        1,
        [
            (key("SY-0001"), b"one"),
            (key("SY-0002"), b"two"),
            (key("SY-0001"), None),  # removed after its write in the same batch
            (key("SY-0003"), b"moved"),  # its records arrive on partition 1 now
        ],
    )
    assert sorted(store.partition_items({0, 1, 2, 3})) == [
        ("SY-0002", 1, b"two"),
        ("SY-0003", 1, b"moved"),
    ]


@pytest.mark.parametrize("serializer", ["json", "raw"])
@pytest.mark.parametrize("station_id", ["SY-0001", "顺义-0001"])
def test_station_keys_are_stored_as_the_key_serializer_writes_them(
    store: StationStore, serializer: str, station_id: str
) -> None:
    store.key_serializer = serializer
    assert store.station_key(station_id) == store._encode_key(station_id)


@given(st.text(st.characters(exclude_categories=["Cs"]), max_size=40))
def test_json_station_keys_are_faust_s_bytes_for_any_id(station_id: str) -> None:
    """Written by msgspec, read back and recovered by Faust (orjson): the same bytes."""
    assert _STR_KEY_ENCODERS["json"](station_id) == orjson.dumps(station_id)


def test_a_kept_station_key_takes_the_memory_of_its_size(store: StationStore) -> None:
    store.key_serializer = "json"
    tracemalloc.start()
    try:
        keys = [store.station_key(f"SY-{n:06d}") for n in range(1000)]
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(keys) == 1000
    assert held < 200 * 1000  # orjson's output held 4 KiB each


def fetch_alone(store: StationStore, key: str, partition: int) -> bytes | None:
    """The store's lookup of one station as it was before stations were read many at once
    (kept here as the reference :meth:`StationStore.fetch_many` must match)."""
    encoded = store.station_key(key)
    db = store._dbs.get(partition)
    if db is not None:
        value = db.get(encoded)
        if value is not None:
            store._remember(encoded, partition)
            return cast(bytes, value)
    indexed = encoded in store._key_index
    elsewhere = store._get(encoded)
    if elsewhere is None and not indexed:
        store._remember(encoded, partition)
    elif elsewhere is not None:
        store._found.pop(encoded, None)
    return elsewhere


STATIONS = [f"SY-{n:04d}" for n in range(6)]
PLACES = st.sets(st.integers(0, 3), max_size=2)  # the partition databases keeping a station
LAYOUTS = st.fixed_dictionaries(
    {
        "kept": st.fixed_dictionaries({sid: PLACES for sid in STATIONS}),
        "indexed": st.dictionaries(st.sampled_from(STATIONS), st.integers(0, 4), max_size=6),
        "found": st.dictionaries(st.sampled_from(STATIONS), st.integers(0, 3), max_size=6),
        "open": st.sets(st.integers(0, 3)),  # databases open beside those keeping stations
        "wanted": st.dictionaries(st.sampled_from(STATIONS), st.integers(0, 4), max_size=6),
    }
)


def laid_out(root: Path, layout: dict[str, Any]) -> StationStore:
    store = open_station_store(root)
    for partition in layout["open"]:
        store._db_for_partition(partition)
    for sid, places in layout["kept"].items():
        for partition in sorted(places):
            store._db_for_partition(partition).put(
                store.station_key(sid), f"{sid}@{partition}".encode()
            )
    for sid, partition in layout["indexed"].items():  # 4: a database not open
        store._key_index[store.station_key(sid)] = partition
    for sid, partition in layout["found"].items():
        store._found[store.station_key(sid)] = partition
    return store


@settings(max_examples=60, deadline=None)
@given(LAYOUTS)
def test_many_stations_read_at_once_are_found_as_each_alone(layout: dict[str, Any]) -> None:
    """Same states, and the same of what the store remembers of where stations are kept (the
    key index, and the stations known to be kept where their records arrive, or nowhere):
    stations kept in one partition's database, in two, in none; indexed, rightly or not, by
    an open database or one not open; asked by the partition keeping them or another."""
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as other:
        alone, many = laid_out(Path(one), layout), laid_out(Path(other), layout)
        try:
            wanted = layout["wanted"]
            expected = {s: fetch_alone(alone, s, partition) for s, partition in wanted.items()}
            assert many.fetch_many(wanted) == expected
            assert dict(many._found) == dict(alone._found)
            assert dict(many._key_index) == dict(alone._key_index)
        finally:  # before their directories are removed
            close_station_store(alone)
            close_station_store(many)

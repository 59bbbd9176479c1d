"""The live table's store on disk (streams.store), for tests that read and write it directly."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import faust

from streams.runtime import add_station_table
from streams.store import StationStore


def open_station_store(root: Path, partitions: int = 4) -> StationStore:
    """A RocksDB station store in ``root`` (raw keys and values), as a worker opens it."""
    app = faust.App(
        "store-test", store="rocksdb://", datadir=str(root), key_serializer="raw",
        value_serializer="raw",
    )  # fmt: skip
    return cast(StationStore, add_station_table(app, partitions).data)


def close_station_store(store: StationStore) -> None:
    """Close the store's databases: open ones hold part of the process's shared budget (and
    may flush into their directories) until the store is collected."""
    for db in store._dbs.values():
        db.close()

"""The table recovery's end check (streams.runtime.EndCheckedRecovery), decision by decision:
the broker's end offset read again only where the table is ahead of it, raised only to records
found there, and left as reported (Faust's consistency check decides) in every other case."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any, cast

import faust
import pytest
from aiokafka.errors import KafkaConnectionError
from faust.types import TP

from streams.runtime import DeclaredTables, EndCheckedRecovery

TOPIC = "app-station_state-changelog"
TP0 = TP(TOPIC, 0)


class Table:
    def __init__(self, stored: int | None) -> None:
        self.stored = stored

    def persisted_offset(self, tp: TP) -> int | None:
        return self.stored


class Consumer:
    """Faust's consumer as recovery asks it: the broker's end offsets."""

    def __init__(self, end: int) -> None:
        self.end = end

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, self.end)


class Reader:
    """What the worker's record reader finds from an offset on (or the error it raises)."""

    def __init__(self, last: int | None = None, error: Exception | None = None) -> None:
        self.last, self.error = last, error
        self.asked: list[tuple[TP, int]] = []

    async def __call__(self, tp: TP, first: int, timeout_s: float) -> int | None:
        self.asked.append((tp, first))
        if self.error is not None:
            raise self.error
        return self.last


def recovery(reader: Reader, stored: int | None, starts_at: int | None = None) -> Any:
    app = faust.App(
        f"recovery-{uuid.uuid4().hex[:8]}",
        broker="kafka://127.0.0.1:1",
        TableManager=DeclaredTables,
    )
    tables = app.tables
    assert isinstance(tables, DeclaredTables)
    tables.last_offset = reader
    found = tables.recovery
    assert isinstance(found, EndCheckedRecovery)
    found.tp_to_table[TP0] = cast(Any, Table(stored))
    if starts_at is not None:
        found.active_offsets[TP0] = starts_at
    return found


async def highwater(found: Any, end: int) -> int:
    """Faust's highwater (the last offset: the end offset minus one) after the check."""
    destination: Counter[TP] = found.active_highwaters
    await found._build_highwaters(Consumer(end), {TP0}, destination, "active")
    return int(destination[TP0])


@pytest.mark.parametrize(
    ("stored", "starts_at"),
    [(None, None), (3, None), (4, None), (None, 4), (2, 4)],
    ids=["nothing-stored", "behind", "at-the-end", "faust-at-the-end", "faust-ahead-of-store"],
)
async def test_a_table_not_ahead_of_the_reported_end_reads_nothing(
    stored: int | None, starts_at: int | None
) -> None:
    reader = Reader(last=9)
    assert await highwater(recovery(reader, stored, starts_at), end=5) == 4
    assert reader.asked == []


@pytest.mark.parametrize(
    ("stored", "starts_at"), [(6, None), (2, 6)], ids=["stored-ahead", "faust-starts-ahead"]
)
async def test_a_table_ahead_recovers_up_to_the_last_record_read_from_the_reported_end(
    stored: int, starts_at: int | None
) -> None:
    reader = Reader(last=6)
    assert await highwater(recovery(reader, stored, starts_at), end=5) == 6
    assert reader.asked == [(TP0, 4)]  # from the first record of the newest batch


@pytest.mark.parametrize(
    "reader",
    [
        Reader(last=None),
        Reader(last=4),
        Reader(error=KafkaConnectionError()),
        Reader(error=TimeoutError()),
    ],
    ids=["nothing-there", "nothing-beyond", "broker-gone", "too-slow"],
)
async def test_where_nothing_lies_beyond_the_reported_end_faust_check_decides(
    reader: Reader,
) -> None:
    """A topic made anew under a kept store, or a broker that does not answer: the reported
    end stays, and Faust's consistency check refuses the table as before."""
    assert await highwater(recovery(reader, stored=6), end=5) == 4
    assert reader.asked == [(TP0, 4)]


async def test_an_empty_partition_is_not_read() -> None:
    """An end offset of 0 on the embedded broker: no batch at all, nothing to read again."""
    reader = Reader(last=3)
    assert await highwater(recovery(reader, stored=3), end=0) == -1
    assert reader.asked == []

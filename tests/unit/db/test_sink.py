"""The sink's decisions without a database: which driver errors mean "retry later" and which
mean "this row can never be written", waiting out an outage, and isolating refused rows so that
every other row is written once.

``ScriptedSink`` replaces the one database round trip (``write_once``) by a pretend database
whose transactions fail while it is down and refuse a whole sub-batch holding a poisoned row.
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from asyncpg.exceptions import _base as asyncpg_base
from hypothesis import given, settings
from hypothesis import strategies as st

from stationwatch.db.sink import Batch, Piece, TimescaleSink, classify
from stationwatch.errors import (
    DatabaseUnavailableError,
    RowRefusedError,
    StationwatchError,
    WorkerStoppingError,
)

T0 = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
S = timedelta(seconds=1)
pg = asyncpg.exceptions

REFUSED, UNAVAILABLE = RowRefusedError, DatabaseUnavailableError


# -- classify ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("exc", "verdict"),
    [
        # SQLSTATE class 22 (data exception) and 23 (integrity): the row, not the database
        (
            pg.CharacterNotInRepertoireError('invalid byte sequence for encoding "UTF8": 0x00'),
            REFUSED,
        ),
        (pg.UntranslatableCharacterError("unsupported Unicode escape sequence"), REFUSED),
        (pg.NumericValueOutOfRangeError("value out of range for type integer"), REFUSED),
        (pg.StringDataRightTruncationError("value too long"), REFUSED),
        (pg.DatetimeFieldOverflowError("date/time field value out of range"), REFUSED),
        (pg.InvalidTextRepresentationError("invalid input syntax for type json"), REFUSED),
        (pg.DataError("data exception"), REFUSED),
        (pg.UniqueViolationError("duplicate key value"), REFUSED),
        (pg.CheckViolationError("violates check constraint"), REFUSED),
        (pg.NotNullViolationError("null value in column"), REFUSED),
        (pg.ForeignKeyViolationError("violates foreign key constraint"), REFUSED),
        (pg.ExclusionViolationError("conflicting key value"), REFUSED),
        # the database is down, busy, restarting, or not what we expect: try again later
        (pg.PostgresConnectionError("connection failure"), UNAVAILABLE),
        (pg.ConnectionDoesNotExistError("connection was closed"), UNAVAILABLE),
        (pg.AdminShutdownError("terminating connection due to administrator command"), UNAVAILABLE),
        (pg.CrashShutdownError("crash shutdown"), UNAVAILABLE),
        (pg.CannotConnectNowError("the database system is starting up"), UNAVAILABLE),
        (pg.TooManyConnectionsError("too many clients already"), UNAVAILABLE),
        (pg.DiskFullError("could not extend file"), UNAVAILABLE),
        (pg.UndefinedTableError('relation "stationwatch.heartbeats" does not exist'), UNAVAILABLE),
        (pg.DeadlockDetectedError("deadlock detected"), UNAVAILABLE),
        (pg.SerializationError("could not serialize access"), UNAVAILABLE),
        (pg.QueryCanceledError("canceling statement due to statement timeout"), UNAVAILABLE),
        (pg.ReadOnlySQLTransactionError("read-only transaction"), UNAVAILABLE),
        (pg.InsufficientPrivilegeError("permission denied"), UNAVAILABLE),
        (pg.InternalServerError("internal error"), UNAVAILABLE),
        # as the driver builds them from the server's message
        (asyncpg.PostgresError.new({"C": "22021", "M": "invalid byte sequence"}), REFUSED),
        (asyncpg.PostgresError.new({"C": "23505", "M": "duplicate key value"}), REFUSED),
        (asyncpg.PostgresError.new({"C": "22ZZZ", "M": "a data exception yet unknown"}), REFUSED),
        (asyncpg.PostgresError.new({"C": "57P01", "M": "terminating connection"}), UNAVAILABLE),
        (asyncpg.PostgresError.new({"C": "ZZ999", "M": "a class yet unknown"}), UNAVAILABLE),
        # values the driver cannot encode, found before anything is sent
        (OverflowError("int too big to convert"), REFUSED),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), REFUSED),
        (asyncpg_base.DataError("invalid input for query argument $1"), REFUSED),
        (ValueError("naive datetime"), REFUSED),
        (TypeError("expected str, got int"), REFUSED),
        # the network and the driver's connection state
        (OSError("Network is unreachable"), UNAVAILABLE),
        (ConnectionRefusedError(111, "Connection refused"), UNAVAILABLE),
        (ConnectionResetError(104, "Connection reset by peer"), UNAVAILABLE),
        (TimeoutError(), UNAVAILABLE),
        (asyncpg.InterfaceError("cannot perform operation: connection is closed"), UNAVAILABLE),
    ],
    ids=lambda value: getattr(value, "sqlstate", None) or type(value).__name__,
)
def test_classify(exc: BaseException, verdict: type[StationwatchError]) -> None:
    error = classify(exc)
    assert type(error) is verdict
    assert error.retriable is (verdict is UNAVAILABLE)
    assert str(error).startswith(f"{type(exc).__name__}: ")  # the log names the driver's error


def test_the_asyncpg_exceptions_carry_their_sqlstate() -> None:
    """The table above relies on asyncpg giving each class its SQLSTATE."""
    assert pg.CharacterNotInRepertoireError("x").sqlstate == "22021"
    assert pg.AdminShutdownError("x").sqlstate == "57P01"
    assert type(asyncpg.PostgresError.new({"C": "23514", "M": "x"})) is pg.CheckViolationError


# -- batches and pieces -----------------------------------------------------------------------
def beat(n: int, station_id: str = "SY-0001") -> tuple[Any, ...]:
    """A heartbeats row (HEARTBEAT_COLUMNS order)."""
    return (T0 + n * S, station_id, n, T0, "gw", n, 90.0, True, 21.0, "1.4.2", 30)


def full_batch() -> Batch:
    batch = Batch()
    for n in range(3):
        batch.add("heartbeats", beat(n), f"record {n}")
    batch.add("occupancy", (T0, "SY-0001", 3, 10, "sensor", T0), "record 3")
    batch.add("status_events", (T0, "SY-0001", "open", None, None, T0), "record 4")
    batch.liveness_changes.append((T0, "SY-0001", "unknown", "online"))
    batch.stations["SY-0001"] = ("SY-0001", "驿站")
    batch.stations["SY-0002"] = None  # deleted
    batch.alerts["a-1"] = ("a-1", "SY-0001:stale")
    return batch


def test_a_batch_taken_to_pieces_and_put_together_again_is_the_same() -> None:
    batch = full_batch()
    pieces = batch.pieces()
    assert len(pieces) == len(batch) == 9
    again = Batch.of(pieces)
    assert again.pieces() == pieces
    for name in ("heartbeats", "occupancy", "status_events", "liveness_changes"):
        assert getattr(again, name) == getattr(batch, name)
    assert again.stations == batch.stations
    assert again.alerts == batch.alerts


def test_pieces_say_their_table_and_key() -> None:
    pieces = full_batch().pieces()
    assert Counter(piece.table for piece in pieces) == {
        "heartbeats": 3,
        "occupancy": 1,
        "status_events": 1,
        "liveness_changes": 1,
        "stations": 2,
        "alerts": 1,
    }
    assert Piece("stations", "SY-0002", None) in pieces
    assert Piece("alerts", "a-1", ("a-1", "SY-0001:stale")) in pieces


def test_any_part_of_a_batch_keeps_its_rows_traceable_to_their_records() -> None:
    batch = full_batch()
    part = Batch.of(batch.pieces()[1:3])
    assert [batch.origin(row) for row in part.heartbeats] == ["record 1", "record 2"]
    assert batch.origin(batch.stations["SY-0002"]) is None  # a delete has no row
    assert batch.origin(beat(1)) is None  # an equal row of no record of this batch


# -- a pretend database -----------------------------------------------------------------------
class ScriptedSink(TimescaleSink):
    """``down``: the attempts (1-based) that find the database unavailable. A transaction that
    holds a row of ``poisoned`` is refused as a whole, naming that row; any other is stored."""

    def __init__(
        self,
        *,
        poisoned: Iterable[tuple[Any, ...]] = (),
        down: Callable[[int], bool] = lambda attempt: False,
        **options: Any,
    ) -> None:
        options.setdefault("max_backoff_s", 0.0)  # retry at once
        super().__init__("postgresql://nowhere/none", **options)
        self.poisoned = {id(row) for row in poisoned}
        self.down = down
        self.attempts = 0
        self.stored: Counter[tuple[str, int]] = Counter()  # (table, id(row)) → times written

    async def write_once(self, batch: Batch) -> dict[str, int]:
        self.attempts += 1
        if self.down(self.attempts):
            raise DatabaseUnavailableError(
                "ConnectionRefusedError: [Errno 111] Connect call failed"
            )
        pieces = batch.pieces()
        for piece in pieces:
            if piece.row is not None and id(piece.row) in self.poisoned:
                raise RowRefusedError(f"CheckViolationError: refused {piece.row[:3]!r}")
        self.stored.update((piece.table, id(piece.row)) for piece in pieces)
        # rows inserted or upserted per table, as the real one counts (deletes not)
        return dict(Counter(piece.table for piece in pieces if piece.row is not None))


class Recorder:
    """What the sink tells its caller: retries and availability."""

    def __init__(self) -> None:
        self.retries = 0
        self.available: list[bool] = []

    def on_retry(self) -> None:
        self.retries += 1

    def on_available(self, ok: bool) -> None:
        self.available.append(ok)


def heartbeats(n: int) -> Batch:
    batch = Batch()
    for i in range(n):
        batch.add("heartbeats", beat(i), i)
    return batch


# -- waiting out an outage --------------------------------------------------------------------
@pytest.mark.parametrize("outage", [0, 1, 7])
async def test_an_unavailable_database_is_retried_until_the_batch_is_written(outage: int) -> None:
    seen = Recorder()
    sink = ScriptedSink(
        down=lambda attempt: attempt <= outage,
        on_retry=seen.on_retry,
        on_available=seen.on_available,
    )
    batch = heartbeats(5)

    result = await sink.write(batch)

    assert result.written == {"heartbeats": 5}
    assert result.refused == []
    assert result.splits == 0
    assert sink.attempts == outage + 1
    assert seen.retries == outage
    assert seen.available == ([False, True] if outage else [True])
    assert sorted(sink.stored.values()) == [1] * 5  # every row once


async def test_a_second_outage_is_reported_again() -> None:
    seen = Recorder()
    sink = ScriptedSink(
        down=lambda attempt: attempt in {1, 3, 4},
        on_retry=seen.on_retry,
        on_available=seen.on_available,
    )
    await sink.write(heartbeats(1))
    await sink.write(heartbeats(1))
    assert seen.available == [False, True, False, True]
    assert seen.retries == 3


class PauseRecorder(ScriptedSink):
    """Keeps the delays the sink would wait between tries instead of waiting them."""

    delays: list[float]

    async def _pause(self, delay: float, held: int) -> None:
        self.delays.append(delay)


async def test_retries_back_off_exponentially_up_to_the_cap() -> None:
    sink = PauseRecorder(down=lambda attempt: attempt <= 12, max_backoff_s=5.0)
    sink.delays = []
    await sink.write(heartbeats(1))
    assert len(sink.delays) == 12
    for attempt, delay in enumerate(sink.delays, start=1):
        full = min(5.0, 0.25 * 2**attempt)  # 0.5, 1, 2, 4, 5, 5, …
        assert full / 2 <= delay <= full  # with jitter


async def test_a_worker_stopping_during_an_outage_gives_up_at_once() -> None:
    sink = ScriptedSink(down=lambda attempt: True, stopping=lambda: True, max_backoff_s=30.0)
    async with asyncio.timeout(2):  # a deadline, not a wait: it must not back off first
        with pytest.raises(WorkerStoppingError, match="5 rows not written"):
            await sink.write(heartbeats(5))
    assert sink.attempts == 1
    assert not sink.stored


async def test_a_worker_told_to_stop_between_retries_stops_retrying() -> None:
    sink = ScriptedSink(down=lambda attempt: True)
    sink._stopping = lambda: sink.attempts >= 3
    with pytest.raises(WorkerStoppingError):
        await sink.write(heartbeats(2))
    assert sink.attempts == 3


# -- isolating refused rows -------------------------------------------------------------------
def split_bound(rows: int, refused: int) -> int:
    """Extra writes to isolate ``refused`` rows among ``rows`` by halving: two per refused row
    and level of the halving."""
    return 2 * refused * max(1, math.ceil(math.log2(rows))) if refused else 0


async def check_isolation(rows: int, poisoned_at: set[int]) -> None:
    batch = heartbeats(rows)
    poisoned = [batch.heartbeats[i] for i in sorted(poisoned_at)]
    sink = ScriptedSink(poisoned=poisoned)

    result = await sink.write(batch)

    assert [item.row for item in result.refused] == poisoned  # the very rows, in batch order
    assert all(item.table == "heartbeats" for item in result.refused)
    for item in result.refused:
        assert item.row is not None
        assert repr(item.row[:3]) in item.error  # each refusal names its own row
    good = [row for i, row in enumerate(batch.heartbeats) if i not in poisoned_at]
    assert sink.stored == Counter(("heartbeats", id(row)) for row in good)  # each once
    assert result.written == ({"heartbeats": len(good)} if good else {})
    assert result.splits == sink.attempts - 1
    assert result.splits <= split_bound(rows, len(poisoned))


@pytest.mark.parametrize(
    ("rows", "poisoned_at"),
    [
        pytest.param(10, set(), id="none"),
        pytest.param(1, {0}, id="the-only-row"),
        pytest.param(2, {1}, id="one-of-two"),
        pytest.param(100, {0}, id="first"),
        pytest.param(100, {99}, id="last"),
        pytest.param(100, {3, 50, 51}, id="three-two-adjacent"),
        pytest.param(1000, {1, 500, 999}, id="three-in-a-thousand"),
        pytest.param(16, set(range(16)), id="all"),
    ],
)
async def test_refused_rows_are_isolated_and_every_other_row_is_written_once(
    rows: int, poisoned_at: set[int]
) -> None:
    await check_isolation(rows, poisoned_at)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 200).flatmap(
        lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1), max_size=8))
    )
)
async def test_isolation_holds_for_any_rows_refused(case: tuple[int, set[int]]) -> None:
    await check_isolation(*case)


async def test_refused_rows_of_every_table_are_isolated_and_deletes_still_applied() -> None:
    batch = full_batch()
    bad_station, bad_alert = batch.stations["SY-0001"], batch.alerts["a-1"]
    assert bad_station is not None
    sink = ScriptedSink(poisoned=[bad_station, bad_alert, batch.heartbeats[1]])

    result = await sink.write(batch)

    assert [(item.table, item.row) for item in result.refused] == [
        ("heartbeats", batch.heartbeats[1]),
        ("stations", bad_station),
        ("alerts", bad_alert),
    ]
    assert batch.origin(result.refused[0].row) == "record 1"  # dead-lettered as its record
    assert ("stations", id(None)) in sink.stored  # SY-0002's delete
    assert result.written == {
        "heartbeats": 2,
        "occupancy": 1,
        "status_events": 1,
        "liveness_changes": 1,
    }


async def test_an_outage_while_isolating_is_waited_out() -> None:
    seen = Recorder()
    batch = heartbeats(16)
    sink = ScriptedSink(
        poisoned=[batch.heartbeats[5]],
        down=lambda attempt: attempt in {3, 4},  # during the halving
        on_retry=seen.on_retry,
        on_available=seen.on_available,
    )

    result = await sink.write(batch)

    assert [item.row for item in result.refused] == [batch.heartbeats[5]]
    assert result.written == {"heartbeats": 15}
    assert seen.retries == 2
    assert seen.available.count(False) == 1
    assert seen.available[-1] is True


# -- one real round trip's error handling, on a fake connection -------------------------------
class FakeConnection:
    """Fails the COPY with ``error``; remembers whether it was closed."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.closed = False

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        yield

    async def copy_records_to_table(self, table: str, **kwargs: Any) -> str:
        raise self.error

    async def close(self) -> None:
        self.closed = True

    def terminate(self) -> None:
        self.closed = True

    def is_closed(self) -> bool:
        return self.closed


@pytest.mark.parametrize(
    ("error", "verdict", "reconnects"),
    [
        pytest.param(pg.CharacterNotInRepertoireError("0x00"), REFUSED, False, id="server-refused"),
        pytest.param(OverflowError("int too big"), REFUSED, True, id="client-refused-mid-copy"),
        pytest.param(
            UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
            REFUSED,
            True,
            id="client-unencodable-mid-copy",
        ),
        pytest.param(pg.AdminShutdownError("shutdown"), UNAVAILABLE, True, id="server-down"),
        pytest.param(ConnectionResetError(104, "reset"), UNAVAILABLE, True, id="network"),
    ],
)
async def test_a_failed_write_raises_our_error_and_drops_a_connection_it_may_have_broken(
    error: BaseException, verdict: type[StationwatchError], reconnects: bool
) -> None:
    conn = FakeConnection(error)
    sink = TimescaleSink("postgresql://nowhere/none")

    async def connection() -> Any:
        sink._conn = conn
        return conn

    sink._connection = connection  # type: ignore[method-assign]
    with pytest.raises(verdict) as raised:
        await sink.write_once(heartbeats(1))
    assert raised.value.__cause__ is error
    assert conn.closed is reconnects  # a client-side failure may leave the protocol mid-COPY

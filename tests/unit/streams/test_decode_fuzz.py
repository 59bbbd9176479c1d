"""Fuzzing `streams.decode.decode` on every input topic.

Whatever the bytes: decode never raises; it returns a tombstone, a model, or a rejection with a
reason. Every message it accepts can be written: its rows fit the column types the migrations
declare (text without NUL, integers in range, finite floats, times convertible to UTC, jsonb
PostgreSQL takes). And what the contract allows is accepted.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from pydantic import BaseModel

import schemas
from schemas import DeadLetter, Heartbeat, Occupancy, StationProfile, StatusEvent
from schemas.registry import WEEKDAYS, Service
from schemas.topics import HEARTBEAT, INPUT_TOPICS, OCCUPANCY, REGISTRY, STATUS
from streams.decode import MAX_AGE, MODELS, Rejected, Tombstone, decode
from tests import corpus

SID = "SY-0001"
NOW = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)
SKEW = timedelta(seconds=300)
TOPICS = pytest.mark.parametrize("topic", INPUT_TOPICS)
# A few seconds for the whole file; raise max_examples locally to fuzz harder.
FUZZ = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)

# --- what PostgreSQL takes, column by column, from the migrations -------------------------------

MIGRATIONS = Path(schemas.__file__).parent / "migrations"
_TABLE = re.compile(r"CREATE TABLE stationwatch\.(\w+) \((.*?)\n\);", re.DOTALL)
_COLUMN = re.compile(
    r"^\s+(\w+)\s+(text\[\]|text|int|bigint|real|double precision|boolean|timestamptz|jsonb)"
    r"(?![\w\[])(.*)$"
)


def column_types() -> dict[str, dict[str, tuple[str, bool]]]:
    """table → column → (type, nullable), from the plain-PostgreSQL migrations."""
    tables: dict[str, dict[str, tuple[str, bool]]] = {}
    for name in ("0001_base.sql", "0002_timeseries.postgres.sql"):
        for table, body in _TABLE.findall((MIGRATIONS / name).read_text(encoding="utf-8")):
            columns = tables.setdefault(table, {})
            for line in body.splitlines():
                found = _COLUMN.match(line.split("--", 1)[0])
                if found:
                    column, kind, rest = found.groups()
                    columns[column] = (kind, "NOT NULL" not in rest and "PRIMARY" not in rest)
    return tables


COLUMNS = column_types()
_TIME = {HEARTBEAT: "sent_at", OCCUPANCY: "observed_at", STATUS: "at", REGISTRY: "updated_at"}
FLOAT4_MAX = 3.4028234663852886e38
# registry fields kept only in the `profile` document of `stations`, not in columns of their own
PROFILE_ONLY = {
    "responsible_person", "responsible_phone", "closed_until", "closure_reason",
    "changed_by", "changed_via",
}  # fmt: skip


def rows(message: BaseModel, received_at: datetime) -> tuple[str, dict[str, Any]]:
    """The table and the column values a message is written as (as the worker writes them)."""
    if isinstance(message, Heartbeat):
        values = message.model_dump(exclude={"sent_at"}) | {"time": message.sent_at}
        return "heartbeats", values | {"received_at": received_at, "interval_s": 30}
    if isinstance(message, Occupancy):
        values = message.model_dump(exclude={"observed_at"}) | {"time": message.observed_at}
        return "occupancy", values | {"received_at": received_at}
    if isinstance(message, StatusEvent):
        values = message.model_dump(exclude={"at"}) | {"time": message.at}
        return "status_events", values | {"received_at": received_at}
    assert isinstance(message, StationProfile)
    as_json = message.model_dump(mode="json")
    values = message.model_dump(exclude={"location", "opening_hours", *PROFILE_ONLY}) | {
        "lat": message.location.lat,
        "lon": message.location.lon,
        "opening_hours": as_json["opening_hours"],
        "profile": as_json,
        "ingested_at": received_at,
    }
    return "stations", values


def assert_storable(table: str, values: dict[str, Any]) -> None:
    columns = COLUMNS[table]
    assert set(values) == set(columns), f"{table}: {set(values) ^ set(columns)}"
    for column, value in values.items():
        kind, nullable = columns[column]
        where = f"{table}.{column} = {value!r}"
        if value is None:
            assert nullable, where
        elif kind == "text":
            assert isinstance(value, str), where
            assert "\x00" not in value, where
            value.encode("utf-8")  # no lone surrogate
        elif kind == "text[]":
            assert all(isinstance(v, str) and "\x00" not in v for v in value), where
        elif kind in ("int", "bigint"):
            bits = 31 if kind == "int" else 63
            assert type(value) is int, where
            assert -(2**bits) <= value < 2**bits, where
        elif kind in ("real", "double precision"):
            assert isinstance(value, float | int), where
            assert not isinstance(value, bool), where
            assert math.isfinite(value), where
            assert kind == "double precision" or abs(value) <= FLOAT4_MAX, where
        elif kind == "boolean":
            assert isinstance(value, bool), where
        elif kind == "timestamptz":
            assert isinstance(value, datetime), where
            assert value.utcoffset() is not None, where
            value.astimezone(UTC)  # what the driver does; overflows outside year 1..9999
        else:
            assert kind == "jsonb", where
            text = json.dumps(value, ensure_ascii=False, allow_nan=False)
            assert "\\u0000" not in text, where  # jsonb refuses it
            text.encode("utf-8")


def test_the_column_types_are_read_from_the_migrations() -> None:
    assert {"heartbeats", "occupancy", "status_events", "stations"} <= set(COLUMNS)
    assert COLUMNS["heartbeats"]["uptime_s"] == ("bigint", True)
    assert COLUMNS["heartbeats"]["battery_pct"] == ("real", True)
    assert COLUMNS["occupancy"]["occupants"] == ("int", False)
    assert COLUMNS["stations"]["services"] == ("text[]", False)
    assert COLUMNS["stations"]["station_id"] == ("text", False)


def note(what: str) -> None:
    """Count outcomes for `--hypothesis-show-statistics` (the corpus test runs outside one)."""
    if currently_in_test_context():
        event(what)


def assert_decodes_safely(topic: str, key: bytes | None, value: bytes | None) -> Any:
    result = decode(topic, key, value, received_at=NOW, max_bytes=corpus.MAX_BYTES, max_skew=SKEW)
    if isinstance(result, Rejected):
        note(f"rejected: {result.reason_class}")
        assert result.reason_class
        assert result.error.strip()
        letter = DeadLetter(
            topic=topic,
            partition=0,
            offset=0,
            key=None if key is None else key.decode("utf-8", "replace"),
            error=result.error,
            raw=(value or b"").decode("utf-8", "replace"),
            at=NOW,
        )
        letter.model_dump_json()  # the dead letter itself can be sent
        return result
    if isinstance(result, Tombstone):
        assert (topic, value, key) == (REGISTRY, None, result.station_id.encode())
        return result
    note("accepted")
    assert isinstance(result, MODELS[topic])
    station_id = getattr(result, "station_id")  # noqa: B009 - every input model has it
    assert key == station_id.encode()
    assert_storable(*rows(result, NOW))
    stamp = getattr(result, _TIME[topic])
    assert stamp - NOW <= SKEW
    assert topic == REGISTRY or NOW - stamp <= MAX_AGE
    return result


# --- strategies: hostile input ------------------------------------------------------------------

_OFFSETS = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
_SURROGATE = st.characters(categories=["Cs"])
EVIL_TEXT = st.one_of(
    st.text(max_size=40),  # NUL and other controls, any plane
    st.text(st.characters() | _SURROGATE, max_size=8),
    st.sampled_from([*corpus.INJECTIONS, "", "x" * 65, "x" * 201, SID, "SY-0002"]),
)
EVIL_INT = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**66), max_value=2**66),
    st.sampled_from([-1, 0, 2**31 - 1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**30]),
)
EVIL_FLOAT = st.floats() | st.sampled_from([1e308, -1e308, 5e-324, -0.0, 3.5e38])
EVIL_TIME = st.one_of(
    st.datetimes(
        min_value=datetime(1, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive; tz from _OFFSETS
        max_value=datetime(9999, 12, 31),  # noqa: DTZ001
        timezones=_OFFSETS,
    ).map(datetime.isoformat),
    st.builds(
        lambda delta, tz: (NOW + delta).astimezone(tz).isoformat(),
        st.timedeltas(min_value=-timedelta(days=400), max_value=timedelta(days=30)),
        _OFFSETS,
    ),
    st.sampled_from(
        [
            "2026-12-31T23:59:60Z",
            "2026-02-30T08:00:00+08:00",
            "2026-12-02T08:00:00+24:00",
            "2026-12-02T08:00:00",
            "2026-12-02",
            "0000-01-01T00:00:00Z",
        ]
    ),
    st.text(max_size=30),
)
SCALARS = st.none() | st.booleans() | EVIL_INT | EVIL_FLOAT | EVIL_TEXT
ANY_JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(EVIL_TEXT, inner, max_size=4),
    max_leaves=6,
)
BY_KIND: dict[str, st.SearchStrategy[Any]] = {
    "id": EVIL_TEXT,
    "text": EVIL_TEXT,
    "name": EVIL_TEXT,
    "phone": EVIL_TEXT,
    "enum": EVIL_TEXT | st.sampled_from(corpus.UNKNOWN_ENUMS),
    "clock": EVIL_TEXT | st.sampled_from(["00:00", "24:00", "23:59", "24:01", "8:00"]),
    "time": EVIL_TIME,
    "bigint": EVIL_INT,
    "count": EVIL_INT,
    "interval": EVIL_INT,
    "pct": EVIL_FLOAT | EVIL_INT,
    "temp": EVIL_FLOAT | EVIL_INT,
    "lat": EVIL_FLOAT | EVIL_INT,
    "lon": EVIL_FLOAT | EVIL_INT,
    "bool": st.booleans() | SCALARS,
}


@st.composite
def hostile(draw: st.DrawFn, topic: str) -> tuple[bytes | None, bytes | None]:
    """A key and a value: a valid message with some fields broken, deleted or added, encoded
    escaped or raw (raw lone surrogates become invalid UTF-8), sometimes mangled as bytes."""
    sid = draw(st.just(SID) | st.from_regex(r"[A-Z]{2,4}-[0-9A-Z]{1,12}", fullmatch=True))
    doc = corpus.good_message(topic, sid, NOW)
    fields = corpus.FIELDS[topic]
    for path in draw(st.lists(st.sampled_from(list(fields)), max_size=3, unique=True)):
        action = draw(st.sampled_from(["break", "json", "delete"]))
        if action == "break":
            corpus.set_path(doc, path, draw(BY_KIND[fields[path]]))
        elif action == "json":
            corpus.set_path(doc, path, draw(ANY_JSON))
        elif "." not in path:
            del doc[path]
    doc.update(draw(st.dictionaries(EVIL_TEXT, ANY_JSON, max_size=2)))
    value: bytes | None = json.dumps(doc, ensure_ascii=draw(st.booleans()), allow_nan=True).encode(
        "utf-8", "surrogatepass"
    )
    mangle = draw(st.sampled_from(["none"] * 5 + ["bytes", "cut", "null", "random", "deep"]))
    if mangle == "bytes" and value:
        at = draw(st.integers(0, len(value)))
        value = value[:at] + draw(st.binary(min_size=1, max_size=4)) + value[at:]
    elif mangle == "cut" and value:
        value = value[: draw(st.integers(0, len(value)))]
    elif mangle == "null":
        value = None
    elif mangle == "random":
        value = draw(st.binary(max_size=200))
    elif mangle == "deep" and value:
        depth = draw(st.integers(1, 3_000))
        value = value[:-1] + b', "deep": ' + b"[" * depth + b"]" * depth + b"}"
    if draw(st.integers(0, 4)):  # mostly the right key, so that the value is judged
        return sid.encode(), value
    key_text = draw(st.just(SID) | EVIL_TEXT)
    key = draw(
        st.just(key_text.encode("utf-8", "surrogatepass"))
        | st.none()
        | st.binary(max_size=16)
        | st.just(key_text.encode("utf-16"))
    )
    return key, value


@TOPICS
@FUZZ
@given(data=st.data())
def test_decode_never_raises_and_accepts_only_what_can_be_stored(
    topic: str, data: st.DataObject
) -> None:
    key, value = data.draw(hostile(topic))
    assert_decodes_safely(topic, key, value)


@TOPICS
@FUZZ
@given(value=st.binary(max_size=300))
def test_decode_never_raises_on_arbitrary_bytes(topic: str, value: bytes) -> None:
    assert_decodes_safely(topic, SID.encode(), value)


# --- strategies: what the contract allows -------------------------------------------------------

STORABLE_TEXT = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
_REAL_OFFSETS = st.integers(min_value=-12 * 60, max_value=14 * 60).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


def _recent(oldest: timedelta) -> st.SearchStrategy[str]:
    return st.builds(
        lambda delta, tz: (NOW + delta).astimezone(tz).isoformat(),
        st.timedeltas(min_value=-oldest, max_value=SKEW),
        _REAL_OFFSETS,
    )


_CLOCKS = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))
_INTERVALS = st.tuples(_CLOCKS, _CLOCKS | st.just("24:00")).filter(lambda i: i[0] != i[1])
_FLOATS = st.floats(allow_nan=False, allow_infinity=False)
VALID: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    HEARTBEAT: st.fixed_dictionaries(
        {"station_id": st.just(SID), "sent_at": _recent(MAX_AGE)},
        optional={
            "device_id": st.none() | st.text(STORABLE_TEXT, max_size=64),
            "seq": st.none() | st.integers(0, 2**63 - 1),
            "uptime_s": st.none() | st.integers(0, 2**63 - 1),
            "battery_pct": st.none() | st.floats(0, 100) | st.integers(0, 100),
            "on_mains": st.none() | st.booleans(),
            "temperature_c": st.none() | st.floats(-80, 120),
            "firmware": st.none() | st.text(STORABLE_TEXT, max_size=64),
        },
    ),
    OCCUPANCY: st.fixed_dictionaries(
        {
            "station_id": st.just(SID),
            "observed_at": _recent(MAX_AGE),
            "occupants": st.integers(0, 100_000),
        },
        optional={
            "capacity": st.none() | st.integers(0, 100_000),
            "source": st.none() | st.sampled_from(["sensor", "manual"]),
        },
    ),
    STATUS: st.fixed_dictionaries(
        {
            "station_id": st.just(SID),
            "at": _recent(MAX_AGE),
            "state": st.sampled_from(["open", "closed"]),
        },
        optional={
            "reason": st.none()
            | st.sampled_from(["schedule", "manual", "maintenance", "weather", "emergency"]),
            "actor": st.none() | st.sampled_from(["device", "staff", "supervisor"]),
        },
    ),
    REGISTRY: st.fixed_dictionaries(
        {
            "station_id": st.just(SID),
            "name": st.text(STORABLE_TEXT, min_size=1, max_size=200),
            "location": st.fixed_dictionaries(
                {"lat": st.floats(-90, 90), "lon": st.floats(-180, 180)}
            ),
            "opening_hours": st.fixed_dictionaries(
                {},
                optional={
                    "always_open": st.booleans(),
                    "weekly": st.dictionaries(
                        st.sampled_from(WEEKDAYS), st.lists(_INTERVALS, max_size=3)
                    ),
                    "holidays_open": st.booleans(),
                },
            ),
            "updated_at": _recent(timedelta(days=365 * 20)),
        },
        optional={
            "district": st.text(STORABLE_TEXT, max_size=64),
            "street": st.text(STORABLE_TEXT, max_size=64),
            "category": st.sampled_from(["standard", "smart_24h", "truck_driver"]),
            "host": st.sampled_from(["restaurant", "market", "other"]),
            "services": st.lists(st.sampled_from(get_args(Service)), unique=True),
            "capacity": st.none() | st.integers(0, 100_000),
            "heartbeat_interval_s": st.none() | st.integers(1, 86_400),
            "contact_phone": st.none() | st.text(STORABLE_TEXT, max_size=32),
            "lifecycle": st.sampled_from(["active", "temporarily_closed", "decommissioned"]),
            "unknown_extra": ANY_JSON,
        },
    ),
}


@TOPICS
@FUZZ
@given(data=st.data())
def test_what_the_contract_allows_is_accepted(topic: str, data: st.DataObject) -> None:
    doc = data.draw(VALID[topic])
    raw = json.dumps(doc, ensure_ascii=data.draw(st.booleans()), allow_nan=True)
    result = assert_decodes_safely(topic, SID.encode(), raw.encode("utf-8", "surrogatepass"))
    assert isinstance(result, MODELS[topic]), result


# --- the corpus the integration fuzz test sends ---------------------------------------------------


@pytest.mark.parametrize("seed", [corpus.SEED, 2, 3])
def test_every_corpus_case_is_rejected_with_its_reason(seed: int) -> None:
    cases = corpus.corpus(lambda n: f"FZ-T{n:05d}", NOW, seed=seed, per_topic=300)
    assert {c.topic for c in cases} == set(INPUT_TOPICS)
    assert len({c.kind for c in cases}) == len(corpus.BREAKERS)
    for case in cases:
        result = assert_decodes_safely(case.topic, case.key, case.value)
        assert isinstance(result, Rejected), case
        assert any(word in result.error for word in case.expect), (case, result.error)


def test_the_corpus_is_the_same_for_the_same_seed() -> None:
    first = corpus.corpus(lambda n: f"FZ-T{n:05d}", NOW, seed=7, per_topic=50)
    again = corpus.corpus(lambda n: f"FZ-T{n:05d}", NOW, seed=7, per_topic=50)
    assert first == again
    assert first != corpus.corpus(lambda n: f"FZ-T{n:05d}", NOW, seed=8, per_topic=50)

"""The telemetry messages (`station.heartbeat`, `station.occupancy`, `station.status`) accept
exactly what the contract allows, as raw JSON bytes off the wire."""

from __future__ import annotations

import json
import re
import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from schemas.common import STATION_ID_PATTERN
from schemas.telemetry import (
    Heartbeat,
    Occupancy,
    OccupancySource,
    OpenState,
    StatusActor,
    StatusEvent,
    StatusReason,
)

# The contract's own examples.
HEARTBEAT: dict[str, Any] = {
    "station_id": "SY-0001",
    "sent_at": "2026-11-30T08:00:00+08:00",
    "device_id": "gw-0001",
    "seq": 1234,
    "uptime_s": 86400,
    "battery_pct": 97.5,
    "on_mains": True,
    "temperature_c": 21.5,
    "firmware": "1.4.2",
}
OCCUPANCY: dict[str, Any] = {
    "station_id": "SY-0001",
    "observed_at": "2026-11-30T08:00:05+08:00",
    "occupants": 3,
    "capacity": 12,
    "source": "sensor",
}
STATUS: dict[str, Any] = {
    "station_id": "SY-0001",
    "at": "2026-11-30T07:59:00+08:00",
    "state": "open",
    "reason": "schedule",
    "actor": "device",
}
EXAMPLES: dict[type[BaseModel], dict[str, Any]] = {
    Heartbeat: HEARTBEAT,
    Occupancy: OCCUPANCY,
    StatusEvent: STATUS,
}
TIME_FIELD = {Heartbeat: "sent_at", Occupancy: "observed_at", StatusEvent: "at"}
MODELS = pytest.mark.parametrize("model", list(EXAMPLES), ids=lambda m: m.__name__)


def wire(doc: dict[str, Any], **changes: Any) -> bytes:
    """`doc` with `changes` applied as the UTF-8 JSON bytes a producer sends (NaN kept as is)."""
    return json.dumps({**doc, **changes}, ensure_ascii=False).encode()


def rejected_fields(model: type[BaseModel], raw: bytes) -> set[str]:
    """The top-level fields a validation of `raw` complains about (fails if it is accepted)."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate_json(raw)
    return {str(error["loc"][0]) for error in caught.value.errors()}


# --- the contract's examples -------------------------------------------------------------------


def test_contract_examples_parse_to_their_values() -> None:
    heartbeat = Heartbeat.model_validate_json(wire(HEARTBEAT))
    assert heartbeat.station_id == "SY-0001"
    assert heartbeat.sent_at == datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
    assert heartbeat.sent_at.utcoffset() == timedelta(hours=8)
    assert (heartbeat.seq, heartbeat.uptime_s, heartbeat.battery_pct) == (1234, 86400, 97.5)
    assert (heartbeat.on_mains, heartbeat.temperature_c) == (True, 21.5)
    assert (heartbeat.device_id, heartbeat.firmware) == ("gw-0001", "1.4.2")

    occupancy = Occupancy.model_validate_json(wire(OCCUPANCY))
    assert (occupancy.occupants, occupancy.capacity, occupancy.source) == (3, 12, "sensor")

    status = StatusEvent.model_validate_json(wire(STATUS))
    assert (status.state, status.reason, status.actor) == ("open", "schedule", "device")


@pytest.mark.parametrize(
    ("model", "required"),
    [
        pytest.param(Heartbeat, {"station_id", "sent_at"}, id="heartbeat"),
        pytest.param(Occupancy, {"station_id", "observed_at", "occupants"}, id="occupancy"),
        pytest.param(StatusEvent, {"station_id", "at", "state"}, id="status"),
    ],
)
def test_required_fields_are_the_contracts(model: type[BaseModel], required: set[str]) -> None:
    doc = EXAMPLES[model]
    assert {name for name, field in model.model_fields.items() if field.is_required()} == required
    for name in required:
        missing = {key: value for key, value in doc.items() if key != name}
        with pytest.raises(ValidationError) as caught:
            model.model_validate_json(wire(missing))
        assert [(e["type"], e["loc"]) for e in caught.value.errors()] == [("missing", (name,))]


@MODELS
def test_only_required_fields_is_enough(model: type[BaseModel]) -> None:
    doc = EXAMPLES[model]
    minimal = {k: v for k, v in doc.items() if model.model_fields[k].is_required()}
    parsed = model.model_validate_json(wire(minimal))
    optional = set(model.model_fields) - set(minimal)
    assert optional  # else this test proves nothing
    assert all(getattr(parsed, name) is None for name in optional)


@MODELS
def test_unknown_extra_fields_are_ignored(model: type[BaseModel]) -> None:
    raw = wire(EXAMPLES[model], firmware_build="x", nested={"a": [1, None]}, occupants_=-1)
    parsed = model.model_validate_json(raw)
    assert parsed == model.model_validate_json(wire(EXAMPLES[model]))
    assert not {"firmware_build", "nested", "occupants_"} & set(parsed.model_dump())


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"null", id="null"),
        pytest.param(b"[]", id="array"),
        pytest.param(b'"SY-0001"', id="string"),
        pytest.param(b"{", id="truncated"),
        pytest.param(b"", id="empty"),
        pytest.param(
            b'{"station_id": "SY-0001", "sent_at": "2026-11-30T08:00:00Z", "x": "\\ud800"}',
            id="lone-surrogate",
        ),
    ],
)
def test_not_one_json_object_is_rejected(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        Heartbeat.model_validate_json(raw)


# --- station id --------------------------------------------------------------------------------


def test_station_id_pattern_is_the_contracts() -> None:
    assert STATION_ID_PATTERN == r"^[A-Z]{2,4}-[0-9A-Z]{1,12}$"


STATION_IDS_ACCEPTED = [
    pytest.param("SY-0001", id="contract-example"),
    pytest.param("AB-1", id="shortest"),
    pytest.param("ABCD-123456789012", id="longest"),
    pytest.param("ABC-X9Z", id="letters-in-number"),
]
STATION_IDS_REJECTED = [
    pytest.param("sy-0001", id="lowercase-prefix"),
    pytest.param("SY-00a1", id="lowercase-number"),
    pytest.param("A-1", id="prefix-too-short"),
    pytest.param("ABCDE-1", id="prefix-too-long"),
    pytest.param("AB-", id="number-empty"),
    pytest.param("ABCD-1234567890123", id="number-too-long"),
    pytest.param("SY0001", id="missing-dash"),
    pytest.param("SY_0001", id="underscore"),
    pytest.param("SY--0001", id="double-dash"),
    pytest.param("SY-00-01", id="second-dash"),
    pytest.param("SY\u20100001", id="unicode-hyphen"),
    pytest.param("SY-\u0661\u0662\u0663", id="arabic-indic-digits"),
    pytest.param("SY-\uff10\uff11", id="fullwidth-digits"),
    pytest.param("SY-00\u00b9", id="superscript-digit"),
    pytest.param("\uff33Y-0001", id="fullwidth-letter"),
    pytest.param("\u00c4B-0001", id="letter-with-umlaut"),
    pytest.param("SY-0001\n", id="trailing-newline"),
    pytest.param("SY-0001\r\n", id="trailing-crlf"),
    pytest.param("\nSY-0001", id="leading-newline"),
    pytest.param("SY-0001 ", id="trailing-space"),
    pytest.param(" SY-0001", id="leading-space"),
    pytest.param("SY-0001\x00", id="trailing-nul"),
    pytest.param("SY-0001\nSY-0002", id="two-lines"),
    pytest.param("", id="empty"),
    pytest.param(1, id="number"),
    pytest.param(None, id="null"),
]


@pytest.mark.parametrize("station_id", STATION_IDS_ACCEPTED)
def test_station_id_accepted(station_id: str) -> None:
    assert Heartbeat.model_validate_json(wire(HEARTBEAT, station_id=station_id)).station_id == (
        station_id
    )


@pytest.mark.parametrize("station_id", STATION_IDS_REJECTED)
def test_station_id_rejected(station_id: object) -> None:
    assert rejected_fields(Heartbeat, wire(HEARTBEAT, station_id=station_id)) == {"station_id"}


@pytest.mark.parametrize("station_id", ["sy-0001", "SY0001", "SY-0001\n", "SY-\u0661"])
@pytest.mark.parametrize("model", [Occupancy, StatusEvent], ids=lambda m: m.__name__)
def test_station_id_rule_holds_for_every_message(model: type[BaseModel], station_id: str) -> None:
    assert rejected_fields(model, wire(EXAMPLES[model], station_id=station_id)) == {"station_id"}


def test_python_re_would_accept_the_trailing_newline() -> None:
    """Why the trailing-newline case matters: Python's `$` matches before a final newline,
    so `re.match(STATION_ID_PATTERN, key)` is not a safe check; pydantic's Rust regex is."""
    assert re.match(STATION_ID_PATTERN, "SY-0001\n")
    assert not re.fullmatch(STATION_ID_PATTERN, "SY-0001\n")


# --- times -------------------------------------------------------------------------------------

TIMES_ACCEPTED = [
    pytest.param("2026-11-30T00:00:00Z", timedelta(0), id="Z"),
    pytest.param("2026-11-30T00:00:00z", timedelta(0), id="lowercase-z"),
    pytest.param("2026-11-30T08:00:00+08:00", timedelta(hours=8), id="plus-0800"),
    pytest.param("2026-11-29T19:00:00-05:00", timedelta(hours=-5), id="minus-0500"),
    pytest.param("2026-11-30T00:00:00+00:00", timedelta(0), id="plus-0000"),
    pytest.param("2026-11-30T08:00:00.000+08:00", timedelta(hours=8), id="fraction"),
]
TIMES_AT_THE_BOUNDS = [
    pytest.param("2000-01-01T08:00:00+08:00", datetime(2000, 1, 1, tzinfo=UTC), id="floor"),
    pytest.param(
        "2099-12-31T15:59:59.999999-08:00",
        datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        id="last-before-ceiling",
    ),
]
TIMES_REJECTED = [
    pytest.param("2026-11-30T08:00:00", id="naive"),
    pytest.param("2026-11-30T08:00:00.123456", id="naive-fraction"),
    pytest.param("2026-11-30", id="date-only"),
    pytest.param("08:00:00+08:00", id="time-only"),
    pytest.param("2026-11-30T08:00:00+24:00", id="offset-24h"),
    pytest.param("0001-01-01T00:00:00+08:00", id="year-1-east-of-utc"),
    pytest.param("0001-01-01T12:00:00-08:00", id="year-1"),
    pytest.param("9999-12-31T23:59:59-08:00", id="year-9999-west-of-utc"),
    pytest.param("1970-01-01T00:00:00Z", id="epoch"),
    pytest.param("1999-12-31T23:59:59.999999Z", id="before-2000"),
    pytest.param("2000-01-01T07:59:59+08:00", id="before-2000-east-of-utc"),
    pytest.param("2100-01-01T00:00:00Z", id="2100"),
    pytest.param("2026-13-01T08:00:00Z", id="month-13"),
    pytest.param("2026-02-30T08:00:00Z", id="february-30"),
    pytest.param("30/11/2026 08:00 +08:00", id="not-iso"),
    pytest.param("", id="empty"),
    pytest.param(1_796_000_000, id="epoch-seconds"),
    pytest.param(None, id="null"),
]


@pytest.mark.parametrize(("value", "offset"), TIMES_ACCEPTED)
@MODELS
def test_aware_times_accepted(model: type[BaseModel], value: str, offset: timedelta) -> None:
    field = TIME_FIELD[model]
    parsed = getattr(model.model_validate_json(wire(EXAMPLES[model], **{field: value})), field)
    assert parsed == datetime(2026, 11, 30, 0, 0, tzinfo=UTC)
    assert parsed.utcoffset() == offset


@pytest.mark.parametrize(("value", "offset"), TIMES_ACCEPTED)
@MODELS
def test_a_time_at_utc_has_pythons_utc(
    model: type[BaseModel], value: str, offset: timedelta
) -> None:
    """A time at UTC comes with ``datetime.UTC`` itself (Python then compares it with the
    worker's UTC times without asking a time zone object for offsets), written out as before;
    another offset stays the one given."""
    field = TIME_FIELD[model]
    message = model.model_validate_json(wire(EXAMPLES[model], **{field: value}))
    parsed = getattr(message, field)
    assert (parsed.tzinfo is UTC) == (offset == timedelta(0))
    assert parsed.utcoffset() == offset
    written = json.loads(message.model_dump_json())[field]
    assert written == (
        "2026-11-30T00:00:00Z" if offset == timedelta(0) else value.replace(".000", "")
    )


@pytest.mark.parametrize(("value", "expected"), TIMES_AT_THE_BOUNDS)
@MODELS
def test_times_at_the_bounds_accepted(
    model: type[BaseModel], value: str, expected: datetime
) -> None:
    field = TIME_FIELD[model]
    assert getattr(model.model_validate_json(wire(EXAMPLES[model], **{field: value})), field) == (
        expected
    )


@pytest.mark.parametrize("value", TIMES_REJECTED)
@MODELS
def test_naive_or_malformed_times_rejected(model: type[BaseModel], value: object) -> None:
    field = TIME_FIELD[model]
    assert rejected_fields(model, wire(EXAMPLES[model], **{field: value})) == {field}


def test_a_time_out_of_range_says_which_range() -> None:
    with pytest.raises(ValidationError) as caught:
        Heartbeat.model_validate_json(wire(HEARTBEAT, sent_at="0001-01-01T00:00:00+08:00"))
    [error] = caught.value.errors()
    assert error["type"] == "time_range"
    assert "2000-01-01T00:00:00Z" in error["msg"]
    assert "2100-01-01T00:00:00Z" in error["msg"]


# --- heartbeat numbers -------------------------------------------------------------------------

HEARTBEAT_ACCEPTED = [
    pytest.param("battery_pct", 0, id="battery-0"),
    pytest.param("battery_pct", 100, id="battery-100"),
    pytest.param("battery_pct", 42.25, id="battery-fraction"),
    pytest.param("battery_pct", None, id="battery-null"),
    pytest.param("temperature_c", -80, id="temperature-min"),
    pytest.param("temperature_c", 120, id="temperature-max"),
    pytest.param("temperature_c", -12.5, id="temperature-negative"),
    pytest.param("seq", 0, id="seq-0"),
    pytest.param("seq", 2**63 - 1, id="seq-max"),
    pytest.param("uptime_s", 0, id="uptime-0"),
    pytest.param("uptime_s", 2**63 - 1, id="uptime-max"),
    pytest.param("firmware", "1.4.2\tbeta", id="firmware-tab"),
    pytest.param("on_mains", False, id="on-mains-false"),
    pytest.param("device_id", "d" * 64, id="device-id-64"),
    pytest.param("firmware", "固件-1.4.2", id="firmware-unicode"),
]
HEARTBEAT_REJECTED = [
    pytest.param("battery_pct", -0.1, id="battery-negative"),
    pytest.param("battery_pct", 100.1, id="battery-over-100"),
    pytest.param("battery_pct", "97.5", id="battery-string"),
    pytest.param("battery_pct", True, id="battery-bool"),
    pytest.param("battery_pct", float("nan"), id="battery-NaN"),
    pytest.param("battery_pct", float("inf"), id="battery-Infinity"),
    pytest.param("temperature_c", -80.5, id="temperature-too-cold"),
    pytest.param("temperature_c", 120.5, id="temperature-too-hot"),
    pytest.param("temperature_c", float("nan"), id="temperature-NaN"),
    pytest.param("temperature_c", float("-inf"), id="temperature-minus-Infinity"),
    pytest.param("seq", -1, id="seq-negative"),
    pytest.param("seq", 2**63, id="seq-over-int64"),
    pytest.param("seq", 1.5, id="seq-fraction"),
    pytest.param("seq", 1.0, id="seq-float"),
    pytest.param("seq", "1234", id="seq-string"),
    pytest.param("seq", True, id="seq-bool"),
    pytest.param("uptime_s", -1, id="uptime-negative"),
    pytest.param("uptime_s", 2**63, id="uptime-over-int64"),
    pytest.param("uptime_s", 2**64, id="uptime-over-uint64"),
    pytest.param("on_mains", "true", id="on-mains-string"),
    pytest.param("on_mains", 1, id="on-mains-int"),
    pytest.param("device_id", "d" * 65, id="device-id-too-long"),
    pytest.param("device_id", 1, id="device-id-number"),
    pytest.param("firmware", "f" * 65, id="firmware-too-long"),
    pytest.param("firmware", "1.4.2\u0000", id="firmware-nul"),
    pytest.param("firmware", "\u0000", id="firmware-only-nul"),
    pytest.param("device_id", "gw\u0000-0001", id="device-id-nul"),
]


@pytest.mark.parametrize(("field", "value"), HEARTBEAT_ACCEPTED)
def test_heartbeat_field_accepted(field: str, value: object) -> None:
    parsed = Heartbeat.model_validate_json(wire(HEARTBEAT, **{field: value}))
    assert getattr(parsed, field) == value


@pytest.mark.parametrize(("field", "value"), HEARTBEAT_REJECTED)
def test_heartbeat_field_rejected(field: str, value: object) -> None:
    assert rejected_fields(Heartbeat, wire(HEARTBEAT, **{field: value})) == {field}


@pytest.mark.parametrize("field", ["device_id", "firmware"])
@pytest.mark.parametrize(
    "escape",
    [
        pytest.param(b"\\ud800", id="lone-high-at-end"),
        pytest.param(b"\\ud800x", id="lone-high-then-text"),
        pytest.param(b"\\udfff", id="lone-low"),
        pytest.param(b"\\udc00\\ud800", id="low-then-high"),
        pytest.param(b"\\ud800\\u0041", id="high-then-not-low"),
    ],
)
def test_lone_surrogates_rejected(field: str, escape: bytes) -> None:
    raw = b'{"station_id": "SY-0001", "sent_at": "2026-11-30T08:00:00Z", "%s": "a%sb"}'
    with pytest.raises(ValidationError):
        Heartbeat.model_validate_json(raw % (field.encode(), escape))


def test_lone_surrogates_rejected_from_python_objects_too() -> None:
    """Python's `json.loads` lets lone surrogates through: validating its dicts holds the rule."""
    loaded = json.loads('{"firmware": "a\\ud800"}')
    with pytest.raises(ValidationError):
        Heartbeat.model_validate({**HEARTBEAT, **loaded}, strict=False)


def test_a_surrogate_pair_is_one_character() -> None:
    raw = b'{"station_id": "SY-0001", "sent_at": "2026-11-30T08:00:00Z", "firmware": "%s"}'
    raw %= b"\\ud83d\\ude00"
    assert Heartbeat.model_validate_json(raw).firmware == "\U0001f600"


def test_nan_and_infinity_literals_rejected() -> None:
    for literal in ("NaN", "Infinity", "-Infinity"):
        raw = b'{"station_id": "SY-0001", "sent_at": "2026-11-30T08:00:00Z", "battery_pct": %s}'
        assert rejected_fields(Heartbeat, raw % literal.encode()) == {"battery_pct"}


# --- occupancy ---------------------------------------------------------------------------------

OCCUPANCY_ACCEPTED = [
    pytest.param("occupants", 0, id="occupants-0"),
    pytest.param("occupants", 3, id="occupants-3"),
    pytest.param("occupants", 100_000, id="occupants-max"),
    pytest.param("capacity", 0, id="capacity-0"),
    pytest.param("capacity", None, id="capacity-null"),
    pytest.param("source", "sensor", id="source-sensor"),
    pytest.param("source", "manual", id="source-manual"),
    pytest.param("source", None, id="source-null"),
]
OCCUPANCY_REJECTED = [
    pytest.param("occupants", 3.5, id="occupants-fraction"),
    pytest.param("occupants", 3.0, id="occupants-float"),
    pytest.param("occupants", "3", id="occupants-string"),
    pytest.param("occupants", -1, id="occupants-negative"),
    pytest.param("occupants", True, id="occupants-true"),
    pytest.param("occupants", False, id="occupants-false"),
    pytest.param("occupants", None, id="occupants-null"),
    pytest.param("occupants", 100_001, id="occupants-over-max"),
    pytest.param("occupants", float("nan"), id="occupants-NaN"),
    pytest.param("capacity", -1, id="capacity-negative"),
    pytest.param("capacity", 12.5, id="capacity-fraction"),
    pytest.param("capacity", "12", id="capacity-string"),
    pytest.param("source", "Sensor", id="source-capitalised"),
    pytest.param("source", "camera", id="source-unknown"),
    pytest.param("source", "", id="source-empty"),
]


@pytest.mark.parametrize(("field", "value"), OCCUPANCY_ACCEPTED)
def test_occupancy_field_accepted(field: str, value: object) -> None:
    parsed = Occupancy.model_validate_json(wire(OCCUPANCY, **{field: value}))
    assert getattr(parsed, field) == value


@pytest.mark.parametrize(("field", "value"), OCCUPANCY_REJECTED)
def test_occupancy_field_rejected(field: str, value: object) -> None:
    assert rejected_fields(Occupancy, wire(OCCUPANCY, **{field: value})) == {field}


# --- status ------------------------------------------------------------------------------------

STATUS_ENUMS = [
    pytest.param("state", OpenState, {"open", "closed"}, id="state"),
    pytest.param(
        "reason",
        StatusReason,
        {"schedule", "manual", "maintenance", "weather", "emergency"},
        id="reason",
    ),
    pytest.param("actor", StatusActor, {"device", "staff", "supervisor"}, id="actor"),
]


@pytest.mark.parametrize(("field", "literal", "contract"), STATUS_ENUMS)
def test_status_enum_values_are_the_contracts(field: str, literal: Any, contract: set[str]) -> None:
    assert set(get_args(literal)) == contract
    for value in contract:
        assert getattr(StatusEvent.model_validate_json(wire(STATUS, **{field: value})), field) == (
            value
        )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("state", "OPEN", id="state-uppercase"),
        pytest.param("state", "opened", id="state-unknown"),
        pytest.param("state", None, id="state-null"),
        pytest.param("state", True, id="state-bool"),
        pytest.param("reason", "holiday", id="reason-unknown"),
        pytest.param("reason", "Schedule", id="reason-capitalised"),
        pytest.param("actor", "admin", id="actor-unknown"),
        pytest.param("actor", "", id="actor-empty"),
    ],
)
def test_status_field_rejected(field: str, value: object) -> None:
    assert rejected_fields(StatusEvent, wire(STATUS, **{field: value})) == {field}


def test_occupancy_source_values_are_the_contracts() -> None:
    assert set(get_args(OccupancySource)) == {"sensor", "manual"}


# --- round trip --------------------------------------------------------------------------------

_OFFSETS = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
_AWARE = st.datetimes(
    min_value=datetime(2000, 1, 2),  # noqa: DTZ001 - hypothesis bounds are naive; tz comes from _OFFSETS
    max_value=datetime(2099, 12, 30),  # noqa: DTZ001
    timezones=_OFFSETS,
)
_STATION_IDS = st.from_regex(
    r"[A-Z]{2,4}-[0-9A-Z]{1,12}", fullmatch=True, alphabet=string.printable
)
_SHORT_TEXT = st.none() | st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=64
)
HEARTBEATS = st.builds(
    dict,
    station_id=_STATION_IDS,
    sent_at=_AWARE,
    device_id=_SHORT_TEXT,
    seq=st.none() | st.integers(min_value=0, max_value=2**63 - 1),
    uptime_s=st.none() | st.integers(min_value=0, max_value=2**63 - 1),
    battery_pct=st.none() | st.floats(min_value=0, max_value=100),
    on_mains=st.none() | st.booleans(),
    temperature_c=st.none() | st.floats(min_value=-80, max_value=120),
    firmware=_SHORT_TEXT,
).map(Heartbeat.model_validate)


@settings(max_examples=150, deadline=None)
@given(HEARTBEATS)
def test_heartbeat_survives_a_json_round_trip(heartbeat: Heartbeat) -> None:
    raw = heartbeat.model_dump_json()
    again = Heartbeat.model_validate_json(raw)
    assert again == heartbeat
    assert again.sent_at.utcoffset() == heartbeat.sent_at.utcoffset()
    assert again.model_dump_json() == raw

"""One raw record → a message, a tombstone, or the reason it is dead-lettered: the reasons a user
reads in `station.deadletter`, and the bounds that keep what is accepted storable."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from schemas import Heartbeat, Occupancy, StationProfile, StatusEvent
from schemas.topics import HEARTBEAT, OCCUPANCY, REGISTRY, STATUS
from streams.decode import MAX_AGE, Rejected, Tombstone, decode, describe_validation_error
from tests import factories

SID = "SY-0001"
NOW = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)
SKEW = timedelta(seconds=300)
CST = timezone(timedelta(hours=8))


def run(topic: str, value: bytes | None, key: bytes | None = SID.encode()) -> Any:
    return decode(topic, key, value, received_at=NOW, max_bytes=65_536, max_skew=SKEW)


def good(topic: str, at: datetime = NOW, /, **changes: Any) -> dict[str, Any]:
    if topic == HEARTBEAT:
        doc = factories.heartbeat(SID, at, 1)
    elif topic == OCCUPANCY:
        doc = factories.occupancy(SID, at, 3)
    elif topic == STATUS:
        doc = factories.status(SID, at, "open")
    else:
        doc = factories.profile(SID, updated_at=at.isoformat())
    return doc | changes


def rejected(topic: str, value: bytes | None, key: bytes | None = SID.encode()) -> Rejected:
    result = run(topic, value, key)
    assert isinstance(result, Rejected), result
    return result


TIME_FIELD = {HEARTBEAT: "sent_at", OCCUPANCY: "observed_at", STATUS: "at", REGISTRY: "updated_at"}
MODEL = {HEARTBEAT: Heartbeat, OCCUPANCY: Occupancy, STATUS: StatusEvent, REGISTRY: StationProfile}
TOPICS = pytest.mark.parametrize("topic", list(MODEL))


@TOPICS
def test_a_good_message_is_its_model(topic: str) -> None:
    assert isinstance(run(topic, factories.dumps(good(topic))), MODEL[topic])


# --- text PostgreSQL cannot store (issue 8) ----------------------------------------------------


def test_the_heartbeat_of_issue_8_is_dead_lettered_saying_why() -> None:
    raw = factories.dumps(good(HEARTBEAT, firmware="1.4.2\u0000"))
    assert b'"1.4.2\\u0000"' in raw  # valid JSON, as the device sent it
    result = rejected(HEARTBEAT, raw)
    assert result.reason_class == "invalid"
    assert result.error == "firmware: must not contain NUL (\\u0000): PostgreSQL cannot store it"


@pytest.mark.parametrize(
    ("topic", "field"),
    [
        (HEARTBEAT, "device_id"),
        (HEARTBEAT, "firmware"),
        (REGISTRY, "name"),
        (REGISTRY, "district"),
        (REGISTRY, "street"),
        (REGISTRY, "contact_phone"),
    ],
)
@pytest.mark.parametrize("text", ["\u0000", "a\u0000", "\u0000b", "空港\u0000街道"])
def test_nul_in_any_free_text_is_rejected(topic: str, field: str, text: str) -> None:
    result = rejected(topic, factories.dumps(good(topic, **{field: text})))
    assert result.error.startswith(f"{field}: must not contain NUL")


@pytest.mark.parametrize(
    ("topic", "field"),
    [
        (HEARTBEAT, "station_id"),
        (OCCUPANCY, "source"),
        (STATUS, "state"),
        (STATUS, "reason"),
        (STATUS, "actor"),
        (REGISTRY, "category"),
        (REGISTRY, "host"),
        (REGISTRY, "lifecycle"),
    ],
)
def test_nul_in_an_id_or_enum_is_rejected_by_its_rule(topic: str, field: str) -> None:
    doc = good(topic)
    doc[field] = str(doc[field]) + "\u0000"
    assert rejected(topic, factories.dumps(doc)).error.startswith(f"{field}: ")


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "\\ud800x", "\\udc00\\ud800"])
@pytest.mark.parametrize(("topic", "field"), [(HEARTBEAT, "firmware"), (REGISTRY, "name")])
def test_a_lone_surrogate_escape_is_rejected_saying_so(topic: str, field: str, escape: str) -> None:
    doc = good(topic, **{field: "@@"})
    raw = json.dumps(doc).replace('"@@"', f'"a{escape}b"').encode()
    result = rejected(topic, raw)
    assert result.reason_class == "json"
    assert "Invalid JSON" in result.error
    assert "lone UTF-16 surrogate" in result.error


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"\xed\xa0\x80", id="utf8-encoded-surrogate"),
        pytest.param(b"\xff", id="not-utf8"),
        pytest.param(b"\xc0\x80", id="overlong-nul"),
    ],
)
def test_invalid_utf8_in_a_value_is_rejected(raw: bytes) -> None:
    value = factories.dumps(good(HEARTBEAT, firmware="@@")).replace(b"@@", raw)
    result = rejected(HEARTBEAT, value)
    assert (result.reason_class, result.error.split(" at ")[0]) == (
        "json",
        "message: Invalid JSON: invalid unicode code point",
    )


# --- numbers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "accepted"),
    [
        ("uptime_s", 2**63 - 1, True),
        ("uptime_s", 2**63, False),
        ("seq", 2**63 - 1, True),
        ("seq", 2**63, False),
    ],
)
def test_bigint_fields_fit_their_column(field: str, value: int, accepted: bool) -> None:
    result = run(HEARTBEAT, factories.dumps(good(HEARTBEAT, **{field: value})))
    assert isinstance(result, Heartbeat) == accepted
    if not accepted:
        assert result.error == f"{field}: Input should be less than or equal to {2**63 - 1}"


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
@pytest.mark.parametrize("field", ["battery_pct", "temperature_c"])
def test_non_finite_numbers_are_rejected(field: str, literal: bytes) -> None:
    value = factories.dumps(good(HEARTBEAT, **{field: 1.5})).replace(b"1.5", literal)
    assert rejected(HEARTBEAT, value).error == f"{field}: Input should be a finite number"


def test_a_number_too_long_for_any_type_is_invalid_json() -> None:
    value = factories.dumps(good(OCCUPANCY, occupants=7)).replace(b": 7", b": " + b"9" * 5_000)
    result = rejected(OCCUPANCY, value)
    assert result.reason_class == "json"
    assert "number out of range" in result.error


# --- times -------------------------------------------------------------------------------------


@TOPICS
@pytest.mark.parametrize(
    "stamp",
    ["0001-01-01T00:00:00+08:00", "9999-12-31T23:59:59-08:00", "1970-01-01T00:00:00Z"],
)
def test_times_python_or_the_database_cannot_handle_are_rejected(topic: str, stamp: str) -> None:
    doc = good(topic)
    doc[TIME_FIELD[topic]] = stamp
    result = rejected(topic, factories.dumps(doc))
    assert result.error == (
        f"{TIME_FIELD[topic]}: must be from 2000-01-01T00:00:00Z up to (not including) "
        "2100-01-01T00:00:00Z"
    )


@TOPICS
def test_a_backlog_of_days_is_kept(topic: str) -> None:
    for age in (timedelta(days=3), timedelta(days=29, hours=23), MAX_AGE):
        assert isinstance(
            run(topic, factories.dumps(good(topic, (NOW - age).astimezone(CST)))), (MODEL[topic])
        )


@pytest.mark.parametrize("topic", [HEARTBEAT, OCCUPANCY, STATUS])
def test_telemetry_older_than_the_maximum_age_is_rejected(topic: str) -> None:
    stamp = (NOW - MAX_AGE - timedelta(seconds=1)).astimezone(CST)
    result = rejected(topic, factories.dumps(good(topic, stamp)))
    assert result.reason_class == "past"
    assert result.error == (
        f"{TIME_FIELD[topic]}: 2026-11-02T11:59:59+08:00 is more than 30 days in the past"
    )


def test_a_registry_record_may_be_years_old() -> None:
    result = run(REGISTRY, factories.dumps(good(REGISTRY, datetime(2015, 6, 1, tzinfo=UTC))))
    assert isinstance(result, StationProfile)


def test_the_maximum_age_can_be_chosen() -> None:
    value = factories.dumps(good(HEARTBEAT, NOW - timedelta(days=2)))
    kw: dict[str, Any] = {"received_at": NOW, "max_bytes": 65_536, "max_skew": SKEW}
    assert isinstance(decode(HEARTBEAT, SID.encode(), value, **kw), Heartbeat)
    result = decode(HEARTBEAT, SID.encode(), value, max_age=timedelta(days=1), **kw)
    assert isinstance(result, Rejected)
    assert result.error.endswith("is more than 1 days in the past")


@TOPICS
def test_the_future_within_the_skew_is_kept_beyond_it_rejected(topic: str) -> None:
    assert isinstance(run(topic, factories.dumps(good(topic, NOW + SKEW))), MODEL[topic])
    result = rejected(topic, factories.dumps(good(topic, NOW + SKEW + timedelta(seconds=1))))
    assert (result.reason_class, result.error.endswith("is more than 300 s in the future")) == (
        "future",
        True,
    )


# --- keys and tombstones -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "error"),
    [
        (None, "key: missing (must be the station id)"),
        (b"", "key: missing (must be the station id)"),
        (b"\xffSY-0001", "key: not valid UTF-8"),
        (b"SY-0002", "key: 'SY-0002' differs from station_id 'SY-0001'"),
        (b"SY-0001\x00", "key: 'SY-0001\\x00' differs from station_id 'SY-0001'"),
        (b"SY-0001'; --", "key: \"SY-0001'; --\" differs from station_id 'SY-0001'"),
        ("\uff33Y-0001".encode(), "key: '\uff33Y-0001' differs from station_id 'SY-0001'"),
    ],
)
def test_a_key_that_is_not_the_station_id_is_rejected(key: bytes | None, error: str) -> None:
    result = rejected(HEARTBEAT, factories.dumps(good(HEARTBEAT)), key)
    assert (result.reason_class, result.error) == ("key", error)


def test_a_registry_tombstone_removes_a_station_and_needs_a_station_id_key() -> None:
    assert run(REGISTRY, None) == Tombstone(SID)
    assert rejected(REGISTRY, None, b"../SY-0001").error == (
        "key: '../SY-0001' is not a station id"
    )
    assert rejected(HEARTBEAT, None).error == "value: missing (null)"


# --- reasons stay readable ---------------------------------------------------------------------


def test_a_key_from_the_input_is_quoted_and_cut_in_the_reason() -> None:
    weekly = {"mon\u0000" + "x" * 500: [], "tue": [["08:00", "20:00"]]}
    hours = {"always_open": False, "weekly": weekly}
    result = rejected(REGISTRY, factories.dumps(good(REGISTRY, opening_hours=hours)))
    where, _, message = result.error.partition(": ")
    assert where == "opening_hours.weekly.'mon\\x00" + "x" * 36 + "'.[key]"
    assert message.startswith("Input should be 'mon'")


def test_at_most_five_errors_are_told_and_the_rest_counted() -> None:
    doc = good(HEARTBEAT, device_id=1, seq=-1, uptime_s="1", battery_pct="1", on_mains=1)
    doc |= {"temperature_c": "x", "firmware": 2}
    with pytest.raises(ValidationError) as caught:
        Heartbeat.model_validate_json(factories.dumps(doc))
    text = describe_validation_error(caught.value)
    assert text.startswith("device_id: Input should be a valid string; seq: ")
    assert text.endswith("; (+2 more)")
    assert rejected(HEARTBEAT, factories.dumps(doc)).error == text

"""`station.registry` values accept exactly what the contract allows, as raw JSON bytes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from schemas.registry import (
    BASIC_SERVICES,
    EXTENDED_SERVICES,
    WEEKDAYS,
    Category,
    Host,
    Lifecycle,
    OpeningHours,
    Service,
    StationProfile,
    minutes,
)

# The contract's example.
PROFILE: dict[str, Any] = {
    "station_id": "SY-0001",
    "name": "空港祥云工会驿站",
    "district": "顺义区",
    "street": "空港街道",
    "category": "smart_24h",
    "host": "business_circle",
    "location": {"lat": 40.0801, "lon": 116.5842},
    "services": [
        "water",
        "hot_meal",
        "charging",
        "rest",
        "rain_shelter",
        "warming",
        "cooling",
        "toilet",
    ],
    "capacity": 12,
    "opening_hours": {"always_open": True, "weekly": {}, "holidays_open": True},
    "heartbeat_interval_s": 30,
    "contact_phone": "010-00000000",
    "lifecycle": "active",
    "updated_at": "2026-11-30T00:00:00+08:00",
}

CONTRACT_CATEGORIES = {"standard", "smart_24h", "truck_driver", "business_circle_24h"}
CONTRACT_HOSTS = {
    "party_service_center",
    "restaurant",
    "courier_station",
    "supermarket",
    "business_circle",
    "market",
    "other",
}
CONTRACT_BASIC = [
    "water",
    "hot_meal",
    "charging",
    "rest",
    "rain_shelter",
    "warming",
    "cooling",
    "toilet",
]
CONTRACT_EXTENDED = [
    "convenience",
    "legal_aid",
    "hardship_aid",
    "counseling",
    "washing",
    "dining_area",
    "medicine",
    "wifi",
    "reading",
]
CONTRACT_LIFECYCLES = {"active", "temporarily_closed", "decommissioned"}
CONTRACT_WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def wire(doc: dict[str, Any], **changes: Any) -> bytes:
    """`doc` with `changes` applied as the UTF-8 JSON bytes a producer sends (NaN kept as is)."""
    return json.dumps({**doc, **changes}, ensure_ascii=False).encode()


def parse(**changes: Any) -> StationProfile:
    return StationProfile.model_validate_json(wire(PROFILE, **changes))


def rejected_locs(**changes: Any) -> set[tuple[str | int, ...]]:
    """Where a profile with `changes` is rejected (fails if it is accepted), as loc prefixes
    of at most two parts, e.g. `("location", "lat")`."""
    with pytest.raises(ValidationError) as caught:
        parse(**changes)
    return {tuple(error["loc"][:2]) for error in caught.value.errors()}


def hours(weekly: dict[str, Any]) -> dict[str, Any]:
    return {"always_open": False, "weekly": weekly, "holidays_open": False}


# --- the contract's example --------------------------------------------------------------------


def test_contract_example_parses_to_its_values() -> None:
    profile = parse()
    assert profile.station_id == "SY-0001"
    assert (profile.name, profile.district, profile.street) == (
        "空港祥云工会驿站",
        "顺义区",
        "空港街道",
    )
    assert (profile.category, profile.host, profile.lifecycle) == (
        "smart_24h",
        "business_circle",
        "active",
    )
    assert (profile.location.lat, profile.location.lon) == (40.0801, 116.5842)
    assert profile.services == PROFILE["services"]
    assert profile.opening_hours == OpeningHours(always_open=True, weekly={}, holidays_open=True)
    assert (profile.capacity, profile.heartbeat_interval_s) == (12, 30)
    assert profile.updated_at == datetime(2026, 11, 29, 16, 0, tzinfo=UTC)


def test_required_fields() -> None:
    required = {"station_id", "name", "location", "opening_hours", "updated_at"}
    fields = StationProfile.model_fields
    assert {name for name, field in fields.items() if field.is_required()} == required
    for name in required:
        doc = {key: value for key, value in PROFILE.items() if key != name}
        with pytest.raises(ValidationError) as caught:
            StationProfile.model_validate_json(wire(doc))
        assert [(e["type"], e["loc"]) for e in caught.value.errors()] == [("missing", (name,))]


def test_only_required_fields_gets_the_defaults() -> None:
    doc = {
        "station_id": "SY-0001",
        "name": "驿站",
        "location": {"lat": 0, "lon": 0},
        "opening_hours": {},
        "updated_at": "2026-11-30T00:00:00Z",
    }
    profile = StationProfile.model_validate_json(wire(doc))
    assert (profile.category, profile.host, profile.lifecycle) == ("standard", "other", "active")
    assert (profile.services, profile.capacity, profile.heartbeat_interval_s) == ([], None, None)
    assert profile.opening_hours == OpeningHours(always_open=False, weekly={}, holidays_open=False)


def test_unknown_extra_fields_are_ignored() -> None:
    profile = parse(
        operator="someone",
        location={"lat": 40.0801, "lon": 116.5842, "alt": 35},
        opening_hours={"always_open": True, "weekly": {}, "holidays_open": True, "tz": "x"},
    )
    assert profile == parse()
    assert "operator" not in profile.model_dump()


# --- enums -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "literal", "contract"),
    [
        pytest.param("category", Category, CONTRACT_CATEGORIES, id="category"),
        pytest.param("host", Host, CONTRACT_HOSTS, id="host"),
        pytest.param("lifecycle", Lifecycle, CONTRACT_LIFECYCLES, id="lifecycle"),
    ],
)
def test_enum_values_are_the_contracts(field: str, literal: Any, contract: set[str]) -> None:
    assert set(get_args(literal)) == contract
    for value in contract:
        assert getattr(parse(**{field: value}), field) == value


def test_services_are_the_contracts() -> None:
    assert list(BASIC_SERVICES) == CONTRACT_BASIC
    assert list(EXTENDED_SERVICES) == CONTRACT_EXTENDED
    assert set(get_args(Service)) == set(CONTRACT_BASIC) | set(CONTRACT_EXTENDED)
    everything = CONTRACT_BASIC + CONTRACT_EXTENDED
    assert parse(services=everything).services == everything


@pytest.mark.parametrize(
    ("changes", "loc"),
    [
        pytest.param({"category": "smart"}, ("category",), id="category-unknown"),
        pytest.param({"category": "Standard"}, ("category",), id="category-capitalised"),
        pytest.param({"category": None}, ("category",), id="category-null"),
        pytest.param({"host": "hotel"}, ("host",), id="host-unknown"),
        pytest.param({"lifecycle": "closed"}, ("lifecycle",), id="lifecycle-unknown"),
        pytest.param({"lifecycle": "unknown"}, ("lifecycle",), id="lifecycle-unknown-liveness"),
        pytest.param({"services": ["water", "sauna"]}, ("services", 1), id="service-unknown"),
        pytest.param({"services": ["Water"]}, ("services", 0), id="service-capitalised"),
        pytest.param({"services": "water"}, ("services",), id="services-not-a-list"),
        pytest.param({"services": ["water", "rest", "water"]}, (), id="service-duplicate"),
    ],
)
def test_enum_value_rejected(changes: dict[str, Any], loc: tuple[str | int, ...]) -> None:
    assert rejected_locs(**changes) == {loc}


def test_duplicate_services_say_why() -> None:
    with pytest.raises(ValidationError, match="services: listed more than once"):
        parse(services=["water", "water"])


# --- location ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lat", "lon"),
    [
        pytest.param(90, 180, id="north-east-corner"),
        pytest.param(-90, -180, id="south-west-corner"),
        pytest.param(0, 0, id="null-island"),
        pytest.param(-33.8688, 151.2093, id="fractions"),
    ],
)
def test_location_accepted(lat: float, lon: float) -> None:
    location = parse(location={"lat": lat, "lon": lon}).location
    assert (location.lat, location.lon) == (lat, lon)


@pytest.mark.parametrize(
    ("location", "field"),
    [
        pytest.param({"lat": 90.0001, "lon": 0}, "lat", id="lat-over-90"),
        pytest.param({"lat": -90.5, "lon": 0}, "lat", id="lat-under-minus-90"),
        pytest.param({"lat": 0, "lon": 180.0001}, "lon", id="lon-over-180"),
        pytest.param({"lat": 0, "lon": -181}, "lon", id="lon-under-minus-180"),
        pytest.param({"lat": float("nan"), "lon": 0}, "lat", id="lat-NaN"),
        pytest.param({"lat": 0, "lon": float("inf")}, "lon", id="lon-Infinity"),
        pytest.param({"lat": "40.08", "lon": 0}, "lat", id="lat-string"),
        pytest.param({"lat": 0, "lon": None}, "lon", id="lon-null"),
        pytest.param({"lat": 0}, "lon", id="lon-missing"),
    ],
)
def test_location_rejected(location: dict[str, Any], field: str) -> None:
    assert rejected_locs(location=location) == {("location", field)}


def test_swapped_coordinates_out_of_range_rejected() -> None:
    # lon 116.58 passed as lat: a common producer bug the range check catches
    assert rejected_locs(location={"lat": 116.5842, "lon": 40.0801}) == {("location", "lat")}


# --- numbers and texts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("heartbeat_interval_s", None, id="interval-null-no-device"),
        pytest.param("heartbeat_interval_s", 1, id="interval-1"),
        pytest.param("heartbeat_interval_s", 86_400, id="interval-a-day"),
        pytest.param("capacity", 0, id="capacity-0"),
        pytest.param("capacity", None, id="capacity-null"),
        pytest.param("contact_phone", None, id="phone-null"),
        pytest.param("name", "x" * 200, id="name-200"),
        pytest.param("district", "", id="district-empty"),
        pytest.param("name", "工会驿站\t(北区)\n", id="name-other-control-characters"),
    ],
)
def test_field_accepted(field: str, value: object) -> None:
    assert getattr(parse(**{field: value}), field) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("2000-01-01T08:00:00+08:00", datetime(2000, 1, 1, tzinfo=UTC), id="floor"),
        pytest.param("2015-06-01T00:00:00Z", datetime(2015, 6, 1, tzinfo=UTC), id="years-ago"),
    ],
)
def test_updated_at_may_be_long_past(value: str, expected: datetime) -> None:
    assert parse(updated_at=value).updated_at == expected


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("heartbeat_interval_s", 0, id="interval-0"),
        pytest.param("heartbeat_interval_s", -30, id="interval-negative"),
        pytest.param("heartbeat_interval_s", 30.5, id="interval-fraction"),
        pytest.param("heartbeat_interval_s", "30", id="interval-string"),
        pytest.param("heartbeat_interval_s", 86_401, id="interval-over-a-day"),
        pytest.param("heartbeat_interval_s", True, id="interval-bool"),
        pytest.param("capacity", -1, id="capacity-negative"),
        pytest.param("capacity", "12", id="capacity-string"),
        pytest.param("name", "", id="name-empty"),
        pytest.param("name", "x" * 201, id="name-too-long"),
        pytest.param("name", None, id="name-null"),
        pytest.param("street", "x" * 65, id="street-too-long"),
        pytest.param("contact_phone", 1000000, id="phone-number"),
        pytest.param("updated_at", "2026-11-30T00:00:00", id="updated-at-naive"),
        pytest.param("updated_at", "0001-01-01T00:00:00+08:00", id="updated-at-year-1"),
        pytest.param("updated_at", "9999-12-31T23:59:59-08:00", id="updated-at-year-9999"),
        pytest.param("updated_at", "1999-12-31T23:59:59Z", id="updated-at-before-2000"),
        pytest.param("updated_at", "2100-01-01T08:00:00+08:00", id="updated-at-2100"),
        pytest.param("name", "空港\u0000驿站", id="name-nul"),
        pytest.param("district", "\u0000", id="district-nul"),
        pytest.param("street", "空港街道\u0000", id="street-nul"),
        pytest.param("contact_phone", "010\u0000", id="phone-nul"),
        pytest.param("station_id", "SY-0001\n", id="station-id-trailing-newline"),
        pytest.param("station_id", "sy-0001", id="station-id-lowercase"),
    ],
)
def test_field_rejected(field: str, value: object) -> None:
    assert rejected_locs(**{field: value}) == {(field,)}


# --- opening hours -----------------------------------------------------------------------------


def test_weekday_keys_are_the_contracts() -> None:
    assert list(WEEKDAYS) == CONTRACT_WEEKDAYS
    weekly = {day: [["08:00", "20:00"]] for day in CONTRACT_WEEKDAYS}
    assert set(parse(opening_hours=hours(weekly)).opening_hours.weekly) == set(CONTRACT_WEEKDAYS)


@pytest.mark.parametrize(
    ("intervals", "expected"),
    [
        pytest.param([["08:00", "20:00"]], [("08:00", "20:00")], id="day"),
        pytest.param([["00:00", "24:00"]], [("00:00", "24:00")], id="whole-day-24-00-end"),
        pytest.param([["20:00", "24:00"]], [("20:00", "24:00")], id="until-midnight"),
        pytest.param([["22:00", "02:00"]], [("22:00", "02:00")], id="past-midnight"),
        pytest.param([["23:59", "00:00"]], [("23:59", "00:00")], id="one-minute-to-midnight"),
        pytest.param(
            [["07:00", "11:30"], ["13:00", "19:00"]],
            [("07:00", "11:30"), ("13:00", "19:00")],
            id="two-intervals",
        ),
        pytest.param([], [], id="no-interval-closed"),
    ],
)
def test_interval_accepted(intervals: list[list[str]], expected: list[tuple[str, str]]) -> None:
    weekly = parse(opening_hours=hours({"mon": intervals})).opening_hours.weekly
    assert weekly == {"mon": expected}


@pytest.mark.parametrize(
    "weekly",
    [
        pytest.param({"mon": [["08:00", "25:00"]]}, id="hour-25"),
        pytest.param({"mon": [["8:00", "20:00"]]}, id="single-digit-hour"),
        pytest.param({"mon": [["08:60", "20:00"]]}, id="minute-60"),
        pytest.param({"mon": [["24:01", "20:00"]]}, id="after-24-00"),
        pytest.param({"mon": [["08:00:00", "20:00"]]}, id="with-seconds"),
        pytest.param({"mon": [["08h00", "20:00"]]}, id="not-hh-mm"),
        pytest.param({"mon": [["08:00", "20:00\n"]]}, id="trailing-newline"),
        pytest.param({"mon": [["08:00", "08:00"]]}, id="empty-interval"),
        pytest.param({"mon": [["00:00", "00:00"]]}, id="empty-at-midnight"),
        pytest.param({"mon": [["24:00", "08:00"]]}, id="24-00-as-start"),
        pytest.param({"mon": [["24:00", "24:00"]]}, id="24-00-both"),
        pytest.param({"mon": [["08:00"]]}, id="one-bound"),
        pytest.param({"mon": [["08:00", "12:00", "20:00"]]}, id="three-bounds"),
        pytest.param({"mon": [[800, 2000]]}, id="numbers"),
        pytest.param({"mon": ["08:00-20:00"]}, id="dash-string"),
        pytest.param({"monday": [["08:00", "20:00"]]}, id="weekday-long-name"),
        pytest.param({"Mon": [["08:00", "20:00"]]}, id="weekday-capitalised"),
        pytest.param({"1": [["08:00", "20:00"]]}, id="weekday-number"),
        pytest.param({"hol": [["08:00", "20:00"]]}, id="weekday-unknown"),
        pytest.param({"mon": None}, id="day-null"),
    ],
)
def test_weekly_rejected(weekly: dict[str, Any]) -> None:
    assert rejected_locs(opening_hours=hours(weekly)) == {("opening_hours", "weekly")}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"always_open": "yes"}, "always_open", id="always-open-string"),
        pytest.param({"holidays_open": 1}, "holidays_open", id="holidays-open-int"),
        pytest.param({"weekly": []}, "weekly", id="weekly-list"),
    ],
)
def test_opening_hours_flag_rejected(changes: dict[str, Any], field: str) -> None:
    assert rejected_locs(opening_hours={**hours({}), **changes}) == {("opening_hours", field)}


@pytest.mark.parametrize(
    ("clock", "expected"),
    [
        pytest.param("00:00", 0, id="midnight"),
        pytest.param("08:30", 510, id="morning"),
        pytest.param("23:59", 1439, id="last-minute"),
        pytest.param("24:00", 1440, id="end-of-day"),
    ],
)
def test_minutes(clock: str, expected: int) -> None:
    assert minutes(clock) == expected


def test_a_temporary_closure_may_say_when_it_ends() -> None:
    closed = parse(
        lifecycle="temporarily_closed",
        closed_until="2026-12-10T00:00:00+08:00",
        closure_reason="水管维修",
        responsible_person="王五",
        responsible_phone="13800000000",
        changed_by="王五",
        changed_via="stationwatch stations close",
    )
    assert closed.closed_until == datetime(2026, 12, 9, 16, 0, tzinfo=UTC)
    assert closed.responsible_person == "王五"


@pytest.mark.parametrize("lifecycle", ["active", "decommissioned"])
def test_only_a_temporary_closure_has_an_end(lifecycle: str) -> None:
    with pytest.raises(ValidationError, match="closed_until"):
        parse(lifecycle=lifecycle, closed_until="2026-12-10T00:00:00+08:00")

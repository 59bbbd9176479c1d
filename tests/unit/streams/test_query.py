"""Query parameters, the filters behind /stations and /stations/nearby, free seats and distances.

What pydantic accepts for a query-string boolean (documented here because it is what the API
accepts): ``true/false``, ``1/0``, ``yes/no``, ``on/off``, ``t/f``, ``y/n``, in any case;
``2``, the empty string and a padded `` true`` are rejected. Integers accept ``10.0``, ``+5``,
`` 10`` and ``1_0``, and reject ``10.5``, ``1e1`` and ``0x10``; floats accept ``1e1`` and
reject ``nan``, ``inf`` and ``Infinity``.
"""

from __future__ import annotations

import gc
import math
import sys
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.query import (
    EARTH_RADIUS_M,
    MAX_NEARBY,
    MAX_PAGE,
    MAX_RADIUS_M,
    Entry,
    ListQuery,
    NearbyQuery,
    QueryError,
    chord_for,
    entry_from_json,
    entry_from_state,
    free_seats,
    haversine_m,
    is_open_now,
    matches,
    nearby_candidate,
    parse_query,
    unit_vector,
)
from streams.record import holding
from streams.state import StationState
from tests import factories

SH = ZoneInfo("Asia/Shanghai")
MONDAY_10 = datetime(2026, 11, 30, 10, 0, tzinfo=SH)  # an ordinary Monday, inside office hours
MONDAY_22 = datetime(2026, 11, 30, 22, 0, tzinfo=SH)  # the same Monday, after closing
OFFICE_HOURS: dict[str, Any] = {
    "always_open": False,
    "weekly": {d: [["08:00", "20:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
    "holidays_open": False,
}
NEAR = {"lat": ["40.1"], "lon": ["116.6"]}  # the required part of a nearby query


def q(**params: str | list[str]) -> dict[str, list[str]]:
    """Query-string parameters as the web layer hands them over (every value a list)."""
    return {k: v if isinstance(v, list) else [v] for k, v in params.items()}


# -- parse_query: accepted --------------------------------------------------------------------

ACCEPTED: list[Any] = [
    # (model, params, field, value)
    pytest.param(NearbyQuery, {**NEAR, "lat": ["90"]}, "lat", 90.0, id="lat-max-inclusive"),
    pytest.param(NearbyQuery, {**NEAR, "lat": ["-90"]}, "lat", -90.0, id="lat-min-inclusive"),
    pytest.param(NearbyQuery, {**NEAR, "lat": ["1e1"]}, "lat", 10.0, id="lat-exponent"),
    pytest.param(NearbyQuery, {**NEAR, "lat": [" 40.1"]}, "lat", 40.1, id="lat-padded"),
    pytest.param(NearbyQuery, {**NEAR, "lon": ["180"]}, "lon", 180.0, id="lon-max-inclusive"),
    pytest.param(NearbyQuery, {**NEAR, "lon": ["-180"]}, "lon", -180.0, id="lon-min-inclusive"),
    pytest.param(NearbyQuery, NEAR, "radius_m", 3000.0, id="radius-default"),
    pytest.param(NearbyQuery, {**NEAR, **q(radius_m="0.001")}, "radius_m", 0.001, id="radius-tiny"),
    pytest.param(
        NearbyQuery, {**NEAR, **q(radius_m="50000")}, "radius_m", MAX_RADIUS_M, id="radius-max"
    ),
    pytest.param(NearbyQuery, NEAR, "limit", 10, id="nearby-limit-default"),
    pytest.param(NearbyQuery, {**NEAR, **q(limit="1")}, "limit", 1, id="nearby-limit-min"),
    pytest.param(NearbyQuery, {**NEAR, **q(limit="100")}, "limit", MAX_NEARBY, id="nearby-max"),
    pytest.param(NearbyQuery, NEAR, "open_now", True, id="nearby-open-now-default-true"),
    pytest.param(NearbyQuery, NEAR, "service", None, id="nearby-service-default"),
    pytest.param(
        NearbyQuery, {**NEAR, **q(service="toilet")}, "service", "toilet", id="nearby-service"
    ),
    pytest.param(ListQuery, {}, "limit", 100, id="list-limit-default"),
    pytest.param(ListQuery, q(limit="1000"), "limit", MAX_PAGE, id="list-limit-max"),
    pytest.param(ListQuery, q(limit="10.0"), "limit", 10, id="list-limit-integral-float"),
    pytest.param(ListQuery, q(limit="+5"), "limit", 5, id="list-limit-plus-sign"),
    pytest.param(ListQuery, q(limit="1_0"), "limit", 10, id="list-limit-underscore"),
    pytest.param(ListQuery, {}, "offset", 0, id="list-offset-default"),
    pytest.param(ListQuery, q(offset="1000000"), "offset", 1_000_000, id="list-offset-max"),
    pytest.param(ListQuery, {}, "open_now", None, id="list-open-now-default-none"),
    pytest.param(ListQuery, q(liveness="not_monitored"), "liveness", "not_monitored", id="liv"),
    pytest.param(ListQuery, q(category="smart_24h"), "category", "smart_24h", id="category"),
    pytest.param(ListQuery, q(street="空港街道"), "street", "空港街道", id="street-chinese"),
    pytest.param(ListQuery, q(street="x" * 64), "street", "x" * 64, id="street-64-chars"),
    pytest.param(ListQuery, q(service="wifi"), "service", "wifi", id="service-extended"),
    pytest.param(ListQuery, q(lifecycle="active"), "lifecycle", "active", id="lifecycle"),
    pytest.param(ListQuery, q(lifecycle="unknown"), "lifecycle", "unknown", id="lifecycle-unknown"),
]


@pytest.mark.parametrize(("model", "params", "field", "value"), ACCEPTED)
def test_parse_query_accepts(
    model: type[ListQuery | NearbyQuery], params: dict[str, list[str]], field: str, value: Any
) -> None:
    assert getattr(parse_query(model, params), field) == value


BOOLEANS = [
    *[(text, True) for text in ("true", "True", "TRUE", "1", "yes", "on", "t", "y")],
    *[(text, False) for text in ("false", "False", "0", "no", "off", "f", "n")],
]


@pytest.mark.parametrize(("text", "value"), BOOLEANS, ids=[t for t, _ in BOOLEANS])
@pytest.mark.parametrize("model", [ListQuery, NearbyQuery], ids=["list", "nearby"])
def test_parse_query_booleans(model: type[ListQuery | NearbyQuery], text: str, value: bool) -> None:
    extra = NEAR if model is NearbyQuery else {}
    assert parse_query(model, {**extra, "open_now": [text]}).open_now is value


# -- parse_query: rejected, naming the parameter ----------------------------------------------

REJECTED: list[Any] = [
    # (model, params, the parameter named)
    pytest.param(NearbyQuery, {}, "lat", id="lat-missing"),
    pytest.param(NearbyQuery, q(lat="40.1"), "lon", id="lon-missing"),
    pytest.param(NearbyQuery, {**NEAR, "lat": ["90.0001"]}, "lat", id="lat-above-90"),
    pytest.param(NearbyQuery, {**NEAR, "lat": ["-90.0001"]}, "lat", id="lat-below-minus-90"),
    pytest.param(NearbyQuery, {**NEAR, "lat": ["nan"]}, "lat", id="lat-nan"),
    pytest.param(NearbyQuery, {**NEAR, "lat": ["inf"]}, "lat", id="lat-inf"),
    pytest.param(NearbyQuery, {**NEAR, "lat": ["-inf"]}, "lat", id="lat-minus-inf"),
    pytest.param(NearbyQuery, {**NEAR, "lat": ["Infinity"]}, "lat", id="lat-infinity"),
    pytest.param(NearbyQuery, {**NEAR, "lat": [""]}, "lat", id="lat-empty"),
    pytest.param(NearbyQuery, {**NEAR, "lat": ["40,1"]}, "lat", id="lat-comma"),
    pytest.param(NearbyQuery, {**NEAR, "lon": ["180.0001"]}, "lon", id="lon-above-180"),
    pytest.param(NearbyQuery, {**NEAR, "lon": ["-181"]}, "lon", id="lon-below-minus-180"),
    pytest.param(NearbyQuery, {**NEAR, "lon": ["nan"]}, "lon", id="lon-nan"),
    pytest.param(NearbyQuery, {**NEAR, **q(radius_m="0")}, "radius_m", id="radius-zero"),
    pytest.param(NearbyQuery, {**NEAR, **q(radius_m="-1")}, "radius_m", id="radius-negative"),
    pytest.param(NearbyQuery, {**NEAR, **q(radius_m="50000.1")}, "radius_m", id="radius-over"),
    pytest.param(NearbyQuery, {**NEAR, **q(radius_m="inf")}, "radius_m", id="radius-inf"),
    pytest.param(NearbyQuery, {**NEAR, **q(radius_m="nan")}, "radius_m", id="radius-nan"),
    pytest.param(NearbyQuery, {**NEAR, **q(limit="0")}, "limit", id="nearby-limit-zero"),
    pytest.param(NearbyQuery, {**NEAR, **q(limit="101")}, "limit", id="nearby-limit-over"),
    pytest.param(NearbyQuery, {**NEAR, **q(service="sauna")}, "service", id="nearby-service"),
    pytest.param(NearbyQuery, {**NEAR, **q(open_now="2")}, "open_now", id="nearby-open-now-2"),
    pytest.param(NearbyQuery, {**NEAR, **q(radius="10")}, "radius", id="nearby-unknown-param"),
    pytest.param(NearbyQuery, {**NEAR, "lat": ["40.1", "40.2"]}, "lat", id="lat-repeated"),
    pytest.param(NearbyQuery, {**NEAR, "lat": []}, "lat", id="lat-given-empty-list"),
    pytest.param(ListQuery, q(limit="0"), "limit", id="list-limit-zero"),
    pytest.param(ListQuery, q(limit="1001"), "limit", id="list-limit-over"),
    pytest.param(ListQuery, q(limit="10.5"), "limit", id="list-limit-fraction"),
    pytest.param(ListQuery, q(limit="1e1"), "limit", id="list-limit-exponent"),
    pytest.param(ListQuery, q(limit="0x10"), "limit", id="list-limit-hex"),
    pytest.param(ListQuery, q(limit="ten"), "limit", id="list-limit-word"),
    pytest.param(ListQuery, q(offset="-1"), "offset", id="list-offset-negative"),
    pytest.param(ListQuery, q(offset="1000001"), "offset", id="list-offset-over"),
    pytest.param(ListQuery, q(liveness="dead"), "liveness", id="liveness-unknown-value"),
    pytest.param(ListQuery, q(liveness="Online"), "liveness", id="liveness-case-matters"),
    pytest.param(ListQuery, q(category="kiosk"), "category", id="category-unknown-value"),
    pytest.param(ListQuery, q(service="sauna"), "service", id="service-unknown-value"),
    pytest.param(ListQuery, q(lifecycle="demolished"), "lifecycle", id="lifecycle-unknown-value"),
    pytest.param(ListQuery, q(street=""), "street", id="street-empty"),
    pytest.param(ListQuery, q(street="x" * 65), "street", id="street-too-long"),
    pytest.param(ListQuery, q(open_now=""), "open_now", id="open-now-empty"),
    pytest.param(ListQuery, q(open_now="2"), "open_now", id="open-now-2"),
    pytest.param(ListQuery, q(open_now=" true"), "open_now", id="open-now-padded"),
    pytest.param(ListQuery, q(open_now="maybe"), "open_now", id="open-now-word"),
    pytest.param(ListQuery, q(lat="40"), "lat", id="list-has-no-lat"),
    pytest.param(ListQuery, q(Limit="5"), "Limit", id="names-are-case-sensitive"),
    pytest.param(ListQuery, q(limit=["5", "5"]), "limit", id="limit-repeated-even-if-equal"),
]


@pytest.mark.parametrize(("model", "params", "parameter"), REJECTED)
def test_parse_query_rejects_naming_the_parameter(
    model: type[ListQuery | NearbyQuery], params: dict[str, list[str]], parameter: str
) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(model, params)
    assert caught.value.parameter == parameter
    assert str(caught.value).startswith(f"{parameter}: ")


def test_bad_lifecycle_lists_every_accepted_value() -> None:
    """Regression: ``lifecycle`` was a union of two literals, so the error was named
    ``lifecycle.literal['active',…]`` and its message left out ``unknown``."""
    with pytest.raises(QueryError) as caught:
        parse_query(ListQuery, q(lifecycle="demolished"))
    assert caught.value.parameter == "lifecycle"
    for value in ("active", "temporarily_closed", "decommissioned", "unknown"):
        assert value in str(caught.value)


def test_query_error_is_a_value_error_and_says_why() -> None:
    with pytest.raises(ValueError, match=r"^radius: unknown parameter \(known: lat, lon, "):
        parse_query(NearbyQuery, {**NEAR, **q(radius="10")})
    with pytest.raises(ValueError, match=r"^lat: given more than once$"):
        parse_query(NearbyQuery, {**NEAR, "lat": ["1", "2"]})


@settings(max_examples=50, deadline=None)
@given(
    lat=st.floats(-90, 90),
    lon=st.floats(-180, 180),
    radius=st.floats(0, MAX_RADIUS_M, exclude_min=True),
)
def test_every_in_range_nearby_query_round_trips(lat: float, lon: float, radius: float) -> None:
    query = parse_query(NearbyQuery, q(lat=repr(lat), lon=repr(lon), radius_m=repr(radius)))
    assert (query.lat, query.lon, query.radius_m) == (lat, lon, radius)


@settings(max_examples=50, deadline=None)
@given(st.one_of(st.floats(90, exclude_min=True), st.floats(max_value=-90, exclude_max=True)))
def test_every_out_of_range_latitude_is_rejected(lat: float) -> None:
    with pytest.raises(QueryError) as caught:
        parse_query(NearbyQuery, {**NEAR, "lat": [repr(lat)]})
    assert caught.value.parameter == "lat"


# -- open now, list filters, nearby candidates ------------------------------------------------


def entry(
    *,
    profile: dict[str, Any] | None = None,
    liveness: str = "online",
    open_state: str = "open",
    occupants: int | None = None,
    reported_capacity: int | None = None,
    occupancy_at: datetime | None = None,
    **overrides: Any,
) -> Entry:
    """An entry as the read model builds it from a stored live state."""
    if profile is None:
        profile = factories.profile("SY-0001", **overrides)
    state = StationState(
        station_id="SY-0001",
        **holding(profile),
        liveness=liveness,  # type: ignore[arg-type]
        open_state=open_state,  # type: ignore[arg-type]
        occupants=occupants,
        reported_capacity=reported_capacity,
        occupancy_at=occupancy_at,
    ).to_json()
    return entry_from_state("SY-0001", 3, state)


def test_entry_from_state_reads_the_stored_state() -> None:
    at = MONDAY_10 - timedelta(seconds=5)
    e = entry(occupants=4, reported_capacity=12, occupancy_at=at, street="空港街道")
    assert (e.station_id, e.partition) == ("SY-0001", 3)
    assert (e.lat, e.lon) == (40.08, 116.58)
    assert (e.category, e.street, e.lifecycle) == ("standard", "空港街道", "active")
    assert e.services == {"water", "charging", "rest"}
    assert (e.occupants, e.capacity, e.occupancy_at) == (4, 12, at)


def test_entries_are_compact_and_give_back_the_stored_state() -> None:
    """Read-model entries hold the state encoded at its exact size, and share equal schedules
    and service sets between stations (150,000 stations: ~250 MB instead of ~1 GB)."""
    states = [
        StationState(station_id=sid, **holding(factories.profile(sid)), liveness="online").to_json()
        for sid in ("SY-0001", "SY-0002")
    ]
    first, second = (entry_from_state(s["station_id"], 0, s) for s in states)
    assert first.state == states[0]
    assert sys.getsizeof(first.raw) - len(first.raw) < 64  # no encoder buffer kept
    assert first.hours is second.hours
    assert first.services is second.services
    assert first.hours == states[0]["profile"]["opening_hours"]


def test_a_service_set_is_shared_however_its_record_lists_it() -> None:
    """Service sets are decoded once per distinct JSON, and equal sets listed in another
    order are still one object."""
    listed = (["water", "toilet", "charging"], ["charging", "water", "toilet"])
    first, second = (
        entry_from_json("SY-0001", 0, orjson.dumps({"profile": {"services": services}}), b"{}")
        for services in listed
    )
    assert first.services == frozenset(listed[0])
    assert first.services is second.services


def test_entry_from_json_equals_the_entry_of_the_same_state_as_a_dict() -> None:
    """The API server decodes only the fields an entry keeps (from the JSON the feed carries);
    what it gets is what the whole state gives."""
    closed = factories.profile(
        "SY-0001", lifecycle="temporarily_closed", closed_until="2026-12-01T08:00:00+08:00"
    )
    for state in (
        StationState(
            station_id="SY-0001",
            **holding(factories.profile("SY-0001", opening_hours=OFFICE_HOURS)),
            liveness="stale",
            open_state="open",
            occupants=4,
            reported_capacity=9,
            occupancy_at=MONDAY_10,
        ).to_json(),
        StationState(station_id="SY-0001", **holding(closed)).to_json(),
        StationState(station_id="SY-0001").to_json(),
    ):
        text = orjson.dumps(state)
        assert entry_from_json("SY-0001", 3, text, text) == entry_from_state("SY-0001", 3, state)
    closed_entry = entry_from_state(
        "SY-0001", 0, StationState("SY-0001", **holding(closed)).to_json()
    )
    assert closed_entry.closed_until == datetime(2026, 12, 1, 8, 0, tzinfo=SH)


@pytest.mark.parametrize(
    "state",
    [
        pytest.param({"profile": {"location": {"lat": "north", "lon": 116.6}}}, id="lat-text"),
        pytest.param({"profile": {"services": "water"}}, id="services-not-a-list"),
        pytest.param({"occupants": "four"}, id="occupants-text"),
        pytest.param({"profile": ["SY-0001"]}, id="profile-not-an-object"),
    ],
)
def test_a_state_with_a_field_of_the_wrong_type_is_refused(state: dict[str, Any]) -> None:
    """A ValueError, which the API server's feed logs and skips (one station, not the feed)."""
    text = orjson.dumps({"station_id": "SY-0001", **state})
    with pytest.raises(ValueError, match=r"\$\."):
        entry_from_json("SY-0001", 0, text, text)


def test_entries_are_not_tracked_by_the_garbage_collector() -> None:
    """150,000 entries the collector would walk at every full collection: none refers to
    anything that could refer back to it, so none is tracked."""
    assert not gc.is_tracked(entry(opening_hours=OFFICE_HOURS))


def test_entry_without_a_registry_record() -> None:
    e = entry_from_state("SY-0009", 0, StationState(station_id="SY-0009").to_json())
    assert (e.lat, e.lon, e.hours, e.capacity) == (None, None, None, None)
    assert (e.lifecycle, e.liveness, e.open_state) == ("unknown", "unknown", "unknown")
    assert e.services == frozenset()
    assert not is_open_now(e, MONDAY_10, SH)


OPEN_NOW = [
    # (entry, now, open now?)
    pytest.param(entry(), MONDAY_10, True, id="active-always-open"),
    pytest.param(entry(open_state="unknown"), MONDAY_10, True, id="not-reported-yet"),
    pytest.param(entry(open_state="closed"), MONDAY_10, False, id="reported-closed"),
    pytest.param(entry(opening_hours=OFFICE_HOURS), MONDAY_10, True, id="inside-hours"),
    pytest.param(entry(opening_hours=OFFICE_HOURS), MONDAY_22, False, id="schedule-closed"),
    pytest.param(
        entry(opening_hours=OFFICE_HOURS, open_state="open"),
        MONDAY_22,
        False,
        id="reported-open-but-schedule-closed",
    ),
    pytest.param(entry(lifecycle="temporarily_closed"), MONDAY_10, False, id="temporarily-closed"),
    pytest.param(entry(lifecycle="decommissioned"), MONDAY_10, False, id="decommissioned"),
    pytest.param(entry(liveness="offline"), MONDAY_10, True, id="offline-is-still-open"),
]


@pytest.mark.parametrize(("e", "now", "expected"), OPEN_NOW)
def test_is_open_now(e: Entry, now: datetime, expected: bool) -> None:
    assert is_open_now(e, now, SH) is expected


MATCHES = [
    # (entry, list query parameters, matches?)
    pytest.param(entry(), {}, True, id="no-filter"),
    pytest.param(entry(liveness="stale"), q(liveness="stale"), True, id="liveness-same"),
    pytest.param(entry(liveness="stale"), q(liveness="online"), False, id="liveness-other"),
    pytest.param(entry(category="smart_24h"), q(category="smart_24h"), True, id="category-same"),
    pytest.param(entry(), q(category="truck_driver"), False, id="category-other"),
    pytest.param(entry(), q(street="空港街道"), True, id="street-same"),
    pytest.param(entry(), q(street="后沙峪地区"), False, id="street-other"),
    pytest.param(entry(), q(service="charging"), True, id="service-offered"),
    pytest.param(entry(), q(service="toilet"), False, id="service-not-offered"),
    pytest.param(entry(services=[]), q(service="water"), False, id="no-services"),
    pytest.param(entry(), q(lifecycle="active"), True, id="lifecycle-same"),
    pytest.param(entry(lifecycle="decommissioned"), q(lifecycle="active"), False, id="lc-other"),
    pytest.param(
        entry_from_state("SY-0009", 0, StationState(station_id="SY-0009").to_json()),
        q(lifecycle="unknown"),
        True,
        id="lifecycle-unknown-without-registry",
    ),
    pytest.param(entry(), q(open_now="true"), True, id="open-now-true-open"),
    pytest.param(entry(open_state="closed"), q(open_now="true"), False, id="open-now-true-closed"),
    pytest.param(entry(open_state="closed"), q(open_now="false"), True, id="open-now-false-closed"),
    pytest.param(entry(), q(open_now="false"), False, id="open-now-false-open"),
    pytest.param(
        entry(liveness="offline"), q(open_now="true"), True, id="list-keeps-offline-when-open-now"
    ),
    pytest.param(
        entry(category="smart_24h"),
        q(category="smart_24h", service="toilet"),
        False,
        id="every-filter-must-hold",
    ),
]


@pytest.mark.parametrize(("e", "params", "expected"), MATCHES)
def test_matches(e: Entry, params: dict[str, list[str]], expected: bool) -> None:
    assert matches(e, parse_query(ListQuery, params), MONDAY_10, SH) is expected


NEARBY = [
    # (entry, nearby query parameters beyond lat/lon, now, candidate?)
    pytest.param(entry(), {}, MONDAY_10, True, id="open-online"),
    pytest.param(entry(liveness="stale"), {}, MONDAY_10, True, id="stale-still-sent"),
    pytest.param(entry(liveness="unknown"), {}, MONDAY_10, True, id="unknown-liveness"),
    pytest.param(entry(liveness="not_monitored"), {}, MONDAY_10, True, id="not-monitored"),
    pytest.param(entry(liveness="offline"), {}, MONDAY_10, False, id="offline-excluded"),
    pytest.param(
        entry(liveness="offline"), q(open_now="false"), MONDAY_10, True, id="offline-if-not-open"
    ),
    pytest.param(entry(open_state="closed"), {}, MONDAY_10, False, id="reported-closed"),
    pytest.param(
        entry(open_state="closed"), q(open_now="false"), MONDAY_10, True, id="closed-if-not-open"
    ),
    pytest.param(entry(opening_hours=OFFICE_HOURS), {}, MONDAY_22, False, id="schedule-closed"),
    pytest.param(entry(opening_hours=OFFICE_HOURS), {}, MONDAY_10, True, id="schedule-open"),
    pytest.param(entry(lifecycle="temporarily_closed"), {}, MONDAY_10, False, id="lifecycle"),
    pytest.param(
        entry(lifecycle="decommissioned"), q(open_now="0"), MONDAY_10, True, id="lc-if-not-open"
    ),
    pytest.param(entry(), q(service="rest"), MONDAY_10, True, id="service-offered"),
    pytest.param(entry(), q(service="toilet"), MONDAY_10, False, id="service-not-offered"),
    pytest.param(
        entry(),
        q(service="toilet", open_now="false"),
        MONDAY_10,
        False,
        id="service-filter-even-if-not-open",
    ),
]


@pytest.mark.parametrize(("e", "params", "now", "expected"), NEARBY)
def test_nearby_candidate(
    e: Entry, params: dict[str, list[str]], now: datetime, expected: bool
) -> None:
    query = parse_query(NearbyQuery, {**NEAR, **params})
    assert nearby_candidate(e, query, now, SH) is expected


# -- free seats -------------------------------------------------------------------------------

FRESH_S = 300.0
S = timedelta(seconds=1)

FREE_SEATS = [
    # (entry, free_seats, occupancy_age_s) judged at MONDAY_10 with FRESH_S
    pytest.param(entry(), None, None, id="never-counted"),
    pytest.param(
        entry(occupants=3, reported_capacity=12, occupancy_at=MONDAY_10 - 10 * S),
        9,
        10.0,
        id="fresh",
    ),
    pytest.param(
        entry(occupants=3, occupancy_at=MONDAY_10 - 10 * S),
        7,
        10.0,
        id="capacity-from-registry",
    ),
    pytest.param(
        entry(occupants=3, reported_capacity=4, occupancy_at=MONDAY_10),
        1,
        0.0,
        id="reported-capacity-wins",
    ),
    pytest.param(
        entry(occupants=3, occupancy_at=MONDAY_10 - 300 * S), 7, 300.0, id="bound-inclusive"
    ),
    pytest.param(
        entry(occupants=3, occupancy_at=MONDAY_10 - 300.2 * S), None, 300.2, id="just-stale"
    ),
    pytest.param(entry(occupants=3, occupancy_at=MONDAY_10 - 3600 * S), None, 3600.0, id="stale"),
    pytest.param(
        entry(occupants=3, capacity=None, occupancy_at=MONDAY_10 - S),
        None,
        1.0,
        id="no-capacity",
    ),
    pytest.param(
        entry(occupants=15, reported_capacity=12, occupancy_at=MONDAY_10 - S),
        0,
        1.0,
        id="over-capacity-is-zero",
    ),
    pytest.param(
        entry(occupants=12, reported_capacity=12, occupancy_at=MONDAY_10 - S), 0, 1.0, id="full"
    ),
    pytest.param(
        entry(occupants=0, reported_capacity=0, occupancy_at=MONDAY_10 - S),
        0,
        1.0,
        id="zero-capacity",
    ),
    pytest.param(
        entry(occupants=2, reported_capacity=12, occupancy_at=MONDAY_10 + 60 * S),
        10,
        0.0,
        id="count-from-the-future-is-age-zero",
    ),
    pytest.param(
        entry(occupants=1, occupancy_at=MONDAY_10.astimezone(ZoneInfo("UTC")) - 61.26 * S),
        9,
        61.3,
        id="other-offset-age-rounded",
    ),
]


@pytest.mark.parametrize(("e", "seats", "age"), FREE_SEATS)
def test_free_seats(e: Entry, seats: int | None, age: float | None) -> None:
    assert free_seats(e, MONDAY_10, FRESH_S) == {"free_seats": seats, "occupancy_age_s": age}


@settings(max_examples=50, deadline=None)
@given(
    occupants=st.integers(0, 500),
    capacity=st.integers(0, 500),
    age_s=st.floats(0, 1000, allow_nan=False),
)
def test_free_seats_is_never_negative(occupants: int, capacity: int, age_s: float) -> None:
    e = entry(
        occupants=occupants,
        reported_capacity=capacity,
        occupancy_at=MONDAY_10 - timedelta(seconds=age_s),
    )
    answer = free_seats(e, MONDAY_10, FRESH_S)
    assert answer["occupancy_age_s"] == pytest.approx(age_s, abs=0.051)  # rounded to 0.1 s
    if answer["free_seats"] is not None:
        assert answer["free_seats"] == max(0, capacity - occupants)


# -- distances --------------------------------------------------------------------------------

TIANANMEN = (39.9087, 116.3975)
CAPITAL_AIRPORT_T3 = (40.0515, 116.6106)
HALF_EQUATOR_M = math.pi * EARTH_RADIUS_M  # ≈ 20 015 km

DISTANCES = [
    # (from, to, metres, relative tolerance)
    # 0.1428° north (15.88 km) and 0.2131° east at 40° (18.16 km): 24.12 km. Not 24.5 km.
    pytest.param(TIANANMEN, CAPITAL_AIRPORT_T3, 24_120.0, 0.005, id="tiananmen-to-t3"),
    pytest.param(CAPITAL_AIRPORT_T3, TIANANMEN, 24_120.0, 0.005, id="t3-to-tiananmen"),
    pytest.param((0.0, 0.0), (1.0, 0.0), 111_195.0, 1e-5, id="one-degree-of-meridian"),
    pytest.param((0.0, 0.0), (0.0, 1.0), 111_195.0, 1e-5, id="one-degree-of-equator"),
    pytest.param((0.0, 179.5), (0.0, -179.5), 111_195.0, 1e-5, id="across-the-antimeridian"),
    pytest.param((0.0, 0.0), (0.0, 180.0), HALF_EQUATOR_M, 1e-9, id="antipodes-equator"),
    pytest.param((90.0, 0.0), (-90.0, 0.0), HALF_EQUATOR_M, 1e-9, id="pole-to-pole"),
    pytest.param((40.1, 116.6), (-40.1, -63.4), HALF_EQUATOR_M, 1e-9, id="antipode-of-shunyi"),
    pytest.param((90.0, 0.0), (90.0, 120.0), 0.0, 0.0, id="the-pole-at-any-longitude"),
]


@pytest.mark.parametrize(("a", "b", "metres", "rel"), DISTANCES)
def test_haversine_known_distances(
    a: tuple[float, float], b: tuple[float, float], metres: float, rel: float
) -> None:
    assert haversine_m(*a, *b) == pytest.approx(metres, rel=rel, abs=1e-6)


lats = st.floats(-90, 90)
lons = st.floats(-180, 180)


@settings(max_examples=100, deadline=None)
@given(lat1=lats, lon1=lons, lat2=lats, lon2=lons)
def test_haversine_is_a_distance_and_matches_the_chord(
    lat1: float, lon1: float, lat2: float, lon2: float
) -> None:
    d = haversine_m(lat1, lon1, lat2, lon2)
    assert haversine_m(lat1, lon1, lat1, lon1) == 0.0
    assert d == pytest.approx(haversine_m(lat2, lon2, lat1, lon1), abs=1e-6)
    assert 0.0 <= d <= HALF_EQUATOR_M * (1 + 1e-12)
    a, b = unit_vector(lat1, lon1), unit_vector(lat2, lon2)
    assert math.dist(a, b) == pytest.approx(chord_for(d), abs=1e-9)


@settings(max_examples=50, deadline=None)
@given(lat=lats, lon=lons)
def test_unit_vector_has_norm_one(lat: float, lon: float) -> None:
    assert math.hypot(*unit_vector(lat, lon)) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(
    ("lat", "lon", "vector"),
    [
        pytest.param(0.0, 0.0, (1.0, 0.0, 0.0), id="null-island"),
        pytest.param(0.0, 90.0, (0.0, 1.0, 0.0), id="equator-90-east"),
        pytest.param(90.0, 45.0, (0.0, 0.0, 1.0), id="north-pole"),
        pytest.param(-90.0, 0.0, (0.0, 0.0, -1.0), id="south-pole"),
    ],
)
def test_unit_vector_axes(lat: float, lon: float, vector: tuple[float, float, float]) -> None:
    assert unit_vector(lat, lon) == pytest.approx(vector, abs=1e-15)


@pytest.mark.parametrize(
    ("metres", "chord"),
    [
        pytest.param(0.0, 0.0, id="zero"),
        pytest.param(HALF_EQUATOR_M / 2, math.sqrt(2), id="quarter-circle"),
        pytest.param(HALF_EQUATOR_M, 2.0, id="antipodes"),
        pytest.param(3 * HALF_EQUATOR_M, 2.0, id="capped-beyond-antipodes"),
    ],
)
def test_chord_for_known_values(metres: float, chord: float) -> None:
    assert chord_for(metres) == pytest.approx(chord, abs=1e-15)


@settings(max_examples=100, deadline=None)
@given(st.floats(0, HALF_EQUATOR_M), st.floats(0, HALF_EQUATOR_M))
def test_chord_for_is_monotonic(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert chord_for(lo) <= chord_for(hi)
    if hi - lo > 1.0:  # strictly, where the difference is beyond rounding
        assert chord_for(lo) < chord_for(hi)

"""The live board's data: the local map projection, one worker's items, and the merged answer
(counts, offline stations, times in the zone, how old the data is)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from schemas.api import Board
from stationwatch.fleet import build_fleet
from streams.board import (
    LIVENESS,
    MAP_SIZE,
    MARGIN,
    MIN_EXTENT_M,
    BoardItems,
    Projection,
    board_item,
    local_board,
    merge_board,
)
from streams.query import EARTH_RADIUS_M, entry_from_state, haversine_m
from streams.record import holding
from streams.state import StationState

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)
CENTRE = (40.13, 116.65)  # Shunyi


def offset(lat: float, lon: float, north_m: float, east_m: float) -> tuple[float, float]:
    """The point ``north_m`` north and ``east_m`` east of (lat, lon)."""
    metres_per_degree = math.radians(1) * EARTH_RADIUS_M
    return (
        lat + north_m / metres_per_degree,
        lon + east_m / (metres_per_degree * math.cos(math.radians(lat))),
    )


def distance(a: tuple[float, float], b: tuple[float, float]) -> float:
    return math.hypot(a[0] - b[0], a[1] - b[1])


# -- projection -------------------------------------------------------------------------------


def test_no_located_station_gives_no_map() -> None:
    assert Projection.fit([]) is None


def test_north_is_up_and_east_is_right() -> None:
    north, east = offset(*CENTRE, 5000, 0), offset(*CENTRE, 0, 5000)
    projection = Projection.fit([CENTRE, north, east])
    assert projection is not None
    cx, cy = projection.xy(*CENTRE)
    nx, ny = projection.xy(*north)
    ex, ey = projection.xy(*east)
    assert ny < cy  # SVG's y grows downwards
    assert nx == pytest.approx(cx, abs=0.1)
    assert ex > cx
    assert ey == pytest.approx(cy, abs=0.1)


@pytest.mark.parametrize("latitude", [0.0, 23.1, 40.13, 60.0])
def test_a_kilometre_is_as_long_east_as_north(latitude: float) -> None:
    """The cos(latitude) correction: without it, a kilometre east at 60° N would be drawn
    half as long as a kilometre north."""
    centre = (latitude, 116.65)
    north, east = offset(*centre, 3000, 0), offset(*centre, 0, 3000)
    projection = Projection.fit([offset(*centre, -8000, -8000), offset(*centre, 8000, 8000)])
    assert projection is not None
    c = projection.xy(*centre)
    assert distance(c, projection.xy(*east)) == pytest.approx(
        distance(c, projection.xy(*north)), rel=0.005
    )


def test_the_stations_fill_the_map_inside_its_margin() -> None:
    fleet = build_fleet(1419, 1, NOW)
    points = [(p.location.lat, p.location.lon) for p in fleet if p.location is not None]
    projection = Projection.fit(points)
    assert projection is not None
    placed = [projection.xy(*p) for p in points]
    xs, ys = [x for x, _ in placed], [y for _, y in placed]
    assert min(xs) == pytest.approx(MARGIN, abs=0.1)
    assert min(ys) == pytest.approx(MARGIN, abs=0.1)
    assert max(xs) <= projection.width - MARGIN + 0.1
    assert max(ys) <= projection.height - MARGIN + 0.1
    # the longer side spans exactly the map size
    assert max(max(xs) - min(xs), max(ys) - min(ys)) == pytest.approx(MAP_SIZE, abs=0.2)
    # map distances are great-circle distances, to a fraction of a percent over the district
    a, b = points[0], points[1]
    metres = (
        distance(projection.xy(*a), projection.xy(*b)) * projection.describe()["metres_per_unit"]
    )
    assert metres == pytest.approx(haversine_m(*a, *b), rel=0.005)


def test_a_single_station_sits_in_the_middle_of_a_minimal_map() -> None:
    projection = Projection.fit([CENTRE])
    assert projection is not None
    assert projection.width == projection.height == MAP_SIZE + 2 * MARGIN
    assert projection.xy(*CENTRE) == pytest.approx(
        (projection.width / 2, projection.height / 2), abs=0.1
    )
    assert projection.describe()["metres_per_unit"] == pytest.approx(MIN_EXTENT_M / MAP_SIZE)


def test_stations_in_an_east_west_line_get_a_map_of_some_height() -> None:
    projection = Projection.fit([CENTRE, offset(*CENTRE, 0, 20_000)])
    assert projection is not None
    assert projection.width == pytest.approx(MAP_SIZE + 2 * MARGIN)
    assert projection.height == pytest.approx(MAP_SIZE * MIN_EXTENT_M / 20_000 + 2 * MARGIN, 0.01)
    assert projection.xy(*CENTRE)[1] == pytest.approx(projection.height / 2, abs=0.1)


# -- items and the merged answer --------------------------------------------------------------


def stored(
    station_id: str,
    liveness: str = "online",
    *,
    name: str | None = None,
    street: str = "空港街道",
    location: dict[str, float] | None = None,
    since: datetime = NOW - timedelta(minutes=5),
) -> dict[str, Any]:
    profile = {
        "station_id": station_id,
        "name": name or f"{street}测试工会驿站{station_id[-2:]}",
        "street": street,
        "location": location if location is not None else {"lat": 40.08, "lon": 116.58},
    }
    return StationState(
        station_id=station_id,
        **holding(profile),
        liveness=liveness,  # type: ignore[arg-type]
        liveness_since=since,
        last_heartbeat_at=since - timedelta(seconds=30),
    ).to_json()


def items_of(*states: dict[str, Any]) -> list[dict[str, Any]]:
    return [board_item(entry_from_state(s["station_id"], 0, s), ZONE) for s in states]


def test_an_item_holds_what_the_board_draws() -> None:
    [item] = items_of(stored("SY-0001", "offline", name="空港祥云工会驿站"))
    assert item == {
        "id": "SY-0001",
        "name": "空港祥云工会驿站",
        "street": "空港街道",
        "lat": 40.08,
        "lon": 116.58,
        "liveness": "offline",
        "liveness_since": "2026-12-02T14:55:00+08:00",
        "last_heartbeat_at": "2026-12-02T14:54:30+08:00",
    }


def test_items_are_decoded_again_only_when_a_station_changed() -> None:
    board = BoardItems(ZONE)
    a, b = (
        entry_from_state("SY-0001", 0, stored("SY-0001")),
        entry_from_state("SY-0002", 0, stored("SY-0002")),
    )
    first = board.items([a, b])
    again = board.items([a, b])
    assert [x is y for x, y in zip(first, again, strict=True)] == [True, True]
    b_offline = entry_from_state("SY-0002", 0, stored("SY-0002", "offline"))
    changed = board.items([a, b_offline])
    assert changed[0] is first[0]
    assert changed[1]["liveness"] == "offline"
    assert [i["id"] for i in board.items([b_offline])] == ["SY-0002"]  # SY-0001 is forgotten


def merged(*answers: dict[str, Any], missing: list[int] | None = None) -> dict[str, Any]:
    return merge_board(list(answers), missing or [], NOW, ZONE)


def test_the_merged_board_counts_every_liveness_and_orders_by_id() -> None:
    worker_a = local_board(items_of(stored("SY-0003", "offline"), stored("SY-0001", "online")), 0.4)
    worker_b = local_board(
        items_of(
            stored("SY-0002", "stale"),
            stored("SY-0004", "not_monitored", location={}),
        ),
        1.2,
    )
    board = merged(worker_a, worker_b)
    assert [s["id"] for s in board["stations"]] == ["SY-0001", "SY-0002", "SY-0003", "SY-0004"]
    assert board["by_liveness"] == {
        "online": 1,
        "stale": 1,
        "offline": 1,
        "unknown": 0,
        "not_monitored": 1,
    }
    assert list(board["by_liveness"]) == list(LIVENESS)
    assert board["total"] == 4
    assert board["unplaced"] == 1  # SY-0004 has no location: counted, not drawn
    assert board["stations"][3]["x"] is None
    assert all(s["x"] is not None for s in board["stations"][:3])
    assert board["data_age_s"] == 1.2  # the older of the two reports
    assert board["complete"] is True
    Board.model_validate(board)  # the shape the OpenAPI document publishes


def test_offline_stations_come_most_recently_offline_first() -> None:
    states = [
        stored(f"SY-000{i}", "offline", since=NOW - timedelta(minutes=minutes))
        for i, minutes in [(1, 30), (2, 2), (3, 90), (4, 10)]
    ]
    board = merged(local_board(items_of(*states, stored("SY-0005", "stale")), 0.1))
    assert board["offline"] == ["SY-0002", "SY-0004", "SY-0001", "SY-0003"]


def test_times_are_given_in_the_zone_of_the_answer() -> None:
    since = datetime(2026, 12, 1, 23, 30, tzinfo=UTC)
    board = merged(local_board(items_of(stored("SY-0001", "offline", since=since)), 0.1))
    [station] = board["stations"]
    assert station["liveness_since"] == "2026-12-02T07:30:00+08:00"
    assert station["last_heartbeat_at"] == "2026-12-02T07:29:30+08:00"
    assert board["as_of"] == "2026-12-02T15:00:00+08:00"
    assert board["timezone"] == "Asia/Shanghai"


@pytest.mark.parametrize(
    ("zone", "expected"),
    [
        pytest.param("UTC", "2026-12-01T23:30:00+00:00", id="UTC"),
        pytest.param("Europe/Berlin", "2026-12-02T00:30:00+01:00", id="Berlin"),
        pytest.param("America/New_York", "2026-12-01T18:30:00-05:00", id="New York"),
    ],
)
def test_times_follow_the_configured_zone(zone: str, expected: str) -> None:
    state = stored("SY-0001", "offline", since=datetime(2026, 12, 1, 23, 30, tzinfo=UTC))
    [item] = BoardItems(ZoneInfo(zone)).items([entry_from_state("SY-0001", 0, state)])
    assert item["liveness_since"] == expected


@pytest.mark.parametrize(
    ("ages", "expected"),
    [
        pytest.param([0.5, 7.0], 7.0, id="the oldest report counts"),
        pytest.param([0.5, math.inf], None, id="a worker that never reported: unknown"),
    ],
)
def test_data_age_is_the_oldest_worker_report(ages: list[float], expected: float | None) -> None:
    answers = [local_board([], age) for age in ages]
    assert merged(*answers)["data_age_s"] == expected


def test_missing_partitions_make_the_board_incomplete() -> None:
    board = merged(local_board(items_of(stored("SY-0001")), 0.1), missing=[1, 3])
    assert board["complete"] is False
    assert board["missing_partitions"] == [1, 3]


def test_street_labels_sit_amid_their_stations() -> None:
    west = {"lat": 40.10, "lon": 116.50}
    east = {"lat": 40.10, "lon": 116.70}
    board = merged(
        local_board(
            items_of(
                stored("SY-0001", street="后沙峪镇", location=west),
                stored("SY-0002", street="仁和镇", location=east),
                stored("SY-0003", street="仁和镇", location={"lat": 40.12, "lon": 116.70}),
            ),
            0.1,
        )
    )
    labels = {s["name"]: s for s in board["streets"]}
    assert set(labels) == {"后沙峪镇", "仁和镇"}
    assert labels["仁和镇"]["stations"] == 2
    assert labels["后沙峪镇"]["x"] < labels["仁和镇"]["x"]
    ys = [s["y"] for s in board["stations"] if s["street"] == "仁和镇"]
    assert labels["仁和镇"]["y"] == pytest.approx(sum(ys) / 2, abs=0.1)


def test_an_empty_network_has_no_map_and_zero_counts() -> None:
    board = merged(local_board([], 0.2))
    assert board["map"] is None
    assert board["total"] == 0
    assert set(board["by_liveness"].values()) == {0}
    Board.model_validate(board)

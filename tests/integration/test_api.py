"""The live-state API against a running worker: filters, nearby, summary, errors, auth, OpenAPI."""

from __future__ import annotations

import math
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from openapi_spec_validator import validate

from stationwatch.broker import EmbeddedBroker
from tests.factories import dumps, occupancy, profile, status
from tests.integration.harness import Producer, WorkerProcess, wait_for, worker_env
from tests.integration.test_liveness import Fleet, closed_now_hours

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token"  # noqa: S105 - the test worker's own token
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CENTER = (40.0800, 116.5800)


def great_circle_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Spherical law of cosines: independent of the worker's haversine."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    cos_angle = math.sin(p1) * math.sin(p2) + math.cos(p1) * math.cos(p2) * math.cos(
        math.radians(lon2 - lon1)
    )
    return 6_371_008.8 * math.acos(max(-1.0, min(1.0, cos_angle)))


class Network:
    """The stations of this module, with what the tests expect of each."""

    def __init__(self, token: str) -> None:
        self.token = token.upper()[:5]
        self.profiles: dict[str, dict[str, Any]] = {}
        self.beating: set[str] = set()
        # set by the fixture once it has sent them: occupancy counts, fresh and old, and a
        # station that reported itself closed
        self.crowded: list[str] = []
        self.old_count = ""
        self.reported_closed = ""

    def add(self, group: str, index: int, *, beating: bool = True, **overrides: Any) -> str:
        sid = f"AP-{group}{self.token}{index:02d}"
        # spread on a spiral around the centre, 150 m to ~6 km away
        angle, distance = index * 2.4 + len(self.profiles), 150.0 * (1 + len(self.profiles))
        lat = CENTER[0] + distance / 111_195 * math.cos(angle)
        lon = CENTER[1] + distance / (111_195 * math.cos(math.radians(CENTER[0]))) * math.sin(angle)
        overrides.setdefault("heartbeat_interval_s", 1)
        self.profiles[sid] = profile(
            sid, location={"lat": round(lat, 6), "lon": round(lon, 6)}, **overrides
        )
        if beating:
            self.beating.add(sid)
        return sid


@pytest.fixture(scope="module")
async def network(
    broker: EmbeddedBroker, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[WorkerProcess, Network]]:
    token = uuid.uuid4().hex[:8]
    tmp = tmp_path_factory.mktemp("api")
    env = worker_env(
        kafka_url=broker.url, database_url=database_url, token=token, data_dir=tmp / "data"
    )
    env.update(
        STATIONWATCH_API_TOKEN=TOKEN,
        STATIONWATCH_STALE_AFTER="2",
        STATIONWATCH_OFFLINE_AFTER="3",
        STATIONWATCH_OCCUPANCY_FRESH_S="60",
    )
    net = Network(token)
    for i in range(8):
        net.add("A", i, services=["water", "charging", "hot_meal"], category="standard")
    for i in range(4):
        net.add("B", i, services=["water", "toilet"], category="smart_24h", street="天竺镇")
    for i in range(3):
        net.add("S", i, beating=False)  # silent: offline
    for i in range(2):
        net.add("H", i, opening_hours=closed_now_hours())  # outside its hours
    for i in range(2):
        net.add("T", i, lifecycle="temporarily_closed")
    for i in range(2):
        net.add("N", i, beating=False, heartbeat_interval_s=None)  # no device
    worker = WorkerProcess(env, tmp / "worker.log").start()
    worker.headers = AUTH
    prefix = env["STATIONWATCH_TOPIC_PREFIX"]
    try:
        await worker.wait_healthy()
        async with Producer(broker.url, prefix) as producer:
            fleet = Fleet(producer)
            fleet.start()
            try:
                await fleet.register(net.profiles.values())
                fleet.beating.update(net.beating)
                now = datetime.now(UTC)
                crowded = sorted(net.beating)[:3]
                for n, sid in enumerate(crowded):  # fresh counts: 10 seats, 2 + n people
                    await producer.send("station.occupancy", sid, dumps(occupancy(sid, now, 2 + n)))
                old = sorted(net.beating)[3]
                long_ago = now - timedelta(minutes=10)
                await producer.send("station.occupancy", old, dumps(occupancy(old, long_ago, 1)))
                closed = sorted(s for s in net.beating if s.startswith("AP-A"))[-1]
                await producer.send("station.status", closed, dumps(status(closed, now, "closed")))
                await producer.flush()
                net.crowded, net.old_count, net.reported_closed = crowded, old, closed

                async def settled() -> bool:
                    listed: dict[str, Any] = (
                        await worker.get("/stations", liveness="offline")
                    ).json()
                    if listed.get("total") != 3:
                        return False
                    seen = [(await worker.get(f"/stations/{s}")).json() for s in [*crowded, old]]
                    shut = (await worker.get(f"/stations/{closed}")).json()
                    counts = [b.get("occupants") for b in seen]
                    sent = [2 + n for n in range(len(crowded))] + [1]
                    return counts == sent and shut.get("open_state") == "closed"

                await wait_for(
                    settled,
                    timeout_s=30,
                    what="the silent stations offline, the counts and the closure applied",
                )
                yield worker, net
            finally:
                await fleet.stop()
    finally:
        worker.stop()


async def test_one_station(network: tuple[WorkerProcess, Network]) -> None:
    worker, net = network
    sid = sorted(net.profiles)[0]
    body = (await worker.get(f"/stations/{sid}")).json()
    for field in (
        "station_id", "name", "category", "street", "location", "services", "lifecycle",
        "liveness", "liveness_since", "last_heartbeat_at", "open_state", "open_state_since",
        "scheduled_open", "occupants", "capacity", "occupancy_at",
    ):  # fmt: skip
        assert field in body, field
    assert body["location"] == net.profiles[sid]["location"]


def expected_ids(net: Network, **where: Any) -> list[str]:
    chosen = []
    for sid, prof in net.profiles.items():
        if all(prof.get(k) == v for k, v in where.items() if k != "service"):
            if "service" in where and where["service"] not in prof["services"]:
                continue
            chosen.append(sid)
    return sorted(chosen)


def by_prefix(net: Network, group: str) -> list[str]:
    return sorted(s for s in net.profiles if s.startswith(f"AP-{group}"))


FILTERS: dict[str, tuple[dict[str, str], Any]] = {
    "all": ({}, lambda n: sorted(n.profiles)),
    "category": ({"category": "smart_24h"}, lambda n: expected_ids(n, category="smart_24h")),
    "street": ({"street": "天竺镇"}, lambda n: expected_ids(n, street="天竺镇")),
    "service": ({"service": "hot_meal"}, lambda n: expected_ids(n, service="hot_meal")),
    "lifecycle": (
        {"lifecycle": "temporarily_closed"},
        lambda n: expected_ids(n, lifecycle="temporarily_closed"),
    ),
    "offline": ({"liveness": "offline"}, lambda n: by_prefix(n, "S")),
    "not-monitored": ({"liveness": "not_monitored"}, lambda n: by_prefix(n, "N")),
    "closed-now": (
        {"open_now": "false"},
        lambda n: sorted([*by_prefix(n, "H"), *by_prefix(n, "T"), n.reported_closed]),
    ),
}


@pytest.mark.parametrize("case", FILTERS)
async def test_filters(network: tuple[WorkerProcess, Network], case: str) -> None:
    worker, net = network
    params, expect = FILTERS[case]
    ours = {s for s in net.profiles}
    body = (await worker.get("/stations", limit="1000", **params)).json()
    got = [item["station_id"] for item in body["items"] if item["station_id"] in ours]
    assert got == expect(net)
    assert body["complete"] is True


async def test_paging_walks_the_sorted_list(network: tuple[WorkerProcess, Network]) -> None:
    worker, _ = network
    everything = (await worker.get("/stations", limit="1000")).json()
    ids = [item["station_id"] for item in everything["items"]]
    assert ids == sorted(ids)
    assert everything["total"] == len(ids)
    page = (await worker.get("/stations", limit="5", offset="5")).json()
    assert [item["station_id"] for item in page["items"]] == ids[5:10]
    assert (page["total"], page["limit"], page["offset"]) == (len(ids), 5, 5)


async def test_nearby_is_nearest_first_open_and_alive(
    network: tuple[WorkerProcess, Network],
) -> None:
    worker, net = network
    body = (
        await worker.get(
            "/stations/nearby", lat=str(CENTER[0]), lon=str(CENTER[1]), radius_m="5000", limit="100"
        )
    ).json()
    items = body["items"]
    # open now and not offline: beating or device-less, active, in hours, not reported closed
    eligible = {s for s in net.profiles if s[3] in "ABN" and s != net.reported_closed}
    ours = [item for item in items if item["station_id"] in net.profiles]
    assert {item["station_id"] for item in ours} == {
        s
        for s in eligible
        if great_circle_m(
            *CENTER, net.profiles[s]["location"]["lat"], net.profiles[s]["location"]["lon"]
        )
        <= 5000
    }
    distances = [item["distance_m"] for item in items]
    assert distances == sorted(distances)
    for item in ours:
        loc = net.profiles[item["station_id"]]["location"]
        assert item["distance_m"] == pytest.approx(
            great_circle_m(*CENTER, loc["lat"], loc["lon"]), abs=0.5
        )
        assert item["open_now"] is True
        assert item["liveness"] != "offline"
    seats = {item["station_id"]: item for item in ours}
    assert {*net.crowded, net.old_count} <= seats.keys()  # all within 5 km, open and alive
    for n, sid in enumerate(net.crowded):
        assert seats[sid]["free_seats"] == 10 - (2 + n), sid
        assert seats[sid]["occupancy_age_s"] < 60, sid
    assert seats[net.old_count]["free_seats"] is None
    assert seats[net.old_count]["occupancy_age_s"] >= 600
    assert body["complete"] is True
    datetime.fromisoformat(body["as_of"])

    hot = (
        await worker.get(
            "/stations/nearby",
            lat=str(CENTER[0]),
            lon=str(CENTER[1]),
            radius_m="50000",
            service="toilet",
        )
    ).json()
    assert {i["station_id"] for i in hot["items"] if i["station_id"] in net.profiles} == {
        s for s in eligible if "toilet" in net.profiles[s]["services"]
    }
    two = (
        await worker.get("/stations/nearby", lat=str(CENTER[0]), lon=str(CENTER[1]), limit="2")
    ).json()
    assert [i["station_id"] for i in two["items"]] == [i["station_id"] for i in items[:2]]


async def test_summary_counts(network: tuple[WorkerProcess, Network]) -> None:
    worker, _ = network
    body = (await worker.get("/summary")).json()
    listed = (await worker.get("/stations", limit="1000")).json()
    assert body["total"] == listed["total"]
    assert sum(body["by_liveness"].values()) == body["total"]
    assert body["by_liveness"].get("offline", 0) >= 3
    assert body["by_category"]["smart_24h"] >= 4
    assert body["by_lifecycle"]["temporarily_closed"] >= 2
    assert body["complete"] is True


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/stations/sy-1", {}, "station_id"),
        ("/stations/nearby", {"lat": "91", "lon": "116"}, "lat"),
        ("/stations/nearby", {"lat": "40", "lon": "abc"}, "lon"),
        ("/stations/nearby", {"lon": "116"}, "lat"),
        ("/stations/nearby", {"lat": "40", "lon": "116", "radius_m": "0"}, "radius_m"),
        ("/stations/nearby", {"lat": "40", "lon": "116", "radius_m": "1e9"}, "radius_m"),
        ("/stations/nearby", {"lat": "nan", "lon": "116"}, "lat"),
        ("/stations/nearby", {"lat": "40", "lon": "116", "limit": "101"}, "limit"),
        ("/stations", {"liveness": "sleepy"}, "liveness"),
        ("/stations", {"category": "castle"}, "category"),
        ("/stations", {"service": "sauna"}, "service"),
        ("/stations", {"open_now": "maybe"}, "open_now"),
        ("/stations", {"limit": "5000"}, "limit"),
        ("/stations", {"offset": "-1"}, "offset"),
        ("/stations", {"colour": "red"}, "colour"),
        ("/summary", {"x": "1"}, "x"),
    ],
)
async def test_bad_parameters_get_400_naming_the_parameter(
    network: tuple[WorkerProcess, Network], path: str, params: dict[str, str], parameter: str
) -> None:
    worker, _ = network
    response = await worker.get(path, **params)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["parameter"] == parameter
    assert parameter in body["error"]


async def test_unknown_station_is_404_and_the_token_is_required(
    network: tuple[WorkerProcess, Network],
) -> None:
    worker, net = network
    assert (await worker.get("/stations/ZZ-NOSUCH")).status_code == 404
    sid = sorted(net.profiles)[0]
    async with httpx.AsyncClient(base_url=worker.url, timeout=5) as client:
        for path in (f"/stations/{sid}", "/stations", "/summary", "/openapi.json"):
            assert (await client.get(path)).status_code == 401, path
            wrong = {"Authorization": "Bearer nope"}
            assert (await client.get(path, headers=wrong)).status_code == 401, path
        assert (await client.get("/health")).status_code == 200
        assert (await client.get("/metrics")).status_code == 200


async def test_station_current_follows_the_live_state(
    network: tuple[WorkerProcess, Network], database_url: str
) -> None:
    _, net = network
    ids = sorted(net.profiles)

    async def mirrored() -> bool:
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT station_id, liveness, last_heartbeat_at FROM stationwatch.station_current"
                " WHERE station_id = ANY(%s)",
                (ids,),
            ).fetchall()
        if len(rows) != len(ids):
            return False
        newest = max(r[2] for r in rows if r[2] is not None)
        live = {r[0]: r[1] for r in rows}
        offline = {s for s in ids if s.startswith("AP-S")}
        return all(live[s] == "offline" for s in offline) and datetime.now(
            UTC
        ) - newest < timedelta(seconds=3)

    await wait_for(mirrored, timeout_s=10, what="station_current to mirror the live state")


async def test_openapi_document_is_valid_and_lists_every_endpoint(
    network: tuple[WorkerProcess, Network],
) -> None:
    worker, _ = network
    document = (await worker.get("/openapi.json")).json()
    validate(document)
    assert set(document["paths"]) == {
        "/stations/{station_id}", "/stations", "/stations/nearby", "/summary", "/health",
        "/metrics", "/openapi.json", "/board.json", "/",
    }  # fmt: skip


def test_schemathesis_finds_no_server_error(
    network: tuple[WorkerProcess, Network], tmp_path: Path
) -> None:
    worker, _ = network
    result = subprocess.run(
        [
            sys.executable, "-m", "schemathesis.cli", "run", f"{worker.url}/openapi.json",
            "--checks", "not_a_server_error,status_code_conformance,response_schema_conformance",
            "--header", f"Authorization: Bearer {TOKEN}",
            "--max-examples", "40", "--phases", "examples,coverage,fuzzing",
            "--exclude-path", "/metrics", "--seed", "1", "--request-timeout", "10",
        ],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


async def test_two_workers_answer_alike_for_every_station(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str
) -> None:
    """Lists, nearby and the summary fan out; any worker gives the same complete answer."""
    env_a = worker_env(
        kafka_url=broker.url, database_url=database_url, token=unique, data_dir=tmp_path / "a"
    )
    env_b = {**env_a, "STATIONWATCH_DATA_DIR": str(tmp_path / "b")}
    env_b["STATIONWATCH_WEB_PORT"] = str(int(env_a["STATIONWATCH_WEB_PORT"]) + 1)
    net = Network(unique)
    for i in range(24):
        net.add("F", i, heartbeat_interval_s=None)
    first = WorkerProcess(env_a, tmp_path / "a.log").start()
    second = WorkerProcess(env_b, tmp_path / "b.log").start()
    try:
        await first.wait_healthy()
        await second.wait_healthy()
        async with Producer(broker.url, env_a["STATIONWATCH_TOPIC_PREFIX"]) as producer:
            for sid, prof in net.profiles.items():
                await producer.send("station.registry", sid, dumps(prof))
            await producer.flush()

        async def both_complete() -> bool:
            for worker in (first, second):
                body = (await worker.get("/stations", limit="1000")).json()
                if body.get("total") != len(net.profiles) or not body.get("complete"):
                    return False
            return True

        await wait_for(both_complete, timeout_s=60, what="both workers to list every station")
        owned = [(await w.get("/health")).json()["partitions"] for w in (first, second)]
        assert all(owned), f"both workers must own partitions: {owned}"
        answers = []
        for worker in (first, second):
            listed = (await worker.get("/stations", limit="1000")).json()
            near = (
                await worker.get(
                    "/stations/nearby",
                    lat=str(CENTER[0]),
                    lon=str(CENTER[1]),
                    radius_m="50000",
                    limit="100",
                )
            ).json()
            summary = (await worker.get("/summary")).json()
            board = (await worker.get("/board.json")).json()
            answers.append(
                (
                    [i["station_id"] for i in listed["items"]],
                    [(i["station_id"], i["distance_m"]) for i in near["items"]],
                    summary["by_category"],
                    summary["total"],
                    [(s["id"], s["liveness"], s["x"], s["y"]) for s in board["stations"]],
                    board["by_liveness"],
                )
            )
            assert near["complete"]
            assert summary["complete"]
            assert board["complete"]
        assert answers[0] == answers[1]
        assert answers[0][0] == sorted(net.profiles)
        assert len(answers[0][1]) == len(net.profiles)
        assert answers[0][3] == len(net.profiles)
        assert [s[0] for s in answers[0][4]] == sorted(net.profiles)  # the board has them all
    finally:
        first.stop()
        second.stop()

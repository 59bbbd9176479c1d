"""The dashboards against real data. A real worker and notifier run on the embedded broker and
a migrated database while the simulator sends a fleet and a few stations of the test's own drop
out and return; then every SQL query of every dashboard (Grafana's variables and macros
expanded) runs on that database, and every PromQL expression is evaluated by a real Prometheus
that scraped the worker (its API server serves its /metrics) and the notifier all along."""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from stationwatch.broker import EmbeddedBroker
from stationwatch.registry.commands import inspect
from stationwatch.settings import Settings
from stationwatch.simulator import run_simulator
from tests.factories import dumps, occupancy, profile, status
from tests.integration.grafana import (
    Expansion,
    Query,
    TimeRange,
    interpolate,
    prometheus_value,
    queries,
    seconds,
    sql_value,
    variables,
)
from tests.integration.harness import Producer, WorkerProcess, wait_for
from tests.integration.notifier_harness import (
    NotifierProcess,
    Sink,
    notifier_env,
    webhook_config,
    write_config,
)
from tests.integration.prometheus_harness import (
    PrometheusProcess,
    prometheus_binary,
    promtool_binary,
    promtool_check_metrics,
)
from tests.integration.test_liveness import (
    OFFLINE_AFTER,
    Fleet,
    liveness_env,
    running_fleet,
    wait_online,
)

pytestmark = pytest.mark.integration

SIMULATED = 24  # stations of the simulated fleet (2 s heartbeats)
SCRAPE_S = 1
SQL_QUERIES = list(queries("sql"))
PROMQL_QUERIES = list(queries("promql"))
# PostgreSQL type oids
NUMERIC = {20, 21, 23, 700, 701, 1700}
TEXT = {25, 1043}
TIMESTAMPTZ = 1184
# Grafana's intervals, from which it picks the smallest at least range / data points
NICE = ["30s", "1m", "2m", "5m", "10m", "15m", "30m", "1h", "3h", "6h", "12h", "1d"]
DATA_POINTS = 1000  # about a panel's width in pixels
# PromQL that must have shown a value above 0 during the run, not only return series: the work
# the scenario certainly did (panel title → refIds).
MUST_MOVE = {
    "Input events per second, by topic": {"A"},
    "Processing delay: event time → live state": {"A", "B", "C", "D"},
    "Database rows written per second, by table": {"A", "B"},
    "Dead letters per second, by reason": {"A"},
    "Alerts emitted per minute, by kind and state": {"A", "B"},
    "Notices in the time range, by receiver and outcome": {"A"},
    "API answer time, by route": {"A", "B"},
    "Scrape targets up": {"A"},
}


@dataclass
class Stack:
    database_url: str
    worker: WorkerProcess
    notifier: NotifierProcess
    prometheus: PrometheusProcess | None
    started: float  # epoch seconds, when Prometheus scraped everything
    own: str  # drops out (stale, offline, notices) and returns; counts and status reports
    silent: str  # drops out for good: its offline episode stays open
    quiet: str  # registered without a device, never heard: no data


def ids(token: str) -> tuple[str, str, str]:
    tag = token[:6].upper()
    return f"DB-O{tag}", f"DB-S{tag}", f"DB-Q{tag}"


def rows(database_url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, params).fetchall()


async def bad_input(producer: Producer, station_id: str) -> None:
    """What a broken device sends: not JSON; a negative count."""
    await producer.send("station.heartbeat", station_id, b"{not json")
    wrong = occupancy(station_id, datetime.now(UTC), -3)
    await producer.send("station.occupancy", station_id, dumps(wrong))
    await producer.flush()


async def play(
    stack: Stack, fleet: Fleet, broker: EmbeddedBroker, env: dict[str, str], sink: Sink
) -> None:
    """The scenario the dashboards then show; ``fleet`` goes on beating for the stations
    online at the end while the tests look."""
    url, own, silent, quiet = stack.database_url, stack.own, stack.silent, stack.quiet
    prefix = env["STATIONWATCH_TOPIC_PREFIX"]
    settings = Settings(
        kafka=broker.url, topic_prefix=prefix, partitions=int(env["STATIONWATCH_PARTITIONS"])
    )
    simulation = asyncio.create_task(
        run_simulator(settings, stations=SIMULATED, duration=None, seed=5, heartbeat_interval_s=2)
    )

    async def has(sql: str, *params: Any) -> bool:
        return bool(rows(url, sql, *params))

    try:
        send = fleet.producer.send
        await fleet.register(
            [
                profile(own, name="空港祥云工会驿站", heartbeat_interval_s=1, capacity=6),
                profile(silent, name="后沙峪镇工会驿站", street="后沙峪镇", heartbeat_interval_s=1),
                profile(quiet, name="无设备驿站", heartbeat_interval_s=None),
            ]
        )
        fleet.beating.update({own, silent})
        await wait_online(stack.worker, [own, silent], timeout_s=60)
        now = datetime.now(UTC)
        await send("station.status", own, dumps(status(own, now, "open")))
        for n, people in enumerate((2, 4, 7, 5)):
            at = now + timedelta(seconds=n)
            await send("station.occupancy", own, dumps(occupancy(own, at, people, capacity=6)))
        await bad_input(fleet.producer, own)
        # the registry's upkeep: the device-less station closed for a while, an inspection
        await fleet.register(
            [
                profile(
                    quiet,
                    name="无设备驿站",
                    heartbeat_interval_s=None,
                    lifecycle="temporarily_closed",
                    closure_reason="供暖检修",
                    changed_by="王芳",
                    changed_via="stations close",
                    updated_at=now.isoformat(),
                )
            ]
        )
        inspect(
            Settings(database_url=url),
            own,
            result="issues",
            note="饮水机漏水",
            by="张伟",
            at=now,
        )
        await wait_for(
            lambda: has(
                "SELECT 1 FROM stationwatch.stations WHERE station_id = %s"
                " AND lifecycle = 'temporarily_closed'",
                quiet,
            ),
            timeout_s=30,
            what=f"{quiet} closed in the registry",
        )

        fleet.beating.difference_update({own, silent})
        offline = (
            "SELECT alert_id FROM stationwatch.alerts WHERE station_id = %s AND kind = 'offline'"
        )
        await wait_for(lambda: has(offline, own), timeout_s=60, what=f"{own} offline")
        (episode,) = (row[0] for row in rows(url, offline, own))
        notified = (
            "SELECT 1 FROM stationwatch.deliveries WHERE %s = ANY(alert_ids)"
            " AND outcome = 'delivered'"
        )
        await wait_for(
            lambda: has(notified, episode),
            timeout_s=60,
            what=f"a delivered notice of {own} offline",
        )
        fleet.beating.add(own)
        await wait_for(
            lambda: has(offline + " AND ends_at IS NOT NULL", own),
            timeout_s=60,
            what=f"{own} back online",
        )
        later = datetime.now(UTC)
        await send("station.status", own, dumps(status(own, later, "closed", reason="manual")))
        back = later + timedelta(seconds=1)
        await send("station.status", own, dumps(status(own, back, "open", reason="manual")))
        await bad_input(fleet.producer, own)
        await stack.worker.get(f"/stations/{own}")
        await stack.worker.get("/summary")

        async def resolved_told() -> bool:
            return any(
                a["labels"]["station_id"] == own and a["labels"]["kind"] == "offline"
                for a in sink.alerts("resolved")
            )

        await wait_for(resolved_told, timeout_s=60, what=f"{own} told resolved")
        await wait_for(
            lambda: has(
                "SELECT 1 FROM stationwatch.station_current WHERE station_id = %s"
                " AND open_state = 'open' AND liveness = 'online'",
                own,
            ),
            timeout_s=30,
            what=f"{own} open and online in station_current",
        )
    finally:
        simulation.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await simulation
    assert sink.bodies  # the notifier told the webhook
    simulated = rows(url, "SELECT count(*) FROM stationwatch.heartbeats WHERE station_id ~ '^SY-'")
    assert simulated[0][0] > 0, "the simulated fleet's heartbeats were written"


@pytest.fixture(scope="module")
async def stack(
    broker: EmbeddedBroker, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    tmp = tmp_path_factory.mktemp("dashboards")
    token = uuid.uuid4().hex[:8]
    env = liveness_env(broker, database_url, token, tmp / "data")
    sink = await Sink().start()
    config = write_config(tmp / "notify.yaml", webhook_config(sink.url))
    worker = WorkerProcess(env, tmp / "worker.log").start()
    notifier = NotifierProcess(notifier_env(env, config), tmp / "notifier.log").start()
    prometheus: PrometheusProcess | None = None
    try:
        if prometheus_binary() is not None:
            notifier_port = notifier.env["STATIONWATCH_NOTIFIER_PORT"]
            prometheus = PrometheusProcess(
                tmp / "prometheus",
                {
                    "stationwatch-worker": [f"127.0.0.1:{worker.port}"],
                    "stationwatch-notifier": [f"127.0.0.1:{notifier_port}"],
                },
                scrape_interval_s=SCRAPE_S,
            ).start()
        await worker.wait_healthy()
        await notifier.wait_healthy()
        if prometheus is not None:
            await prometheus.wait_scraping()
        started = time.time()
        running = Stack(database_url, worker, notifier, prometheus, started, *ids(token))
        async with running_fleet(broker, env["STATIONWATCH_TOPIC_PREFIX"]) as fleet:
            await play(running, fleet, broker, env, sink)
            if prometheus is not None:
                await asyncio.sleep(3 * SCRAPE_S)  # the last of it scraped
            yield running
    finally:
        if prometheus is not None:
            prometheus.stop()
        notifier.stop()
        worker.stop()
        await sink.stop()


# -- SQL --------------------------------------------------------------------------------------
def time_range(dashboard: dict[str, Any]) -> tuple[TimeRange, str]:
    """The dashboard's default range (``now-24h`` … ``now``) and the $__interval Grafana would
    use for it."""
    start = dashboard["time"]["from"]
    assert dashboard["time"]["to"] == "now"
    match = re.fullmatch(r"now-(\d+[smhdw])", start)
    assert match, start
    span = seconds(match.group(1))
    end = datetime.now(UTC)
    interval = next((n for n in NICE if seconds(n) >= span / DATA_POINTS), NICE[-1])
    return TimeRange(end - timedelta(seconds=span), end), interval


def sql_variables(stack: Stack, dashboard: dict[str, Any], station: str) -> dict[str, str]:
    """Every variable as a user leaves it: query variables with "All" get every value their
    query returns, others their default; ``$station`` is ``station``."""
    chosen: dict[str, str] = {}
    for name, variable in variables(dashboard).items():
        if variable["type"] == "custom":
            chosen[name] = sql_value(variable, [variable["current"]["value"]])
        elif name == "station":
            chosen[name] = sql_value(variable, [station])
        else:
            values = [str(r[0]) for r in rows(stack.database_url, variable["query"])]
            assert values, f"variable {name} has no values"
            chosen[name] = sql_value(variable, values)
    return chosen


def expand(stack: Stack, query: Query, station: str) -> str:
    span, interval = time_range(query.dashboard)
    chosen = sql_variables(stack, query.dashboard, station)
    expanded = Expansion(span, interval, chosen).sql(query.text)
    assert "$" not in expanded, expanded
    return expanded


def run(stack: Stack, sql: str) -> tuple[list[Any], list[tuple[Any, ...]]]:
    with psycopg.connect(stack.database_url) as conn:
        cursor = conn.execute(sql)
        return list(cursor.description or []), cursor.fetchall()


def check_columns(query: Query, columns: list[Any], answer: list[tuple[Any, ...]]) -> None:
    """The columns the panel needs, of the types its visualisation reads."""
    names = [c.name for c in columns]
    types = {c.name: c.type_code for c in columns}
    assert len(set(names)) == len(names), names
    kind = query.panel["type"]
    if query.target["format"] == "time_series" or kind == "state-timeline":
        assert names[0] == "time", names
        assert types["time"] in NUMERIC | {TIMESTAMPTZ}, types
        times = [row[0] for row in answer]
        assert times == sorted(times), "a time series must come ordered by time"
    if query.target["format"] == "time_series":
        for name in names[1:]:
            assert types[name] in NUMERIC or (name == "metric" and types[name] in TEXT), types
    if kind == "state-timeline":
        assert len(names) == 2, names
        assert types[names[1]] in TEXT, types
    if kind in {"stat", "bargauge", "piechart"}:
        assert any(types[n] in NUMERIC for n in names), types
    if kind == "geomap":
        assert {"latitude", "longitude"} <= set(names), names
    field_config = query.panel.get("fieldConfig", {})
    for override in field_config.get("overrides", []):
        matcher = override["matcher"]
        if matcher["id"] == "byName":
            assert matcher["options"] in names, (matcher, names)
        elif matcher["id"] == "byRegexp":
            assert any(re.fullmatch(matcher["options"], n) for n in names), (matcher, names)
    for link in field_config.get("defaults", {}).get("links", []):
        for name in re.findall(r"__data\.fields\.(\w+)", link["url"]):
            assert name in names, (link, names)


@pytest.mark.parametrize("query", SQL_QUERIES, ids=lambda q: q.id)
async def test_every_sql_query_answers_with_the_panels_columns_and_rows(
    stack: Stack, query: Query
) -> None:
    columns, answer = run(stack, expand(stack, query, stack.own))
    check_columns(query, columns, answer)
    assert answer, f"no rows for {query.panel['title']!r}, though the data exists"
    if query.panel["type"] == "stat":
        assert any(value is not None for value in answer[0]), answer


@pytest.mark.parametrize(
    "query",
    [q for q in SQL_QUERIES if q.dashboard["uid"] == "stationwatch-station"],
    ids=lambda q: q.id,
)
async def test_a_station_never_heard_from_shows_empty_panels_not_errors(
    stack: Stack, query: Query
) -> None:
    columns, answer = run(stack, expand(stack, query, stack.quiet))
    check_columns(query, columns, answer)
    if query.panel["title"] == "Station":
        assert [row[1] for row in answer] == ["无设备驿站"]


async def test_the_station_variable_lists_every_station_with_its_chinese_name(
    stack: Stack,
) -> None:
    dashboard = next(
        q.dashboard for q in SQL_QUERIES if q.dashboard["uid"] == "stationwatch-station"
    )
    listed = dict(
        (value, text)
        for text, value in rows(stack.database_url, variables(dashboard)["station"]["query"])
    )
    names = dict(rows(stack.database_url, "SELECT station_id, name FROM stationwatch.stations"))
    assert set(listed) == set(names)
    assert listed[stack.own] == f"{stack.own} 空港祥云工会驿站"
    simulated = [text for value, text in listed.items() if value.startswith("SY-")]
    assert len(simulated) == SIMULATED
    assert all(re.search(r"[\u4e00-\u9fff]", text) for text in simulated)


def panel_rows(stack: Stack, uid: str, title: str, station: str = "") -> list[dict[str, Any]]:
    """What one panel shows (its first query), as dicts by column."""
    (query,) = [
        q
        for q in SQL_QUERIES
        if q.dashboard["uid"] == uid and q.panel["title"] == title and q.target["refId"] == "A"
    ]
    columns, answer = run(stack, expand(stack, query, station or stack.own))
    return [dict(zip([c.name for c in columns], row, strict=True)) for row in answer]


async def test_the_station_dashboard_shows_the_outage_and_its_notices(stack: Stack) -> None:
    uid = "stationwatch-station"
    timeline = [r["liveness"] for r in panel_rows(stack, uid, "Liveness")]
    assert "offline" in timeline
    assert timeline[-1] == "online"  # the state now closes the timeline
    gaps = panel_rows(stack, uid, "Heartbeat gaps")
    longest = max(r["longest gap (s)"] or 0 for r in gaps)
    assert longest >= OFFLINE_AFTER  # the silence that made it offline (1 s heartbeats)
    assert {r["heartbeat interval (s)"] for r in gaps} == {1}
    openings = [r["open_state"] for r in panel_rows(stack, uid, "Open or closed (as reported)")]
    assert openings[-3:] == ["closed", "open", "open"]
    people = panel_rows(stack, uid, "People inside against capacity")
    assert max(r["most people"] for r in people) == 7
    assert {r["capacity"] for r in people} == {6}
    episodes = panel_rows(stack, uid, "Alert episodes")
    assert ("offline", "resolved") in {(r["kind"], r["state"]) for r in episodes}
    notices = panel_rows(stack, uid, "Notices sent about the station")
    assert "delivered" in {r["outcome"] for r in notices}
    assert all(r["receiver"] == "hook" for r in notices)


async def test_the_availability_dashboard_ranks_the_stations_that_dropped_out(
    stack: Stack,
) -> None:
    uid = "stationwatch-availability"
    worst = panel_rows(stack, uid, "Worst ten stations, last 7 days")
    ranked = [r["station_id"] for r in worst]
    assert stack.silent in ranked
    assert stack.own in ranked
    assert ranked.index(stack.silent) < ranked.index(stack.own)  # offline until now: worse
    by_id = {r["station_id"]: r for r in worst}
    assert by_id[stack.silent]["name"] == "后沙峪镇工会驿站"
    assert 0 < by_id[stack.own]["availability"] < 100
    assert [r["availability"] for r in worst] == sorted(r["availability"] for r in worst)
    (share,) = panel_rows(stack, uid, "Stations meeting the target")
    assert share["stations meeting it"] < share["stations monitored"]
    expected = 100 * share["stations meeting it"] / share["stations monitored"]
    assert float(share["share meeting the target"]) == pytest.approx(expected)
    streets = {r["metric"] for r in panel_rows(stack, uid, "Availability by street, by day")}
    assert {"空港街道", "后沙峪镇"} <= streets


# -- Prometheus --------------------------------------------------------------------------------
def need_prometheus(stack: Stack) -> PrometheusProcess:
    if stack.prometheus is None:
        pytest.skip(
            "Debian's prometheus is not installed (apt-get install prometheus; .ci/run does): "
            "the dashboards' PromQL cannot be evaluated"
        )
    return stack.prometheus


def promql(stack: Stack, query: Query, end: float) -> str:
    """Variables as Grafana fills them: "All" instances, $__interval the query step,
    $__rate_interval max($__interval + scrape interval, 4 × scrape interval), $__range the
    whole run."""
    chosen = {
        name: prometheus_value(variable, None)
        for name, variable in variables(query.dashboard).items()
    }
    step = SCRAPE_S
    chosen |= {
        "__interval": f"{step}s",
        "__rate_interval": f"{max(step + SCRAPE_S, 4 * SCRAPE_S)}s",
        "__range": f"{math.ceil(end - stack.started)}s",
    }
    expanded = interpolate(query.text, chosen)
    assert "$" not in expanded, expanded
    return expanded


def values_of(result: list[dict[str, Any]]) -> list[float]:
    samples = [s for series in result for s in series.get("values", [series.get("value")])]
    return [float(value) for _, value in samples]


@pytest.mark.parametrize("query", PROMQL_QUERIES, ids=lambda q: q.id)
async def test_every_promql_expression_returns_series(stack: Stack, query: Query) -> None:
    prometheus = need_prometheus(stack)
    end = time.time()
    expr = promql(stack, query, end)
    if query.target.get("instant"):
        result = await prometheus.query(expr, end)
    else:
        result = await prometheus.query_range(expr, stack.started, end, SCRAPE_S)
    assert result, f"no series for {expr}"
    if query.target["refId"] in MUST_MOVE.get(query.panel["title"], set()):
        moved = [v for v in values_of(result) if math.isfinite(v) and v > 0]
        assert moved, f"{expr} never above 0 during the run"


async def test_the_instance_variable_lists_the_worker_and_the_notifier(stack: Stack) -> None:
    prometheus = need_prometheus(stack)
    dashboard = next(
        q.dashboard for q in PROMQL_QUERIES if q.dashboard["uid"] == "stationwatch-pipeline"
    )
    definition = variables(dashboard)["instance"]["query"]["query"]
    match = re.fullmatch(r"label_values\((.+), (\w+)\)", definition)
    assert match, definition
    listed = await prometheus.label_values(match.group(2), match.group(1))
    notifier_port = stack.notifier.env["STATIONWATCH_NOTIFIER_PORT"]
    assert set(listed) == {f"127.0.0.1:{stack.worker.port}", f"127.0.0.1:{notifier_port}"}


@pytest.mark.parametrize("process", ["worker", "notifier"])
async def test_promtool_finds_no_problem_in_the_metrics(stack: Stack, process: str) -> None:
    if promtool_binary() is None:
        pytest.skip("Debian's promtool is not installed (apt-get install prometheus)")
    target = stack.worker if process == "worker" else stack.notifier
    text = (await target.get("/metrics")).text
    assert "stationwatch_" in text
    code, said = promtool_check_metrics(text)
    assert code == 0, said
    assert said.strip() == "", said

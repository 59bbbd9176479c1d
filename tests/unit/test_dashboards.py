"""Dashboards as shipped: valid, stable uids, and every query names something that exists."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from stationwatch.metrics import ApiMetrics, NotifierMetrics, WorkerMetrics
from tests.integration.grafana import Expansion, TimeRange, prometheus_value, sql_value

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
DATASOURCES = ROOT / "deploy" / "grafana" / "provisioning" / "datasources"
CONTRACT_RELATIONS = {
    "stations", "heartbeats", "occupancy", "status_events", "liveness_changes", "alerts",
    "station_current", "occupancy_5m", "heartbeats_1h", "availability_daily",
}  # fmt: skip
# The pipeline's own state (README, "Never a stale picture"), readable by dashboards.
PIPELINE_RELATIONS = {"pipeline_status"}
# availability_daily for a range of days, reading only what it needs (migration 0009)
FUNCTIONS = {"availability_between"}
# beyond the contract: the registry's history, inspections and patrols (migration 0007)
REGISTRY_RELATIONS = {
    "station_history", "inspections", "patrol_policy", "stations_patrol", "stations_overdue",
}  # fmt: skip
# The notifier's relations the README names as readable by dashboards.
NOTIFIER_RELATIONS = {"deliveries", "notices", "notice_attempts", "suppressed_alerts", "silences"}
# Dashboards by file and uid: links and bookmarks use the uids, so they never change.
UIDS = {
    "network-overview": "stationwatch-overview",
    "station": "stationwatch-station",
    "availability": "stationwatch-availability",
    "pipeline": "stationwatch-pipeline",
    "station-registry": "stationwatch-registry",
}
PROMETHEUS_BUILTINS = {"up"}  # series Prometheus itself makes for every target
GRAFANA_VARIABLES = {"__interval", "__interval_ms", "__rate_interval", "__range", "__range_s"}
MACRO = re.compile(r"\$__(timeFilter|timeFrom|timeTo|timeGroup|timeGroupAlias)\(")
VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)")


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return loaded


def targets(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for panel in dashboard["panels"] for t in panel.get("targets", [])]


def variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query", "")
    return str(query["query"] if isinstance(query, dict) else query)


def provisioned_uids() -> set[str]:
    uids = set()
    for path in DATASOURCES.glob("*.yml"):
        for source in yaml.safe_load(path.read_text("utf-8"))["datasources"]:
            uids.add(source["uid"])
    return uids


def metric_names() -> set[str]:
    registry = CollectorRegistry()
    WorkerMetrics.create(registry)
    ApiMetrics.create(registry)
    NotifierMetrics.create(registry)
    names = set()
    for family in registry.collect():
        names.add(family.name)
        if family.type == "counter":  # exposed with the _total suffix
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names.update(f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
    return names


def check_sql(sql: str) -> None:
    relations = set(re.findall(r"stationwatch\.([a-z_0-9]+)", sql))
    assert relations
    allowed = (
        CONTRACT_RELATIONS
        | NOTIFIER_RELATIONS
        | PIPELINE_RELATIONS
        | REGISTRY_RELATIONS
        | FUNCTIONS
    )
    assert relations <= allowed, relations - allowed


def check_promql(expr: str, metrics: set[str]) -> None:
    used = set(re.findall(r"\b(stationwatch_[a-z_]+)\b", expr))
    builtins = {name for name in PROMETHEUS_BUILTINS if re.search(rf"\b{name}\{{", expr)}
    assert used | builtins
    assert used <= metrics, used - metrics


def test_there_are_dashboards_with_unique_fixed_uids() -> None:
    uids = {path.stem: load(path)["uid"] for path in DASHBOARDS}
    assert {stem: uids.get(stem) for stem in UIDS} == UIDS
    assert all(uids.values())
    assert len(set(uids.values())) == len(uids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_query_uses_a_provisioned_datasource_and_known_names(path: Path) -> None:
    dashboard = load(path)
    uids = provisioned_uids()
    metrics = metric_names()
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(set(ids)) == len(ids)
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] in uids
        assert panel.get("targets"), panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(set(refs)) == len(refs)
    for target in targets(dashboard):
        assert target["datasource"]["uid"] in uids
        if "rawSql" in target:
            check_sql(target["rawSql"])
        else:
            check_promql(target["expr"], metrics)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        assert variable["datasource"]["uid"] in uids
        if variable["datasource"]["type"] == "prometheus":
            check_promql(variable_query(variable), metrics | PROMETHEUS_BUILTINS)
        else:
            check_sql(variable_query(variable))


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_variable_a_query_uses_is_defined(path: Path) -> None:
    dashboard = load(path)
    defined = {v["name"] for v in dashboard["templating"]["list"]}
    for target in targets(dashboard):
        text = MACRO.sub("", target.get("rawSql") or target["expr"])
        used = set(VARIABLE.findall(text)) - GRAFANA_VARIABLES
        assert used <= defined, (target, used - defined)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "custom":
            options = [o["value"] for o in variable["options"]]
            assert options == variable["query"].split(",")
            assert variable["current"]["value"] in options


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_panels_do_not_overlap_and_links_lead_to_shipped_dashboards(path: Path) -> None:
    dashboard = load(path)
    taken: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, panel["title"]
        taken |= cells
        for link in panel.get("fieldConfig", {}).get("defaults", {}).get("links", []):
            uid = re.match(r"/d/([a-z-]+)/", link["url"])
            assert uid, link["url"]
            assert uid.group(1) in UIDS.values(), link["url"]


def test_the_availability_target_defaults_to_99_percent() -> None:
    dashboard = load(ROOT / "dashboards" / "availability.json")
    target = next(v for v in dashboard["templating"]["list"] if v["name"] == "target")
    assert target["current"]["value"] == "99"


def test_the_station_dashboard_picks_a_station_by_id_and_name() -> None:
    dashboard = load(ROOT / "dashboards" / "station.json")
    station = next(v for v in dashboard["templating"]["list"] if v["name"] == "station")
    assert not station["multi"]
    assert not station["includeAll"]
    assert "stationwatch.stations" in station["query"]
    for target in targets(dashboard):
        assert "'$station'" in target["rawSql"], target


# The expansion the integration test applies, against the examples of Grafana's PostgreSQL
# datasource documentation (times in UTC, RFC 3339).
SPAN = TimeRange(
    datetime(2017, 4, 21, 5, 1, 17, tzinfo=UTC), datetime(2017, 4, 21, 5, 6, 17, tzinfo=UTC)
)


@pytest.mark.parametrize(
    ("query", "expanded"),
    [
        (
            "WHERE $__timeFilter(b.time)",
            "WHERE b.time BETWEEN '2017-04-21T05:01:17Z' AND '2017-04-21T05:06:17Z'",
        ),
        ("$__timeFrom()::timestamptz", "'2017-04-21T05:01:17Z'::timestamptz"),
        ("$__timeTo()", "'2017-04-21T05:06:17Z'"),
        ("$__timeGroup(time, '5m')", "floor(extract(epoch from time)/300)*300"),
        (
            "SELECT $__timeGroupAlias(time, $__interval), 1",
            'SELECT floor(extract(epoch from time)/60)*60 AS "time", 1',
        ),
        ("INTERVAL '$__interval' / ${__interval_ms}", "INTERVAL '1m' / 60000"),
        ("s.street IN ($street) AND x = '$station'", "s.street IN ('a','b''c') AND x = 'SY-1'"),
        ("[[station]] $stationx", "SY-1 $stationx"),
    ],
)
def test_grafana_expansion_as_documented(query: str, expanded: str) -> None:
    chosen = {
        "street": sql_value({"multi": True}, ["a", "b'c"]),
        "station": sql_value({"multi": False}, ["SY-1"]),
    }
    assert Expansion(SPAN, "1m", chosen).sql(query) == expanded


def test_prometheus_variables_as_grafana_formats_them() -> None:
    variable = {"allValue": ".*"}
    assert prometheus_value(variable, None) == ".*"
    assert prometheus_value(variable, ["127.0.0.1:6066"]) == r"127\.0\.0\.1:6066"
    assert prometheus_value(variable, ["a", "b"]) == "(a|b)"

"""Dashboards as shipped: valid, stable uids, and every query names something that exists."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from stationwatch.metrics import ApiMetrics, WorkerMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
DATASOURCES = ROOT / "deploy" / "grafana" / "provisioning" / "datasources"
CONTRACT_RELATIONS = {
    "stations", "heartbeats", "occupancy", "status_events", "liveness_changes", "alerts",
    "station_current", "occupancy_5m", "heartbeats_1h", "availability_daily",
}  # fmt: skip
# beyond the contract: the registry's history, inspections and patrols (migration 0006)
REGISTRY_RELATIONS = {
    "station_history", "inspections", "patrol_policy", "stations_patrol", "stations_overdue",
}  # fmt: skip


def targets(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for panel in dashboard["panels"] for t in panel.get("targets", [])]


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
    names = set()
    for family in registry.collect():
        names.add(family.name)
        if family.type == "counter":  # exposed with the _total suffix
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names.update(f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
    return names


def test_there_are_dashboards_with_unique_fixed_uids() -> None:
    assert DASHBOARDS
    uids = [json.loads(p.read_text("utf-8"))["uid"] for p in DASHBOARDS]
    assert all(uids)
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.stem)
def test_every_query_uses_a_provisioned_datasource_and_known_names(path: Path) -> None:
    dashboard = json.loads(path.read_text("utf-8"))
    uids = provisioned_uids()
    metrics = metric_names()
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(set(ids)) == len(ids)
    for target in targets(dashboard):
        assert target["datasource"]["uid"] in uids
        if "rawSql" in target:
            relations = set(re.findall(r"stationwatch\.([a-z_0-9]+)", target["rawSql"]))
            assert relations
            known = CONTRACT_RELATIONS | REGISTRY_RELATIONS
            assert relations <= known, relations - known
        else:
            used = set(re.findall(r"\b(stationwatch_[a-z_]+)\b", target["expr"]))
            assert used
            assert used <= metrics, used - metrics

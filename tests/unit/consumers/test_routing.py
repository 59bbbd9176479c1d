"""The routing tree: which receivers an alert reaches, with Alertmanager's semantics (depth
first, first match wins unless `continue`, the parent when no child matches), and what each
route inherits."""

from __future__ import annotations

from datetime import timedelta

import pytest

from consumers.config import load_config_text
from consumers.routing import (
    DEFAULT_GROUP_BY,
    DEFAULT_GROUP_INTERVAL,
    DEFAULT_GROUP_WAIT,
    DEFAULT_REPEAT_INTERVAL,
    RouteTree,
    format_labels,
)

CONFIG = """\
route:
  receiver: ops
  repeat_interval: 6h
  routes:
    - match: {street: 空港街道, severity: critical}
      receiver: konggang-wecom
      group_wait: 10s
    - match_re: {street: "后沙峪镇|南法信镇"}
      receiver: houshayu-dingtalk
      continue: true
    - match: {district: 顺义区}
      matchers: ["kind=~offline|closed_during_hours"]
      receiver: duty-mail
      group_by: [street]
      send_resolved: false
      routes:
        - match: {category: truck_driver}
          receiver: duty-urgent
          group_wait: 0s
        - matchers: ["station_id=~SY-9.*"]
          group_interval: 1m
    - match_re: {street: "空港"}
      receiver: never
    - matchers: ["kind!=over_capacity", "severity!~info|warning"]
      receiver: critical-rest
receivers:
  - {name: ops, console: {}}
  - {name: konggang-wecom, console: {}}
  - {name: houshayu-dingtalk, console: {}}
  - {name: duty-mail, console: {}}
  - {name: duty-urgent, console: {}}
  - {name: never, console: {}}
  - {name: critical-rest, console: {}}
"""

TREE = RouteTree.from_config(load_config_text(CONFIG, source="routes.yaml"))


def labels(**given: str) -> dict[str, str]:
    base = {
        "station_id": "SY-0001",
        "kind": "stale",
        "severity": "warning",
        "district": "顺义区",
        "street": "空港街道",
        "category": "smart_24h",
    }
    return base | given


CASES = {
    "a critical alert of 空港街道 goes to its robot": (
        labels(kind="offline", severity="critical"),
        ["konggang-wecom"],
    ),
    "first match wins: the district route after it is not tried": (
        labels(kind="offline", severity="critical"),
        ["konggang-wecom"],
    ),
    "no child matches a warning of 空港街道 in no district: the top route": (
        labels(district="朝阳区"),
        ["ops"],
    ),
    "continue: the robot and the next matching sibling": (
        labels(street="后沙峪镇", kind="offline", severity="critical"),
        ["houshayu-dingtalk", "duty-mail"],
    ),
    "continue, and no later sibling matches: the robot alone": (
        labels(street="南法信镇", kind="stale"),
        ["houshayu-dingtalk"],
    ),
    "the regex matches the whole value only": (
        labels(street="南法信镇东", kind="stale"),
        ["ops"],
    ),
    "a nested route matches": (
        labels(street="仁和镇", kind="offline", severity="critical", category="truck_driver"),
        ["duty-urgent"],
    ),
    "a nested route without a receiver inherits its parent's": (
        labels(street="仁和镇", kind="closed_during_hours", station_id="SY-9001"),
        ["duty-mail"],
    ),
    "the parent matches, none of its children: the parent": (
        labels(street="仁和镇", kind="offline", severity="critical"),
        ["duty-mail"],
    ),
    "a route that would match is never reached after a full match": (
        labels(street="空港", kind="offline", severity="critical"),
        ["duty-mail"],
    ),
    "!= and !~ matchers": (
        labels(district="朝阳区", street="x", kind="offline", severity="critical"),
        ["critical-rest"],
    ),
    "!~ refuses": (
        labels(district="朝阳区", street="x", kind="offline", severity="warning"),
        ["ops"],
    ),
    "the top route catches what no route takes": ({"kind": "over_capacity"}, ["ops"]),
    "a missing label is the empty string (which != over_capacity)": ({}, ["critical-rest"]),
}


@pytest.mark.parametrize(("alert_labels", "receivers"), CASES.values(), ids=CASES.keys())
def test_routes_for(alert_labels: dict[str, str], receivers: list[str]) -> None:
    assert [route.receiver for route in TREE.routes_for(alert_labels)] == receivers


def test_inheritance_and_defaults() -> None:
    by_receiver = {route.receiver: route for route in TREE.routes()}
    top = by_receiver["ops"]
    assert top.group_by == DEFAULT_GROUP_BY == ("street", "kind")
    assert (top.group_wait, top.group_interval) == (DEFAULT_GROUP_WAIT, DEFAULT_GROUP_INTERVAL)
    assert top.repeat_interval == timedelta(hours=6) != DEFAULT_REPEAT_INTERVAL
    assert top.send_resolved is True

    robot = by_receiver["konggang-wecom"]
    assert robot.group_wait == timedelta(seconds=10)
    assert robot.repeat_interval == timedelta(hours=6)  # from the top route

    urgent = by_receiver["duty-urgent"]
    assert urgent.group_by == ("street",)  # from duty-mail
    assert urgent.send_resolved is False  # from duty-mail
    assert urgent.group_wait == timedelta(0)  # its own zero, not the parent's 30s

    (nested,) = TREE.routes_for(labels(street="仁和镇", kind="offline", station_id="SY-9002"))
    assert nested.group_interval == timedelta(minutes=1)
    assert nested.group_by == ("street",)
    assert nested.send_resolved is False


def test_route_ids_are_unique_stable_and_readable() -> None:
    ids = [route.route_id for route in TREE.routes()]
    assert len(set(ids)) == len(ids)
    again = RouteTree.from_config(load_config_text(CONFIG))
    assert [route.route_id for route in again.routes()] == ids
    assert ids[0] == "{}"
    assert ids[1] == '{}/0{street="空港街道",severity="critical"}'
    assert (
        ids[4]
        == '{}/2{district="顺义区",kind=~"offline|closed_during_hours"}/0{category="truck_driver"}'
    )


def test_group_labels_and_keys() -> None:
    (route,) = TREE.routes_for(labels(district="朝阳区"))
    alert = labels(district="朝阳区", category="")
    assert route.group_labels(alert) == {"street": "空港街道", "kind": "stale"}
    assert route.group_key(route.group_labels(alert)) == '{}:{kind="stale", street="空港街道"}'
    assert route.group_labels({"kind": "stale"}) == {"kind": "stale"}  # a missing label is left out


def test_group_by_every_label_is_one_group_per_alert() -> None:
    config = load_config_text(
        'route: {receiver: ops, group_by: ["..."]}\nreceivers: [{name: ops, console: {}}]\n'
    )
    (route,) = RouteTree.from_config(config).routes_for(labels())
    assert route.groups_each_alert
    without_category = {k: v for k, v in labels().items() if k != "category"}
    assert route.group_labels(labels(category="")) == without_category
    one = route.group_key(route.group_labels(labels()))
    other = route.group_key(route.group_labels(labels(station_id="SY-0002")))
    assert one != other


def test_format_labels_quotes_like_alertmanager() -> None:
    assert format_labels({"street": '空港"街道', "kind": "a\\b"}) == (
        '{kind="a\\\\b", street="空港\\"街道"}'
    )


def test_describe_shows_every_route_indented() -> None:
    lines = TREE.describe()
    assert len(lines) == len(TREE.routes()) == 8
    assert lines[0].startswith("{} → ops: group_by [street, kind], group_wait 30s")
    assert lines[2].endswith("(continue)")
    assert lines[4].startswith("    {}/2")

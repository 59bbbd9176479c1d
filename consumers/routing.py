"""The routing tree: which receivers an alert goes to, and how its group is timed there.

Alertmanager's semantics. Matching starts at the top route, which matches every alert, and goes
depth first: of a route's children, each one whose matchers all match is taken (with whatever
its own children decide) and, unless it says ``continue: true``, the siblings after it are not
tried. A route none of whose children matched is itself the match. So an alert always reaches
at least one receiver, and more only where a matching route says ``continue``.

A child route takes every value it leaves unset (receiver, group_by, the three timings,
send_resolved) from its parent; the top route's unset values are the defaults below.

Each route has a stable id built from its position and matchers, e.g.
``{}/0{street="空港街道",severity="critical"}``; a group key is that id, a colon and the
group's label values (``…:{kind="offline", street="空港街道"}``), as in Alertmanager.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from consumers.config import NotifyConfig, RouteConfig
from consumers.receivers import format_duration
from consumers.silences import Matcher, matches_all

DEFAULT_GROUP_BY = ("street", "kind")
DEFAULT_GROUP_WAIT = timedelta(seconds=30)
DEFAULT_GROUP_INTERVAL = timedelta(minutes=5)
DEFAULT_REPEAT_INTERVAL = timedelta(hours=4)
DEFAULT_SEND_RESOLVED = True
ALL_LABELS = "..."  # group_by: [...] — every label, so one group per alert


def format_labels(labels: Mapping[str, str]) -> str:
    """``{kind="offline", street="空港街道"}``: sorted, quoted like Alertmanager's group keys."""
    quoted = (f'{name}="{_escape(value)}"' for name, value in sorted(labels.items()))
    return "{" + ", ".join(quoted) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass(frozen=True, slots=True)
class MatchedRoute:
    """What a matching route decides for an alert: where it goes and how its group is timed."""

    route_id: str
    receiver: str
    group_by: tuple[str, ...]
    group_wait: timedelta
    group_interval: timedelta
    repeat_interval: timedelta
    send_resolved: bool

    @property
    def groups_each_alert(self) -> bool:
        return ALL_LABELS in self.group_by

    def group_labels(self, labels: Mapping[str, str]) -> dict[str, str]:
        """The labels that name the alert's group here; an empty or missing one is left out."""
        names = labels.keys() if self.groups_each_alert else self.group_by
        return {name: labels[name] for name in names if labels.get(name)}

    def group_key(self, group_labels: Mapping[str, str]) -> str:
        return f"{self.route_id}:{format_labels(group_labels)}"

    def describe(self) -> str:
        return (
            f"{self.route_id} → {self.receiver}: group_by [{', '.join(self.group_by)}], "
            f"group_wait {format_duration(self.group_wait)}, "
            f"group_interval {format_duration(self.group_interval)}, "
            f"repeat_interval {format_duration(self.repeat_interval)}, "
            f"send_resolved {str(self.send_resolved).lower()}"
        )


_DEFAULTS = MatchedRoute(
    route_id="",
    receiver="",
    group_by=DEFAULT_GROUP_BY,
    group_wait=DEFAULT_GROUP_WAIT,
    group_interval=DEFAULT_GROUP_INTERVAL,
    repeat_interval=DEFAULT_REPEAT_INTERVAL,
    send_resolved=DEFAULT_SEND_RESOLVED,
)


@dataclass(frozen=True, slots=True)
class _Node:
    options: MatchedRoute
    matchers: tuple[Matcher, ...]
    continues: bool
    children: tuple[_Node, ...]

    def match(self, labels: Mapping[str, str]) -> list[MatchedRoute]:
        if not matches_all(self.matchers, labels):
            return []
        found: list[MatchedRoute] = []
        for child in self.children:
            taken = child.match(labels)
            found.extend(taken)
            if taken and not child.continues:
                break
        return found or [self.options]

    def walk(self, depth: int = 0) -> list[tuple[int, _Node]]:
        nodes = [(depth, self)]
        for child in self.children:
            nodes.extend(child.walk(depth + 1))
        return nodes


T = TypeVar("T")


def _own(value: T | None, inherited: T) -> T:
    return inherited if value is None else value


def _build(route: RouteConfig, parent: MatchedRoute, route_id: str) -> _Node:
    options = MatchedRoute(
        route_id=route_id,
        receiver=_own(route.receiver, parent.receiver),
        group_by=_own(route.group_by, parent.group_by),
        group_wait=_own(route.group_wait, parent.group_wait),
        group_interval=_own(route.group_interval, parent.group_interval),
        repeat_interval=_own(route.repeat_interval, parent.repeat_interval),
        send_resolved=_own(route.send_resolved, parent.send_resolved),
    )
    matchers = route.all_matchers
    children = tuple(
        _build(child, options, f"{route_id}/{index}{{{','.join(map(str, child.all_matchers))}}}")
        for index, child in enumerate(route.routes)
    )
    return _Node(options, matchers, route.continue_, children)


class RouteTree:
    """The configured routes, resolved (inheritance and defaults applied) once."""

    def __init__(self, top: RouteConfig) -> None:
        if top.receiver is None:
            raise ValueError("the top route needs a receiver")
        self._top = _build(top, _DEFAULTS, "{}")

    @classmethod
    def from_config(cls, config: NotifyConfig) -> RouteTree:
        return cls(config.route)

    def routes_for(self, labels: Mapping[str, str]) -> list[MatchedRoute]:
        """Every route the alert goes to, in tree order; never empty."""
        return self._top.match(labels)

    def routes(self) -> list[MatchedRoute]:
        """Every route of the tree, depth first."""
        return [node.options for _, node in self._top.walk()]

    def describe(self) -> list[str]:
        """One indented line per route, for ``--check-config``."""
        return [
            "  " * depth + node.options.describe() + (" (continue)" if node.continues else "")
            for depth, node in self._top.walk()
        ]

"""What Grafana does to a dashboard's query before its datasource sees it: template variables
interpolated (as the SQL and the Prometheus datasources format them), then the SQL macros
expanded as Grafana's PostgreSQL datasource expands them (`pkg/tsdb/grafana-postgresql-datasource
/macros.go`)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
# $name, ${name}, ${name:format}, [[name]]: Grafana's variable syntaxes
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_INTERVAL = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$")


@dataclass(frozen=True)
class Query:
    """One query of a dashboard's panel, with what the panel needs of its answer."""

    dashboard: dict[str, Any]
    panel: dict[str, Any]
    target: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.dashboard['uid']}-{self.panel['id']}-{self.target['refId']}"

    @property
    def text(self) -> str:
        return str(self.target.get("rawSql") or self.target["expr"])


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return loaded


def queries(kind: str) -> Iterator[Query]:
    """Every ``sql`` or ``promql`` query of every shipped dashboard."""
    for path in DASHBOARDS:
        dashboard = load(path)
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                if ("rawSql" in target) == (kind == "sql"):
                    yield Query(dashboard, panel, target)


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def seconds(interval: str) -> float:
    match = _INTERVAL.match(interval)
    if match is None:
        raise ValueError(f"not a Grafana interval: {interval!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def sql_value(variable: dict[str, Any], values: list[str]) -> str:
    """The PostgreSQL datasource: a single value with its quotes doubled (the query quotes
    it); a multi-value or include-all variable's values quoted as literals, comma-joined."""
    if variable.get("multi") or variable.get("includeAll"):
        return ",".join("'" + v.replace("'", "''") + "'" for v in values)
    (value,) = values
    return value.replace("'", "''")


def prometheus_value(variable: dict[str, Any], values: list[str] | None) -> str:
    """The Prometheus datasource: ``None`` is "All" (the variable's allValue); several values
    are regex-escaped and joined as ``(a|b)``."""
    if values is None:
        return str(variable["allValue"])
    if len(values) == 1:
        return re.escape(values[0])
    return "(" + "|".join(re.escape(v) for v in values) + ")"


def interpolate(text: str, values: dict[str, str]) -> str:
    """Replace every variable ``values`` names; leave the others (macros) alone."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        return values.get(name, match.group(0))

    return _VARIABLE.sub(replace, text)


def _calls(text: str, name: str, expand: Callable[[list[str]], str]) -> str:
    """Replace every ``$__name(args)`` (arguments may hold parentheses) by ``expand(args)``."""
    token = f"$__{name}("
    out, at = [], 0
    while (start := text.find(token, at)) >= 0:
        depth, end = 1, start + len(token)
        while depth:
            depth += {"(": 1, ")": -1}.get(text[end], 0)
            end += 1
        args = [a.strip() for a in text[start + len(token) : end - 1].split(",") if a.strip()]
        out += [text[at:start], expand(args)]
        at = end
    return "".join(out) + text[at:]


@dataclass(frozen=True)
class TimeRange:
    start: datetime  # aware
    end: datetime

    def literal(self, moment: datetime) -> str:
        """As Grafana writes a time into SQL: RFC 3339 in UTC, quoted."""
        return "'" + moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") + "'"


def expand_sql_macros(sql: str, span: TimeRange) -> str:
    def group(args: list[str]) -> str:
        step = seconds(args[1].strip("'"))
        step_text = f"{step:g}"
        return f"floor(extract(epoch from {args[0]})/{step_text})*{step_text}"

    frm, to = span.literal(span.start), span.literal(span.end)
    sql = _calls(sql, "timeFilter", lambda a: f"{a[0]} BETWEEN {frm} AND {to}")
    sql = _calls(sql, "timeFrom", lambda _a: frm)
    sql = _calls(sql, "timeTo", lambda _a: to)
    sql = _calls(sql, "timeGroupAlias", lambda a: group(a) + ' AS "time"')
    return _calls(sql, "timeGroup", group)


@dataclass
class Expansion:
    """The variables of one dashboard as a user has chosen them, and the time range."""

    span: TimeRange
    interval: str  # $__interval
    chosen: dict[str, str] = field(default_factory=dict)

    def sql(self, text: str) -> str:
        values = {
            "__interval": self.interval,
            "__interval_ms": f"{seconds(self.interval) * 1000:g}",
            **self.chosen,
        }
        return expand_sql_macros(interpolate(text, values), self.span)

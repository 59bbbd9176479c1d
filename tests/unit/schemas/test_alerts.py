"""`station.alerts` messages: what the worker emits and the notifier reads back."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, get_args

import pytest
from pydantic import ValidationError

from schemas.alerts import SEVERITY, Alert, AlertKind, AlertSeverity, AlertState

# The contract's example.
ALERT: dict[str, Any] = {
    "alert_id": "5b0c…",
    "fingerprint": "SY-0001:offline",
    "station_id": "SY-0001",
    "kind": "offline",
    "state": "firing",
    "severity": "critical",
    "starts_at": "2026-11-30T08:05:00+08:00",
    "ends_at": None,
    "detected_at": "2026-11-30T08:05:01+08:00",
    "last_heartbeat_at": "2026-11-30T08:00:00+08:00",
    "labels": {"district": "顺义区", "street": "空港街道", "category": "smart_24h"},
    "summary": "空港祥云工会驿站 (SY-0001) has sent no heartbeat for 5 min",
}


def wire(doc: dict[str, Any], **changes: Any) -> bytes:
    return json.dumps({**doc, **changes}, ensure_ascii=False).encode()


def rejected_fields(raw: bytes) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        Alert.model_validate_json(raw)
    return {str(error["loc"][0]) for error in caught.value.errors()}


def test_contract_example_parses_to_its_values() -> None:
    alert = Alert.model_validate_json(wire(ALERT))
    assert (alert.kind, alert.state, alert.severity) == ("offline", "firing", "critical")
    assert alert.starts_at == datetime(2026, 11, 30, 0, 5, tzinfo=UTC)
    assert alert.ends_at is None
    assert alert.labels["street"] == "空港街道"
    assert alert.summary == ALERT["summary"]


def test_round_trip_keeps_every_field() -> None:
    alert = Alert.model_validate_json(wire(ALERT, state="resolved", ends_at="2026-11-30T09:00:00Z"))
    assert Alert.model_validate_json(alert.model_dump_json()) == alert
    assert json.loads(alert.model_dump_json())["ends_at"] == "2026-11-30T09:00:00Z"


def test_required_fields() -> None:
    required = {
        "alert_id",
        "fingerprint",
        "station_id",
        "kind",
        "state",
        "severity",
        "starts_at",
        "detected_at",
    }
    assert {name for name, f in Alert.model_fields.items() if f.is_required()} == required
    for name in required:
        doc = {key: value for key, value in ALERT.items() if key != name}
        with pytest.raises(ValidationError) as caught:
            Alert.model_validate_json(wire(doc))
        assert [(e["type"], e["loc"]) for e in caught.value.errors()] == [("missing", (name,))]


def test_unknown_extra_fields_are_ignored() -> None:
    alert = Alert.model_validate_json(wire(ALERT, runbook_url="http://x", annotations={}))
    assert alert == Alert.model_validate_json(wire(ALERT))


@pytest.mark.parametrize(
    ("literal", "contract"),
    [
        # the contract names four kinds and says "more may be added"
        pytest.param(
            AlertKind,
            {"stale", "offline", "closed_during_hours", "over_capacity", "flapping"},
            id="kind",
        ),
        pytest.param(AlertState, {"firing", "resolved"}, id="state"),
        pytest.param(AlertSeverity, {"info", "warning", "critical"}, id="severity"),
    ],
)
def test_enum_values(literal: Any, contract: set[str]) -> None:
    assert set(get_args(literal)) == contract


@pytest.mark.parametrize(
    ("kind", "severity"),
    [
        pytest.param("stale", "warning", id="stale"),
        pytest.param("offline", "critical", id="offline"),
        pytest.param("closed_during_hours", "warning", id="closed-during-hours"),
        pytest.param("over_capacity", "info", id="over-capacity"),
        pytest.param("flapping", "warning", id="flapping"),
    ],
)
def test_severity_of_each_kind(kind: str, severity: str) -> None:
    assert SEVERITY[kind] == severity
    alert = Alert.model_validate_json(wire(ALERT, kind=kind, severity=severity))
    assert (alert.kind, alert.severity) == (kind, severity)


def test_every_kind_has_a_severity() -> None:
    assert set(SEVERITY) == set(get_args(AlertKind))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("kind", "down", id="kind-unknown"),
        pytest.param("kind", "Offline", id="kind-capitalised"),
        pytest.param("state", "pending", id="state-unknown"),
        pytest.param("state", None, id="state-null"),
        pytest.param("severity", "error", id="severity-unknown"),
        pytest.param("station_id", "SY-0001\n", id="station-id-trailing-newline"),
        pytest.param("station_id", "SY0001", id="station-id-missing-dash"),
        pytest.param("starts_at", "2026-11-30T08:05:00", id="starts-at-naive"),
        pytest.param("ends_at", "2026-11-30T09:00:00", id="ends-at-naive"),
        pytest.param("detected_at", None, id="detected-at-null"),
        pytest.param("last_heartbeat_at", "2026-11-30T08:00:00", id="last-heartbeat-naive"),
        pytest.param("labels", {"capacity": 12}, id="label-not-a-string"),
        pytest.param("labels", ["street"], id="labels-list"),
        pytest.param("alert_id", 5, id="alert-id-number"),
        pytest.param("summary", None, id="summary-null"),
    ],
)
def test_field_rejected(field: str, value: object) -> None:
    assert rejected_fields(wire(ALERT, **{field: value})) == {field}

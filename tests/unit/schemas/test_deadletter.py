"""`station.deadletter` messages: every unusable input, with the reason."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.deadletter import RAW_LIMIT, DeadLetter

DEAD: dict[str, Any] = {
    "topic": "station.occupancy",
    "partition": 0,
    "offset": 42,
    "key": "SY-0001",
    "error": "occupants: must be >= 0",
    "raw": '{"station_id": "SY-0001", "occupants": -1}',
    "at": "2026-11-30T08:00:00+08:00",
}


def wire(**changes: Any) -> bytes:
    return json.dumps({**DEAD, **changes}, ensure_ascii=False).encode()


def test_contract_shape_round_trips() -> None:
    dead = DeadLetter.model_validate_json(wire())
    assert (dead.topic, dead.partition, dead.offset, dead.key) == (
        "station.occupancy",
        0,
        42,
        "SY-0001",
    )
    assert DeadLetter.model_validate_json(dead.model_dump_json()) == dead


def test_raw_limit_is_64_kib() -> None:
    assert RAW_LIMIT == 65_536


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("key", None, id="key-missing-in-message"),
        pytest.param("key", "not a station id\n", id="key-anything"),
        pytest.param("raw", "", id="raw-empty"),
    ],
)
def test_field_accepted(field: str, value: object) -> None:
    assert getattr(DeadLetter.model_validate_json(wire(**{field: value})), field) == value


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("at", "2026-11-30T08:00:00", id="at-naive"),
        pytest.param("offset", "42", id="offset-string"),
        pytest.param("partition", 0.5, id="partition-fraction"),
        pytest.param("error", None, id="error-null"),
    ],
)
def test_field_rejected(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        DeadLetter.model_validate_json(wire(**{field: value}))
    assert {str(e["loc"][0]) for e in caught.value.errors()} == {field}

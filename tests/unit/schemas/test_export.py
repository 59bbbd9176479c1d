"""The JSON Schema files: one per topic, deterministic, and the checked-in copies are current."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import schemas
from schemas.export import MESSAGES, export_json_schemas, json_schema, render
from schemas.topics import INPUT_TOPICS, OUTPUT_TOPICS
from stationwatch.cli import app

CHECKED_IN = Path(schemas.__file__).parent / "json"
FILES = [
    "station.heartbeat.schema.json",
    "station.occupancy.schema.json",
    "station.status.schema.json",
    "station.registry.schema.json",
    "station.alerts.schema.json",
    "station.deadletter.schema.json",
]
REGENERATE = "run `stationwatch schemas export schemas/json` and commit the result"


def test_one_schema_per_topic(tmp_path: Path) -> None:
    assert set(MESSAGES) == set(INPUT_TOPICS) | set(OUTPUT_TOPICS)
    written = export_json_schemas(tmp_path / "new" / "dir")
    assert [path.name for path in written] == FILES
    assert sorted(p.name for p in (tmp_path / "new" / "dir").iterdir()) == sorted(FILES)


def test_checked_in_schemas_are_current(tmp_path: Path) -> None:
    fresh = {path.name: path.read_text(encoding="utf-8") for path in export_json_schemas(tmp_path)}
    checked_in = {path.name: path.read_text(encoding="utf-8") for path in CHECKED_IN.glob("*.json")}
    assert sorted(checked_in) == sorted(fresh), (
        f"schemas/json: remove files that are not exported, then {REGENERATE}"
    )
    stale = sorted(name for name in fresh if checked_in[name] != fresh[name])
    assert not stale, f"schemas/json/{', '.join(stale)} out of date: {REGENERATE}"


@pytest.mark.parametrize("topic", list(MESSAGES))
def test_schema_names_its_topic(topic: str) -> None:
    model = MESSAGES[topic][0]
    schema = json_schema(topic)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:stationwatch:schema:{topic}"
    assert schema["title"] == model.__name__
    assert f"`{topic}`" in schema["description"]
    assert schema["type"] == "object"
    assert set(schema["required"]) == {
        name for name, field in model.model_fields.items() if field.is_required()
    }
    assert set(schema["properties"]) == set(model.model_fields)


def test_station_id_pattern_is_in_the_schemas() -> None:
    for topic in (t for t in MESSAGES if t != "station.deadletter"):
        station_id = json_schema(topic)["properties"]["station_id"]
        assert station_id["pattern"] == "^[A-Z]{2,4}-[0-9A-Z]{1,12}$", topic


def test_rendering_is_deterministic_and_readable() -> None:
    text = render(json_schema("station.registry"))
    assert text == render(json_schema("station.registry"))
    assert text.endswith("}\n")
    assert not text.endswith("\n\n")
    assert '\n  "$defs": {\n' in text  # indent 2, keys sorted ("$" sorts first)
    keys = list(json.loads(text))
    assert keys == sorted(keys)


def test_non_ascii_is_written_as_is(tmp_path: Path) -> None:
    schema = {"description": "空港祥云工会驿站", "b": 1, "a": 2}
    assert render(schema) == '{\n  "a": 2,\n  "b": 1,\n  "description": "空港祥云工会驿站"\n}\n'


def test_cli_writes_the_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["schemas", "export", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [str(tmp_path / name) for name in FILES]
    heartbeat = json.loads((tmp_path / FILES[0]).read_text(encoding="utf-8"))
    assert heartbeat["required"] == ["station_id", "sent_at"]

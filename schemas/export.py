"""JSON Schema files of the contract's messages, for producers and consumers outside Python.

`stationwatch schemas export DIR` writes them; the copies checked in under `schemas/json/`
are compared with a fresh export by a unit test, so they cannot go stale.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.alerts import Alert
from schemas.deadletter import DeadLetter
from schemas.registry import StationProfile
from schemas.telemetry import Heartbeat, Occupancy, StatusEvent
from schemas.topics import ALERTS, DEADLETTER, HEARTBEAT, OCCUPANCY, REGISTRY, STATUS

DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_PREFIX = "urn:stationwatch:schema:"
SUFFIX = ".schema.json"

# topic -> (model of its message value, what the contract says it carries)
MESSAGES: dict[str, tuple[type[BaseModel], str]] = {
    HEARTBEAT: (Heartbeat, "a station device says it is alive"),
    OCCUPANCY: (Occupancy, "how many people are inside"),
    STATUS: (StatusEvent, "the station opened or closed"),
    REGISTRY: (
        StationProfile,
        "station master data; compacted, a null value (tombstone) removes the station",
    ),
    ALERTS: (Alert, "firing and resolved alerts (output)"),
    DEADLETTER: (DeadLetter, "every input that could not be used, with the reason (output)"),
}


def schema_filename(topic: str) -> str:
    return f"{topic}{SUFFIX}"


def json_schema(topic: str) -> dict[str, Any]:
    """The JSON Schema of one message value on `topic`."""
    model, what = MESSAGES[topic]
    schema = model.model_json_schema()
    schema["$schema"] = DIALECT
    schema["$id"] = f"{ID_PREFIX}{topic}"
    schema["title"] = model.__name__  # code generators name the type after the title
    schema["description"] = (
        f"Value of a message on Kafka topic `{topic}`: {what}. One UTF-8 JSON object, keyed by "
        "the station id as UTF-8 bytes. Times are ISO-8601 with an offset or `Z`; unknown "
        "extra fields are ignored."
    )
    return schema


def render(schema: dict[str, Any]) -> str:
    """Deterministic text of a schema: sorted keys, indent 2, UTF-8 as is, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def export_json_schemas(directory: Path) -> list[Path]:
    """Write one `<topic>.schema.json` per message into `directory`; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for topic in MESSAGES:
        path = directory / schema_filename(topic)
        path.write_text(render(json_schema(topic)), encoding="utf-8", newline="\n")
        written.append(path)
    return written

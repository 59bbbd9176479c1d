"""The OpenAPI 3.1 document of the worker's HTTP API, built from the query and answer models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from schemas.api import Board, ErrorAnswer, Health, LiveState, NearbyAnswer, StationList, Summary
from schemas.common import STATION_ID_PATTERN
from stationwatch import __version__
from streams.query import ListQuery, NearbyQuery

_REF = "#/components/schemas/{model}"


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template=_REF)
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": _REF.format(model=model.__name__)}


def _parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        params.append({"name": name, "in": "query", "required": name in required, "schema": prop})
    return params


def _json(ref: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def build_openapi(*, secured: bool) -> dict[str, Any]:
    components: dict[str, Any] = {}
    err = _schema(ErrorAnswer, components)
    bad = _json(err, "a query parameter is malformed or out of range (named in `parameter`)")
    unavailable = _json(err, "partitions are being assigned, or the owning worker is unreachable")
    auth = {"401": _json(err, "bearer token missing or wrong")} if secured else {}
    station_id = {
        "name": "station_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": STATION_ID_PATTERN},
    }
    paths: dict[str, Any] = {
        "/stations/{station_id}": {
            "get": {
                "summary": "The live state of one station (any worker answers)",
                "operationId": "getStation",
                "parameters": [station_id],
                "responses": {
                    "200": _json(_schema(LiveState, components), "the live state"),
                    "400": bad,
                    "404": _json(err, "no such station"),
                    "503": unavailable,
                    **auth,
                },
            }
        },
        "/stations": {
            "get": {
                "summary": "Live states, filtered, ordered by station id, paged",
                "operationId": "listStations",
                "parameters": _parameters(ListQuery),
                "responses": {
                    "200": _json(_schema(StationList, components), "one page of stations"),
                    "400": bad,
                    **auth,
                },
            }
        },
        "/stations/nearby": {
            "get": {
                "summary": "Nearest stations first (great-circle distance), by default only those "
                "open now and not offline, with free seats when occupancy is fresh",
                "operationId": "nearbyStations",
                "parameters": _parameters(NearbyQuery),
                "responses": {
                    "200": _json(_schema(NearbyAnswer, components), "nearest first"),
                    "400": bad,
                    **auth,
                },
            }
        },
        "/summary": {
            "get": {
                "summary": "Counts by liveness, category, street and lifecycle",
                "operationId": "summary",
                "responses": {
                    "200": _json(_schema(Summary, components), "the counts"),
                    "400": bad,
                    **auth,
                },
            }
        },
        "/board.json": {
            "get": {
                "summary": "What the live board draws: every station with its position on a map "
                "of the district and its liveness, the counts, the offline stations (most "
                "recently offline first), and how old the data may be",
                "operationId": "board",
                "responses": {
                    "200": _json(_schema(Board, components), "the board"),
                    "400": bad,
                    **auth,
                },
            }
        },
        "/": {
            "get": {
                "summary": "The live board: an HTML page that draws /board.json every 2 s",
                "operationId": "boardPage",
                "security": [],
                "responses": {
                    "200": {
                        "description": "the page",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/health": {
            "get": {
                "summary": "200 when consuming, caught up and writing the database",
                "operationId": "health",
                "security": [],
                "responses": {
                    "200": _json(_schema(Health, components), "healthy"),
                    "503": _json({"$ref": _REF.format(model="Health")}, "not healthy, and why"),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text format)",
                "operationId": "metrics",
                "security": [],
                "responses": {
                    "200": {
                        "description": "metrics",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {
                "summary": "This document",
                "operationId": "openapi",
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **auth,
                },
            }
        },
    }
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "stationwatch live state API",
            "version": __version__,
            "description": "Live state of the worker stations, served by every stationwatch "
            "worker (default port 6066).",
        },
        "paths": paths,
        "components": {"schemas": components},
    }
    if secured:
        document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        document["security"] = [{"bearer": []}]
    return document

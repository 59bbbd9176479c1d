"""The OpenAPI document: valid OpenAPI 3.1, secured only when a token is set, and its query
parameters are exactly the query models' fields with their bounds."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate

from streams.openapi import build_openapi
from streams.query import MAX_NEARBY, MAX_PAGE, MAX_RADIUS_M, ListQuery, NearbyQuery

SECURED = [pytest.param(True, id="secured"), pytest.param(False, id="open")]
OPEN_PATHS = {"/health", "/metrics", "/"}  # probes, scrapers and the board's page: no token


def operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {path: item["get"] for path, item in document["paths"].items()}


def parameters(document: dict[str, Any], path: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in document["paths"][path]["get"].get("parameters", [])}


def enum_of(schema: dict[str, Any]) -> set[str]:
    """The accepted strings of a (possibly nullable) enum parameter."""
    members = schema.get("anyOf", [schema])
    return {value for m in members for value in m.get("enum", [m.get("const")]) if value}


@pytest.mark.parametrize("secured", SECURED)
def test_document_is_valid_openapi_3_1(secured: bool) -> None:
    document = build_openapi(secured=secured)
    validate(document)
    assert document["openapi"] == "3.1.0"


@pytest.mark.parametrize("secured", SECURED)
def test_every_contract_endpoint_is_described(secured: bool) -> None:
    assert set(build_openapi(secured=secured)["paths"]) >= {
        "/stations/{station_id}",
        "/stations",
        "/stations/nearby",
        "/summary",
        "/health",
        "/metrics",
        "/board.json",
        "/",
    }


def test_secured_document_requires_a_bearer_token_and_answers_401() -> None:
    document = build_openapi(secured=True)
    assert document["components"]["securitySchemes"] == {
        "bearer": {"type": "http", "scheme": "bearer"}
    }
    assert document["security"] == [{"bearer": []}]
    for path, operation in operations(document).items():
        if path in OPEN_PATHS:
            assert "401" not in operation["responses"], path
        else:
            assert "401" in operation["responses"], path


def test_open_document_has_no_security_and_no_401() -> None:
    document = build_openapi(secured=False)
    assert "security" not in document
    assert "securitySchemes" not in document["components"]
    for path, operation in operations(document).items():
        assert "401" not in operation["responses"], path


@pytest.mark.parametrize("secured", SECURED)
@pytest.mark.parametrize("path", sorted(OPEN_PATHS))
def test_health_and_metrics_need_no_token(secured: bool, path: str) -> None:
    assert operations(build_openapi(secured=secured))[path]["security"] == []


@pytest.mark.parametrize("secured", SECURED)
def test_every_ref_resolves(secured: bool) -> None:
    document = build_openapi(secured=secured)
    schemas = document["components"]["schemas"]

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if "$ref" in node else []
            return own + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    found = refs(document)
    assert found
    for ref in found:
        assert ref.startswith("#/components/schemas/")
        assert ref.removeprefix("#/components/schemas/") in schemas


@pytest.mark.parametrize(
    ("path", "model"),
    [
        pytest.param("/stations", ListQuery, id="list"),
        pytest.param("/stations/nearby", NearbyQuery, id="nearby"),
    ],
)
def test_query_parameters_are_the_query_model_fields(
    path: str, model: type[ListQuery | NearbyQuery]
) -> None:
    params = parameters(build_openapi(secured=False), path)
    assert list(params) == list(model.model_fields)
    for name, param in params.items():
        assert param["in"] == "query"
        assert param["required"] is model.model_fields[name].is_required(), name


BOUNDS = [
    # (path, parameter, the schema keys it must carry)
    pytest.param("/stations/nearby", "lat", {"minimum": -90, "maximum": 90}, id="lat"),
    pytest.param("/stations/nearby", "lon", {"minimum": -180, "maximum": 180}, id="lon"),
    pytest.param(
        "/stations/nearby",
        "radius_m",
        {"exclusiveMinimum": 0, "maximum": MAX_RADIUS_M, "default": 3000.0},
        id="radius",
    ),
    pytest.param(
        "/stations/nearby",
        "limit",
        {"minimum": 1, "maximum": MAX_NEARBY, "default": 10},
        id="nearby-limit",
    ),
    pytest.param("/stations/nearby", "open_now", {"default": True}, id="nearby-open-now"),
    pytest.param(
        "/stations", "limit", {"minimum": 1, "maximum": MAX_PAGE, "default": 100}, id="list-limit"
    ),
    pytest.param(
        "/stations", "offset", {"minimum": 0, "maximum": 1_000_000, "default": 0}, id="offset"
    ),
]


@pytest.mark.parametrize(("path", "name", "bounds"), BOUNDS)
def test_query_parameter_bounds(path: str, name: str, bounds: dict[str, Any]) -> None:
    schema = parameters(build_openapi(secured=False), path)[name]["schema"]
    assert {k: schema.get(k) for k in bounds} == bounds


@pytest.mark.parametrize(
    ("path", "name", "values"),
    [
        pytest.param("/stations", "liveness", 5, id="liveness"),
        pytest.param("/stations", "category", 4, id="category"),
        pytest.param("/stations", "service", 17, id="service"),
        pytest.param("/stations/nearby", "service", 17, id="nearby-service"),
        pytest.param("/stations", "lifecycle", 4, id="lifecycle-with-unknown"),
    ],
)
def test_enum_parameters_list_every_value(path: str, name: str, values: int) -> None:
    schema = parameters(build_openapi(secured=False), path)[name]["schema"]
    assert len(enum_of(schema)) == values


def test_lifecycle_parameter_accepts_unknown() -> None:
    schema = parameters(build_openapi(secured=False), "/stations")["lifecycle"]["schema"]
    assert enum_of(schema) == {"active", "temporarily_closed", "decommissioned", "unknown"}


def test_station_id_path_parameter_has_the_contract_pattern() -> None:
    [param] = build_openapi(secured=False)["paths"]["/stations/{station_id}"]["get"]["parameters"]
    assert param["in"] == "path"
    assert param["required"] is True
    assert param["schema"]["pattern"] == "^[A-Z]{2,4}-[0-9A-Z]{1,12}$"


@pytest.mark.parametrize(
    "path", ["/stations/{station_id}", "/stations", "/stations/nearby", "/summary", "/board.json"]
)
def test_bad_requests_are_documented_as_400_with_an_error_body(path: str) -> None:
    response = operations(build_openapi(secured=False))[path]["responses"]["400"]
    schema = response["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ErrorAnswer"}

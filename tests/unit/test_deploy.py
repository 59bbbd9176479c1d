"""The deployment files agree with the code: compose services, environment names, the image's
entrypoint, and the README's configuration table."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from stationwatch.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
README = ROOT / "README.md"

SERVICES = {
    "kafka", "timescaledb", "migrate", "worker-1", "worker-2", "notifier", "prometheus", "grafana",
}  # fmt: skip
SETTINGS_VARS = {f"STATIONWATCH_{name.upper()}" for name in Settings.model_fields}
ENV_NAME = re.compile(r"\bSTATIONWATCH_[A-Z0-9_]+")


def compose_files() -> list[Path]:
    return sorted(ROOT.glob("docker-compose*.y*ml")) + sorted(ROOT.glob("compose*.y*ml"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_compose_names_the_stack_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= SERVICES


@pytest.mark.parametrize("path", compose_files(), ids=lambda p: p.name)
def test_every_stationwatch_variable_in_compose_is_a_setting(path: Path) -> None:
    used = set(ENV_NAME.findall(path.read_text(encoding="utf-8")))
    assert used, f"{path.name} configures no STATIONWATCH_* variable"
    assert used <= SETTINGS_VARS, f"not Settings fields: {sorted(used - SETTINGS_VARS)}"


def test_every_stationwatch_variable_in_the_dockerfile_is_a_setting() -> None:
    used = set(ENV_NAME.findall(DOCKERFILE.read_text(encoding="utf-8")))
    assert used <= SETTINGS_VARS, f"not Settings fields: {sorted(used - SETTINGS_VARS)}"


def test_workers_are_distinct_reachable_hosts_of_one_group(compose: dict[str, Any]) -> None:
    workers = {
        name: service
        for name, service in compose["services"].items()
        if service.get("command") == ["worker"]
    }
    assert set(workers) == {"worker-1", "worker-2"}
    hosts = {
        name: service["environment"]["STATIONWATCH_WEB_HOST"] for name, service in workers.items()
    }
    assert hosts == {name: name for name in workers}, "each worker advertises its own service name"
    app_ids = {service["environment"].get("STATIONWATCH_APP_ID") for service in workers.values()}
    assert len(app_ids) == 1, "both workers must join the same consumer group"
    for service in workers.values():
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_prometheus_scrapes_every_worker(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    workers = [name for name, s in compose["services"].items() if s.get("command") == ["worker"]]
    assert {f"{name}:6066" for name in workers} <= targets


def test_dockerfile_entrypoint_is_the_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "scripts"
    ]
    text = DOCKERFILE.read_text(encoding="utf-8")
    entrypoints = re.findall(r"^ENTRYPOINT\s+(.+)$", text, flags=re.MULTILINE)
    assert len(entrypoints) == 1
    assert yaml.safe_load(entrypoints[0]) == ["stationwatch"]
    assert "stationwatch" in scripts
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users, "the image must not run as root"
    assert users[-1] not in {"root", "0"}


def test_readme_configuration_table_lists_every_setting() -> None:
    rows = re.findall(r"^\|\s*`(STATIONWATCH_[A-Z0-9_]+)`\s*\|", README.read_text("utf-8"), re.M)
    assert set(rows) == SETTINGS_VARS, (
        f"missing from README: {sorted(SETTINGS_VARS - set(rows))}; "
        f"not settings: {sorted(set(rows) - SETTINGS_VARS)}"
    )


def test_the_compose_notifier_reads_a_valid_configuration_and_is_scraped(
    compose: dict[str, Any],
) -> None:
    from consumers.config import load_config

    notifier = compose["services"]["notifier"]
    assert notifier["command"] == ["notifier"]
    mount = next(v for v in notifier["volumes"] if v.endswith(":ro"))
    source, target, _ = mount.split(":")
    assert notifier["environment"]["STATIONWATCH_NOTIFY_CONFIG"] == target
    load_config(ROOT / source)  # raises with the line if it is not valid
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text(encoding="utf-8"))
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    assert "notifier:6068" in targets

"""The migration files: loadable, versioned 1..n, both flavors define the same relations."""

from __future__ import annotations

import re
from importlib.resources import files

import pytest

from stationwatch.db.migrations import FILE_NAME, FLAVORS, Flavor, Migration, load_migrations

CONTRACT_RELATIONS = {
    "stations",
    "heartbeats",
    "occupancy",
    "status_events",
    "liveness_changes",
    "alerts",
    "station_current",
    "occupancy_5m",
    "heartbeats_1h",
    "availability_daily",
}
# Relations beyond the contract's (extensions): the notifier's state and its deliveries view;
# the registry's history, inspections and patrols; when each station was expected alive
# (availability_daily reads it).
EXTENSIONS = {
    "station_history",
    "inspections",
    "patrol_policy",
    "stations_patrol",
    "stations_overdue",
    "expected_changes",
    "notify_log",
    "notices",
    "notice_attempts",
    "silences",
    "suppressed_alerts",
    "deliveries",
    # what the worker last wrote (station_current reads it against now()), and who writes
    "station_current_reported",
    "pipeline_workers",
    "pipeline_status",
}
CREATES = re.compile(
    r"\bCREATE\s+(?:TABLE|VIEW|MATERIALIZED\s+VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?stationwatch\.(\w+)",
    re.IGNORECASE,
)
RENAMES = re.compile(r"\bALTER\s+TABLE\s+stationwatch\.(\w+)\s+RENAME\s+TO\s+(\w+)", re.IGNORECASE)


def _without_comments(text: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in text.splitlines())


ATOMIC = re.compile(r"\bBEGIN\s+ATOMIC\b.*?\bEND\b(?=\s*;)", re.IGNORECASE | re.DOTALL)


def _statements(text: str) -> list[str]:
    """Top-level statements; our migrations use no dollar quoting, so `;` ends a statement,
    except inside a SQL-standard function body (``BEGIN ATOMIC … END;``), which is one."""
    body = _without_comments(text).strip()
    assert body.endswith(";"), "the last statement must end with ';'"
    bodies: list[str] = []

    def hold(found: re.Match[str]) -> str:
        bodies.append(found.group(0))
        return f"\x00{len(bodies) - 1}\x00"

    held = ATOMIC.sub(hold, body)
    parts = [part.strip() for part in held.split(";")[:-1]]
    return [re.sub(r"\x00(\d+)\x00", lambda m: bodies[int(m.group(1))], p) for p in parts]


def _relations(migrations: list[Migration], flavor: Flavor) -> set[str]:
    found: set[str] = set()
    for step in migrations:
        sql = _without_comments(step.sql[flavor])
        for old, new in RENAMES.findall(sql):
            found.discard(old.lower())
            found.add(new.lower())
        found.update(name.lower() for name in CREATES.findall(sql))
    return found


@pytest.fixture(scope="module")
def migrations() -> list[Migration]:
    return load_migrations()


def test_every_sql_file_is_named_by_the_scheme() -> None:
    names = [p.name for p in files("schemas").joinpath("migrations").iterdir()]
    sql_files = [name for name in names if name.endswith(".sql")]
    assert sql_files
    for name in sql_files:
        match = FILE_NAME.match(name)
        assert match is not None, name
        assert match["flavor"] in (None, *FLAVORS), name


def test_versions_run_from_one_without_gaps(migrations: list[Migration]) -> None:
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert len({m.name for m in migrations}) == len(migrations)


def test_every_version_has_sql_for_both_flavors(migrations: list[Migration]) -> None:
    for step in migrations:
        assert set(step.sql) == set(FLAVORS)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_statements_are_non_empty_and_leave_transactions_to_the_runner(
    migrations: list[Migration], flavor: Flavor
) -> None:
    for step in migrations:
        statements = _statements(step.sql[flavor])
        assert statements, step.name
        for statement in statements:
            assert statement, f"{step.name}: empty statement"
            first = statement.split()[0].upper()
            assert first in {"CREATE", "ALTER", "SELECT"}, f"{step.name}: {statement[:60]}"
            assert "$$" not in statement


@pytest.mark.parametrize("flavor", FLAVORS)
def test_every_contract_relation_is_created_in_schema_stationwatch(
    migrations: list[Migration], flavor: Flavor
) -> None:
    assert _relations(migrations, flavor) == CONTRACT_RELATIONS | EXTENSIONS


def test_both_flavors_create_the_same_relations(migrations: list[Migration]) -> None:
    assert _relations(migrations, "postgres") == _relations(migrations, "timescale")


def test_timescale_flavor_uses_hypertables_policies_and_continuous_aggregates(
    migrations: list[Migration],
) -> None:
    timescale = "\n".join(step.sql["timescale"] for step in migrations)
    postgres = "\n".join(step.sql["postgres"] for step in migrations)
    for table in (
        "heartbeats",
        "occupancy",
        "status_events",
        "liveness_changes",
        "expected_changes",
    ):
        assert f"create_hypertable('stationwatch.{table}'" in timescale
        assert f"add_compression_policy('stationwatch.{table}'" in timescale
    assert "add_retention_policy('stationwatch.heartbeats', INTERVAL '90 days'" in timescale
    assert "add_retention_policy('stationwatch.occupancy', INTERVAL '180 days'" in timescale
    assert timescale.count("timescaledb.continuous") == 2
    assert timescale.count("add_continuous_aggregate_policy(") == 2
    assert "timescaledb" not in _without_comments(postgres).lower()

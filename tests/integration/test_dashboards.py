"""Every SQL query of the dashboards runs on the database as migrated (plain PostgreSQL here)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import psycopg
import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
QUERIES = [
    pytest.param(target["rawSql"], id=f"{path.stem}-{panel['id']}-{target['refId']}")
    for path in sorted((ROOT / "dashboards").glob("*.json"))
    for panel in json.loads(path.read_text("utf-8"))["panels"]
    for target in panel.get("targets", [])
    if "rawSql" in target
]


def expand_macros(query: str) -> str:
    """Grafana's ``$__timeFilter(column)``, as Grafana expands it, for the last day."""
    return re.sub(
        r"\$__timeFilter\(([a-z_]+)\)",
        r"\1 BETWEEN now() - interval '1 day' AND now()",
        query,
    )


@pytest.mark.parametrize("query", QUERIES)
def test_dashboard_query_runs(database_url: str, query: str) -> None:
    expanded = expand_macros(query)
    assert "$__" not in expanded
    with psycopg.connect(database_url) as conn:
        conn.execute(expanded).fetchall()

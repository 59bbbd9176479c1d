"""Which schema flavor a new database gets, from what the server offers of TimescaleDB."""

from __future__ import annotations

import pytest

from stationwatch.db.migrate import FlavorChoice, TimescaleState, decide_flavor
from stationwatch.errors import MigrationError

READY = TimescaleState(available=True, preloaded=True)
NOT_PRELOADED = TimescaleState(available=True, preloaded=False)
MISSING = TimescaleState(available=False, preloaded=False)
WHERE = "db.example:5432/stationwatch"


@pytest.mark.parametrize(
    ("wanted", "state", "flavor"),
    [
        ("auto", READY, "timescale"),
        ("auto", MISSING, "postgres"),
        ("timescale", READY, "timescale"),
        ("postgres", READY, "postgres"),
        ("postgres", NOT_PRELOADED, "postgres"),  # the way out the error names
        ("postgres", MISSING, "postgres"),
    ],
)
def test_flavor(wanted: FlavorChoice, state: TimescaleState, flavor: str) -> None:
    assert decide_flavor(wanted, state, WHERE) == flavor


@pytest.mark.parametrize("wanted", ["auto", "timescale"])
def test_installed_but_not_preloaded_stops_with_the_fix(wanted: FlavorChoice) -> None:
    with pytest.raises(MigrationError) as caught:
        decide_flavor(wanted, NOT_PRELOADED, WHERE)
    message = str(caught.value)
    assert "\n" not in message
    assert WHERE in message
    assert "shared_preload_libraries" in message
    assert "STATIONWATCH_DB_FLAVOR=postgres" in message


def test_insisting_on_a_missing_timescaledb_fails() -> None:
    with pytest.raises(MigrationError, match="not installed"):
        decide_flavor("timescale", MISSING, WHERE)

"""Fixtures for integration tests: a real Tansu broker and a fresh PostgreSQL database per session.

PostgreSQL comes from ``STATIONWATCH_TEST_ADMIN_URL`` (default: the local server, trust auth).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

from stationwatch.broker import EmbeddedBroker
from tests.integration.reliability import Report

if TYPE_CHECKING:
    from stationwatch.db.migrate import TimescaleState

ADMIN_URL = os.environ.get(
    "STATIONWATCH_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def database_url_for(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def create_database(name: str) -> str:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return database_url_for(name)


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """One embedded broker for the whole session; tests isolate by topic prefix."""
    with EmbeddedBroker() as running:
        yield running


def migrated_database() -> Iterator[str]:
    """A fresh, migrated database, dropped at the end."""
    from stationwatch.db.migrate import migrate

    name = f"stationwatch_test_{uuid.uuid4().hex[:10]}"
    url = database_url_for(name)
    migrate(url)  # creates the database as a user's first `stationwatch migrate` would
    yield url
    drop_database(name)


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A fresh, migrated database for each test module, dropped at its end: no module sees
    another's rows (the notifier, for one, reads every open episode of the alerts table)."""
    yield from migrated_database()


@pytest.fixture
def unique() -> str:
    """A short unique token for topic prefixes and group ids."""
    return uuid.uuid4().hex[:8]


def timescale_state() -> TimescaleState:
    """What the server offers of TimescaleDB; installed but not preloaded counts as not usable
    (creating the extension would be a FATAL error there)."""
    from stationwatch.db.migrate import TimescaleState
    from stationwatch.db.migrate import timescale_state as read_state

    try:
        with psycopg.connect(ADMIN_URL) as conn:
            return read_state(conn)
    except psycopg.OperationalError:  # no server: the other tests report that
        return TimescaleState(available=False, preloaded=False)


def timescale_skip_reason() -> str:
    """Why a TimescaleDB test cannot run on this server ("" when it can)."""
    from stationwatch.db.migrate import PRELOAD_FIX

    state = timescale_state()
    if state.usable():
        return ""
    if state.available:
        return f"timescaledb is installed on this server but not preloaded ({PRELOAD_FIX})"
    return "timescaledb extension not available on this server"


@pytest.fixture
def report(record_property: Any) -> Report:
    """Figures a fault test measured, for `make reliability`'s table (see reliability.py)."""
    return Report(record_property, {})

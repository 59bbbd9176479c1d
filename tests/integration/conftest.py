"""Fixtures for integration tests: a real Tansu broker and a fresh PostgreSQL database per session.

PostgreSQL comes from ``STATIONWATCH_TEST_ADMIN_URL`` (default: the local server, trust auth).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from stationwatch.broker import EmbeddedBroker
from tests.integration.reliability import Report

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


@pytest.fixture
def report(record_property: Any) -> Report:
    """Figures a fault test measured, for `make reliability`'s table (see reliability.py)."""
    return Report(record_property, {})

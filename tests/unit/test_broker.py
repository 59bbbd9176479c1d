"""How many copies the worker's topics get: what the cluster allows, or what the operator set."""

from __future__ import annotations

import pytest

from stationwatch.broker import replication_for
from stationwatch.errors import ConfigurationError
from stationwatch.settings import Settings
from streams.app import create_app


@pytest.mark.parametrize(
    ("wanted", "brokers", "expected"),
    [
        (None, 1, 1),  # a single broker (the embedded one, a laptop)
        (None, 2, 2),
        (None, 3, 3),
        (None, 9, 3),  # three copies are enough; more brokers do not add copies
        (1, 3, 1),  # the operator's choice stands
        (2, 2, 2),
        (3, 5, 3),
    ],
)
def test_replication_factor_defaults_to_what_the_cluster_allows(
    wanted: int | None, brokers: int, expected: int
) -> None:
    assert replication_for(wanted, brokers) == expected


def test_more_copies_than_brokers_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigurationError, match=r"REPLICATION_FACTOR is 3.*1 broker:.*use 1"):
        replication_for(3, 1)


def test_the_tables_changelog_gets_the_same_number_of_copies() -> None:
    runtime = create_app(Settings(replication_factor=3))
    assert runtime.app.conf.topic_replication_factor == 3

"""The schema migrations shipped with stationwatch: SQL files in ``schemas/migrations``
(package data), read and checked without a database driver (the worker and the notifier ask
only for the newest version: :mod:`stationwatch.db.ready`; applying them is
:mod:`stationwatch.db.migrate`).

A file is named ``NNNN_name.sql`` when both flavors share it, or ``NNNN_name.postgres.sql``
plus ``NNNN_name.timescale.sql`` when TimescaleDB and plain PostgreSQL differ.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from typing import Literal

from stationwatch.errors import MigrationError

Flavor = Literal["timescale", "postgres"]
FLAVORS: tuple[Flavor, ...] = ("postgres", "timescale")

MIGRATIONS_PACKAGE = "schemas"
MIGRATIONS_DIR = "migrations"
FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)(?:\.(?P<flavor>\w+))?\.sql$")


@dataclass(frozen=True)
class Migration:
    """One schema version: its SQL for each flavor (the same text when shared)."""

    version: int
    name: str
    sql: dict[Flavor, str]


def load_migrations() -> list[Migration]:
    """Read and check every migration file; versions run 1, 2, 3, … without gaps."""
    folder = files(MIGRATIONS_PACKAGE).joinpath(MIGRATIONS_DIR)
    found: dict[int, dict[str | None, tuple[str, str]]] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = FILE_NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"bad migration file name {entry.name!r}")
        flavor = match["flavor"]
        if flavor is not None and flavor not in FLAVORS:
            raise MigrationError(f"{entry.name}: unknown flavor {flavor!r}")
        version = int(match["version"])
        variants = found.setdefault(version, {})
        if flavor in variants:
            raise MigrationError(f"{entry.name}: version {version} is defined twice")
        variants[flavor] = (match["name"], entry.read_text(encoding="utf-8"))
    return [_migration(version, found[version]) for version in _contiguous(found)]


def _contiguous(found: Mapping[int, object]) -> list[int]:
    versions = sorted(found)
    if versions != list(range(1, len(versions) + 1)):
        raise MigrationError(f"migration versions must run 1..n without gaps, found {versions}")
    return versions


def _migration(version: int, variants: dict[str | None, tuple[str, str]]) -> Migration:
    names = {name for name, _ in variants.values()}
    if len(names) != 1:
        raise MigrationError(f"version {version} has differing names {sorted(names)}")
    if None in variants:
        if len(variants) != 1:
            raise MigrationError(f"version {version} is both shared and per-flavor")
        text = variants[None][1]
        return Migration(version, names.pop(), dict.fromkeys(FLAVORS, text))
    missing = [flavor for flavor in FLAVORS if flavor not in variants]
    if missing:
        raise MigrationError(f"version {version} has no file for flavor {missing}")
    by_flavor = {flavor: variants[flavor][1] for flavor in FLAVORS}
    return Migration(version, names.pop(), by_flavor)

"""The fault tests' sizes and their report (issue 12; `make reliability`).

Every fault test runs at two sizes: ``reduced`` (in the normal suite, so CI proves each
property on every run) and ``full`` (marked ``reliability``; `make test` deselects it, `make
reliability` runs it). ``STATIONWATCH_RELIABILITY_SCALE`` (default 1) multiplies the full sizes
— events, stations, seconds of outage — for a quicker or a harder run.

A test records what it measured with the ``report`` fixture; ``tests/conftest.py`` prints the
figures of every test that recorded some as a table at the end of the run and writes them to
``$STATIONWATCH_TEST_ARTIFACTS/reliability.json`` (default ``test-artifacts/``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pytest
from _pytest.mark.structures import ParameterSet

SCALE_ENV = "STATIONWATCH_RELIABILITY_SCALE"
PROPERTY = "reliability"  # the user property the figures travel in (xdist carries them)
# the columns every fault test fills, in this order; anything else goes in "more"
COLUMNS = ("events_sent", "rows_found", "duplicates", "alerts_expected", "alerts_seen")


def scale() -> float:
    value = float(os.environ.get(SCALE_ENV, "1"))
    if value <= 0:
        raise ValueError(f"{SCALE_ENV} must be > 0, not {value}")
    return value


def sizes(reduced: int, full: int, *, in_suite: bool = True) -> list[ParameterSet]:
    """Parameters for one fault test: ``reduced`` in the normal suite, ``full`` (times the
    scale) marked ``reliability``. ``in_suite=False``: the reduced size too only in
    ``make reliability`` (two pipelines' worth of work, too much beside the rest of the suite
    on a 2-core CI machine: it timed out there)."""
    marks = () if in_suite else (pytest.mark.reliability,)
    return [
        pytest.param(reduced, id="reduced", marks=marks),
        pytest.param(max(1, round(full * scale())), id="full", marks=pytest.mark.reliability),
    ]


@dataclass
class Report:
    """What one fault test measured (recorded as it goes: a failing test still reports)."""

    record_property: Any  # pytest's record_property fixture
    figures: dict[str, Any]

    def record(self, **figures: Any) -> None:
        """Add or replace figures: the columns (``events_sent=…``, ``rows_found=…``,
        ``duplicates=…``, ``alerts_expected=…``, ``alerts_seen=…``) and any other measure
        (``takeover_s=…``)."""
        self.figures.update(figures)
        self.record_property(PROPERTY, dict(self.figures))

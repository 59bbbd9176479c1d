"""The benchmark's own arithmetic (the benchmark itself runs with `make bench`)."""

from __future__ import annotations

import pytest

from stationwatch.bench import percentiles


def test_percentiles_of_a_known_sample() -> None:
    samples = [float(n) for n in range(1, 101)]  # 1 … 100 ms
    result = percentiles(samples)
    assert result["n"] == 100
    assert result["p50"] == 51.0
    assert result["p90"] == 91.0
    assert result["p99"] == 100.0
    assert result["max"] == 100.0
    assert result["mean"] == pytest.approx(50.5)


def test_percentiles_do_not_depend_on_order() -> None:
    assert percentiles([3.0, 1.0, 2.0]) == percentiles([1.0, 2.0, 3.0])

"""The benchmark's own arithmetic (the benchmark itself runs with `make bench`)."""

from __future__ import annotations

from types import SimpleNamespace

import aiohttp
import orjson
import pytest

from stationwatch.bench import Sizes, liveness, percentiles
from stationwatch.bench.pipeline import produce_until
from stationwatch.bench.sizes import marginal_bytes_per_station, targets_met
from stationwatch.bench.traffic import Heartbeats


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


def test_quick_sizes_keep_the_silenced_groups_within_a_quarter_of_the_fleet() -> None:
    sizes = Sizes.choose(quick=True, stations=200, requests=None, ingest_rate=None, batch_size=500)
    assert sizes.stations == 200
    assert sizes.sink_batch == 500  # the worker's own batch size
    assert max(sizes.silent, sizes.recovery_probes, sizes.failover_probes) <= 50
    full = Sizes.choose(quick=False, stations=None, requests=None, ingest_rate=3000, batch_size=1)
    assert (full.stations, full.silent, full.ingest_rate) == (150_000, 500, 3000)


@pytest.mark.parametrize(
    ("figures", "met"),
    [
        ({"pipeline_events_per_s": 5000.0, "recovery_s": 10.5}, {True, False}),
        ({"sink_ratio": 0.49}, {False}),
        ({"detection_delay_p99_s": 0.2, "rss_bytes_per_station": 1024}, {True}),
        ({}, set()),
    ],
)
def test_targets_are_judged_only_for_what_was_measured(
    figures: dict[str, float], met: set[bool]
) -> None:
    judged = targets_met(figures)
    assert set(judged) == set(figures)
    assert set(judged.values()) == met


@pytest.mark.parametrize(
    ("rss", "compare_rss", "stations", "expected"),
    [
        pytest.param(190_000_000, 176_000_000, 150_000, 100, id="more-stations-more-memory"),
        pytest.param(170_000_000, 176_000_000, 150_000, -43, id="less-is-said-as-it-is"),
        pytest.param(190_000_000, 176_000_000, 10_000, None, id="no-stations-beyond"),
        pytest.param(190_000_000, 176_000_000, 5_000, None, id="a-smaller-fleet"),
        pytest.param(None, 176_000_000, 150_000, None, id="worker-unread"),
        pytest.param(190_000_000, None, 150_000, None, id="no-comparison-run"),
    ],
)
def test_memory_per_station_beyond_the_comparison_size(
    rss: int | None, compare_rss: int | None, stations: int, expected: int | None
) -> None:
    assert marginal_bytes_per_station(rss, compare_rss, stations, 10_000) == expected


def test_heartbeats_are_rows_of_their_own_with_a_seq_per_station() -> None:
    beats = Heartbeats()
    sent = [orjson.loads(value) for _, value in beats.many(["SY-0001", "SY-0002"] * 500)]
    assert len({(b["station_id"], b["sent_at"]) for b in sent}) == 1000
    assert [b["seq"] for b in sent if b["station_id"] == "SY-0002"] == list(range(1, 501))


async def test_a_producer_that_fails_fails_the_wait_at_once() -> None:
    """Nothing listens on port 1: the producer cannot start, and the wait ends with its error
    instead of running to its timeout (which would raise TimeoutError)."""

    async def never() -> bool:
        return False

    with pytest.raises(RuntimeError, match="bench: producing to heartbeats"):
        await produce_until("127.0.0.1:1", "heartbeats", [(b"k", b"v")], never, 60, "nothing")


class ScriptedSurvivor:
    """A survivor whose /health answers are given in order (an exception: no answer)."""

    def __init__(self, answers: list[tuple[bool, dict[str, object]] | Exception]) -> None:
        self.answers = answers
        self.asked = 0

    async def health(self) -> tuple[bool, dict[str, object]]:
        answer = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        if isinstance(answer, Exception):
            raise answer
        return answer


def _health(partitions: int, *problems: str) -> tuple[bool, dict[str, object]]:
    return not problems, {"partitions": partitions, "problems": list(problems)}


async def test_the_takeover_steps_are_read_off_the_survivors_health(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(liveness, "TAKEOVER_POLL_S", 0.0)
    survivor = ScriptedSurvivor(
        [
            _health(20),  # its own half, before the broker notices the dead member
            aiohttp.ClientConnectionError("busy"),
            _health(0, "rebalancing partitions"),
            _health(40, "rebalancing partitions"),  # recovering the tables
            _health(40, "behind by 9000 messages"),  # every partition, working off the rest
            _health(40, "behind by 4000 messages"),
            _health(40),
        ]
    )
    # the clock: one second per answer, so each step is the number of the answer it was read off
    monkeypatch.setattr(liveness, "time", SimpleNamespace(time=lambda: float(survivor.asked)))
    seen = await liveness.watch_takeover(survivor, 40, 0.0)  # type: ignore[arg-type]
    assert seen == {"rebalance": 3.0, "assigned": 5.0, "caught_up": 7.0}


async def test_a_rebalance_passed_between_two_questions_leaves_out_only_that_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(liveness, "TAKEOVER_POLL_S", 0.0)
    survivor = ScriptedSurvivor([_health(20), _health(40, "behind by 10 messages"), _health(40)])
    monkeypatch.setattr(liveness, "time", SimpleNamespace(time=lambda: float(survivor.asked)))
    seen = await liveness.watch_takeover(survivor, 40, 0.0)  # type: ignore[arg-type]
    assert seen == {"assigned": 2.0, "caught_up": 3.0}

"""Every fault's decision, with a fixed seed: how often, how long, and what it does to messages."""

from __future__ import annotations

import math
import random
from datetime import datetime
from zoneinfo import ZoneInfo

import orjson
import pytest
from pydantic import ValidationError

from schemas import Heartbeat, Occupancy, StatusEvent, topics
from stationwatch.errors import ConfigurationError
from stationwatch.fault_injection import (
    FLAP_BEATS,
    FLAP_QUIET,
    HOLD_MAX_S,
    LATE_CLOSE_S,
    MANUAL_CLOSE_S,
    OUTAGE_UNPOWERED_S,
    POWER_CUT_S,
    DeviceFaults,
    FaultRates,
    WireFaults,
    fault_rng,
    happens,
    late_close_s,
    manual_closure_s,
    outage_s,
    power_cuts,
)

AT = datetime(2026, 12, 2, 12, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
MODELS: dict[str, type[Heartbeat | Occupancy | StatusEvent]] = {
    topics.HEARTBEAT: Heartbeat,
    topics.OCCUPANCY: Occupancy,
    topics.STATUS: StatusEvent,
}


@pytest.mark.parametrize(
    ("rate_per_h", "over_s", "expected"),
    [
        (0.0, 30.0, 0.0),  # off
        (1.0, 0.0, 0.0),  # no time, no event
        (1 / 12, 30.0, -math.expm1(-30 / 12 / 3600)),  # the default outage: ~1 in 1,440 beats
        (1.0, 3600.0, 1 - math.exp(-1)),  # once an hour, over an hour
        (120.0, 30.0, 1 - math.exp(-1)),  # twice a minute, over half a minute
        (1e6, 1.0, 1.0),  # a rate far above 1 per hour: certain
    ],
)
def test_a_rate_per_hour_happens_as_often_as_poisson_says(
    rate_per_h: float, over_s: float, expected: float
) -> None:
    rng = random.Random(1)
    draws = 20_000
    share = sum(happens(rate_per_h, over_s, rng) for _ in range(draws)) / draws
    assert share == pytest.approx(expected, abs=4 * math.sqrt(max(expected, 1e-4) / draws))


def test_a_fault_switched_off_draws_nothing() -> None:
    rng = random.Random(3)
    before = rng.getstate()
    assert not happens(0.0, 30.0, rng)
    assert power_cuts(["a", "b"], 0.0, 15.0, rng) == []
    assert late_close_s(0.0, rng) == 0.0
    assert rng.getstate() == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("outage", -1.0),
        ("death", math.nan),
        ("flapping", math.inf),
        ("clock_skew_s", -5.0),
        ("duplicate", 1.5),
        ("reorder", 2.0),
        ("malformed", -0.1),
        ("late_close", 1.01),
    ],
)
def test_rates_that_make_no_sense_are_refused(field: str, value: float) -> None:
    with pytest.raises(ConfigurationError, match=field):
        FaultRates(**{field: value})


def test_the_defaults_are_the_simulators_long_standing_behaviour() -> None:
    rates = FaultRates()
    assert rates.outage == pytest.approx(1 / 12)  # a device goes quiet about every 12 h
    assert rates.manual_close == pytest.approx(1 / (7 * 24))  # staff close about weekly
    assert rates.malformed == 0.001
    off = ("death", "flapping", "power_cut", "clock_skew", "late_close", "duplicate", "reorder")
    assert all(getattr(rates, name) == 0 for name in off)
    assert FaultRates(power_cut=50.0).power_cut == 50.0  # a rate, not a probability


@pytest.mark.parametrize(
    ("rates", "expected"),
    [
        (FaultRates(outage=0), []),
        (FaultRates(outage=0, death=1e9), ["death"]),
        (FaultRates(outage=0, clock_skew=1e9), ["clock_skew"]),
        (FaultRates(outage=0, flapping=1e9), ["flapping"]),
        (FaultRates(outage=1e9), ["outage"]),
        (
            FaultRates(outage=1e9, death=1e9, flapping=1e9, clock_skew=1e9),
            ["death", "clock_skew", "flapping", "outage"],
        ),
    ],
)
def test_what_strikes_a_device(rates: FaultRates, expected: list[str]) -> None:
    assert DeviceFaults.for_seed(1).strike(rates, 30.0) == expected


def test_each_fault_has_its_own_stream() -> None:
    """Switching one fault on leaves the others' decisions as they were."""
    deaths_alone, deaths_with_more = DeviceFaults.for_seed(5), DeviceFaults.for_seed(5)
    alone = FaultRates(outage=0, death=2.0)
    more = FaultRates(outage=30.0, death=2.0, flapping=30.0, clock_skew=30.0)
    for _ in range(2000):
        a = "death" in deaths_alone.strike(alone, 30.0)
        b = "death" in deaths_with_more.strike(more, 30.0)
        assert a == b
    assert fault_rng(5, "death").random() != fault_rng(5, "outage").random()
    assert fault_rng(5, "death").random() == fault_rng(5, "death").random()


def test_an_outage_is_a_blip_a_longer_silence_or_a_while_without_power() -> None:
    rng = random.Random(2)
    quiet = [outage_s(rng, 30.0) for _ in range(3000)]
    blips = [q for q in quiet if q <= 9 * 30]
    longer = [q for q in quiet if 12 * 30 <= q <= 40 * 30]
    unpowered = [q for q in quiet if q > 40 * 30]
    assert len(blips) + len(longer) + len(unpowered) == len(quiet)
    assert all(q >= 4 * 30 for q in blips)  # past stale (3 intervals)
    assert all(OUTAGE_UNPOWERED_S[0] <= q <= OUTAGE_UNPOWERED_S[1] for q in unpowered)
    assert 0.5 < len(blips) / len(quiet) < 0.6
    assert 0.05 < len(unpowered) / len(quiet) < 0.15


def test_a_flapping_device_is_quiet_past_stale_then_beats_a_little() -> None:
    faults = DeviceFaults.for_seed(4)
    for _ in range(200):
        quiet, beats = faults.flap_step(30.0)
        assert FLAP_QUIET[0] * 30 <= quiet <= FLAP_QUIET[1] * 30
        assert FLAP_BEATS[0] <= beats <= FLAP_BEATS[1]
        assert 600 <= faults.flap_for_s() <= 1800


def test_a_skewed_clock_is_off_by_the_amount_either_way() -> None:
    faults = DeviceFaults.for_seed(6)
    skews = {faults.skew_s(FaultRates(clock_skew_s=90.0)) for _ in range(100)}
    assert skews == {90.0, -90.0}


def test_streets_lose_power_at_their_rate_for_a_while() -> None:
    rng = random.Random(8)
    streets = [f"street {n}" for n in range(400)]
    cuts = power_cuts(streets, 240.0, 15.0, rng)  # 1 - e^-1 of them
    assert 0.55 * 400 < len(cuts) < 0.7 * 400
    assert len({street for street, _ in cuts}) == len(cuts)
    assert all(POWER_CUT_S[0] <= lasting <= POWER_CUT_S[1] for _, lasting in cuts)


@pytest.mark.parametrize(("rate", "share"), [(0.0, 0.0), (0.25, 0.25), (1.0, 1.0)])
def test_staff_close_late_at_their_rate(rate: float, share: float) -> None:
    rng = random.Random(9)
    delays = [late_close_s(rate, rng) for _ in range(4000)]
    late = [d for d in delays if d]
    assert len(late) / len(delays) == pytest.approx(share, abs=0.03)
    assert all(LATE_CLOSE_S[0] <= d <= LATE_CLOSE_S[1] for d in late)


def test_staff_closures_are_short_or_outlast_the_grace() -> None:
    rng = random.Random(10)
    spans = [manual_closure_s(rng) for _ in range(2000)]
    short, long = MANUAL_CLOSE_S
    assert all(short[0] <= s <= short[1] or long[0] <= s <= long[1] for s in spans)
    assert 0.25 < sum(s >= long[0] for s in spans) / len(spans) < 0.35


# -- on the wire ---------------------------------------------------------------------------------
def beat(station: str, seq: int) -> tuple[str, bytes, bytes]:
    value = {"station_id": station, "sent_at": AT.isoformat(), "seq": seq}
    return topics.HEARTBEAT, station.encode(), orjson.dumps(value)


def count(station: str, n: int) -> tuple[str, bytes, bytes]:
    value = {"station_id": station, "observed_at": AT.isoformat(), "occupants": n}
    return topics.OCCUPANCY, station.encode(), orjson.dumps(value)


A1, A2, A3 = beat("SY-0001", 1), beat("SY-0001", 2), beat("SY-0001", 3)
B1, C1 = beat("SY-0002", 1), count("SY-0001", 4)


@pytest.mark.parametrize(
    ("rates", "batches", "expected"),
    [
        # nothing on: what goes in comes out, in order
        (FaultRates(malformed=0), [[A1, B1, C1], [A2]], [[A1, B1, C1], [A2]]),
        # every message twice, at once (a producer's retry)
        (FaultRates(malformed=0, duplicate=1), [[A1, B1]], [[A1, A1, B1, B1]]),
        # held back until the station's next message on the same topic, then after it;
        # another topic or station is no "next"
        (
            FaultRates(malformed=0, reorder=1),
            [[A1, C1, B1], [A2, A3]],
            [[], [A2, A1]],
        ),
    ],
)
def test_wire_faults(
    rates: FaultRates,
    batches: list[list[tuple[str, bytes, bytes]]],
    expected: list[list[tuple[str, bytes, bytes]]],
) -> None:
    wire = WireFaults(rates, seed=1)
    got = [wire.apply(batch, wall=float(n), at=AT) for n, batch in enumerate(batches)]
    assert got == expected


def test_a_held_message_goes_out_after_the_next_or_at_the_latest_after_the_hold() -> None:
    wire = WireFaults(FaultRates(malformed=0, reorder=0.5), seed=2)
    sent: list[tuple[str, bytes, bytes | None]] = []
    messages = [beat(f"SY-{n % 7 + 1:04d}", n // 7 + 1) for n in range(700)]
    for second, message in enumerate(messages):
        sent += wire.apply([message], wall=float(second), at=AT)
    assert all(wall >= len(messages) - 1 - HOLD_MAX_S for wall, _ in wire.held.values())
    sent += wire.release(float(len(messages)), everything=True)
    assert sorted(sent) == sorted(messages)  # nothing lost, nothing added
    assert sent != messages
    for station in {key for _, key, _ in messages}:  # out-of-order pairs, each station
        seqs = [orjson.loads(v or b"")["seq"] for _, k, v in sent if k == station]
        assert seqs != sorted(seqs)
    assert len(wire.held) <= 7


def test_malformed_messages_follow_their_station_and_are_refused() -> None:
    wire = WireFaults(FaultRates(malformed=1.0), seed=3)
    out = wire.apply([A1, B1, C1] * 20, wall=0.0, at=AT)
    assert len(out) == 120
    broken = out[1::2]
    for (_, key, _), (topic, bad_key, value) in zip(out[0::2], broken, strict=True):
        assert bad_key == key or bad_key.endswith(b"-XXXX")
        assert bad_key.split(b"-")[0] == key.split(b"-")[0]
        try:
            message = MODELS[topic].model_validate_json(value or b"")
        except ValidationError:
            continue
        assert message.station_id.encode() != bad_key  # a valid body under the wrong key

"""How the live table stores a state: every state comes back as it went in, the changelog's
older plain-JSON records still read, and damage is an error, never a wrong state."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest
import zstandard

from stationwatch.fleet import build_fleet
from streams.liveness import LivenessConfig
from streams.record import holding
from streams.state import StationState, apply_profile, new_state
from streams.state_codec import (
    _COMPRESS,
    _COMPRESS_V3,
    _DICT_V3,
    _ENCODER,
    DICTIONARY_V1,
    DICTIONARY_V3,
    HEADER,
    V1,
    V2,
    V3,
    StoredStateError,
    decode_state,
    encode_state,
    settings_basis,
    state_json,
    stored_partition,
    stored_schedule,
)
from tests import factories
from tests.unit.streams.test_state import profile

NOW = datetime(2026, 12, 2, 14, 0, 0, 123456, tzinfo=UTC)
CST = timezone(timedelta(hours=8))


def zstd_frame(text: bytes) -> bytes:
    """A frame as versions 1 and 2 hold it (against the first dictionary)."""
    return _COMPRESS.compress(text)


def zstd_frame_v3(text: bytes) -> bytes:
    return _COMPRESS_V3.compress(text)


def registered() -> StationState:
    return apply_profile(new_state("SY-0001", NOW), profile(NOW), NOW)


def busy() -> StationState:
    """A state with every kind of field filled: episodes, flips, times in another zone."""
    return StationState(
        station_id="SY-0042",
        **holding(factories.profile("SY-0042", name="空港祥云工会驿站 🚚")),
        profile_updated_at=NOW - timedelta(days=1),
        liveness="offline",
        liveness_since=(NOW - timedelta(minutes=5)).astimezone(CST),
        last_heartbeat_at=NOW - timedelta(minutes=9),
        last_seq=2**40,
        device_id="dev-7",
        battery_pct=12.5,
        on_mains=False,
        open_state="open",
        open_state_since=NOW - timedelta(hours=3),
        occupants=14,
        reported_capacity=12,
        occupancy_at=NOW - timedelta(seconds=30),
        updated_at=NOW,
        partition=5,
        watch_since=NOW - timedelta(days=2),
        recovery_beats=2,
        flips=(NOW - timedelta(minutes=20), NOW - timedelta(minutes=5)),
        flapping_since=None,
        scheduled=True,
        scheduled_since=NOW - timedelta(hours=6),
        expected_since=NOW - timedelta(hours=6),
        lifecycle_in_force="active",
        expected_changed_at=NOW - timedelta(hours=6),
        expect_basis={"lifecycle": "active", "device": True},
        episodes={
            "offline": {
                "alert_id": "4582625a-4f9c-5e8a-8101-ec8835dc5663",
                "starts_at": (NOW - timedelta(minutes=5)).isoformat(),
                "detected_at": NOW.isoformat(),
                "summary": "has sent no heartbeat for 5 min",
            }
        },
        resolved_episodes={"stale": {"alert_id": "x", "ends_at": NOW.isoformat()}},
        pending={"over_capacity": (NOW - timedelta(seconds=30)).isoformat()},
        clearing={},
    )


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(StationState(station_id="SY-0000"), id="bare"),
        pytest.param(registered(), id="registered"),
        pytest.param(busy(), id="every-field"),
    ],
)
def test_a_state_comes_back_as_it_went_in(state: StationState) -> None:
    stored = encode_state(state)
    assert decode_state(stored) == state
    assert json.loads(state_json(stored))["station_id"] == state.station_id


def test_times_come_back_in_their_own_offsets() -> None:
    """A time is read back as it was written, its offset too (alert ids no longer depend on
    the offset: they are made from the instant in UTC)."""
    state = busy()
    again = decode_state(encode_state(state))
    for name in ("liveness_since", "last_heartbeat_at", "scheduled_since", "open_state_since"):
        went_in, came_back = getattr(state, name), getattr(again, name)
        assert came_back.isoformat() == went_in.isoformat(), name


def test_a_value_this_version_does_not_know_is_read_leniently() -> None:
    """A newer worker's state (a liveness, a field this one does not know) still reads."""
    data = registered().to_json() | {"liveness": "dormant", "a_newer_field": 1}
    stored = encode_state(registered())
    assert stored[:1] == V3
    newer = stored[: 1 + HEADER.size] + zstd_frame_v3(json.dumps(data).encode())
    state = decode_state(newer)
    assert str(state.liveness) == "dormant"  # not one of this version's values
    assert state.profile == registered().profile


def test_a_stored_state_is_small() -> None:
    """What the memory figures rest on: a registered station in well under 1 KiB."""
    plain = json.dumps(registered().to_json()).encode()
    stored = encode_state(registered())
    assert len(stored) < 400 < len(plain)


@pytest.mark.parametrize(
    "state", [pytest.param(registered(), id="registered"), pytest.param(busy(), id="busy")]
)
def test_the_changelog_s_plain_json_records_still_read(state: StationState) -> None:
    """Records written before the compact form: Faust's JSON of ``to_json()``."""
    earlier = json.dumps(state.to_json()).encode()
    # the same state; its registry record is kept as that JSON wrote it
    assert decode_state(earlier).to_json() == state.to_json()
    assert stored_partition(earlier) == state.partition


def test_the_partition_is_read_without_building_the_state() -> None:
    assert stored_partition(encode_state(busy())) == 5
    assert stored_partition(encode_state(registered())) is None


def test_the_header_tells_when_the_station_is_due_under_the_same_settings() -> None:
    due = NOW + timedelta(minutes=5)
    basis = settings_basis(LivenessConfig())
    stored = encode_state(busy(), due, basis)
    assert decode_state(stored) == busy()
    schedule = stored_schedule(stored, basis)
    assert schedule is not None
    assert schedule.due == due.timestamp()
    assert (schedule.partition, schedule.liveness) == (5, "offline")


def test_a_time_worked_out_under_other_settings_is_not_used() -> None:
    """Other thresholds may make the station due sooner: it is judged at once instead."""
    stored = encode_state(busy(), NOW, settings_basis(LivenessConfig()))
    other = settings_basis(LivenessConfig(offline_after=4.0))
    assert other != settings_basis(LivenessConfig())
    schedule = stored_schedule(stored, other)
    assert schedule is not None
    assert schedule.due is None
    assert schedule.liveness == "offline"


def test_without_a_due_time_the_station_is_judged_at_once() -> None:
    basis = settings_basis(LivenessConfig())
    schedule = stored_schedule(encode_state(registered(), None, basis), basis)
    assert schedule is not None
    assert (schedule.due, schedule.partition, schedule.liveness) == (None, None, "unknown")


def test_states_stored_before_they_kept_their_record_s_facts_read_them_from_it() -> None:
    """Earlier versions kept no ``record_facts``: the state read back has them."""
    earlier = msgspec.structs.replace(busy(), record_facts=None)
    assert decode_state(encode_state(earlier)) == busy()


def test_states_stored_against_the_first_dictionary_still_read() -> None:
    """A version 2 state: the header and a frame against the first dictionary."""
    stored = encode_state(busy(), NOW, 7)
    v2 = V2 + stored[1 : 1 + HEADER.size] + zstd_frame(_ENCODER.encode(busy()))
    assert decode_state(v2) == busy()
    assert stored_schedule(v2, 7) == stored_schedule(stored, 7)
    assert stored_partition(v2) == 5


def test_states_are_written_against_the_trained_dictionary_in_less_room() -> None:
    """Registered stations of a simulated fleet (not the dictionary's own seed): in about
    two thirds of the room the first dictionary took."""
    now = datetime(2027, 3, 14, 6, 30, tzinfo=UTC)
    v2_sizes, v3_sizes = [], []
    for station in build_fleet(3000, 3, now)[::50]:
        state = apply_profile(new_state(station.station_id, now), station, now)
        stored = encode_state(state)
        assert stored[:1] == V3
        assert decode_state(stored) == state
        v2 = V2 + stored[1 : 1 + HEADER.size] + zstd_frame(_ENCODER.encode(state))
        v2_sizes.append(len(v2))
        v3_sizes.append(len(stored))
    assert sum(v3_sizes) < 0.75 * sum(v2_sizes)


def test_version_3_states_compressed_at_level_3_still_read_and_took_about_as_much_room() -> None:
    """Version 3 frames were compressed at level 3 until the compressor took small match
    tables: the same dictionary, so those frames read as they did, and the new ones are frames
    of the same form (their content's size in them, which the reader needs; no dictionary id,
    no checksum) in a little more room (these registered stations: 3 %)."""
    level_3 = zstandard.ZstdCompressor(
        level=3, dict_data=_DICT_V3, write_checksum=False, write_content_size=True,
        write_dict_id=False,
    )  # fmt: skip
    now = datetime(2027, 3, 14, 6, 30, tzinfo=UTC)
    before, after = [], []
    for station in build_fleet(3000, 3, now)[::50]:
        state = apply_profile(new_state(station.station_id, now), station, now)
        text = _ENCODER.encode(state)
        stored = encode_state(state, now, 7)
        frame = zstandard.get_frame_parameters(stored[1 + HEADER.size :])
        assert (frame.content_size, frame.dict_id, frame.has_checksum) == (len(text), 0, False)
        assert decode_state(stored) == state
        earlier = stored[: 1 + HEADER.size] + level_3.compress(text)
        assert decode_state(earlier) == state
        before.append(len(earlier))
        after.append(len(stored))
    assert before != after  # the compressor did change
    assert sum(after) <= 1.05 * sum(before)


def test_states_stored_before_the_header_still_read_and_have_no_schedule() -> None:
    """A version 1 state: the frame without the header (what earlier workers wrote)."""
    v1 = V1 + zstd_frame(_ENCODER.encode(busy()))
    assert decode_state(v1) == busy()
    assert stored_partition(v1) == 5
    assert stored_schedule(v1, 0) is None
    assert stored_schedule(json.dumps(busy().to_json()).encode(), 0) is None


@pytest.mark.parametrize(
    ("stored", "error"),
    [
        pytest.param(b"\x07abc", "unknown version", id="unknown-version"),
        pytest.param(b"", "unknown version", id="empty"),
        pytest.param(b"\x01" + b"\x00" * 20, "damaged", id="damaged"),
        pytest.param(b"\x02" + b"\x00" * 30, "damaged", id="damaged-v2"),
        pytest.param(b"\x03" + b"\x00" * 30, "damaged", id="damaged-v3"),
    ],
)
def test_an_unreadable_stored_state_is_an_error(stored: bytes, error: str) -> None:
    with pytest.raises(StoredStateError, match=error):
        decode_state(stored)


def test_the_first_dictionary_never_changes() -> None:
    """Changelogs hold states compressed against it: a change would make them unreadable.
    A new dictionary comes with a new version byte, beside this one."""
    digest = hashlib.sha256(DICTIONARY_V1).hexdigest()
    assert digest == PINNED_V1


PINNED_V1 = "c8d71b3e9e4b2f2263ff8b685ec1e10c2219317a8d2e4096461ed7f254d781b3"


def test_the_trained_dictionary_never_changes() -> None:
    """As the first: version 3 states are compressed against it."""
    assert hashlib.sha256(DICTIONARY_V3).hexdigest() == PINNED_V3


PINNED_V3 = "cb743fdaee116173f5ade13460f93ba1b8c08a3eae0b90c145654c8ba12b0b04"

"""How the live table stores a station's state: compact bytes, decoded when a batch needs it.

A state as JSON is about 1.6 KB, mostly its registry record, and as Python objects several
times that; at 150,000 stations the table would dominate the worker's memory and every full
garbage collection. Stored, it is the JSON compressed with zstd against a fixed dictionary of
typical states: about 200 bytes, one ``bytes`` object the collector does not track.

The stored form starts with a version byte. Plain JSON (``{`` first) is read too: what the
table's changelog held before this encoding, or what a person wrote to it. A new dictionary
comes with a new version byte; the old ones stay readable for as long as a changelog may hold
them. Never change a dictionary once released.

Version 2 puts a small header before the same compressed JSON: when the station is next due
for judging, the liveness settings that time was worked out under (a fingerprint), its
partition and its liveness. A worker taking partitions over (a restart, a failover) schedules
every station from the headers alone, instead of reading and judging 150,000 states before
it can judge the ones that are due. A stored time is never later than the true one (as time
passes without a change to the state, the next moment anything can change only moves later),
so a station is at worst judged early; under other liveness settings the time is not used.

Version 3 is version 2's header and a frame compressed against a trained dictionary
(``dictionaries/state-v3.zdict``, made by ``tools/train_state_dictionary.py`` from states the
ingest step left of a simulated fleet). A state of a fleet the bench simulates took 337 bytes
against the first dictionary, 208 against this one, and half the time to compress and to
decompress: the stations' states fit the store's block cache twice as well, and every
changelog record is smaller. (Measured at level 3; states are now compressed with smaller
match tables, in about 3 % more room: ``_COMPRESS_V3``.)

A worker of an earlier version cannot read version 3: stop every worker of an earlier version
before the first of this one starts (the upgrade cannot be undone by starting an earlier
version again on the same changelog).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files
from typing import Any

import msgspec
import orjson
import zstandard

from streams.record import facts_of
from streams.state import StationState, evolve

V1 = b"\x01"  # zstd, DICTIONARY_V1, no dictionary id, content size in the frame
V2 = b"\x02"  # HEADER, then V1's frame
V3 = b"\x03"  # HEADER, then a zstd frame of DICTIONARY_V3 (no dictionary id, content size)
# next due (epoch seconds; 0: as soon as the partition's clock is known), settings
# fingerprint, partition (NO_PARTITION: none kept), liveness (LIVENESS codes)
HEADER = struct.Struct("<dIHB")
NO_PARTITION = 0xFFFF
LIVENESS: tuple[str, ...] = ("unknown", "online", "stale", "offline", "not_monitored")
_LIVENESS_CODE = {name: code for code, name in enumerate(LIVENESS)}

# Two typical states (a basic station online, an extended one offline with an episode), as
# orjson writes StationState. Frozen: newer dictionaries go beside it (DICTIONARY_V3).
DICTIONARY_V1 = (
    '{"station_id":"SY-0002","profile":{"station_id":"SY-0002","name":"石园街道金港党群服务中心工会'
    '驿站","district":"顺义区","street":"石园街道","category":"standard","host":"party_service'
    '_center","location":{"lat":40.12578,"lon":116.61922},"services":["water","chargi'
    'ng","rest","rain_shelter","warming","cooling","toilet","convenience","legal_aid"'
    ',"counseling","dining_area"],"capacity":9,"opening_hours":{"always_open":false,"'
    'weekly":{"mon":[["08:30","12:00"],["13:30","17:30"]],"tue":[["08:30","12:00"],["'
    '13:30","17:30"]],"wed":[["08:30","12:00"],["13:30","17:30"]],"thu":[["08:30","12'
    ':00"],["13:30","17:30"]],"fri":[["08:30","12:00"],["13:30","17:30"]],"sat":[["08'
    ':30","12:00"],["13:30","17:30"]],"sun":[["08:30","12:00"],["13:30","17:30"]]},"h'
    'olidays_open":false},"heartbeat_interval_s":30,"contact_phone":"010-69782408","l'
    'ifecycle":"active","updated_at":"2026-06-01T03:00:00Z","responsible_person":null'
    ',"responsible_phone":null,"closed_until":null,"closure_reason":null,"changed_by"'
    ':null,"changed_via":null},"profile_updated_at":"2026-06-01T03:00:00+00:00","live'
    'ness":"online","liveness_since":"2026-06-01T03:00:30+00:00","last_heartbeat_at":'
    '"2026-06-01T03:01:30+00:00","last_seq":3,"device_id":"gw-SY-0002","battery_pct":'
    '90.5,"on_mains":true,"open_state":"unknown","open_state_since":null,"open_reason'
    '":null,"occupants":null,"reported_capacity":null,"occupancy_at":null,"updated_at'
    '":"2026-06-01T03:01:30+00:00","partition":null,"watch_since":"2026-06-01T03:00:0'
    '0+00:00","recovery_beats":0,"flips":[],"flapping_since":null,"scheduled":true,"s'
    'cheduled_since":"2026-06-01T08:30:00+08:00","expected_since":"2026-06-01T03:00:0'
    '0+00:00","lifecycle_in_force":"active","expected_changed_at":"2026-06-01T03:00:0'
    '0+00:00","expect_basis":{"lifecycle":"active","device":true},"hours_before":null'
    ',"episodes":{},"resolved_episodes":{},"pending":{},"clearing":{}}{"station_id":"'
    'SY-0001","profile":{"station_id":"SY-0001","name":"空港祥云工会驿站","district":"顺义区","s'
    'treet":"空港街道","category":"business_circle_24h","host":"business_circle","locatio'
    'n":{"lat":40.08681,"lon":116.605},"services":["water","hot_meal","charging","res'
    't","rain_shelter","warming","cooling","toilet"],"capacity":12,"opening_hours":{"'
    'always_open":true,"weekly":{},"holidays_open":true},"heartbeat_interval_s":30,"c'
    'ontact_phone":"010-69798477","lifecycle":"active","updated_at":"2026-06-01T03:00'
    ':00Z","responsible_person":null,"responsible_phone":null,"closed_until":null,"cl'
    'osure_reason":null,"changed_by":null,"changed_via":null},"profile_updated_at":"2'
    '026-06-01T03:00:00+00:00","liveness":"offline","liveness_since":"2026-06-01T03:0'
    '6:30+00:00","last_heartbeat_at":"2026-06-01T03:01:30+00:00","last_seq":3,"device'
    '_id":"gw-SY-0001","battery_pct":90.5,"on_mains":true,"open_state":"unknown","ope'
    'n_state_since":null,"open_reason":null,"occupants":null,"reported_capacity":null'
    ',"occupancy_at":null,"updated_at":"2026-06-01T03:01:30+00:00","partition":null,"'
    'watch_since":"2026-06-01T03:00:00+00:00","recovery_beats":0,"flips":["2026-06-01'
    'T03:06:30+00:00"],"flapping_since":null,"scheduled":true,"scheduled_since":"2000'
    '-01-01T00:00:00+00:00","expected_since":"2026-06-01T03:00:00+00:00","lifecycle_i'
    'n_force":"active","expected_changed_at":"2026-06-01T03:00:00+00:00","expect_basi'
    's":{"lifecycle":"active","device":true},"hours_before":null,"episodes":{"offline'
    '":{"alert_id":"4582625a-4f9c-5e8a-8101-ec8835dc5663","starts_at":"2026-06-01T03:'
    '06:30+00:00","detected_at":"2026-06-01T03:16:30+00:00","summary":"空港祥云工会驿站 (SY-0'
    '001) has sent no heartbeat for 5 min"}},"resolved_episodes":{},"pending":{"offli'
    'ne":"2026-06-01T03:06:30+00:00"},"clearing":{}}'
).encode()

_DICT_V1 = zstandard.ZstdCompressionDict(DICTIONARY_V1, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
_COMPRESS = zstandard.ZstdCompressor(
    level=3, dict_data=_DICT_V1, write_checksum=False, write_content_size=True, write_dict_id=False
)
_DECOMPRESS = zstandard.ZstdDecompressor(dict_data=_DICT_V1)
# Frozen: a new dictionary is a new file, beside this one, with a new version byte.
DICTIONARY_V3 = files("streams").joinpath("dictionaries/state-v3.zdict").read_bytes()
_DICT_V3 = zstandard.ZstdCompressionDict(DICTIONARY_V3, dict_type=zstandard.DICT_TYPE_FULLDICT)
# Compressed with small match tables (2^12 entries, 16 KiB, each), not level 3's: at level 3,
# with this dictionary, the dictionary's tables have 2^16 and 2^15 entries (384 KiB together,
# against 32 KiB), and each state, 1.6 kB, touches them wherever its hashes fall: a worker,
# whose caches the states, the broker client and the interpreter share, waited on those misses.
# States of a simulated fleet, each compressed alone with 8 MiB of other memory touched between
# every fifth (three runs): 3.5, 3.6 and 5.5 µs against 5.2, 4.8 and 6.0; 187 bytes against
# 186 on average (stations registered and never heard: 153 against 149: the small tables keep
# fewer of the dictionary's places to match). In a worker at saturation (10,000 stations,
# py-spy, one round each): compression 6.5 % of its samples against 8.7 %. The frames are
# version 3's as before (the same dictionary, read as fast): any reader of version 3 reads
# them.
_COMPRESS_V3 = zstandard.ZstdCompressor(
    dict_data=_DICT_V3,
    compression_params=zstandard.ZstdCompressionParameters(
        window_log=14,  # at most: a frame's window is its state's size (single segment)
        hash_log=12,
        chain_log=12,
        search_log=1,
        min_match=5,
        strategy=zstandard.STRATEGY_DFAST,
        write_checksum=False,
        write_content_size=True,
        write_dict_id=False,
    ),
)
_DECOMPRESS_V3 = zstandard.ZstdDecompressor(dict_data=_DICT_V3)
# The state as JSON, and back: msgspec builds and reads the dataclass in C (times included),
# at half what orjson and StationState.from_json cost together; UTC times are written with
# "Z", read alike by both.
_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(StationState)


class StoredStateError(ValueError):
    """A stored state that cannot be read (an unknown version, or damaged)."""


@dataclass(frozen=True, slots=True)
class Schedule:
    """What a stored state's header says, read without the state."""

    due: float | None  # when to judge it next (epoch seconds); None: at once
    partition: int | None
    liveness: str


def encode_state(state: StationState, next_due: datetime | None = None, basis: int = 0) -> bytes:
    """``next_due``: when the station is next due for judging (None: at once), worked out
    under the liveness settings ``basis`` fingerprints (:func:`settings_basis`)."""
    header = HEADER.pack(
        next_due.timestamp() if next_due is not None else 0.0,
        basis,
        state.partition if state.partition is not None else NO_PARTITION,
        _LIVENESS_CODE.get(state.liveness, 0),
    )
    return V3 + header + _COMPRESS_V3.compress(_ENCODER.encode(state))


def settings_basis(settings: object) -> int:
    """A fingerprint of the settings a next-due time depends on (their ``repr``)."""
    return zlib.crc32(repr(settings).encode())


def stored_schedule(stored: bytes, basis: int) -> Schedule | None:
    """The header of a version 2 or 3 state (its time only if worked out under ``basis``);
    None for the earlier forms, which must be read."""
    if stored[:1] not in (V2, V3) or len(stored) < 1 + HEADER.size:
        return None
    due, made_under, partition, liveness = HEADER.unpack_from(stored, 1)
    return Schedule(
        due=due if due > 0 and made_under == basis else None,
        partition=None if partition == NO_PARTITION else partition,
        liveness=LIVENESS[liveness] if liveness < len(LIVENESS) else "unknown",
    )


def state_json(stored: bytes) -> bytes:
    """The state as JSON bytes (what the API server's feed carries)."""
    version = stored[:1]
    if version == b"{":
        return stored
    if version in (V1, V2, V3):
        frame = stored[1:] if version == V1 else stored[1 + HEADER.size :]
        try:
            if version == V3:
                return _DECOMPRESS_V3.decompress(frame)
            return _DECOMPRESS.decompress(frame)
        except zstandard.ZstdError as exc:
            raise StoredStateError(f"a damaged stored state: {exc}") from None
    raise StoredStateError(f"a stored state of unknown version {version!r}")


def decode_state(stored: bytes | dict[str, Any]) -> StationState:
    """A stored state (or one already parsed from JSON) as a :class:`StationState`."""
    if isinstance(stored, dict):
        return StationState.from_json(stored)
    text = state_json(stored)
    try:
        state = _DECODER.decode(text)
    except msgspec.ValidationError:
        # a value this version does not know (say, a newer liveness): read as leniently as
        # from_json reads it
        return StationState.from_json(orjson.loads(text))
    if state.record_facts is None and state.registered:
        # stored before the state kept what judging reads of its record: read it once
        state = evolve(state, record_facts=facts_of(state.profile))
    return state


def stored_partition(stored: bytes) -> int | None:
    """The partition kept in a stored state, without building the state."""
    schedule = stored_schedule(stored, 0)
    if schedule is not None:
        return schedule.partition
    value = orjson.loads(state_json(stored)).get("partition")
    return int(value) if value is not None else None

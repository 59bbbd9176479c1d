"""How ``streams/dictionaries/state-v3.zdict`` was made: the zstd dictionary of stored states
(version 3, :mod:`streams.state_codec`).

Never run this to replace a released dictionary: states compressed against it stay in the
live table and its changelog. A new dictionary is a new file and a new version byte.

The samples are states as the worker leaves them, made by its own ingest step
(:func:`streams.ingest.process_records`) from a simulated fleet (the seed district and
further ones, seed 20261205, not the bench's): each station registered, then over a few
batches its heartbeats, counts and open/closed events, and some falling silent until they
are stale or offline with open episodes, at moments spread over two years.

    python tools/train_state_dictionary.py /tmp/state.zdict

(it refuses to write over a file that exists). The committed file came from a run in which
the silent stations were judged in the order of a set of strings, which Python's hash seed
changes from one run to the next; the samples are now taken in station order, so runs give
the same bytes, alike in kind to the committed ones but not those bytes.
"""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import orjson
import zstandard

from schemas.topics import HEARTBEAT, OCCUPANCY, REGISTRY, STATUS
from stationwatch.fleet import build_fleet
from streams.ingest import IngestConfig, Record, Tick, process_records
from streams.liveness import Clock, LivenessConfig
from streams.state_codec import decode_state
from streams.tracker import partition_for

SEED = 20261205
STATIONS = 6000
GROUP = 500  # stations sharing one starting moment
PARTITIONS = 8
DICTIONARY_BYTES = 16 * 1024
CONFIG = IngestConfig(
    topic_prefix="",
    max_bytes=65536,
    max_skew=timedelta(days=3650),
    liveness=LivenessConfig(),
    max_age=timedelta(days=3650),
    partitions=PARTITIONS,
)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


class Run:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.table: dict[str, bytes] = {}
        self.samples: list[bytes | bytearray | memoryview[int]] = []  # as zstd takes them
        self.offset = 0

    def record(self, topic: str, station_id: str, message: dict[str, Any]) -> Record:
        self.offset += 1
        return Record(
            topic,
            partition_for(station_id, PARTITIONS),
            self.offset,
            station_id.encode(),
            orjson.dumps(message),
        )

    def batch(self, records: list[Record], at: datetime, ticks: list[Tick] | None = None) -> None:
        clocks: dict[int, Clock | None] = {p: Clock(at, at) for p in range(PARTITIONS)}
        out = process_records(
            records, self.table, now=at, clocks=clocks, config=CONFIG, ticks=ticks or ()
        )
        for station_id, write in out.state_writes.items():  # into the table, and as samples
            if write.value is not None:
                self.table[station_id] = write.value
                self.samples.append(msgspec.json.encode(decode_state(write.value)))

    def group(self, profiles: list[dict[str, Any]], start: datetime) -> None:
        rng = self.rng
        ids = [p["station_id"] for p in profiles]
        for p in profiles:
            p["updated_at"] = iso(start - timedelta(days=rng.randrange(400)))
            if rng.random() < 0.3:
                p["heartbeat_interval_s"] = 3600
        self.batch([self.record(REGISTRY, p["station_id"], p) for p in profiles], start)
        silent = set(rng.sample(ids, len(ids) // 10))
        at = start
        for beat in range(1, 4):
            at += timedelta(seconds=30)
            records = []
            for sid in ids:
                if sid in silent:
                    continue
                sent = at - timedelta(seconds=rng.uniform(0.2, 5))
                message: dict[str, Any] = {"station_id": sid, "sent_at": iso(sent)}
                if rng.random() < 0.85:
                    message |= {
                        "device_id": f"gw-{sid}",
                        "seq": beat + rng.randrange(100_000),
                        "uptime_s": rng.randrange(10**7),
                        "battery_pct": round(rng.uniform(20, 100), 1),
                        "on_mains": rng.random() < 0.9,
                        "temperature_c": round(rng.uniform(-15, 38), 1),
                        "firmware": rng.choice(["1.4.2", "1.5.0", "2.0.1"]),
                    }
                records.append(self.record(HEARTBEAT, sid, message))
                if rng.random() < 0.3:
                    count = {
                        "station_id": sid,
                        "observed_at": iso(sent),
                        "occupants": rng.randrange(0, 16),
                        "capacity": rng.randrange(4, 20),
                        "source": rng.choice(["sensor", "staff"]),
                    }
                    records.append(self.record(OCCUPANCY, sid, count))
                if rng.random() < 0.1:
                    event = {
                        "station_id": sid,
                        "at": iso(sent),
                        "state": rng.choice(["open", "closed"]),
                        "reason": rng.choice(["schedule", "staff", "maintenance"]),
                        "actor": rng.choice(["device", "staff"]),
                    }
                    records.append(self.record(STATUS, sid, event))
            self.batch(records, at)
        # the silent ones, judged as their thresholds pass: stale, then offline
        for later in (timedelta(minutes=3), timedelta(minutes=20), timedelta(hours=4)):
            self.tick(silent, at + later)

    def tick(self, station_ids: set[str], at: datetime) -> None:
        """Judge these stations at ``at`` (in station order: the same samples every run)."""
        by_partition: dict[int, list[str]] = {}
        for sid in sorted(station_ids):
            by_partition.setdefault(partition_for(sid, PARTITIONS), []).append(sid)
        self.batch([], at, [Tick(p, ids) for p, ids in sorted(by_partition.items())])


def main(target: Path) -> None:
    if target.exists():
        sys.exit(f"{target} exists: a released dictionary is never replaced (see the docstring)")
    rng = random.Random(SEED)
    first = datetime(2026, 1, 1, tzinfo=UTC)
    profiles = [p.model_dump(mode="json") for p in build_fleet(STATIONS, SEED, first)]
    rng.shuffle(profiles)
    run = Run(rng)
    for i in range(0, len(profiles), GROUP):
        start = first + timedelta(seconds=rng.randrange(2 * 365 * 86400))
        run.group(profiles[i : i + GROUP], start)
    samples = run.samples
    rng.shuffle(samples)
    # the level its entropy tables are tuned for; the worker compresses with its own match
    # tables (streams.state_codec._COMPRESS_V3): measure a new dictionary with those
    dictionary = zstandard.train_dictionary(DICTIONARY_BYTES, samples, level=3)
    target.write_bytes(dictionary.as_bytes())
    print(f"{len(samples)} samples, {len(dictionary.as_bytes())} bytes: {target}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))

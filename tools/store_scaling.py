"""What the live table's store costs per heartbeat at two fleet sizes (issue 13's scaling
target: the worker not slower at 150,000 stations than at 10,000), without the rest of the
worker, so that a change to the store can be weighed in seconds instead of a bench run.

The store is opened as a worker opens it (:mod:`streams.store`: its options, its shared memory
budget, 8 partitions); every station gets a state of 185 random bytes (a stored state's average
size: zstd output does not compress further), then states are read and written back in parts of
25 (as the ingest agent folds a batch), the stations in a shuffled order that repeats (as the
bench's heartbeats come): two rounds of the fleet (at least 40,000 states) to settle the store,
then ``--states`` measured. Each size runs in a process of its own. Printed: CPU per state
(every thread of the process, and the thread that reads and writes alone, without RocksDB's
flushes and compactions), of it in the kernel, and the store's shape afterwards, as JSON lines.

    python tools/store_scaling.py                        # 10,000 and 150,000 stations
    python tools/store_scaling.py --cache-mib 64         # a larger block cache, as a trial

The machine's speed drifts by a tenth or more between runs; repeat them, alternating. For
figures that do not drift, count instructions and simulated cache misses (a 1 MiB cache:
this machine's L2) over the measured part only:

    valgrind --tool=callgrind --cache-sim=yes --instr-atstart=no --LL=1048576,8,64 \\
        python tools/store_scaling.py --one 150000 --callgrind

(callgrind neither sees the kernel's work nor prefetches as a CPU does: a block read from
the page cache, checksummed and copied whole, costs it far more than the CPU.)

Measured with it, under the 16 MiB budget of then (2 cores, AMD EPYC, 1 MiB L2 and 8 MiB L3;
two runs of each, alternating):
15.8 and 16.6 µs of CPU per state at 10,000 stations against 25.2 and 24.1 at 150,000, 8.5 µs
more. At 10,000 the states (about 2 MB) stay in the block cache and largely in the CPU's
caches; at 150,000 (about 32 MB) they do neither: most reads go to the page cache (``pread``:
1.05 against 6.3 µs per state in py-spy's native samples), and the blocks and index entries a
read touches come from memory. With a 64 MiB block cache (every state cached; 48 MiB more,
about 335 bytes a station, beyond a memory target the worker meets by a few bytes) 150,000
stations took 22.9 and 22.4 µs against 16.6 and 15.7 at 10,000: still 6.5 µs more (memory's
distance, and compaction over a larger store). In the same hour the bench's worker took 271 µs
of CPU per heartbeat at 10,000 stations and 287 at 150,000: the store's 8.5 µs are half of that
difference.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PARTITIONS = 8
PART = 25  # states read and written together (streams.batch.PART)
STATE_BYTES = 185
SEED = 13
MIB = 1024 * 1024


def measure(stations: int, states: int, cache_mib: int | None, callgrind: bool) -> dict[str, Any]:
    # here, not at the top: the process that only starts one per size, or refuses its
    # arguments, does without Faust's import (a second or two)
    import faust

    from streams import store as store_module
    from streams.runtime import add_station_table
    from streams.tracker import partition_for

    if cache_mib is not None:  # read when the table is made
        store_module.ROCKSDB_OPTIONS["block_cache_size"] = cache_mib * MIB
    root = Path(tempfile.mkdtemp(prefix="store-scaling-"))
    try:
        app = faust.App(
            "store-scaling", store="rocksdb://", datadir=str(root), key_serializer="raw",
            value_serializer="raw",
        )  # fmt: skip
        store = add_station_table(app, PARTITIONS).data
        rng = random.Random(SEED)
        ids = [f"ST-{i:07d}" for i in range(stations)]
        partition = {s: partition_for(s, PARTITIONS) for s in ids}

        def write(chunk: list[str]) -> None:
            by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
            for station_id in chunk:
                item = (store.station_key(station_id), rng.randbytes(STATE_BYTES))
                by_partition.setdefault(partition[station_id], []).append(item)
            for number, items in by_partition.items():
                store.write_partition(number, items)

        def step(chunk: list[str]) -> None:
            store.fetch_many({s: partition[s] for s in chunk})
            write(chunk)

        for i in range(0, stations, 500):
            write(ids[i : i + 500])
        order = list(ids)
        rng.shuffle(order)
        cursor = itertools.cycle(order)
        for _ in range(max(2 * stations, 40_000) // PART):
            step(list(itertools.islice(cursor, PART)))
        parts = [list(itertools.islice(cursor, PART)) for _ in range(states // PART)]
        if callgrind:
            _instrument("on")
        before = resource.getrusage(resource.RUSAGE_SELF)
        cpu, thread = time.process_time(), time.thread_time()
        for part in parts:
            step(part)
        cpu, thread = time.process_time() - cpu, time.thread_time() - thread
        after = resource.getrusage(resource.RUSAGE_SELF)
        if callgrind:
            _instrument("off")
        done = len(parts) * PART
        shape: dict[str, int] = {}
        for db in store._dbs.values():
            for name in ("num-files-at-level0", "estimate-table-readers-mem"):
                shape[name] = shape.get(name, 0) + (db.property_int_value(f"rocksdb.{name}") or 0)
        for db in store._dbs.values():
            db.close()
        return {
            "stations": stations,
            "states": done,
            "cache_mib": cache_mib or store_module.BLOCK_CACHE_BYTES // MIB,
            "cpu_us_per_state": round(cpu / done * 1e6, 2),
            "calling_thread_us_per_state": round(thread / done * 1e6, 2),
            "kernel_us_per_state": round((after.ru_stime - before.ru_stime) / done * 1e6, 2),
            "l0_files": shape["num-files-at-level0"],
            "table_readers_bytes": shape["estimate-table-readers-mem"],
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _instrument(state: str) -> None:
    """Callgrind's instrumentation on or off for this process (under valgrind only)."""
    subprocess.run(  # noqa: S603 - valgrind's own control program
        ["callgrind_control", "-i", state, str(os.getpid())],  # noqa: S607
        check=True,
        capture_output=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--stations", type=int, nargs="+", default=[10_000, 150_000],
        help="fleet sizes, each measured in a process of its own (default: 10000 150000)",
    )  # fmt: skip
    parser.add_argument("--states", type=int, default=100_000, help="states measured per size")
    parser.add_argument(
        "--cache-mib", type=int, help="the block cache's budget (default: the worker's)"
    )
    parser.add_argument("--one", type=int, metavar="STATIONS", help="one size, in this process")
    parser.add_argument(
        "--callgrind", action="store_true", help="instrument the measured part only"
    )
    args = parser.parse_args()
    sizes = [*args.stations, *([] if args.one is None else [args.one])]
    if min(sizes) < 1 or (args.cache_mib is not None and args.cache_mib < 1):
        parser.error("the stations and --cache-mib must be positive")
    if args.states < PART:
        parser.error(f"--states must be at least {PART}")
    if args.callgrind and args.one is None:  # valgrind follows no process this one starts
        parser.error("--callgrind measures one size in this process: give it with --one")
    if args.one is not None:
        print(json.dumps(measure(args.one, args.states, args.cache_mib, args.callgrind)))
        return 0
    for stations in args.stations:
        command = [sys.executable, __file__, "--one", str(stations), "--states", str(args.states)]
        if args.cache_mib is not None:
            command += ["--cache-mib", str(args.cache_mib)]
        subprocess.run(command, check=True)  # noqa: S603 - this script, one size
    return 0


if __name__ == "__main__":
    sys.exit(main())

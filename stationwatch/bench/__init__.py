"""`stationwatch bench`: measure the worker on this machine, from outside, against raw
baselines measured in the same run. One embedded broker, scratch databases on the configured
PostgreSQL server, and real `stationwatch worker` processes; the phases, in order:

1. registry produced: the fleet's profiles into ``station.registry``; raw baseline: aiokafka
   consuming and parsing the same records (:mod:`.traffic`).
2. sink: raw asyncpg COPY against the project's sink, on the same heartbeat rows (:mod:`.sink`).
3. comparison size: registry load and first heartbeats at 10,000 stations (its own worker,
   topics and database), when the bench's size differs.
4. registry load, every station's first heartbeat, then pipeline at saturation: heartbeats
   offered faster than the worker takes them, timed until PostgreSQL holds every row; raw
   baseline on as many heartbeats of the same form (:mod:`.pipeline`). Cycles of four
   rounds (two in the full run): the comparison size's, the bench size's two, the comparison
   size's again (:meth:`.run.Bench.pipeline_rounds`).
5. api: lookups and nearby searches timed under steady ingest; the worker's memory (:mod:`.api`).
6. detection, recovery (SIGTERM, start), two workers' throughput, failover (SIGKILL of one)
   (:mod:`.liveness`).

Progress goes to standard error, the figures as one JSON object to standard output. The
issue's targets are printed beside them (met / not met); a missed target never fails the bench.
"""

from stationwatch.bench.run import run_bench
from stationwatch.bench.sizes import Sizes
from stationwatch.bench.tools import percentiles

__all__ = ["Sizes", "percentiles", "run_bench"]

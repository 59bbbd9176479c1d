"""Faust's main sensor, without its bookkeeping of every message and event.

Faust's ``Monitor`` counts and times every message received, every event of every stream,
every record sent and every table access, by topic, partition and stream, for its web views
and its StatsD and Datadog sensors. This worker serves none of them (Faust's web server is
off: HTTP is the API server's, and the worker's metrics are its own Prometheus counters,
kept per batch). At 4,500 heartbeats a second that bookkeeping took 1.5% of the worker's
time. :class:`QuietMonitor` keeps the monitor's place (Faust calls it directly too), its
rebalance and commit hooks, and the one figure Faust itself reads (when each partition's
stream last took an event), and does nothing else per message.
"""

from __future__ import annotations

from time import monotonic
from typing import Any

from faust.sensors import Monitor, Sensor
from faust.sensors.monitor import TPOffsetMapping
from faust.types import TP, EventT, StreamT


class QuietMonitor(Monitor):
    """Faust's ``Monitor`` setting for the worker: the per-message and per-event hooks are
    the base sensor's, which do nothing, but for the time each stream last took an event."""

    on_message_in = Sensor.on_message_in
    on_stream_event_out = Sensor.on_stream_event_out
    on_message_out = Sensor.on_message_out
    on_table_get = Sensor.on_table_get
    on_table_set = Sensor.on_table_set
    on_table_del = Sensor.on_table_del
    on_send_initiated = Sensor.on_send_initiated
    on_send_completed = Sensor.on_send_completed
    on_send_error = Sensor.on_send_error

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT[Any], event: EventT[Any]
    ) -> dict[str, Any] | None:
        """Only when each partition's stream last took an event: Faust's check for stalled
        streams reads it (a partition with records waiting and none taken for
        ``stream_processing_timeout`` is logged as stalled)."""
        self.stream_inbound_time[tp] = monotonic()
        return None

    def on_tp_commit(self, tp_offsets: TPOffsetMapping) -> None:
        """Faust calls this on the monitor itself at each commit: nothing is kept."""

    def track_tp_end_offset(self, tp: TP, offset: int) -> None:
        """Faust calls this on the monitor itself for each fetch: nothing is kept."""

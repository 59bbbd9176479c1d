"""The worker's Faust monitor keeps nothing per message (streams.sensors)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.sensors import Monitor
from faust.types import TP

from stationwatch.settings import Settings
from streams.app import faust_app
from streams.sensors import QuietMonitor

TP0 = TP("bench.station.heartbeat", 0)


def feed(monitor: Monitor) -> None:
    """What Faust tells its monitor about one message, its event and one record sent."""
    message: Any = SimpleNamespace(time_in=None, time_out=None, time_total=None)
    monitor.on_message_in(TP0, 7, message)
    monitor.on_message_out(TP0, 7, message)
    monitor.on_send_initiated(None, "station.alerts", message, 10, 10)  # type: ignore[arg-type]
    monitor.track_tp_end_offset(TP0, 8)
    monitor.on_tp_commit({TP0: 8})


def counts(monitor: Monitor) -> tuple[int, int, dict[TP, int], dict[TP, int]]:
    return (
        monitor.messages_received_total,
        monitor.messages_sent,
        dict(monitor.tp_end_offsets),
        dict(monitor.tp_committed_offsets),
    )


def test_the_worker_s_app_uses_the_quiet_monitor() -> None:
    assert isinstance(faust_app(Settings()).monitor, QuietMonitor)


def test_the_quiet_monitor_keeps_when_each_stream_last_took_an_event() -> None:
    """Faust's check for stalled streams reads it (verify_event_path): without it, every
    partition with records waiting would be logged as stalled after the timeout."""
    quiet = QuietMonitor()
    assert quiet.on_stream_event_in(TP0, 7, None, None) is None  # type: ignore[arg-type]
    assert TP0 in quiet.stream_inbound_time
    assert quiet.events_total == 0


def test_the_quiet_monitor_keeps_nothing_per_message_where_faust_s_would() -> None:
    loud, quiet = Monitor(), QuietMonitor()
    feed(loud)
    feed(quiet)
    assert counts(loud) == (1, 1, {TP0: 8}, {TP0: 8})
    assert counts(quiet) == (0, 0, {}, {})

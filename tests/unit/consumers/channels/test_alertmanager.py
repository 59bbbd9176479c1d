"""The alerts posted to an Alertmanager's v2 API for a notice."""

from __future__ import annotations

from datetime import UTC, datetime

from consumers.channels.alertmanager import AlertmanagerChannel
from tests.unit.consumers.channels.golden import check_golden_json
from tests.unit.consumers.channels.notices import NOTICE


def channel() -> AlertmanagerChannel:
    return AlertmanagerChannel(
        "http://alertmanager.example:9093/",
        station_url="http://stationwatch.example:6066/stations/{station_id}",
    )


def test_posts_to_the_v2_alerts_path() -> None:
    assert channel().url == "http://alertmanager.example:9093/api/v2/alerts"
    prefixed = AlertmanagerChannel("http://ops.example/alertmanager")
    assert prefixed.url == "http://ops.example/alertmanager/api/v2/alerts"


def test_payload_golden() -> None:
    check_golden_json("alertmanager.json", channel().payload(NOTICE))


def test_firing_alerts_leave_their_end_to_alertmanager_and_resolved_carry_it() -> None:
    alerts = {a["labels"]["station_id"]: a for a in channel().payload(NOTICE)}
    assert "endsAt" not in alerts["SY-0001"]
    assert alerts["SY-0003"]["endsAt"] == "2026-11-30T08:10:00+08:00"
    assert alerts["SY-0003"]["startsAt"] == "2026-11-30T07:40:00+08:00"
    assert alerts["SY-0001"]["labels"]["alertname"] == "offline"
    assert alerts["SY-0001"]["labels"]["name"] == "空港祥云工会驿站"
    assert alerts["SY-0001"]["annotations"] == {
        "summary": "空港祥云工会驿站 (SY-0001) has sent no heartbeat for 5 min"
    }


def test_resend_within_keeps_firing_alerts_firing_until_the_next_send() -> None:
    now = datetime(2026, 11, 30, 0, 10, 5, tzinfo=UTC)
    channel = AlertmanagerChannel(
        "http://alertmanager.example:9093", resend_within=4.5 * 3600, clock=lambda: now
    )
    ends = {a["labels"]["station_id"]: a["endsAt"] for a in channel.payload(NOTICE)}
    assert ends == {
        # now + resend_within, in the notice's zone: one clock per notice
        "SY-0001": "2026-11-30T12:40:05+08:00",
        "SY-0002": "2026-11-30T12:40:05+08:00",
        "SY-0003": "2026-11-30T08:10:00+08:00",  # resolved: its own end
    }

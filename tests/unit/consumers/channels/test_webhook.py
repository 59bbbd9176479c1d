"""Alertmanager's webhook payload (version 4) for a notice."""

from __future__ import annotations

import uuid
from dataclasses import replace

from consumers.channels.webhook import WebhookChannel, common, payload
from consumers.notice import delivery_key
from tests.unit.consumers.channels.golden import check_golden_json
from tests.unit.consumers.channels.notices import ALERTS, NOTICE, RESOLVED, at

STATION_URL = "http://stationwatch.example:6066/stations/{station_id}"


def test_payload_golden() -> None:
    channel = WebhookChannel(
        "http://ops.example/hook",
        external_url="http://stationwatch.example:6066",
        station_url=STATION_URL,
    )
    check_golden_json("webhook.json", channel.payload(NOTICE))


def test_payload_has_every_field_of_version_4() -> None:
    body = payload(NOTICE)
    assert set(body) == {
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    }
    assert (body["version"], body["groupKey"], body["receiver"]) == (
        "4",
        NOTICE.group_key,
        "konggang-wecom",
    )
    for alert in body["alerts"]:
        assert set(alert) == {
            "status",
            "labels",
            "annotations",
            "startsAt",
            "endsAt",
            "generatorURL",
            "fingerprint",
        }


def test_firing_alerts_end_at_go_zero_time_and_resolved_at_their_end() -> None:
    alerts = {a["fingerprint"]: a for a in payload(NOTICE)["alerts"]}
    assert alerts["SY-0001:offline"]["endsAt"] == "0001-01-01T00:00:00Z"
    assert alerts["SY-0001:offline"]["startsAt"] == "2026-11-30T08:05:00+08:00"
    assert alerts["SY-0003:offline"]["status"] == "resolved"
    assert alerts["SY-0003:offline"]["endsAt"] == "2026-11-30T08:10:00+08:00"
    resolved = payload(RESOLVED)
    assert resolved["status"] == "resolved"
    assert {a["endsAt"] for a in resolved["alerts"]} == {"2026-11-30T09:00:00+08:00"}


def test_station_fields_are_labels_with_alertname_the_kind() -> None:
    labels = payload(NOTICE)["alerts"][0]["labels"]
    assert labels == {
        "alertname": "offline",
        "category": "smart_24h",
        "district": "顺义区",
        "kind": "offline",
        "name": "空港祥云工会驿站",
        "severity": "critical",
        "station_id": "SY-0001",
        "street": "空港街道",
    }
    assert payload(NOTICE)["commonLabels"] == {
        "alertname": "offline",
        "district": "顺义区",
        "kind": "offline",
        "severity": "critical",
        "street": "空港街道",
    }


def test_summary_and_description_are_the_rendered_text() -> None:
    annotations = payload(NOTICE, language="en")["commonAnnotations"]
    assert annotations["summary"] == "空港街道: 2 stations offline, 1 resolved"
    assert annotations["description"].startswith(annotations["summary"] + "\n")


def test_max_alerts_counts_the_rest_as_truncated() -> None:
    body = payload(NOTICE, max_alerts=2)
    assert len(body["alerts"]) == 2
    assert body["truncatedAlerts"] == 1
    assert payload(NOTICE)["truncatedAlerts"] == 0


def test_generator_url_quotes_the_station_id() -> None:
    odd = replace(ALERTS[0], labels={**ALERTS[0].labels, "station_id": "SY-0002/../x"})
    body = payload(replace(NOTICE, alerts=(odd,)), station_url=STATION_URL)
    assert body["alerts"][0]["generatorURL"].endswith("/stations/SY-0002%2F..%2Fx")
    assert payload(NOTICE)["alerts"][0]["generatorURL"] == ""


def test_common_labels() -> None:
    assert common([]) == {}
    assert common([{"a": "1", "b": "2"}, {"a": "1", "b": "3"}]) == {"a": "1"}


def test_a_naive_time_is_taken_as_utc() -> None:
    naive = replace(ALERTS[0], starts_at=at(8, 5).replace(tzinfo=None))
    body = payload(replace(NOTICE, alerts=(naive,)))
    assert body["alerts"][0]["startsAt"] == "2026-11-30T08:05:00+00:00"


def test_the_same_notice_always_has_the_same_delivery_key() -> None:
    again = replace(NOTICE, created_at=at(9, 0))  # a later try at the same notice
    assert delivery_key(again) == delivery_key(NOTICE)
    uuid.UUID(delivery_key(NOTICE))  # a token any receiver stores as it is


def test_a_notice_that_tells_more_under_its_id_has_a_new_delivery_key() -> None:
    """A failed notice retried under its id with an alert more, or one resolved meanwhile,
    must not be dropped by a receiver as a repeat of the first try."""
    fewer = replace(NOTICE, alerts=NOTICE.alerts[:-1])
    changed = replace(
        NOTICE, alerts=(replace(NOTICE.alerts[0], status="resolved"), *NOTICE.alerts[1:])
    )
    other = replace(NOTICE, notice_id="another-notice")
    keys = {delivery_key(n) for n in (NOTICE, fewer, changed, other)}
    assert len(keys) == 4

"""The demo's notifier: its routes are valid, notices reach the console line by line, and the
webhook sink sums up what it receives."""

from __future__ import annotations

from consumers.routing import RouteTree
from stationwatch.dev_notify import Relay, demo_config, dev_config, sink_line


def test_the_demo_routes_send_everything_to_the_console_and_offline_to_the_sink() -> None:
    config = dev_config(None, "http://127.0.0.1:6069/hook")
    routes = RouteTree.from_config(config)
    receivers = {
        kind: [r.receiver for r in routes.routes_for({"kind": kind, "street": "空港街道"})]
        for kind in ("offline", "stale", "over_capacity")
    }
    assert receivers == {
        "offline": ["console", "local-webhook"],
        "stale": ["console"],
        "over_capacity": ["console", "local-webhook"],
    }
    assert "http://127.0.0.1:6069/hook" in demo_config("http://127.0.0.1:6069/hook")


def test_the_relay_hands_on_complete_lines_only() -> None:
    lines: list[str] = []
    relay = Relay(lines.append)
    relay.write("── console ──\n空港街道: 2 个")
    assert lines == ["── console ──"]
    relay.write("驿站离线\n")
    assert lines == ["── console ──", "空港街道: 2 个驿站离线"]


def test_the_sink_sums_up_a_webhook_body() -> None:
    body = {
        "receiver": "local-webhook",
        "groupLabels": {"street": "空港街道", "kind": "offline"},
        "alerts": [{"status": "firing"}, {"status": "firing"}, {"status": "resolved"}],
    }
    assert sink_line(body) == (
        "webhook sink received (local-webhook, kind=offline, street=空港街道): 2 firing, 1 resolved"
    )

"""The notifier's metrics before anything happened: every receiver's notices, delivered and
failed, are series from the start, so a dashboard shows 0 failures, not "no data"."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from consumers.config import load_config_text
from consumers.notifier import Notifier
from stationwatch.settings import Settings

CONFIG = """
route:
  receiver: ops
  routes:
    - match: {kind: offline}
      receiver: duty
receivers:
  - name: ops
    webhook: {url: "http://127.0.0.1:9/hook"}
  - name: duty
    wecom: {url: "http://127.0.0.1:9/cgi-bin/webhook/send?key=k"}
"""


def test_every_receiver_counts_delivered_and_failed_notices_from_zero() -> None:
    registry = CollectorRegistry()
    Notifier(Settings(), load_config_text(CONFIG), registry=registry)
    counted = {
        (s.labels["receiver"], s.labels["channel"], s.labels["outcome"]): s.value
        for family in registry.collect()
        if family.name == "stationwatch_notices"
        for s in family.samples
        if s.name == "stationwatch_notices_total"
    }
    assert counted == {
        ("ops", "webhook", "delivered"): 0,
        ("ops", "webhook", "failed"): 0,
        ("duty", "wecom", "delivered"): 0,
        ("duty", "wecom", "failed"): 0,
    }

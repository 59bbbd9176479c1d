"""From the configuration to channels."""

from __future__ import annotations


def test_an_alertmanager_receiver_keeps_firing_alerts_as_long_as_its_routes_repeat() -> None:
    from datetime import timedelta

    from consumers.channels import AlertmanagerChannel
    from consumers.config import load_config_text
    from consumers.wiring import RESEND_MARGIN, build_channels

    config = load_config_text(
        """
route:
  receiver: am
  repeat_interval: 2h
  routes:
    - match: {kind: offline}
      receiver: am
      repeat_interval: 6h
receivers:
  - name: am
    alertmanager: {url: "http://127.0.0.1:9093"}
"""
    )
    channel = build_channels(config)["am"]
    assert isinstance(channel, AlertmanagerChannel)
    assert channel._resend_within == timedelta(hours=6) + RESEND_MARGIN

"""Inhibition: offline inhibits stale of the same station only, for as long as it fires; an
operator's rules in Alertmanager's shape; and the mute decision that combines it with silences."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from consumers.config import load_config_text
from consumers.inhibit import Inhibitor, Mute, mute_reason
from consumers.notice import NoticeAlert
from consumers.silences import Silence
from schemas.alerts import SEVERITY

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 30, 8, 5, tzinfo=SH)
H = timedelta(hours=1)


def alert(station: str, kind: str, *, episode: int = 1, **labels: str) -> NoticeAlert:
    return NoticeAlert(
        alert_id=f"{station}:{kind}:{episode}",
        fingerprint=f"{station}:{kind}",
        status="firing",
        starts_at=T0 + episode * H,
        ends_at=None,
        detected_at=T0 + episode * H,
        labels={"station_id": station, "kind": kind, "severity": SEVERITY[kind]}
        | {"street": "空港街道"}
        | labels,
        summary="",
    )


def resolved(one: NoticeAlert) -> NoticeAlert:
    return replace(one, status="resolved", ends_at=one.starts_at + H)


@pytest.mark.parametrize(
    ("target", "inhibited"),
    [
        (alert("SY-0001", "stale"), True),
        (alert("SY-0002", "stale"), False),  # another station
        (alert("SY-0001", "closed_during_hours"), False),  # another kind
        (alert("SY-0001", "offline"), False),  # the source itself
        (resolved(alert("SY-0001", "stale")), True),  # no "recovered" while it is offline
    ],
)
def test_offline_inhibits_stale_of_the_same_station_only(
    target: NoticeAlert, inhibited: bool
) -> None:
    inhibitor = Inhibitor.from_config()
    inhibitor.observe(alert("SY-0001", "offline"))
    inhibitor.observe(alert("SY-0002", "closed_during_hours"))
    expected = "SY-0001:offline" if inhibited else None
    assert inhibitor.inhibited_by(target) == expected


def test_inhibition_lasts_while_the_source_fires() -> None:
    inhibitor = Inhibitor.from_config()
    stale = alert("SY-0001", "stale")
    first = alert("SY-0001", "offline")
    assert inhibitor.inhibited_by(stale) is None
    inhibitor.observe(first)
    assert inhibitor.inhibited_by(stale) == "SY-0001:offline"
    inhibitor.observe(resolved(first))
    assert inhibitor.inhibited_by(stale) is None

    second = alert("SY-0001", "offline", episode=2)
    inhibitor.observe(second)
    inhibitor.observe(resolved(first))  # a late copy of the old episode's end
    assert inhibitor.inhibited_by(stale) == "SY-0001:offline"
    inhibitor.observe(resolved(second))
    assert inhibitor.inhibited_by(stale) is None


def test_an_operators_rules_join_the_built_in_one() -> None:
    config = load_config_text(
        """\
route: {receiver: ops}
receivers: [{name: ops, console: {}}]
inhibit_rules:
  - source_match: {kind: closed_during_hours}
    target_match_re: {kind: "over_capacity|stale"}
    equal: [station_id]
  - source_matchers: ["kind=offline", "severity=critical"]
    target_matchers: ["kind=closed_during_hours"]
    equal: [street, district]
"""
    )
    inhibitor = Inhibitor.from_config(config)
    assert len(inhibitor.rules) == 3
    inhibitor.observe(alert("SY-0001", "closed_during_hours"))
    inhibitor.observe(alert("SY-0003", "offline"))  # 空港街道, no district label
    assert (
        inhibitor.inhibited_by(alert("SY-0001", "over_capacity")) == "SY-0001:closed_during_hours"
    )
    assert inhibitor.inhibited_by(alert("SY-0002", "over_capacity")) is None
    # Equal on street and district: both lack a district, which counts as equal.
    assert inhibitor.inhibited_by(alert("SY-0001", "closed_during_hours")) == "SY-0003:offline"
    other = alert("SY-0004", "closed_during_hours", district="顺义区")
    assert inhibitor.inhibited_by(other) is None
    elsewhere = alert("SY-0005", "closed_during_hours", street="后沙峪镇")
    assert inhibitor.inhibited_by(elsewhere) is None


def test_an_alert_matching_both_sides_does_not_inhibit_itself() -> None:
    config = load_config_text(
        """\
route: {receiver: ops}
receivers: [{name: ops, console: {}}]
inhibit_rules:
  - source_matchers: ["kind=offline"]
    target_matchers: ["kind=offline"]
    equal: [street]
"""
    )
    inhibitor = Inhibitor.from_config(config)
    one, two = alert("SY-0001", "offline"), alert("SY-0002", "offline")
    inhibitor.observe(one)
    assert inhibitor.inhibited_by(one) is None
    inhibitor.observe(two)
    assert inhibitor.inhibited_by(one) == "SY-0002:offline"
    assert inhibitor.inhibited_by(two) == "SY-0001:offline"


def test_mute_reason_inhibition_then_silences() -> None:
    inhibitor = Inhibitor.from_config()
    inhibitor.observe(alert("SY-0001", "offline"))
    silence = Silence(
        id="s-1",
        matchers=("street=空港街道",),  # read as matchers
        starts_at=T0,
        ends_at=T0 + 2 * H,
        created_by="zhang.wei",
    )
    now = T0 + H
    assert mute_reason(alert("SY-0001", "stale"), inhibitor, [silence], now) == Mute(
        "inhibited", ("SY-0001:offline",)
    )
    assert mute_reason(alert("SY-0002", "stale"), inhibitor, [silence], now) == Mute(
        "silenced", ("s-1",)
    )
    assert mute_reason(alert("SY-0002", "stale"), inhibitor, [silence], T0 + 3 * H) is None
    stale_elsewhere = alert("SY-0002", "stale", street="后沙峪镇")
    assert mute_reason(stale_elsewhere, inhibitor, [silence], now) is None

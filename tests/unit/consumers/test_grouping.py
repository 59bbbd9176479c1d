"""The grouping engine on an injected clock: group_wait, group_interval and repeat_interval,
resolved alerts, muting, and notice ids that a restarted notifier computes again."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from consumers.channels import render
from consumers.config import load_config_text
from consumers.grouping import Grouper, NotifiedEntry, notice_alert
from consumers.notice import Notice, NoticeAlert
from consumers.routing import RouteTree
from schemas.alerts import SEVERITY, Alert

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 30, 8, 5, tzinfo=SH)
S = timedelta(seconds=1)
MIN = timedelta(minutes=1)
H = timedelta(hours=1)
KONGGANG = "空港街道"
HOUSHAYU = "后沙峪镇"

CONFIG = """\
route:
  receiver: ops
  send_resolved: {resolved}
  group_by: {group_by}
receivers: [{{name: ops, console: {{}}}}]
"""


def grouper(*, send_resolved: bool = True, group_by: str = "[street, kind]") -> Grouper:
    text = CONFIG.format(resolved=str(send_resolved).lower(), group_by=group_by)
    return Grouper(RouteTree.from_config(load_config_text(text)))


def alert(
    number: int,
    kind: str = "offline",
    street: str = KONGGANG,
    *,
    at: datetime = T0,
    episode: int = 1,
) -> NoticeAlert:
    station = f"SY-{number:04d}"
    return NoticeAlert(
        alert_id=f"{station}:{kind}:{episode}",
        fingerprint=f"{station}:{kind}",
        status="firing",
        starts_at=at,
        ends_at=None,
        detected_at=at,
        labels={
            "station_id": station,
            "kind": kind,
            "severity": SEVERITY[kind],
            "district": "顺义区",
            "street": street,
        },
        summary=f"{station} {kind}",
    )


def resolved(firing: NoticeAlert, at: datetime) -> NoticeAlert:
    return replace(firing, status="resolved", ends_at=at)


def feed(engine: Grouper, alerts: Iterable[NoticeAlert], now: datetime) -> None:
    for one in alerts:
        engine.add(one, now)


def stations(notice: Notice, status: str = "firing") -> list[str]:
    return [a.station_id for a in notice.alerts if a.status == status]


def test_a_street_losing_power_is_one_notice_not_forty() -> None:
    engine = grouper()
    street = [alert(n) for n in range(1, 41)]
    for n, one in enumerate(street):  # arriving over 25 s
        engine.add(one, T0 + n * 625 * timedelta(milliseconds=1))
    assert engine.next_wakeup() == T0 + 30 * S  # group_wait from the first alert
    assert engine.due(T0 + 29 * S) == []
    (notice,) = engine.due(T0 + 30 * S)
    assert len(notice.alerts) == 40
    assert notice.status == "firing"
    assert notice.group_labels == {"street": KONGGANG, "kind": "offline"}
    assert notice.group_key == '{}:{kind="offline", street="空港街道"}'
    assert notice.common_labels == {"kind": "offline", "severity": "critical", "district": "顺义区",
                                    "street": KONGGANG}  # fmt: skip
    assert stations(notice) == [f"SY-{n:04d}" for n in range(1, 41)]
    assert notice.created_at == T0 + 30 * S
    assert engine.due(T0 + 31 * S) == []
    assert render.title(notice) == "空港街道: 40 个驿站离线"
    assert render.title(notice, "en") == "空港街道: 40 stations offline"


def test_groups_are_separated_by_street_and_kind() -> None:
    engine = grouper()
    feed(engine, [alert(1), alert(2), alert(3, "stale"), alert(4, street=HOUSHAYU)], T0)
    feed(engine, [alert(5, "stale", HOUSHAYU), alert(6, "closed_during_hours")], T0)
    notices = engine.due(T0 + 30 * S)
    grouped = {(dict(n.group_labels)["street"], dict(n.group_labels)["kind"]): stations(n)
               for n in notices}  # fmt: skip
    assert grouped == {
        (KONGGANG, "offline"): ["SY-0001", "SY-0002"],
        (KONGGANG, "stale"): ["SY-0003"],
        (HOUSHAYU, "offline"): ["SY-0004"],
        (HOUSHAYU, "stale"): ["SY-0005"],
        (KONGGANG, "closed_during_hours"): ["SY-0006"],
    }
    assert len({n.notice_id for n in notices}) == 5


def test_one_group_per_alert_with_every_label() -> None:
    engine = grouper(group_by='["..."]')
    feed(engine, [alert(1), alert(2)], T0)
    assert [stations(n) for n in engine.due(T0 + 30 * S)] == [["SY-0001"], ["SY-0002"]]


def test_later_changes_are_batched_every_group_interval() -> None:
    engine = grouper()
    feed(engine, [alert(n) for n in range(1, 11)], T0)
    (first,) = engine.due(T0 + 30 * S)
    sent = T0 + 30 * S
    for n, later in enumerate((1, 2, 3), start=11):  # three more, a minute apart
        engine.add(alert(n, at=sent + later * MIN), sent + later * MIN)
    assert engine.next_wakeup() == sent + 5 * MIN  # no sooner than group_interval
    assert engine.due(sent + 5 * MIN - S) == []
    (second,) = engine.due(sent + 5 * MIN)
    assert len(second.alerts) == 13  # the whole group, the new ones with the old
    assert second.notice_id != first.notice_id

    # A change long after the last notice still waits group_wait for its companions.
    quiet = sent + 5 * MIN + H
    engine.add(alert(14, at=quiet), quiet)
    engine.add(alert(15, at=quiet + 20 * S), quiet + 20 * S)
    assert engine.next_wakeup() == quiet + 30 * S
    (third,) = engine.due(quiet + 30 * S)
    assert stations(third)[-2:] == ["SY-0014", "SY-0015"]


def test_an_unchanged_firing_group_is_repeated_every_repeat_interval() -> None:
    engine = grouper()
    feed(engine, [alert(1), alert(2)], T0)
    (first,) = engine.due(T0 + 30 * S)
    feed(engine, [alert(1), alert(2)], T0 + H)  # the same messages again: no news
    assert engine.next_wakeup() == T0 + 30 * S + 4 * H
    assert engine.due(T0 + 30 * S + 4 * H - S) == []
    (repeat,) = engine.due(T0 + 30 * S + 4 * H)
    assert stations(repeat) == stations(first)
    assert repeat.notice_id != first.notice_id
    assert engine.next_wakeup() == T0 + 30 * S + 8 * H


def test_resolved_alerts_are_sent_with_send_resolved_then_the_group_goes() -> None:
    engine = grouper()
    firing = [alert(1), alert(2), alert(3)]
    feed(engine, firing, T0)
    engine.due(T0 + 30 * S)
    back = T0 + 10 * MIN
    feed(engine, [resolved(firing[0], back), resolved(firing[1], back)], back)
    (partly,) = engine.due(back + 30 * S)
    assert partly.status == "firing"
    assert render.title(partly) == "空港街道: 1 个驿站离线，2 个已恢复"
    assert (stations(partly), stations(partly, "resolved")) == (["SY-0003"], ["SY-0001", "SY-0002"])
    engine.add(resolved(firing[2], back + H), back + H)
    (done,) = engine.due(back + H + 30 * S)
    assert done.status == "resolved"
    assert render.title(done) == "空港街道: 1 个驿站离线已恢复"
    assert stations(done, "resolved") == ["SY-0003"]  # the others were told already
    assert engine.group_keys() == []
    assert engine.next_wakeup() is None


def test_without_send_resolved_resolutions_are_dropped() -> None:
    engine = grouper(send_resolved=False)
    firing = [alert(1), alert(2)]
    feed(engine, firing, T0)
    engine.due(T0 + 30 * S)
    engine.add(resolved(firing[0], T0 + H), T0 + H)
    assert engine.due(T0 + H + 30 * S) == []  # a smaller firing set is no news
    (repeat,) = engine.due(T0 + 30 * S + 4 * H)
    assert [a.station_id for a in repeat.alerts] == ["SY-0002"]
    engine.add(resolved(firing[1], T0 + 5 * H), T0 + 5 * H)
    assert engine.due(T0 + 6 * H) == []
    assert engine.group_keys() == []


def test_an_alert_that_fired_and_resolved_unseen_is_not_news() -> None:
    engine = grouper()
    blip = alert(1)
    engine.add(blip, T0)
    engine.add(resolved(blip, T0 + 10 * S), T0 + 10 * S)
    assert engine.due(T0 + 30 * S) == []
    assert engine.group_keys() == []


def test_episodes_replace_each_other_by_newness() -> None:
    engine = grouper()
    first = alert(1)
    engine.add(first, T0)
    engine.due(T0 + 30 * S)
    engine.add(resolved(first, T0 + H), T0 + H)
    second = alert(1, at=T0 + H + MIN, episode=2)
    engine.add(second, T0 + H + MIN)
    engine.add(first, T0 + H + MIN)  # a late copy of the old episode changes nothing
    (notice,) = engine.due(T0 + H + MIN + 30 * S)
    assert [a.alert_id for a in notice.alerts] == [second.alert_id]
    engine.add(resolved(first, T0 + H), T0 + 2 * H)  # nor does its late resolution
    assert engine.next_wakeup() == T0 + H + MIN + 30 * S + 4 * H


def test_notice_ids_are_deterministic_and_chain() -> None:
    def run() -> list[str]:
        engine = grouper()
        feed(engine, [alert(1), alert(2, "stale")], T0)
        ids = [n.notice_id for n in engine.due(T0 + 30 * S)]
        engine.add(alert(3), T0 + MIN)
        ids += [n.notice_id for n in engine.due(T0 + 10 * MIN)]
        return ids

    ids = run()
    assert ids == run()
    assert len(set(ids)) == 3


def test_a_restarted_notifier_sends_nothing_twice_and_goes_on_with_the_same_ids() -> None:
    before = grouper()
    alerts = [alert(n) for n in range(1, 6)]
    feed(before, alerts, T0)
    delivered = before.due(T0 + 30 * S)
    before.add(alert(6, at=T0 + 20 * MIN), T0 + 20 * MIN)
    (expected,) = before.due(T0 + 21 * MIN)

    # Restart at T0 + 20 min (alert 6 just read): the log, then every open episode again.
    after = grouper()
    after.restore(NotifiedEntry.from_notice(n) for n in delivered)
    feed(after, [*alerts, alert(6, at=T0 + 20 * MIN)], T0 + 20 * MIN)
    (again,) = after.due(T0 + 21 * MIN)
    assert again.notice_id == expected.notice_id
    assert again.alerts == expected.alerts

    # Restart later with everything delivered: nothing is news, the repeat keeps its time.
    later = grouper()
    later.restore([NotifiedEntry.from_notice(expected)])
    feed(later, [*alerts, alert(6, at=T0 + 20 * MIN)], T0 + 2 * H)
    assert later.due(T0 + 2 * H + 30 * S) == []
    assert later.next_wakeup() == T0 + 21 * MIN + 4 * H


def test_a_muted_alert_is_held_back_and_goes_out_when_no_longer_muted() -> None:
    engine = grouper()
    feed(engine, [alert(1), alert(2)], T0)
    silenced = {"SY-0002"}

    def mute(one: NoticeAlert, receiver: str) -> bool:
        assert receiver == "ops"
        return one.station_id in silenced

    (first,) = engine.due(T0 + 30 * S, mute)
    assert stations(first) == ["SY-0001"]
    assert engine.next_wakeup() == T0 + 30 * S + 5 * MIN  # looked at again every group_interval
    assert engine.due(T0 + 30 * S + 5 * MIN, mute) == []
    silenced.clear()
    (second,) = engine.due(T0 + 30 * S + 10 * MIN, mute)
    assert stations(second) == ["SY-0001", "SY-0002"]


def test_everything_muted_sends_nothing() -> None:
    engine = grouper()
    engine.add(alert(1), T0)
    assert engine.due(T0 + 30 * S, lambda one, receiver: True) == []
    assert engine.group_keys() != []


def test_a_failed_notice_is_retried_with_the_same_id() -> None:
    engine = grouper()
    firing = alert(1)
    engine.add(firing, T0)
    (told,) = engine.due(T0 + 30 * S)
    engine.add(resolved(firing, T0 + H), T0 + H)
    (notice,) = engine.due(T0 + H + 30 * S)
    assert engine.group_keys() == []  # everything resolved: the group left
    engine.failed(notice, T0 + H + MIN)
    assert engine.notified("ops", notice.group_key) == NotifiedEntry.from_notice(told)
    assert engine.next_wakeup() == T0 + H + 6 * MIN
    (retry,) = engine.due(T0 + H + 6 * MIN)
    assert (retry.notice_id, retry.alerts) == (notice.notice_id, notice.alerts)
    engine.failed(told, T0 + H + 7 * MIN)  # not the group's last notice any more: ignored
    assert engine.next_wakeup() is None


def test_every_route_an_alert_matches_has_its_own_group() -> None:
    text = """\
route:
  receiver: ops
  routes:
    - {match: {street: 空港街道}, receiver: robot, continue: true, group_wait: 5s}
    - {match: {kind: offline}, receiver: mail, group_by: [kind]}
receivers: [{name: ops, console: {}}, {name: robot, console: {}}, {name: mail, console: {}}]
"""
    engine = Grouper(RouteTree.from_config(load_config_text(text)))
    feed(engine, [alert(1), alert(2, street=HOUSHAYU)], T0)
    assert [n.receiver for n in engine.due(T0 + 5 * S)] == ["robot"]
    (mail,) = engine.due(T0 + 30 * S)
    assert (mail.receiver, stations(mail)) == ("mail", ["SY-0001", "SY-0002"])


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({"street": KONGGANG, "category": ""}, {"street": KONGGANG}),
        ({}, {}),
    ],
)
def test_notice_alert_from_the_wire(given: dict[str, str], expected: dict[str, str]) -> None:
    wire = Alert(
        alert_id="a1",
        fingerprint="SY-0001:offline",
        station_id="SY-0001",
        kind="offline",
        state="firing",
        severity="critical",
        starts_at=T0,
        detected_at=T0 + S,
        labels=given,
        summary="空港祥云工会驿站 (SY-0001) has sent no heartbeat for 5 min",
    )
    made = notice_alert(wire, {"name": "空港祥云工会驿站"})
    assert made.labels == expected | {
        "name": "空港祥云工会驿站",
        "station_id": "SY-0001",
        "kind": "offline",
        "severity": "critical",
    }
    assert (made.status, made.station_id, made.kind) == ("firing", "SY-0001", "offline")


def test_only_places_an_alert_in_the_named_group() -> None:
    text = """\
route:
  receiver: ops
  routes:
    - {match: {street: 空港街道}, receiver: robot, continue: true}
    - {match: {kind: offline}, receiver: mail}
receivers: [{name: ops, console: {}}, {name: robot, console: {}}, {name: mail, console: {}}]
"""
    engine = Grouper(RouteTree.from_config(load_config_text(text)))
    robot_key, mail_key = engine.add(alert(1), T0)
    other = grouper()
    assert other.add(alert(1), T0, only=mail_key) == []  # not a group of this tree
    only = Grouper(RouteTree.from_config(load_config_text(text)))
    assert only.add(alert(1), T0, only=mail_key) == [mail_key]
    assert only.group_keys() == [mail_key]
    assert robot_key != mail_key


def test_pending_is_news_not_yet_looked_at() -> None:
    engine = grouper()
    (key,) = engine.add(alert(1), T0)
    assert engine.pending(key)
    engine.due(T0 + 30 * S)
    assert not engine.pending(key)  # told; the repeat to come is not news
    engine.add(alert(1), T0 + MIN)
    assert not engine.pending(key)  # the same message again
    engine.add(alert(2), T0 + MIN)
    assert engine.pending(key)
    engine.due(T0 + 6 * MIN, lambda one, receiver: one.station_id == "SY-0002")
    assert not engine.pending(key)  # muted: held back, nothing to tell now
    assert not engine.pending("no such group")

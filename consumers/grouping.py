"""The aggregation engine: alerts into groups, groups into notices, on an injected clock.

Alertmanager's model, pure. :meth:`Grouper.add` puts an alert into one group per route it
matches (group key: the route id and the route's ``group_by`` label values); :meth:`Grouper.due`
says which notices are due at ``now``; :meth:`Grouper.next_wakeup` says when to ask again.

When a group speaks:

* A new group waits ``group_wait`` after its first alert, then sends every alert it holds as
  one notice — forty stations of a street going dark within that wait are one notice.
* A later change (a new alert, a new episode, a resolution) waits ``group_wait`` for company
  and is sent no sooner than ``group_interval`` after the group's last notice.
* A group that still fires, unchanged, is sent again ``repeat_interval`` after its last notice.
* A notice is only sent when it tells the receiver something new (Alertmanager's notification
  log): an alert firing that the last notice did not list as firing, or — with
  ``send_resolved`` — the resolution of one it did. A resolution of an alert the receiver never
  heard of is not news. Without ``send_resolved`` resolutions are dropped silently.
* At each flush the resolved alerts leave the group; an empty group is removed.
* A muted alert (silenced or inhibited, decided by the caller's ``mute``) is left out as if it
  were not there; a group holding one is looked at again every ``group_interval``, so the alert
  goes out once its silence ends or its inhibiting alert resolves.

Notice ids chain: ``uuid5(receiver, group key, id of the group's previous notice)``, so "the
group's next notice" has one id, whoever computes it.

Restart: the state that must be rebuilt is (1) the notification log — for every receiver and
group key, the last notice delivered: its id, when, and the ids of its firing and resolved
alerts (:class:`NotifiedEntry`, the ``notify_log`` table) — passed to :meth:`Grouper.restore`
before any alert; and (2) the current state of every open episode, and of those resolved since
their group was last notified, re-fed with :meth:`Grouper.add`. With both, a restarted notifier
sends nothing its receivers already heard, and its next notice per group has the id the old
process would have given it (so a notice recorded but not delivered before a crash is recognised
in the delivery log by its id). Timers restart: a rebuilt group waits ``group_wait`` again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from consumers.notice import Notice, NoticeAlert
from consumers.routing import MatchedRoute, RouteTree
from schemas.alerts import Alert

NOTICE_NAMESPACE = uuid.UUID("6f1c2a0e-5d3b-5a8e-9c4f-0b7d1e2a3c4d")

# (alert, receiver) → True when the alert must not reach that receiver now
MuteCheck = Callable[[NoticeAlert, str], bool]


def notice_alert(alert: Alert, extra_labels: Mapping[str, str] | None = None) -> NoticeAlert:
    """An alert message as notices carry it: its labels (empty ones dropped, ``extra_labels``
    such as the station's ``name`` added) plus ``station_id``, ``kind`` and ``severity``."""
    labels = {k: v for k, v in {**alert.labels, **(extra_labels or {})}.items() if v}
    labels |= {"station_id": alert.station_id, "kind": alert.kind, "severity": alert.severity}
    return NoticeAlert(
        alert_id=alert.alert_id,
        fingerprint=alert.fingerprint,
        status=alert.state,
        starts_at=alert.starts_at,
        ends_at=alert.ends_at,
        detected_at=alert.detected_at,
        labels=labels,
        summary=alert.summary,
        last_heartbeat_at=alert.last_heartbeat_at,
    )


def notice_id(receiver: str, group_key: str, previous: str | None) -> str:
    """The id of a group's next notice, from the id of the one before (None: the first)."""
    return str(uuid.uuid5(NOTICE_NAMESPACE, f"{receiver}\x1f{group_key}\x1f{previous or ''}"))


@dataclass(frozen=True, slots=True)
class NotifiedEntry:
    """What a receiver was last told about a group (one row of the notification log)."""

    receiver: str
    group_key: str
    notice_id: str
    sent_at: datetime
    firing: frozenset[str]  # alert ids
    resolved: frozenset[str]

    @classmethod
    def from_notice(cls, notice: Notice) -> NotifiedEntry:
        return cls(
            receiver=notice.receiver,
            group_key=notice.group_key,
            notice_id=notice.notice_id,
            sent_at=notice.created_at,
            firing=frozenset(a.alert_id for a in notice.firing),
            resolved=frozenset(a.alert_id for a in notice.resolved),
        )


@dataclass(slots=True)
class _Group:
    key: str
    route: MatchedRoute
    labels: dict[str, str]
    alerts: dict[str, NoticeAlert] = field(default_factory=dict)  # by fingerprint
    flush_at: datetime | None = None  # a change (or a muted alert) to look at
    changed: bool = False  # news not yet looked at
    repeat_at: datetime | None = None

    def put(self, alert: NoticeAlert) -> bool:
        """Keep the newest state of the alert's episode; True when that is news."""
        old = self.alerts.get(alert.fingerprint)
        if old is not None and old.alert_id == alert.alert_id:
            if old.status == "resolved":
                return False  # an episode ends once; a late or repeated message changes nothing
            self.alerts[alert.fingerprint] = alert
            return alert.status == "resolved"
        if old is not None and alert.starts_at < old.starts_at:
            return False  # a late message of an older episode
        self.alerts[alert.fingerprint] = alert
        return True

    def wake(self) -> datetime | None:
        times = [t for t in (self.flush_at, self.repeat_at) if t is not None]
        return min(times, default=None)


def _order(alert: NoticeAlert) -> tuple[bool, str, str, str]:
    return (alert.status != "firing", alert.station_id, alert.kind, alert.alert_id)


def _common(alerts: Iterable[NoticeAlert]) -> dict[str, str]:
    label_sets = [alert.labels for alert in alerts]
    if not label_sets:
        return {}
    first, *rest = label_sets
    return {k: v for k, v in first.items() if all(s.get(k) == v for s in rest)}


class Grouper:
    """Groups, their timers and the notification log, for one routing tree."""

    def __init__(self, routes: RouteTree) -> None:
        self._routes = routes
        self._groups: dict[str, _Group] = {}
        self._log: dict[tuple[str, str], NotifiedEntry] = {}
        # per log key: the last notice, its route and the entry it replaced (for failed())
        self._before: dict[tuple[str, str], tuple[Notice, MatchedRoute, NotifiedEntry | None]] = {}

    def restore(self, entries: Iterable[NotifiedEntry]) -> None:
        """Load the notification log (after a restart), before the alerts are fed again."""
        for entry in entries:
            self._log[(entry.receiver, entry.group_key)] = entry

    def add(self, alert: NoticeAlert, now: datetime, *, only: str | None = None) -> list[str]:
        """Place the alert in the group of every route it matches (``only``: in that group
        alone, if it matches); returns the keys of the groups it went to."""
        keys: list[str] = []
        for route in self._routes.routes_for(alert.labels):
            labels = route.group_labels(alert.labels)
            key = route.group_key(labels)
            if only is not None and key != only:
                continue
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = _Group(key, route, labels)
            if group.put(alert):
                group.changed = True
                if group.flush_at is None:
                    group.flush_at = self._change_due(group, now)
            keys.append(key)
        return keys

    def pending(self, group_key: str) -> bool:
        """Whether the group holds news not yet looked at by :meth:`due` (repeats and muted
        alerts waiting for their silence to end do not count)."""
        group = self._groups.get(group_key)
        return group is not None and group.changed

    def due(self, now: datetime, mute: MuteCheck | None = None) -> list[Notice]:
        """The notices due at ``now``, oldest due first; each is taken as sent."""
        ready = sorted(
            (wake, key)
            for key, group in self._groups.items()
            if (wake := group.wake()) is not None and wake <= now
        )
        notices = [self._flush(self._groups[key], now, mute) for _, key in ready]
        return [notice for notice in notices if notice is not None]

    def next_wakeup(self) -> datetime | None:
        """When :meth:`due` next has something to look at (None: nothing until an alert)."""
        return min((w for g in self._groups.values() if (w := g.wake()) is not None), default=None)

    def failed(self, notice: Notice, now: datetime) -> None:
        """The group's last notice could not be delivered, finally: forget it was sent and
        look at the group again after ``group_interval``. The retry is "the group's next
        notice" again, so it carries the same notice id (with whatever changed meanwhile)."""
        log_key = (notice.receiver, notice.group_key)
        last = self._before.get(log_key)
        if last is None or last[0].notice_id != notice.notice_id:
            return  # not the group's last notice: a later one went out and counts
        del self._before[log_key]
        _, route, before = last
        if before is None:
            self._log.pop(log_key, None)
        else:
            self._log[log_key] = before
        group = self._groups.get(notice.group_key)
        if group is None:
            group = self._groups[notice.group_key] = _Group(
                notice.group_key, route, dict(notice.group_labels)
            )
        for alert in notice.alerts:  # resolved ones left the group at the flush
            group.put(alert)
        group.changed = True
        retry = now + route.group_interval
        group.flush_at = retry if group.flush_at is None else min(group.flush_at, retry)

    def _change_due(self, group: _Group, now: datetime) -> datetime:
        """A change waits group_wait, and the group speaks at most once per group_interval."""
        route = group.route
        entry = self._log.get((route.receiver, group.key))
        due = now + route.group_wait
        return due if entry is None else max(due, entry.sent_at + route.group_interval)

    def group_keys(self) -> list[str]:
        return sorted(self._groups)

    def notified(self, receiver: str, group_key: str) -> NotifiedEntry | None:
        return self._log.get((receiver, group_key))

    def _flush(self, group: _Group, now: datetime, mute: MuteCheck | None) -> Notice | None:
        route = group.route
        group.changed = False
        log_key = (route.receiver, group.key)
        entry = self._log.get(log_key)
        heard = entry.firing if entry is not None else frozenset()
        muted = {
            fp for fp, a in group.alerts.items() if mute is not None and mute(a, route.receiver)
        }
        live = [a for fp, a in group.alerts.items() if fp not in muted]
        firing = [a for a in live if a.status == "firing"]
        resolved = [
            a
            for a in live
            if a.status == "resolved" and route.send_resolved and a.alert_id in heard
        ]
        if entry is None:
            news = bool(firing)
        else:
            new_firing = any(a.alert_id not in heard for a in firing)
            repeat = bool(firing) and entry.sent_at + route.repeat_interval <= now
            news = new_firing or bool(resolved) or repeat
        notice = None
        if news:
            previous = entry.notice_id if entry is not None else None
            alerts = tuple(sorted(firing + resolved, key=_order))
            notice = Notice(
                notice_id=notice_id(route.receiver, group.key, previous),
                receiver=route.receiver,
                group_key=group.key,
                group_labels=dict(group.labels),
                status="firing" if firing else "resolved",
                alerts=alerts,
                created_at=now,
                common_labels=_common(alerts),
            )
            self._before[log_key] = (notice, route, entry)
            entry = self._log[log_key] = NotifiedEntry.from_notice(notice)
        for fingerprint in [fp for fp, a in group.alerts.items() if a.status == "resolved"]:
            del group.alerts[fingerprint]
        if not group.alerts:
            del self._groups[group.key]
            return notice
        held_back = any(fp in group.alerts for fp in muted)
        group.flush_at = now + route.group_interval if held_back else None
        repeat_at = entry.sent_at + route.repeat_interval if entry is not None else None
        group.repeat_at = repeat_at if repeat_at is not None and repeat_at > now else None
        return notice

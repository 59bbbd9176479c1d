"""The notices channel tests render and send: Chinese station names, +08:00 times."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from consumers.notice import Notice, NoticeAlert, NoticeStatus

CST = timezone(timedelta(hours=8))


@dataclass(frozen=True, slots=True)
class HeardAlert(NoticeAlert):
    """A notice alert that also says when its station was last heard, as ``station.alerts``
    messages do (``last_heartbeat_at``)."""

    last_heartbeat_at: datetime | None = None


def at(hour: int, minute: int, second: int = 0, *, tz: timezone = CST) -> datetime:
    return datetime(2026, 11, 30, hour, minute, second, tzinfo=tz)


def station_alert(
    station_id: str,
    name: str,
    *,
    kind: str = "offline",
    severity: str = "critical",
    status: NoticeStatus = "firing",
    starts_at: datetime,
    ends_at: datetime | None = None,
    last_heartbeat_at: datetime | None = None,
    category: str = "smart_24h",
) -> HeardAlert:
    return HeardAlert(
        alert_id=f"alert-{station_id}-{kind}",
        fingerprint=f"{station_id}:{kind}",
        status=status,
        starts_at=starts_at,
        ends_at=ends_at,
        detected_at=(ends_at or starts_at) + timedelta(seconds=1),
        labels={
            "station_id": station_id,
            "kind": kind,
            "severity": severity,
            "district": "顺义区",
            "street": "空港街道",
            "category": category,
            "name": name,
        },
        summary=f"{name} ({station_id}) has sent no heartbeat for 5 min",
        last_heartbeat_at=last_heartbeat_at,
    )


ALERTS: tuple[NoticeAlert, ...] = (
    station_alert(
        "SY-0002",
        "空港花园驿站",
        starts_at=at(8, 7, 30),
        last_heartbeat_at=at(8, 2, 10),
        category="standard",
    ),
    station_alert(
        "SY-0001",
        "空港祥云工会驿站",
        starts_at=at(8, 5),
        last_heartbeat_at=at(8, 0),
    ),
    station_alert(
        "SY-0003",
        "天竺综保区驿站",
        status="resolved",
        starts_at=at(7, 40),
        ends_at=at(8, 10),
        last_heartbeat_at=at(8, 9, 58),
    ),
)

COMMON = {"district": "顺义区", "street": "空港街道", "kind": "offline", "severity": "critical"}


def notice(alerts: tuple[NoticeAlert, ...] = ALERTS, *, receiver: str = "konggang-wecom") -> Notice:
    """The fixed notice: 2 stations offline, 1 back, grouped by street and kind."""
    return Notice(
        notice_id="3e1f0c6a-2b4d-4f8e-9a7b-5c6d7e8f9a0b",
        receiver=receiver,
        group_key='{}/{severity="critical",street="空港街道"}:{kind="offline",street="空港街道"}',
        group_labels={"street": "空港街道", "kind": "offline"},
        status="firing" if any(a.status == "firing" for a in alerts) else "resolved",
        alerts=alerts,
        created_at=at(8, 10, 5),
        common_labels=COMMON,
    )


NOTICE = notice()
RESOLVED = notice(tuple(replace(a, status="resolved", ends_at=at(9, 0)) for a in ALERTS[:2]))


def many(count: int, *, name: str = "空港街道第{n}号工会驿站") -> Notice:
    """A notice about ``count`` offline stations."""
    alerts = tuple(
        station_alert(
            f"SY-{n:04d}",
            name.format(n=n),
            starts_at=at(8, 0) + timedelta(seconds=n),
            last_heartbeat_at=at(7, 55),
        )
        for n in range(1, count + 1)
    )
    return notice(alerts)

"""What the notifier delivers: a notice about one group of alerts, and the one small protocol
every channel (webhook, WeCom, DingTalk, e-mail, Alertmanager) implements.

Pure data: no network, no database. The grouping engine builds notices; a channel turns one into
its wire format and sends it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal, Protocol
from zoneinfo import ZoneInfo

NoticeStatus = Literal["firing", "resolved"]
DELIVERY_NAMESPACE = uuid.UUID("0d4e8f3a-2b71-5c96-8a1e-7f3b9c2d4e60")


@dataclass(frozen=True, slots=True)
class NoticeAlert:
    """One alert episode as a notice carries it (Alertmanager's alert shape)."""

    alert_id: str
    fingerprint: str  # "<station_id>:<kind>"
    status: NoticeStatus
    starts_at: datetime
    ends_at: datetime | None
    detected_at: datetime
    # every label routes and groups may use: station_id, kind, severity, district, street,
    # category, name (the station's name), …
    labels: Mapping[str, str]
    summary: str
    last_heartbeat_at: datetime | None = None

    @property
    def station_id(self) -> str:
        return self.labels.get("station_id", self.fingerprint.split(":", 1)[0])

    @property
    def kind(self) -> str:
        return self.labels.get("kind", self.fingerprint.rpartition(":")[2])


@dataclass(frozen=True, slots=True)
class Notice:
    """One message to one receiver about one group of alerts.

    ``notice_id`` identifies it in the delivery log: the same notice is never sent twice to the
    same receiver, across restarts too."""

    notice_id: str
    receiver: str
    group_key: str  # stable text naming the route and the group's label values
    group_labels: Mapping[str, str]  # the group_by labels and their values
    status: NoticeStatus  # firing while any alert in it is firing
    alerts: tuple[NoticeAlert, ...]
    created_at: datetime
    # labels every alert of the notice shares (Alertmanager's commonLabels)
    common_labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def firing(self) -> tuple[NoticeAlert, ...]:
        return tuple(a for a in self.alerts if a.status == "firing")

    @property
    def resolved(self) -> tuple[NoticeAlert, ...]:
        return tuple(a for a in self.alerts if a.status == "resolved")


def delivery_key(notice: Notice) -> str:
    """The idempotency key of a notice's delivery (a webhook's ``Idempotency-Key``).

    The same for every try at delivering the same notice — the same ``notice_id`` telling the
    same alerts in the same states — across retries and notifier restarts, so a receiver that
    drops a repeated key drops the copy a crash between sending and recording resends. A
    notice sent again under its id with more to tell (a failed notice retried after new alerts
    joined its group) gets a new key: such a receiver never drops news, nor answers it as a
    reused key with a different body."""
    told = ",".join(sorted(f"{a.alert_id}:{a.status}" for a in notice.alerts))
    return str(uuid.uuid5(DELIVERY_NAMESPACE, f"{notice.notice_id}\x1f{told}"))


def in_zone(notice: Notice, zone: ZoneInfo) -> Notice:
    """The same notice with every time in ``zone`` (the display zone): what a channel is
    given, so every receiver reads one clock whatever zone the alerts came in (the worker's
    messages, the database's UTC after a restart)."""

    def alert_in_zone(alert: NoticeAlert) -> NoticeAlert:
        return replace(
            alert,
            starts_at=alert.starts_at.astimezone(zone),
            ends_at=alert.ends_at.astimezone(zone) if alert.ends_at else None,
            detected_at=alert.detected_at.astimezone(zone),
            last_heartbeat_at=(
                alert.last_heartbeat_at.astimezone(zone) if alert.last_heartbeat_at else None
            ),
        )

    return replace(
        notice,
        alerts=tuple(alert_in_zone(alert) for alert in notice.alerts),
        created_at=notice.created_at.astimezone(zone),
    )


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """How one attempt went. ``retriable``: worth trying again (a timeout, a 5xx, a 429);
    otherwise a failure is final (a 4xx, a rejected address, a bad configuration)."""

    ok: bool
    detail: str = ""
    retriable: bool = False
    status_code: int | None = None


class AlertChannel(Protocol):
    """A way of delivering notices: one module per channel, each behind this protocol."""

    kind: str  # "webhook", "wecom", "dingtalk", "email", "alertmanager", "console"

    async def deliver(self, notice: Notice) -> DeliveryResult: ...

    async def close(self) -> None: ...

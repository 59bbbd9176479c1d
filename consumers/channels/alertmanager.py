"""Hand alerts to an Alertmanager already in place, through its v2 API (``POST /api/v2/alerts``).

Also the shape of an alert as Alertmanager sees it (labels, times, generator URL), which the
webhook channel shares: a site that runs Alertmanager then sees our alerts exactly as if a
Prometheus had sent them, with ``alertname`` = the kind and every station field as a label.

Alertmanager resolves a firing alert by itself once its ``endsAt`` has passed. Resolved alerts
carry their real ``endsAt``. A firing one carries none by default, so Alertmanager gives it its
``resolve_timeout`` (5 min unless configured): the route's ``repeat_interval`` must then stay
below that. With ``resend_within`` (seconds: how soon the notifier sends a firing alert again,
its ``repeat_interval`` plus a margin) a firing alert carries ``endsAt`` = now + that, and stays
firing in Alertmanager until it is resolved or no longer repeated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import quote

import aiohttp

from consumers.channels.http import DEFAULT_TIMEOUT_S, DETAIL_CHARS, JsonPoster, classify_status
from consumers.channels.render import ordered
from consumers.notice import DeliveryResult, Notice, NoticeAlert

# Go's zero time: what Alertmanager's webhook shows as ``endsAt`` while an alert fires.
ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339(moment: datetime) -> str:
    """RFC 3339 in the moment's own offset (a naive one is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.isoformat()


def alert_labels(alert: NoticeAlert) -> dict[str, str]:
    """Every label of the alert, plus ``alertname`` (= kind), ``station_id`` and ``kind``, sorted;
    empty values dropped, as Prometheus treats an empty label as absent."""
    labels = {
        "alertname": alert.kind,
        "station_id": alert.station_id,
        "kind": alert.kind,
        **alert.labels,
    }
    return {name: labels[name] for name in sorted(labels) if labels[name]}


def generator_url(template: str, alert: NoticeAlert) -> str:
    """``template`` with ``{station_id}`` replaced (URL-quoted), e.g. the worker's
    ``http://host:6066/stations/{station_id}``; empty when no template is set."""
    return template.replace("{station_id}", quote(alert.station_id, safe=""))


def ends_at(alert: NoticeAlert) -> datetime | None:
    """When a resolved alert ended (its detection time if the message did not say)."""
    if alert.status != "resolved":
        return None
    return alert.ends_at or alert.detected_at


def postable_alert(
    alert: NoticeAlert, station_url: str = "", *, firing_until: datetime | None = None
) -> dict[str, Any]:
    """One element of ``POST /api/v2/alerts``; ``firing_until``: the ``endsAt`` of a firing
    alert (none: Alertmanager's ``resolve_timeout`` from now)."""
    body: dict[str, Any] = {
        "labels": alert_labels(alert),
        "annotations": {"summary": alert.summary} if alert.summary else {},
        "startsAt": rfc3339(alert.starts_at),
    }
    ended = ends_at(alert) if alert.status == "resolved" else firing_until
    if ended is not None:
        body["endsAt"] = rfc3339(ended)
    body["generatorURL"] = generator_url(station_url, alert)
    return body


class AlertmanagerChannel:
    """Posts a notice's alerts to ``{url}/api/v2/alerts``; Alertmanager then routes, groups,
    silences and notifies by its own configuration."""

    kind = "alertmanager"

    def __init__(
        self,
        url: str,
        *,
        station_url: str = "",
        resend_within: float | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``url``: Alertmanager's base URL (``http://alertmanager:9093``, with any path prefix
        it is served under); ``station_url``: the ``generatorURL`` template; ``resend_within``:
        see the module's note; ``clock``: now, for that ``endsAt``."""
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self._station_url = station_url
        self._resend_within = None if resend_within is None else timedelta(seconds=resend_within)
        self._clock = clock
        self._poster = JsonPoster(timeout=timeout, headers=headers, session=session)

    def payload(self, notice: Notice) -> list[dict[str, Any]]:
        until = None
        if self._resend_within is not None:  # in the notice's zone: one clock per notice
            until = (self._clock() + self._resend_within).astimezone(notice.created_at.tzinfo)
        return [
            postable_alert(alert, self._station_url, firing_until=until)
            for alert in ordered(notice.alerts)
        ]

    async def deliver(self, notice: Notice) -> DeliveryResult:
        answer = await self._poster.post(self.url, partial(self.payload, notice))
        if isinstance(answer, DeliveryResult):
            return answer
        return classify_status(answer.status, answer.text[:DETAIL_CHARS])

    async def close(self) -> None:
        await self._poster.close()

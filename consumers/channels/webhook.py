"""POST a notice as Alertmanager's webhook payload (version 4), so any receiver written for
Alertmanager (chat bridges, incident tools, a team's own service) takes ours unchanged."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import aiohttp

from consumers.channels import render
from consumers.channels.alertmanager import (
    ZERO_TIME,
    alert_labels,
    ends_at,
    generator_url,
    rfc3339,
)
from consumers.channels.http import DEFAULT_TIMEOUT_S, DETAIL_CHARS, JsonPoster, classify_status
from consumers.notice import DeliveryResult, Notice, NoticeAlert, delivery_key

IDEMPOTENCY_HEADER = "Idempotency-Key"


def webhook_alert(alert: NoticeAlert, station_url: str = "") -> dict[str, Any]:
    """One element of the payload's ``alerts``."""
    ended = ends_at(alert)
    return {
        "status": alert.status,
        "labels": alert_labels(alert),
        "annotations": {"summary": alert.summary} if alert.summary else {},
        "startsAt": rfc3339(alert.starts_at),
        "endsAt": ZERO_TIME if ended is None else rfc3339(ended),
        "generatorURL": generator_url(station_url, alert),
        "fingerprint": alert.fingerprint,
    }


def common(label_sets: list[dict[str, str]]) -> dict[str, str]:
    """The labels every set has with the same value (Alertmanager's ``commonLabels``)."""
    if not label_sets:
        return {}
    first, *rest = label_sets
    return {
        name: value
        for name, value in first.items()
        if all(labels.get(name) == value for labels in rest)
    }


def payload(
    notice: Notice,
    *,
    external_url: str = "",
    station_url: str = "",
    max_alerts: int = 0,
    language: render.Language = "zh",
) -> dict[str, Any]:
    """The webhook body, alerts by station. ``max_alerts`` > 0 sends that many alerts and
    counts the rest in ``truncatedAlerts``, as Alertmanager's ``max_alerts`` does."""
    alerts = [webhook_alert(alert, station_url) for alert in render.ordered(notice.alerts)]
    sent = alerts[:max_alerts] if max_alerts > 0 else alerts
    common_labels = common([alert["labels"] for alert in alerts]) or dict(notice.common_labels)
    return {
        "version": "4",
        "groupKey": notice.group_key,
        "truncatedAlerts": len(alerts) - len(sent),
        "status": notice.status,
        "receiver": notice.receiver,
        "groupLabels": dict(sorted(notice.group_labels.items())),
        "commonLabels": common_labels,
        "commonAnnotations": {
            "summary": render.title(notice, language),
            "description": render.plain(notice, language),
        },
        "externalURL": external_url,
        "alerts": sent,
    }


class WebhookChannel:
    """Alertmanager's webhook: one POST of JSON per notice."""

    kind = "webhook"

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        external_url: str = "",
        station_url: str = "",
        max_alerts: int = 0,
        language: render.Language = "zh",
        timeout: float = DEFAULT_TIMEOUT_S,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        """``headers``: sent with every POST (e.g. ``Authorization``); ``external_url``: the
        payload's ``externalURL``; ``station_url``: the ``generatorURL`` template with
        ``{station_id}``."""
        self.url = url
        self._external_url = external_url
        self._station_url = station_url
        self._max_alerts = max_alerts
        self._language = language
        self._poster = JsonPoster(timeout=timeout, headers=headers, session=session)

    def payload(self, notice: Notice) -> dict[str, Any]:
        return payload(
            notice,
            external_url=self._external_url,
            station_url=self._station_url,
            max_alerts=self._max_alerts,
            language=self._language,
        )

    async def deliver(self, notice: Notice) -> DeliveryResult:
        """One POST, with ``Idempotency-Key`` (IETF draft-ietf-httpapi-idempotency-key-header:
        a structured-field string, so quoted) set to :func:`delivery_key`: the same on every
        try at the same notice, so a receiver that honours it takes a notice once."""
        key = {IDEMPOTENCY_HEADER: f'"{delivery_key(notice)}"'}
        answer = await self._poster.post(self.url, partial(self.payload, notice), headers=key)
        if isinstance(answer, DeliveryResult):
            return answer
        return classify_status(answer.status, answer.text[:DETAIL_CHARS])

    async def close(self) -> None:
        await self._poster.close()

"""From the notifier configuration to running parts: one channel per receiver."""

from __future__ import annotations

from datetime import timedelta
from typing import TextIO

from consumers.channels import (
    AlertmanagerChannel,
    ConsoleChannel,
    DingTalkChannel,
    EmailChannel,
    WebhookChannel,
    WeComChannel,
)
from consumers.config import NotifyConfig
from consumers.notice import AlertChannel
from consumers.receivers import (
    AlertmanagerConfig,
    ConsoleConfig,
    DingtalkConfig,
    EmailConfig,
    ReceiverConfig,
    WebhookConfig,
    WecomConfig,
)
from consumers.routing import RouteTree

RESEND_MARGIN = timedelta(minutes=10)


def build_channel(
    receiver: ReceiverConfig,
    console: TextIO | None = None,
    *,
    repeat_interval: timedelta | None = None,
) -> AlertChannel:
    """The channel a receiver names, built from its settings (secret files are read here, so a
    missing one stops the notifier at start). ``repeat_interval``: the longest of the routes
    that name the receiver (an Alertmanager keeps a firing alert that long, plus a margin)."""
    settings = receiver.channel
    if isinstance(settings, WebhookConfig):
        return WebhookChannel(
            settings.url, headers=settings.headers, timeout=settings.timeout.total_seconds()
        )
    if isinstance(settings, WecomConfig):
        return WeComChannel(settings.url)
    if isinstance(settings, DingtalkConfig):
        return DingTalkChannel(settings.url, secret_file=settings.secret_file)
    if isinstance(settings, EmailConfig):
        return EmailChannel(
            settings.smarthost,
            sender=settings.from_,
            to=settings.to,
            security=settings.security,
            username=settings.username,
            password_file=settings.password_file,
        )
    if isinstance(settings, AlertmanagerConfig):
        resend = None if repeat_interval is None else repeat_interval + RESEND_MARGIN
        return AlertmanagerChannel(
            settings.url, resend_within=resend.total_seconds() if resend else None
        )
    if isinstance(settings, ConsoleConfig):
        return ConsoleChannel(console)
    raise AssertionError(f"no channel for {receiver.kind}")  # pragma: no cover


def build_channels(config: NotifyConfig, console: TextIO | None = None) -> dict[str, AlertChannel]:
    routes = RouteTree.from_config(config).routes()
    return {
        receiver.name: build_channel(
            receiver,
            console,
            repeat_interval=max(
                (r.repeat_interval for r in routes if r.receiver == receiver.name), default=None
            ),
        )
        for receiver in config.receivers
    }

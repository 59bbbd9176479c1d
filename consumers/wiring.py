"""From the notifier configuration to running parts: one channel per receiver."""

from __future__ import annotations

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


def build_channel(receiver: ReceiverConfig, console: TextIO | None = None) -> AlertChannel:
    """The channel a receiver names, built from its settings (secret files are read here, so a
    missing one stops the notifier at start)."""
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
        return AlertmanagerChannel(settings.url)
    if isinstance(settings, ConsoleConfig):
        return ConsoleChannel(console)
    raise AssertionError(f"no channel for {receiver.kind}")  # pragma: no cover


def build_channels(config: NotifyConfig, console: TextIO | None = None) -> dict[str, AlertChannel]:
    return {receiver.name: build_channel(receiver, console) for receiver in config.receivers}

"""The ways a notice is delivered, one module each, all behind ``consumers.notice.AlertChannel``.

Each channel takes plain constructor arguments (URL, secret, addresses, timeout); the notifier
builds them from its configuration. ``deliver`` never raises: it answers a ``DeliveryResult``
saying whether a failure is worth retrying.
"""

from __future__ import annotations

from consumers.channels.alertmanager import AlertmanagerChannel
from consumers.channels.console import ConsoleChannel
from consumers.channels.dingtalk import DingTalkChannel
from consumers.channels.email import EmailChannel
from consumers.channels.webhook import WebhookChannel
from consumers.channels.wecom import WeComChannel

__all__ = [
    "AlertmanagerChannel",
    "ConsoleChannel",
    "DingTalkChannel",
    "EmailChannel",
    "WeComChannel",
    "WebhookChannel",
]

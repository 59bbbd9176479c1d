"""``deliver`` answers a result whatever the notice: it never raises into the notifier."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import cast

import pytest

from consumers.channels import (
    AlertmanagerChannel,
    ConsoleChannel,
    DingTalkChannel,
    EmailChannel,
    WebhookChannel,
    WeComChannel,
)
from consumers.notice import AlertChannel
from tests.unit.consumers.channels.notices import ALERTS, NOTICE

# starts_at None: no channel can render it; each must fail before anything reaches the network
BROKEN = replace(NOTICE, alerts=(replace(ALERTS[0], starts_at=cast(datetime, None)),))
UNREACHABLE = "http://127.0.0.1:9/never"


# typed as the protocol: mypy checks that every channel implements it
CHANNELS: dict[str, Callable[[], AlertChannel]] = {
    "webhook": lambda: WebhookChannel(UNREACHABLE),
    "wecom": lambda: WeComChannel(UNREACHABLE),
    "dingtalk": lambda: DingTalkChannel(UNREACHABLE, secret="SECx"),  # noqa: S106 - not a real one
    "alertmanager": lambda: AlertmanagerChannel(UNREACHABLE),
    "email": lambda: EmailChannel("127.0.0.1:9", sender="a@example.org", to=["b@example.org"]),
    "console": lambda: ConsoleChannel(),
}


@pytest.mark.parametrize("kind", sorted(CHANNELS))
def test_kind(kind: str) -> None:
    assert CHANNELS[kind]().kind == kind


@pytest.mark.parametrize("kind", sorted(CHANNELS))
async def test_an_unrenderable_notice_is_a_final_failure(kind: str) -> None:
    channel = CHANNELS[kind]()
    try:
        result = await channel.deliver(BROKEN)
    finally:
        await channel.close()
    assert (result.ok, result.retriable) == (False, False)
    assert result.detail

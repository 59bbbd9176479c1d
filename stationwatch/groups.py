"""Consumer groups: every clean stop leaves the group, so the partitions move at once.

aiokafka (0.14) sends LeaveGroup on close only when the member's generation is above 0. Apache
Kafka numbers a group's generations from 1, so there it always does. Other brokers number the
first generation 0 (the embedded Tansu does): a member stopped in that generation stays in the
group as its leader, and the next member waits for its session to time out — a restart of a
lone worker took several join rounds. A member that has joined (it has a member id) leaves,
whatever its generation. Installed once, before any consumer starts, by the worker and the
notifier; a member with a static ``group_instance_id`` is left alone, as aiokafka does.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.errors import KafkaError
from aiokafka.protocol.group import JoinGroupRequest, LeaveGroupRequest

logger = logging.getLogger(__name__)

_original: Callable[[Any], Awaitable[None]] | None = None


async def _leave_group(coordinator: Any) -> None:
    joined = coordinator.member_id != JoinGroupRequest.UNKNOWN_MEMBER_ID
    if coordinator.generation == 0 and joined and coordinator._group_instance_id is None:
        try:
            await coordinator._send_req(
                LeaveGroupRequest(coordinator.group_id, coordinator.member_id)
            )
        except KafkaError as exc:
            logger.warning("could not leave group %s: %s", coordinator.group_id, exc)
        else:
            logger.info("left group %s (generation 0)", coordinator.group_id)
        coordinator.reset_generation()
        return
    assert _original is not None  # noqa: S101 - installed before use
    await _original(coordinator)


def leave_groups_on_stop() -> None:
    """Make every consumer of this process leave its group on a clean stop (idempotent)."""
    global _original
    if _original is not None:
        return
    _original = GroupCoordinator._maybe_leave_group
    GroupCoordinator._maybe_leave_group = _leave_group

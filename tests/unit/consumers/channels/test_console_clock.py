"""A console notice shows one clock: its header in the zone its alerts are written in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from consumers.channels import ConsoleChannel
from consumers.notice import Notice, NoticeAlert

BEIJING = timezone(timedelta(hours=8))


def test_the_header_is_in_the_alerts_zone_not_utc() -> None:
    starts = datetime(2026, 12, 2, 13, 26, 52, tzinfo=BEIJING)
    alert = NoticeAlert(
        alert_id="a",
        fingerprint="SY-0221:stale",
        status="firing",
        starts_at=starts,
        ends_at=None,
        detected_at=starts,
        labels={"station_id": "SY-0221", "kind": "stale", "street": "后沙峪镇", "name": "驿站"},
        summary="",
    )
    notice = Notice(
        notice_id="n",
        receiver="console",
        group_key="{}:{}",
        group_labels={"street": "后沙峪镇", "kind": "stale"},
        status="firing",
        alerts=(alert,),
        created_at=datetime(2026, 12, 2, 5, 27, 3, tzinfo=UTC),
    )
    header = ConsoleChannel().text(notice).splitlines()[0]
    assert header == "── console · 2026-12-02T13:27:03+08:00 ──"

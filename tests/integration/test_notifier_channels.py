"""The notifier with every kind of receiver at once, end to end: alerts on the real broker, its
state in the real PostgreSQL, notices to a webhook, a real SMTP server and a real Alertmanager;
the built-in inhibition (offline mutes stale of the same station); and a receiver that refuses
for good never holding up the others."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stationwatch.broker import EmbeddedBroker
from tests.integration import test_channels
from tests.integration.harness import Producer, wait_for
from tests.integration.notifier_harness import (
    NotifierProcess,
    RefusingSink,
    Sink,
    alert,
    notifier_env_for,
    send_alerts,
    station_ids,
    webhook_config,
    write_config,
)
from tests.integration.test_channels import SmtpServer, alerts_in

pytestmark = pytest.mark.integration


# The real SMTP server (per test) and the real Alertmanager (per module) of the channel tests.
smtp_server = test_channels.smtp_server
alertmanager = test_channels.alertmanager

SENDER = "驿站监控 <stationwatch@example.org>"
DUTY = ["duty@example.org", "konggang@example.org"]


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    running = await Sink().start()
    yield running
    await running.stop()


def deliveries(database_url: str, stations: list[str]) -> list[tuple[Any, ...]]:
    """(receiver, channel, outcome, attempts, alert_count, last_error) of every notice naming
    one of the stations, by receiver."""
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT receiver, channel, outcome, attempts, alert_count, last_error "
            "FROM stationwatch.deliveries WHERE station_ids && %s ORDER BY receiver",
            (stations,),
        ).fetchall()


async def test_one_street_reaches_webhook_mail_and_alertmanager_once_each(
    broker: EmbeddedBroker,
    database_url: str,
    tmp_path: Path,
    unique: str,
    sink: Sink,
    smtp_server: SmtpServer,
    alertmanager: str,
) -> None:
    config = write_config(
        tmp_path / "notify.yaml",
        f"""
route:
  receiver: hook
  group_by: [street, kind]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
  routes:
    - receiver: hook
      continue: true
    - receiver: duty-mail
      matchers: ["severity=~critical|warning"]
      continue: true
    - receiver: ops-alertmanager
receivers:
  - name: hook
    webhook: {{url: "{sink.url}"}}
  - name: duty-mail
    email:
      to: {json.dumps(DUTY)}
      from: "{SENDER}"
      smarthost: "{smtp_server.smarthost}"
      starttls: false
  - name: ops-alertmanager
    alertmanager: {{url: "{alertmanager}"}}
""",
    )
    env = notifier_env_for(broker.url, database_url, unique, tmp_path, config)
    street = f"三渠街道{unique[:4]}"
    dark = station_ids("TR", 4)
    notifier = NotifierProcess(env, tmp_path / "notifier.log").start()
    try:
        await notifier.wait_healthy()
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
        async with Producer(broker.url, env["STATIONWATCH_TOPIC_PREFIX"]) as producer:
            await send_alerts(
                producer, [alert(s, "offline", "firing", start, street=street) for s in dark]
            )

        def hooked() -> list[dict[str, Any]]:
            return [b for b in sink.bodies if b["groupLabels"].get("street") == street]

        def mailed() -> list[Any]:
            return [m for m in smtp_server.mailbox.messages if street in m[1]["Subject"]]

        async def all_three() -> bool:
            listed = await alerts_in(alertmanager, set(dark))
            return bool(hooked() and mailed() and len(listed) == len(dark))

        await wait_for(all_three, timeout_s=30, what="the webhook, the mail and Alertmanager")

        async def recorded() -> list[tuple[Any, ...]]:
            rows = deliveries(database_url, dark)
            return rows if len(rows) == 3 and {r[2] for r in rows} == {"delivered"} else []

        await wait_for(recorded, timeout_s=10, what="three delivered notices in the database")
        await asyncio.sleep(3)  # an observation window: a repeated notice would arrive in it

        assert len(hooked()) == 1, [b["groupLabels"] for b in sink.bodies]
        body = hooked()[0]
        assert body["receiver"] == "hook"
        assert body["groupLabels"] == {"kind": "offline", "street": street}
        assert {a["labels"]["station_id"] for a in body["alerts"]} == set(dark)

        assert len(mailed()) == 1
        envelope, message, login = mailed()[0]
        assert envelope.mail_from == "stationwatch@example.org"
        assert envelope.rcpt_tos == DUTY
        assert login is None
        assert str(message["From"]) == SENDER
        assert message["To"] == ", ".join(DUTY)
        assert message["Subject"] == f"[stationwatch] {street}: {len(dark)} 个驿站离线"
        text_part = message.get_body(("plain",))
        assert text_part is not None
        assert text_part.get_content_charset() == "utf-8"
        text = text_part.get_content()
        assert text.startswith(f"{street}: {len(dark)} 个驿站离线\n")
        assert f"告警中 ({len(dark)}):" in text
        for station in dark:
            assert f"- 测试驿站 {station} ({station}) 离线，自 " in text
        assert "接收方: duty-mail" in text

        listed = {a["labels"]["station_id"]: a for a in await alerts_in(alertmanager, set(dark))}
        assert set(listed) == set(dark)
        for station, forwarded in listed.items():
            assert forwarded["labels"] == {
                "alertname": "offline",
                "category": "standard",
                "district": "顺义区",
                "kind": "offline",
                "name": f"测试驿站 {station}",
                "severity": "critical",
                "station_id": station,
                "street": street,
            }
            assert forwarded["status"]["state"] == "active"
            assert forwarded["annotations"]["summary"].startswith(f"测试驿站 {station} ")
            began = datetime.fromisoformat(forwarded["startsAt"].replace("Z", "+00:00"))
            assert began == start

        assert [row[:5] for row in deliveries(database_url, dark)] == [
            ("duty-mail", "email", "delivered", 1, len(dark)),
            ("hook", "webhook", "delivered", 1, len(dark)),
            ("ops-alertmanager", "alertmanager", "delivered", 1, len(dark)),
        ]
    finally:
        assert notifier.stop() == 0, notifier.log()[-3000:]


def open_episode(database_url: str, message: dict[str, Any]) -> None:
    """The row the worker writes for an episode before it emits the alert."""
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO stationwatch.alerts (alert_id, fingerprint, station_id, kind, severity, "
            "starts_at, detected_at, last_heartbeat_at, labels, summary) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)",
            (
                message["alert_id"],
                message["fingerprint"],
                message["station_id"],
                message["kind"],
                message["severity"],
                message["starts_at"],
                message["detected_at"],
                message["last_heartbeat_at"],
                json.dumps(message["labels"], ensure_ascii=False),
                message["summary"],
            ),
        )


async def test_a_station_offline_is_not_also_reported_late(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str, sink: Sink
) -> None:
    config = write_config(tmp_path / "notify.yaml", webhook_config(sink.url))
    env = notifier_env_for(broker.url, database_url, unique, tmp_path, config)
    street = f"天竺镇{unique[:4]}"
    down, late = station_ids("IH", 2)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    offline = alert(down, "offline", "firing", start, street=street)
    stale_of_down = alert(down, "stale", "firing", start - timedelta(minutes=3), street=street)
    stale_of_late = alert(late, "stale", "firing", start, street=street)
    open_episode(database_url, offline)
    notifier = NotifierProcess(env, tmp_path / "notifier.log").start()
    try:
        await notifier.wait_healthy()
        async with Producer(broker.url, env["STATIONWATCH_TOPIC_PREFIX"]) as producer:
            await send_alerts(producer, [offline, stale_of_down, stale_of_late])

        def heard() -> Counter[tuple[str, str]]:
            return Counter(
                (a["labels"]["station_id"], a["labels"]["kind"])
                for a in sink.alerts()
                if a["labels"].get("street") == street
            )

        async def settled() -> bool:
            with psycopg.connect(database_url) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM stationwatch.suppressed_alerts WHERE station_id = %s",
                    (down,),
                ).fetchone()
            return bool(row and row[0] >= 1) and len(heard()) >= 2

        await wait_for(settled, timeout_s=30, what="both notices and the inhibited alert")
        await asyncio.sleep(3)  # an observation window: the inhibited alert must not follow
        assert heard() == {(down, "offline"): 1, (late, "stale"): 1}
        with psycopg.connect(database_url) as conn:
            muted = conn.execute(
                "SELECT alert_id, status, receiver, kind, reason, silence_id "
                "FROM stationwatch.suppressed_alerts WHERE station_id = ANY(%s)",
                ([down, late],),
            ).fetchall()
        assert muted == [(stale_of_down["alert_id"], "firing", "hook", "stale", "inhibited", None)]
        assert {(r[0], r[2]) for r in deliveries(database_url, [down, late])} == {
            ("hook", "delivered")
        }
    finally:
        code = notifier.stop()
        with psycopg.connect(database_url) as conn:
            conn.execute("DELETE FROM stationwatch.alerts WHERE station_id = %s", (down,))
        assert code == 0, notifier.log()[-3000:]


async def test_a_receiver_refusing_for_good_fails_once_and_holds_up_nobody(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str, sink: Sink
) -> None:
    refusing = await RefusingSink(status=400).start()
    config = write_config(
        tmp_path / "notify.yaml",
        f"""
route:
  receiver: good
  group_by: [street, kind]
  group_wait: 1s
  group_interval: 2s
  repeat_interval: 1h
  routes:
    - receiver: refusing
      continue: true
    - receiver: good
receivers:
  - name: refusing
    webhook: {{url: "{refusing.url}"}}
  - name: good
    webhook: {{url: "{sink.url}"}}
""",
    )
    env = notifier_env_for(broker.url, database_url, unique, tmp_path, config)
    street = f"仁和镇{unique[:4]}"
    stations = station_ids("RF", 3)
    notifier = NotifierProcess(env, tmp_path / "notifier.log").start()
    try:
        await notifier.wait_healthy()
        async with Producer(broker.url, env["STATIONWATCH_TOPIC_PREFIX"]) as producer:
            sent_at = time.monotonic()
            await send_alerts(
                producer,
                [alert(s, "offline", "firing", datetime.now(UTC), street=street) for s in stations],
            )

        def ours(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [b for b in bodies if b["groupLabels"].get("street") == street]

        async def good_heard() -> bool:
            return bool(ours(sink.bodies))

        await wait_for(good_heard, timeout_s=15, what="the good receiver's notice")
        took = time.monotonic() - sent_at
        assert took < 8, f"the good receiver waited {took:.1f} s"

        async def failed() -> list[tuple[Any, ...]]:
            rows = deliveries(database_url, stations)
            return rows if {r[2] for r in rows} == {"delivered", "failed"} else []

        await wait_for(failed, timeout_s=10, what="the refused notice recorded as failed")
        # An observation window: the good receiver hears nothing more; the refused notice is
        # tried once per group_interval (a refusal is final for that round, not retried in it).
        await asyncio.sleep(4)
        assert len(ours(sink.bodies)) == 1
        refused = len(ours(refusing.refused))
        assert 1 <= refused <= 4, refusing.answers
        assert refusing.bodies == []
        rows = deliveries(database_url, stations)
        assert [row[:5] for row in rows] == [
            ("good", "webhook", "delivered", 1, len(stations)),
            ("refusing", "webhook", "failed", refused, len(stations)),
        ]
        assert rows[0][5] is None
        assert rows[1][5] == "HTTP 400: refused: not a payload we take"
        with psycopg.connect(database_url) as conn:
            tries = conn.execute(
                "SELECT a.attempt, a.ok, a.retriable, a.status_code "
                "FROM stationwatch.notice_attempts a JOIN stationwatch.notices n "
                "USING (receiver, notice_id) WHERE n.station_ids && %s AND a.receiver = %s",
                (stations, "refusing"),
            ).fetchall()
        assert tries == [(n, False, False, 400) for n in range(1, refused + 1)]
    finally:
        code = notifier.stop()
        await refusing.stop()
        assert code == 0, notifier.log()[-3000:]


async def test_a_station_joining_after_a_refused_notice_still_reaches_the_receiver(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str
) -> None:
    recovering = await RefusingSink(status=400, refuse_first=1).start()
    config = write_config(
        tmp_path / "notify.yaml",
        webhook_config(recovering.url, group_wait="1s", group_interval="6s"),
    )
    env = notifier_env_for(broker.url, database_url, unique, tmp_path, config)
    street = f"李桥镇{unique[:4]}"
    first, second, later = station_ids("RJ", 3)
    notifier = NotifierProcess(env, tmp_path / "notifier.log").start()
    try:
        await notifier.wait_healthy()
        async with Producer(broker.url, env["STATIONWATCH_TOPIC_PREFIX"]) as producer:
            now = datetime.now(UTC)
            await send_alerts(
                producer,
                [alert(s, "offline", "firing", now, street=street) for s in (first, second)],
            )

            async def refused() -> bool:
                return [r[2] for r in deliveries(database_url, [first, second])] == ["failed"]

            await wait_for(refused, timeout_s=15, what="the first notice refused for good")
            # the receiver accepts from now on; a station joins the group within group_interval
            await send_alerts(producer, [alert(later, "offline", "firing", now, street=street)])

        async def heard_later() -> bool:
            return any(a["labels"]["station_id"] == later for a in recovering.alerts("firing"))

        await wait_for(heard_later, timeout_s=15, what="a notice naming the station that joined")
    finally:
        code = notifier.stop()
        await recovering.stop()
        assert code == 0, notifier.log()[-3000:]

"""One clock, end to end: with STATIONWATCH_TIMEZONE neither UTC nor +08:00, every time the
real worker, its API server and the real notifier show — every field of every HTTP answer,
alert message, dead letter and webhook notice, and every log line — is ISO 8601 in that zone.

Producers write their times in mixed offsets on purpose (+08:00 and UTC), as the issue saw them.
The same run pins what happens to a station that never sends a heartbeat: ``unknown`` only
until ``STALE_AFTER`` intervals have passed since it was registered, then ``stale``, then
``offline``, with its alerts fired and ``last_heartbeat_at`` null.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from stationwatch.broker import EmbeddedBroker
from streams.liveness import alert_id
from tests.factories import dumps, heartbeat, occupancy, profile, status
from tests.integration.alerts_reader import TopicCollector
from tests.integration.harness import Producer, WorkerProcess, wait_for
from tests.integration.notifier_harness import (
    NotifierProcess,
    Sink,
    notifier_env,
    webhook_config,
    write_config,
)
from tests.integration.test_liveness import STALE_AFTER, ids, liveness_env

pytestmark = pytest.mark.integration

# Neither UTC nor +08:00, and a half-hour offset, so an hour-only conversion shows too.
ZONE_NAME = "Asia/Kolkata"
ZONE = ZoneInfo(ZONE_NAME)
BEIJING = timezone(timedelta(hours=8))
NEVER_INTERVAL_S = 3  # the never-heard station: unknown for STALE_AFTER * 3 s after registration

# A time that stationwatch shows: ISO 8601, seconds, optional fraction, an offset.
ISO_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:[+-]\d{2}:\d{2}|Z)")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")  # a calendar day (holidays_known_until)
# Anything in a text that looks like a date with a time of day, however written.
DATETIME_LIKE = re.compile(
    r"\d{4}[-/]\d{2}[-/]\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
    r"(?:\s?(?:[+-]\d{2}:?\d{2}|Z\b|UTC\b|GMT\b))?"
)
# A time of day with no date, or a date written otherwise than ISO: cannot be classified.
UNCLASSIFIABLE = re.compile(r"(?<![\d.:])\d{1,2}:\d{2}(?::\d{2})?(?![\d:])|\d{4}/\d{2}/\d{2}")
# Alertmanager's webhook says "no end yet" with Go's zero time: a sentinel, not a time.
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
LOG_LINE = re.compile(r"^(\S+) (DEBUG|INFO|WARNING|ERROR|CRITICAL) \S+: ")
# Field names that hold a time: such a field must be an ISO string or null, never a number.
TIME_KEY = re.compile(r"(_at|At|_since|as_of|_until)$")


@dataclass
class Clockwatch:
    """Collects every time found, by where it was found, and every problem."""

    zone: ZoneInfo = ZONE
    checked: dict[str, list[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def instant(self, where: str, text: str) -> None:
        self.checked.setdefault(where, []).append(text)
        if not ISO_INSTANT.fullmatch(text):
            self.problems.append(f"{where}: {text!r} is not ISO 8601 with an offset")
            return
        moment = datetime.fromisoformat(text)
        if moment.utcoffset() != moment.astimezone(self.zone).utcoffset():
            self.problems.append(f"{where}: {text!r} is not in {self.zone.key}")

    def text(self, where: str, text: str) -> None:
        """Free text (a log line, an error, a notice's description): every date with a time
        in it must be a shown instant; no other time-like fragment may be left."""
        rest = text
        for found in DATETIME_LIKE.finditer(text):
            self.instant(where, found.group(0))
            rest = rest.replace(found.group(0), " ")
        odd = UNCLASSIFIABLE.search(rest)
        if odd:
            self.problems.append(f"{where}: unclassifiable time-like {odd.group(0)!r} in {text!r}")

    def value(self, where: str, key: str, value: Any) -> None:
        """Walk one JSON value recursively."""
        if isinstance(value, dict):
            for name, item in value.items():
                self.value(f"{where}.{name}", str(name), item)
        elif isinstance(value, list):
            for n, item in enumerate(value):
                self.value(f"{where}[{n}]", key, item)
        elif isinstance(value, str):
            if key == "raw" and ".deadletter" in where:
                return  # the refused input verbatim: the producer's text, not ours
            if key == "endsAt" and value == GO_ZERO_TIME:
                return
            if ISO_INSTANT.fullmatch(value) or (
                TIME_KEY.search(key) and not ISO_DATE.fullmatch(value)
            ):
                self.instant(f"{where}", value)
            elif ISO_DATE.fullmatch(value):
                self.checked.setdefault(f"{where} (date)", []).append(value)
            else:
                self.text(where, value)
        elif TIME_KEY.search(key) and value is not None:
            self.problems.append(f"{where}: a time field holding {value!r}, not an ISO string")

    def log(self, where: str, log: str) -> int:
        """Every line; the lines of log records must start with their time. Returns how many
        log records were found."""
        records = 0
        for number, line in enumerate(log.splitlines(), 1):
            match = LOG_LINE.match(line)
            if match:
                records += 1
                stamp = match.group(1)
                if not re.fullmatch(r".+T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2}", stamp):
                    self.problems.append(f"{where}:{number}: line time {stamp!r} not to the ms")
            self.text(f"{where}:{number}", line)
        return records


def test_the_clockwatch_finds_what_it_must() -> None:
    """The checker itself: a wrong zone, a missing offset, a bare clock time, an epoch number
    in a time field and a non-ISO date are all problems; the right zone is not."""
    watch = Clockwatch()
    good = datetime(2026, 11, 30, 2, 35, tzinfo=UTC).astimezone(ZONE).isoformat()
    watch.value("ok", "starts_at", good)
    watch.value("ok", "day", "2026-12-31")
    watch.value("ok", "endsAt", GO_ZERO_TIME)
    watch.log("ok", f"{good[:19]}.123{good[19:]} INFO x: at {good} on 127.0.0.1:53124")
    assert watch.problems == []
    for bad in (
        {"starts_at": "2026-11-30T10:35:00+08:00"},
        {"as_of": "2026-11-30T02:35:00Z"},
        {"x": "2026-11-30T08:05:00"},
        {"summary": "since 2026-11-30 08:05:00 +05:30"},
        {"summary": "closed at 08:05"},
        {"summary": "on 2026/11/30"},
        {"detected_at": 1764470100},
        {"updated_at": "yesterday"},
    ):
        watch = Clockwatch()
        watch.value("bad", "", bad)
        assert watch.problems, bad
    watch = Clockwatch()
    watch.log("bad", "2026-11-30 08:05:00,123 INFO x: hello")
    assert watch.problems


@contextlib.asynccontextmanager
async def beating(producer: Producer, offsets: dict[str, timezone]) -> AsyncIterator[set[str]]:
    """Heartbeats every half second from the stations in the yielded set, each written in its
    own offset (``offsets``)."""
    alive = set(offsets)
    seq = dict.fromkeys(offsets, 0)

    async def run() -> None:
        while True:
            now = datetime.now(UTC)
            for sid in sorted(alive):
                seq[sid] += 1
                beat = heartbeat(sid, now.astimezone(offsets[sid]), seq[sid])
                await producer.send("station.heartbeat", sid, dumps(beat))
            await producer.flush()
            await asyncio.sleep(0.5)

    task = asyncio.create_task(run())
    try:
        yield alive
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def kinds(records: list[dict[str, Any]], station_id: str) -> list[tuple[str, str]]:
    return [(a["kind"], a["state"]) for a in records if a["station_id"] == station_id]


def liveness_path(database_url: str, station_id: str) -> list[tuple[str, str]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT from_liveness, to_liveness FROM stationwatch.liveness_changes "
            "WHERE station_id = %s ORDER BY time",
            (station_id,),
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


async def test_every_time_shown_is_in_the_configured_zone(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str
) -> None:
    sink = await Sink().start()
    env = liveness_env(broker, database_url, unique, tmp_path / "data")
    env["STATIONWATCH_TIMEZONE"] = ZONE_NAME
    config = write_config(tmp_path / "notify.yaml", webhook_config(sink.url))
    prefix = env["STATIONWATCH_TOPIC_PREFIX"]
    steady, silent, never = ids(unique, "Z", 3)  # always open: the zone's hours do not matter
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    notifier = NotifierProcess(notifier_env(env, config), tmp_path / "notifier.log").start()
    try:
        await worker.wait_healthy()
        await notifier.wait_healthy()
        async with (
            TopicCollector(broker.url, prefix + "station.alerts") as alerts,
            TopicCollector(broker.url, prefix + "station.deadletter") as letters,
            Producer(broker.url, prefix) as producer,
            beating(producer, {steady: BEIJING, silent: UTC}) as alive,
        ):
            registered_at = datetime.now(UTC)
            for message in (
                profile(steady, heartbeat_interval_s=1),
                profile(silent, heartbeat_interval_s=1),
                profile(never, heartbeat_interval_s=NEVER_INTERVAL_S),
            ):
                await producer.send("station.registry", message["station_id"], dumps(message))
            await producer.flush()

            # -- the never-heard station: unknown at first ------------------------------
            async def never_registered() -> dict[str, Any] | None:
                got = await worker.get(f"/stations/{never}")
                if got.status_code == 200 and got.json()["lifecycle"] == "active":
                    return dict(got.json())
                return None

            first = await wait_for(never_registered, timeout_s=15, what="the station registered")
            assert first["last_heartbeat_at"] is None
            if datetime.now(UTC) - registered_at < timedelta(
                seconds=STALE_AFTER * NEVER_INTERVAL_S
            ):
                # seen inside its first STALE_AFTER intervals (on a machine not overloaded):
                # still unknown; the liveness_changes below pin the whole path in any case
                assert first["liveness"] == "unknown"

            async def online() -> bool:
                bodies = [(await worker.get(f"/stations/{s}")).json() for s in (steady, silent)]
                return all(b.get("liveness") == "online" for b in bodies)

            await wait_for(online, timeout_s=20, what="the beating stations online")
            now = datetime.now(UTC)
            for topic, value in (
                ("station.occupancy", occupancy(steady, now, 3)),
                ("station.status", status(steady, now.astimezone(BEIJING), "open")),
                # two dead letters: a bad count, and a time an hour ahead (its error names it)
                ("station.occupancy", occupancy(steady, now, -1)),
                (
                    "station.heartbeat",
                    heartbeat(steady, (now + timedelta(hours=1)).astimezone(BEIJING), 10**6),
                ),
            ):
                await producer.send(topic, steady, dumps(value))
            await producer.flush()
            alive.discard(silent)  # falls silent: stale (firing, resolved), then offline

            def offline_notified(station_id: str) -> bool:
                return any(
                    a["labels"]["station_id"] == station_id and a["labels"]["kind"] == "offline"
                    for a in sink.alerts("firing")
                )

            def missing() -> list[str]:
                wanted = {
                    "silent offline": ("offline", "firing") in kinds(alerts.records, silent),
                    "never offline": ("offline", "firing") in kinds(alerts.records, never),
                    "two dead letters": len(letters.records) >= 2,
                    "both offline notices": offline_notified(silent) and offline_notified(never),
                }
                return [name for name, there in wanted.items() if not there]

            async def fired() -> bool:
                return not missing()

            try:
                await wait_for(fired, timeout_s=60, what="alerts, letters, offline notices")
            except AssertionError as exc:
                notices = [
                    (a["labels"]["station_id"], a["labels"]["kind"], a["status"])
                    for a in sink.alerts()
                ]
                raise AssertionError(
                    f"{exc}; missing: {missing()}; alerts {alerts.records}; notices {notices}"
                ) from None

            # A restarted notifier takes the open episodes from PostgreSQL (in UTC there); the
            # next notice of their group must still show them in the zone. The silent station
            # beats again: its offline episode resolves (offline inhibits stale, so this is
            # the resolution a receiver hears of), in one notice with the never-heard one's.
            assert notifier.stop() == 0
            notifier.log_path = tmp_path / "notifier-restarted.log"
            notifier.start()
            await notifier.wait_healthy()
            delivered_before = len(sink.bodies)
            alive.add(silent)

            async def resolution_notified() -> bool:
                return any(
                    a["status"] == "resolved"
                    for body in sink.bodies[delivered_before:]
                    for a in body["alerts"]
                )

            await wait_for(resolution_notified, timeout_s=60, what="the resolution's notice")
            restored = [
                a
                for body in sink.bodies[delivered_before:]
                for a in body["alerts"]
                if a["labels"]["station_id"] == never and a["status"] == "firing"
            ]
            assert restored, sink.bodies[delivered_before:]  # shown with the resolution

            # -- the never-heard station went unknown → stale → offline, with its alerts ----
            assert kinds(alerts.records, never) == [
                ("stale", "firing"),
                ("stale", "resolved"),
                ("offline", "firing"),
            ]
            assert liveness_path(database_url, never) == [
                ("unknown", "stale"),
                ("stale", "offline"),
            ]
            never_alerts = [a for a in alerts.records if a["station_id"] == never]
            assert {a["last_heartbeat_at"] for a in never_alerts} == {None}
            stale_start = datetime.fromisoformat(never_alerts[0]["starts_at"])
            # judged from its registration: unknown for STALE_AFTER intervals, not seconds
            assert stale_start - registered_at >= timedelta(
                seconds=STALE_AFTER * NEVER_INTERVAL_S - 1
            )
            never_now = (await worker.get(f"/stations/{never}")).json()
            assert (never_now["liveness"], never_now["last_heartbeat_at"]) == ("offline", None)

            # -- every answer and message ----------------------------------------------
            answers: dict[str, Any] = {}
            for name, path, params in (
                ("stations", "/stations", {}),
                ("station", f"/stations/{steady}", {}),
                ("station_silent", f"/stations/{silent}", {}),
                ("station_never", f"/stations/{never}", {}),
                ("nearby", "/stations/nearby", {"lat": 40.08, "lon": 116.58, "open_now": "false"}),
                ("summary", "/summary", {}),
                ("health", "/health", {}),
                ("openapi", "/openapi.json", {}),
                ("bad_parameter", "/stations", {"limit": "0"}),
                ("unknown_station", "/stations/ZZ-NONE0", {}),
            ):
                answers[f"worker{path}:{name}"] = (await worker.get(path, **params)).json()
            answers["notifier/health"] = (await notifier.get("/health")).json()
            deliveries = list(sink.bodies)
            alert_messages = list(alerts.records)
            dead_letters = list(letters.records)

        watch = Clockwatch()
        watch.value("answer", "", answers)
        watch.value("station.alerts", "", alert_messages)
        watch.value("station.deadletter", "", dead_letters)
        watch.value("webhook", "", deliveries)
        worker_records = watch.log("worker.log", worker.log())
        notifier_records = watch.log("notifier.log", (tmp_path / "notifier.log").read_text())
        notifier_records += watch.log("notifier-restarted.log", notifier.log())
        assert watch.problems == [], "\n".join(watch.problems[:40])

        # The walk found what each kind of answer and message must carry: it checked real
        # times, not an empty run.
        found = {where.rsplit(".", 1)[-1].split("[")[0] for where in watch.checked}
        for name in (
            "liveness_since",
            "last_heartbeat_at",
            "open_state_since",
            "occupancy_at",
            "updated_at",
            "as_of",
            "starts_at",
            "ends_at",
            "detected_at",
            "at",
            "startsAt",
            "endsAt",
        ):
            assert name in found, f"no {name} was checked"
        assert len(answers["worker/stations:stations"]["items"]) == 3
        assert len(answers["worker/stations/nearby:nearby"]["items"]) == 3
        assert answers["worker/summary:summary"]["as_of"]
        assert answers["worker/health:health"]["status"] == "ok"
        station = answers[f"worker/stations/{steady}:station"]
        assert station["last_heartbeat_at"] is not None  # written +08:00 by its producer
        assert station["open_state_since"] is not None
        assert any(a["state"] == "resolved" and a["ends_at"] for a in alert_messages)
        assert any(a["last_heartbeat_at"] for a in alert_messages)  # the silent one's (UTC)
        future = [d for d in dead_letters if "in the future" in d["error"]]
        assert future, dead_letters
        assert [f for f in watch.checked if f.startswith("station.deadletter") and "error" in f]
        assert any(w.startswith("webhook") and "description" in w for w in watch.checked)
        assert worker_records > 5, worker.log()[-2000:]
        assert notifier_records > 4, notifier.log()[-2000:]
        assert any(" alert " in line for line in worker.log().splitlines())  # with a start time
        assert any("serving" in line for line in worker.log().splitlines())  # the API server's

        # Alert ids come from the start's instant, never from the zone it is shown in, so a
        # worker in any display zone gives the same ids.
        for message in alert_messages:
            shown_start = datetime.fromisoformat(message["starts_at"])
            assert shown_start.utcoffset() == shown_start.astimezone(ZONE).utcoffset()
            assert message["alert_id"] == alert_id(message["fingerprint"], shown_start), message
        json.dumps(answers)  # the answers are plain JSON (nothing left unconverted)
    finally:
        notifier.stop()
        worker.stop()
        await sink.stop()

"""What the notifier keeps in PostgreSQL (migration 0005): the notification log that makes a
notice go out once, every notice and each try at delivering it, silences, and the alerts a
silence or an inhibition kept back.

Every method wraps driver errors as the sink does (``stationwatch.db.sink.classify``):
:class:`DatabaseUnavailableError` (retriable: the caller waits and tries again, holding its
Kafka offsets meanwhile) or :class:`RowRefusedError` (data the database refuses: never retried).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg

from consumers.grouping import NotifiedEntry
from consumers.notice import DeliveryResult, Notice, NoticeAlert
from consumers.silences import Silence, parse_matchers
from stationwatch.db.sink import classify

_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    ValueError,
    TypeError,
    OverflowError,
)


def alert_json(alert: NoticeAlert) -> dict[str, Any]:
    return {
        "alert_id": alert.alert_id,
        "fingerprint": alert.fingerprint,
        "status": alert.status,
        "starts_at": alert.starts_at.isoformat(),
        "ends_at": alert.ends_at.isoformat() if alert.ends_at else None,
        "detected_at": alert.detected_at.isoformat(),
        "labels": dict(alert.labels),
        "summary": alert.summary,
    }


class NotifyStore:
    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._pool: asyncpg.Pool | None = None

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn, min_size=1, max_size=4, timeout=10, command_timeout=30
                )
            async with self._pool.acquire() as conn:
                yield conn
        except _ERRORS as exc:
            # a data or constraint error (RowRefusedError) is not retried: it would never pass
            raise classify(exc) from exc

    # -- the notification log -------------------------------------------------------------
    async def notified_entries(self) -> list[NotifiedEntry]:
        """The whole notification log (restored into the grouper after a rebalance)."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT receiver, group_key, notice_id, sent_at, firing, resolved "
                "FROM stationwatch.notify_log"
            )
        return [
            NotifiedEntry(
                receiver=row["receiver"],
                group_key=row["group_key"],
                notice_id=row["notice_id"],
                sent_at=row["sent_at"],
                firing=frozenset(row["firing"]),
                resolved=frozenset(row["resolved"]),
            )
            for row in rows
        ]

    async def open_alerts(self) -> list[NoticeAlert]:
        """The episodes firing now, as the worker recorded them (it writes an alert's row
        before it emits the alert): the sources of inhibition, and the groups to keep."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT alert_id, fingerprint, station_id, kind, severity, starts_at, "
                "detected_at, last_heartbeat_at, labels, summary FROM stationwatch.alerts "
                "WHERE ends_at IS NULL"
            )
        found = []
        for row in rows:
            labels = {k: str(v) for k, v in json.loads(row["labels"] or "{}").items() if v}
            labels |= {"station_id": row["station_id"], "kind": row["kind"]}
            labels["severity"] = row["severity"]
            found.append(
                NoticeAlert(
                    alert_id=row["alert_id"],
                    fingerprint=row["fingerprint"],
                    status="firing",
                    starts_at=row["starts_at"],
                    ends_at=None,
                    detected_at=row["detected_at"],
                    labels=labels,
                    summary=row["summary"],
                    last_heartbeat_at=row["last_heartbeat_at"],
                )
            )
        return found

    async def record_notice(
        self, notice: Notice, channel: str, first_detected_at: datetime | None
    ) -> int:
        """Record a notice about to be delivered; returns the tries already made (a notice
        recorded before a restart keeps its count). A notice that failed for good is tried
        again after ``group_interval`` under the same id, with what its group holds then."""
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO stationwatch.notices (notice_id, receiver, channel, group_key, "
                "group_labels, status, outcome, alert_ids, station_ids, alerts, created_at, "
                "first_detected_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, "
                "$10, $11) ON CONFLICT (receiver, notice_id) DO UPDATE SET "
                "status = EXCLUDED.status, outcome = 'pending', alert_ids = EXCLUDED.alert_ids, "
                "station_ids = EXCLUDED.station_ids, alerts = EXCLUDED.alerts, "
                "first_detected_at = EXCLUDED.first_detected_at "
                "WHERE stationwatch.notices.outcome = 'failed'",
                notice.notice_id,
                notice.receiver,
                channel,
                notice.group_key,
                json.dumps(dict(notice.group_labels), ensure_ascii=False),
                notice.status,
                [a.alert_id for a in notice.alerts],
                sorted({a.station_id for a in notice.alerts}),
                json.dumps([alert_json(a) for a in notice.alerts], ensure_ascii=False),
                notice.created_at,
                first_detected_at,
            )
            tried = await conn.fetchval(
                "SELECT attempts FROM stationwatch.notices WHERE receiver = $1 AND notice_id = $2",
                notice.receiver,
                notice.notice_id,
            )
        return int(tried or 0)

    async def outcome(self, notice: Notice) -> str | None:
        async with self._conn() as conn:
            value = await conn.fetchval(
                "SELECT outcome FROM stationwatch.notices WHERE receiver = $1 AND notice_id = $2",
                notice.receiver,
                notice.notice_id,
            )
        return str(value) if value is not None else None

    async def record_attempt(
        self, notice: Notice, attempt: int, at: datetime, result: DeliveryResult
    ) -> None:
        async with self._conn() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO stationwatch.notice_attempts (notice_id, receiver, attempt, at, ok, "
                "retriable, status_code, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                "ON CONFLICT DO NOTHING",
                notice.notice_id,
                notice.receiver,
                attempt,
                at,
                result.ok,
                result.retriable,
                result.status_code,
                result.detail[:2000],
            )
            await conn.execute(
                "UPDATE stationwatch.notices SET attempts = GREATEST(attempts, $3), "
                "last_error = CASE WHEN $4 THEN last_error ELSE $5 END "
                "WHERE receiver = $1 AND notice_id = $2",
                notice.receiver,
                notice.notice_id,
                attempt,
                result.ok,
                result.detail[:2000],
            )

    async def mark_delivered(self, notice: Notice, at: datetime) -> None:
        """The notice arrived: its outcome, and the log entry that keeps it from going out
        again, in one transaction."""
        firing = sorted(a.alert_id for a in notice.firing)
        resolved = sorted(a.alert_id for a in notice.resolved)
        async with self._conn() as conn, conn.transaction():
            await conn.execute(
                "UPDATE stationwatch.notices SET outcome = 'delivered', delivered_at = $3 "
                "WHERE receiver = $1 AND notice_id = $2",
                notice.receiver,
                notice.notice_id,
                at,
            )
            await conn.execute(
                "INSERT INTO stationwatch.notify_log (receiver, group_key, firing, resolved, "
                "notice_id, sent_at) VALUES ($1, $2, $3, $4, $5, $6) "
                "ON CONFLICT (receiver, group_key) DO UPDATE SET firing = EXCLUDED.firing, "
                "resolved = EXCLUDED.resolved, notice_id = EXCLUDED.notice_id, "
                "sent_at = EXCLUDED.sent_at",
                notice.receiver,
                notice.group_key,
                firing,
                resolved,
                notice.notice_id,
                notice.created_at,  # as the grouper keeps it: repeats are timed from here
            )

    async def mark_failed(self, notice: Notice, error: str) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE stationwatch.notices SET outcome = 'failed', last_error = $3 "
                "WHERE receiver = $1 AND notice_id = $2",
                notice.receiver,
                notice.notice_id,
                error[:2000],
            )

    async def record_suppressed(
        self,
        alerts: Sequence[NoticeAlert],
        receiver: str,
        reason: str,
        at: datetime,
        silence_id: str | None = None,
    ) -> None:
        if not alerts:
            return
        async with self._conn() as conn:
            await conn.executemany(
                "INSERT INTO stationwatch.suppressed_alerts (alert_id, status, receiver, "
                "station_id, kind, reason, silence_id, at) VALUES ($1, $2, $3, $4, $5, $6, "
                "$7, $8) ON CONFLICT DO NOTHING",
                [
                    (
                        a.alert_id,
                        a.status,
                        receiver,
                        a.station_id,
                        a.kind,
                        reason,
                        uuid.UUID(silence_id) if silence_id else None,
                        at,
                    )
                    for a in alerts
                ],
            )

    # -- silences -------------------------------------------------------------------------
    async def add_silence(self, silence: Silence) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO stationwatch.silences (silence_id, matchers, starts_at, ends_at, "
                "created_by, comment) VALUES ($1, $2, $3, $4, $5, $6)",
                uuid.UUID(silence.id),
                [str(m) for m in silence.matchers],
                silence.starts_at,
                silence.ends_at,
                silence.created_by,
                silence.comment,
            )

    async def silences(self, *, since: datetime | None = None) -> list[Silence]:
        """Every silence, or those not expired before ``since``; newest first."""
        async with self._conn() as conn:
            rows = await conn.fetch(
                "SELECT silence_id, matchers, starts_at, ends_at, created_by, comment "
                "FROM stationwatch.silences WHERE $1::timestamptz IS NULL OR ends_at > $1 "
                "ORDER BY created_at DESC",
                since,
            )
        return [
            Silence(
                id=str(row["silence_id"]),
                matchers=parse_matchers(row["matchers"]),
                starts_at=row["starts_at"],
                ends_at=row["ends_at"],
                created_by=row["created_by"],
                comment=row["comment"],
            )
            for row in rows
        ]

    async def expire_silence(self, silence_id: str, at: datetime) -> bool:
        """End a silence now (its start too, if it had not begun); False if none is active or
        pending under that id."""
        async with self._conn() as conn:
            status = await conn.execute(
                "UPDATE stationwatch.silences SET ends_at = $2, "
                "starts_at = LEAST(starts_at, $2 - interval '1 microsecond') "
                "WHERE silence_id = $1 AND ends_at > $2",
                uuid.UUID(silence_id),
                at,
            )
        return str(status).endswith(" 1")

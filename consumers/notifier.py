"""`stationwatch notifier`: reads `station.alerts`, groups the alerts, and delivers each notice
once to the receivers its routes name.

Two stages in one consumer group, so that several notifiers can share the work and each alert
group is handled by exactly one of them:

1. **route**: an alert (keyed by station) is routed; one record per matched route goes to the
   internal topic ``<app_id>-notifier-groups``, keyed by its group key. Its offset is committed
   once those records are acknowledged.
2. **deliver**: group records (keyed by group, so a group lives on one partition and one
   notifier) feed the :class:`~consumers.grouping.Grouper`; due notices are delivered with
   retries. A record's offset is committed only once every notice it causes is delivered,
   definitively failed, or not needed (:class:`~consumers.offsets.OffsetTracker`).

What makes a notice go out once, across restarts and rebalances: the notification log in
PostgreSQL (``notify_log``), restored into the grouper before any alert is replayed, and the
``notices`` row of a notice, checked before it is sent. Silences and inhibiting alerts (the open
episodes in the ``alerts`` table, which the worker writes before it emits them) are read from
PostgreSQL every second; a muted alert is recorded in ``suppressed_alerts``, not delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, TextIO, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from consumers.config import NotifyConfig
from consumers.grouping import Grouper, notice_alert
from consumers.http import serve
from consumers.inhibit import Inhibitor, mute_reason
from consumers.notice import AlertChannel, DeliveryResult, Notice, NoticeAlert, in_zone
from consumers.offsets import OffsetTracker
from consumers.routing import RouteTree
from consumers.silences import Silence
from consumers.store import NotifyStore
from consumers.wiring import build_channels
from schemas.alerts import Alert
from schemas.topics import ALERTS
from stationwatch.broker import bootstrap_servers, ensure_topics
from stationwatch.errors import DatabaseUnavailableError, RowRefusedError
from stationwatch.kafka_auth import client_auth
from stationwatch.metrics import NotifierMetrics
from stationwatch.settings import Settings
from stationwatch.zone import display_zone
from streams.tracker import partition_for

logger = logging.getLogger(__name__)

T = TypeVar("T")
REFRESH_S = 1.0  # silences and inhibiting alerts are reread this often
REVOKE_WAIT_S = 10.0  # how long a rebalance waits for deliveries under way
RECORDED_MAX = 100_000  # suppressed alerts remembered as recorded


def groups_topic_name(settings: Settings) -> str:
    return settings.topic(f"{settings.app_id}-notifier-groups")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Status:
    assigned: bool = False
    database: bool = True
    problems: tuple[str, ...] = ()


class Notifier:
    """One notifier process (any number may run against the same broker and database)."""

    def __init__(
        self,
        settings: Settings,
        config: NotifyConfig,
        *,
        console: TextIO | None = None,
        registry: CollectorRegistry | None = None,
        channels: dict[str, AlertChannel] | None = None,
    ) -> None:
        self.settings = settings
        self.zone = display_zone(settings.timezone)  # every notice is shown in it
        self.config = config
        self.routes = RouteTree.from_config(config)
        self.channels = channels if channels is not None else build_channels(config, console)
        self.registry = registry or CollectorRegistry()
        self.metrics = NotifierMetrics.create(self.registry)
        self.metrics.database_available.set(1)
        for name, channel in self.channels.items():  # both outcomes a series from the start
            for outcome in ("delivered", "failed"):
                self.metrics.notices.labels(name, channel.kind, outcome)
        self.store = NotifyStore(settings.dsn)
        self.alerts_topic = settings.topic(ALERTS)
        self.groups_topic = groups_topic_name(settings)
        self.grouper = Grouper(self.routes)
        self.tracker: OffsetTracker[TopicPartition] = OffsetTracker()
        self.inhibitor = Inhibitor.from_config(config)
        self.silences: list[Silence] = []
        self.inflight: dict[str, asyncio.Task[None]] = {}
        self.status = _Status()
        self._recorded: set[tuple[str, str, str]] = set()  # suppressed (alert, status, receiver)
        self._suppressed: list[tuple[NoticeAlert, str, str, str | None]] = []
        self._wake = asyncio.Event()
        self._rebuilding = asyncio.Lock()
        self._generation = 0  # counts rebalances
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None

    # -- running ----------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        await ensure_topics(
            settings.kafka,
            [self.alerts_topic, self.groups_topic],
            settings.partitions,
            replication_factor=settings.replication_factor,
            auth=client_auth(settings),
        )
        servers = bootstrap_servers(settings.kafka)
        auth = client_auth(settings)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=servers, acks="all", linger_ms=5, **auth
        )
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=servers,
            **auth,
            group_id=f"{settings.app_id}-notifier",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=int(settings.broker_session_timeout_s * 1000),
            heartbeat_interval_ms=int(settings.broker_heartbeat_interval_s * 1000),
            max_poll_interval_ms=300_000,
        )
        self._consumer.subscribe([self.alerts_topic, self.groups_topic], listener=_Listener(self))
        await self._producer.start()
        await self._consumer.start()
        web = await serve(self, settings.web_bind, settings.notifier_port)
        await self.refresh()
        tasks = [
            asyncio.create_task(self._consume(), name="consume"),
            asyncio.create_task(self._flush_loop(), name="flush"),
            asyncio.create_task(self._refresh_loop(), name="refresh"),
            asyncio.create_task(self._commit_loop(), name="commit"),
        ]
        try:
            done, _ = await asyncio.wait(
                [*tasks, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task in tasks and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc] # checked just above
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._settle_inflight(REVOKE_WAIT_S)
            await self._commit()
            await self._consumer.stop()  # leaves the group, so the others take over at once
            await self._producer.stop()
            await web.cleanup()
            for channel in self.channels.values():
                await channel.close()
            await self.store.close()

    async def _consume(self) -> None:
        assert self._consumer is not None  # noqa: S101 - started in run()
        while True:
            generation = self._generation
            batches = await self._consumer.getmany(timeout_ms=500, max_records=1000)
            async with self._rebuilding:
                if generation != self._generation:
                    continue  # fetched before a rebalance: read again from the committed offsets
                for tp, records in batches.items():
                    if tp.topic == self.alerts_topic:
                        await self._route(tp, records)
                    else:
                        self._take(tp, records, utcnow())
            if batches:
                self._wake.set()

    async def _route(self, tp: TopicPartition, records: list[Any]) -> None:
        """Stage 1: one record per matched route to the groups topic, keyed by group."""
        assert self._producer is not None  # noqa: S101
        sent: list[Awaitable[Any]] = []
        for record in records:
            alert = _alert(record.value, f"{tp.topic}/{tp.partition}@{record.offset}")
            if alert is None:
                continue
            self.metrics.alerts.labels(alert.kind, alert.state).inc()
            item = notice_alert(alert)
            for route in self.routes.routes_for(item.labels):  # the alert as it came, re-keyed
                key = route.group_key(route.group_labels(item.labels))
                sent.append(
                    await self._producer.send(
                        self.groups_topic, key=key.encode(), value=record.value
                    )
                )
        await asyncio.gather(*sent)
        for record in records:
            self.tracker.seen(tp, record.offset)

    def _take(self, tp: TopicPartition, records: list[Any], now: datetime) -> None:
        """Stage 2: group records into the grouper; their offsets wait for the notices."""
        for record in records:
            key = record.key.decode("utf-8", errors="replace") if record.key else ""
            alert = _alert(record.value, f"{tp.topic}/{tp.partition}@{record.offset}")
            if alert is None or key not in self.grouper.add(notice_alert(alert), now, only=key):
                self.tracker.seen(tp, record.offset)  # its route is gone (a new configuration)
                continue
            self.tracker.hold(tp, record.offset, key)

    # -- notices ----------------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        while True:
            self._wake.clear()
            now = utcnow()
            # this round's state: a rebalance meanwhile replaces both, and this round's
            # settlements must not touch the new ones
            grouper, tracker = self.grouper, self.tracker
            upto = tracker.sequence
            for notice in grouper.due(now, self._mute):
                self._start(notice, upto, tracker)
            for key in tracker.tokens():
                if key not in self.inflight and not grouper.pending(str(key)):
                    tracker.settle(key, upto)  # nothing to tell: already told, or muted
            await self._record_suppressed(now)
            self.metrics.pending_groups.set(len(grouper.group_keys()))
            wake = grouper.next_wakeup()
            timeout = 1.0 if wake is None else min(1.0, max(0.02, (wake - now).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _mute(self, alert: NoticeAlert, receiver: str) -> bool:
        reason = mute_reason(alert, self.inhibitor, self.silences, utcnow())
        if reason is None:
            return False
        key = (alert.alert_id, alert.status, receiver)
        if len(self._recorded) > RECORDED_MAX:  # only spares rewriting the same rows
            self._recorded.clear()
        if key not in self._recorded:
            self._recorded.add(key)
            self.metrics.suppressed.labels(reason.reason).inc()
            silence = reason.by[0] if reason.reason == "silenced" else None
            self._suppressed.append((alert, receiver, reason.reason, silence))
        return True

    async def _record_suppressed(self, now: datetime) -> None:
        pending, self._suppressed = self._suppressed, []
        for alert, receiver, reason, silence in pending:
            try:
                await self._retrying(
                    partial(self.store.record_suppressed, [alert], receiver, reason, now, silence)
                )
            except RowRefusedError as exc:
                logger.error("suppressed alert %s not recorded: %s", alert.alert_id, exc)  # noqa: TRY400 - the reason is the message

    def _start(self, notice: Notice, upto: int, tracker: OffsetTracker[TopicPartition]) -> None:
        previous = self.inflight.get(notice.group_key)
        task = asyncio.create_task(self._deliver(notice, upto, tracker, previous))
        self.inflight[notice.group_key] = task

    async def _deliver(
        self,
        notice: Notice,
        upto: int,
        tracker: OffsetTracker[TopicPartition],
        previous: asyncio.Task[None] | None,
    ) -> None:
        """Deliver one notice after the group's previous one; its records are settled only
        when it ends as delivered or failed (a cancelled or broken delivery leaves them to be
        read again)."""
        try:
            if previous is not None:
                await asyncio.wait([previous])  # its outcome is its own; ours may be cancelled
            await self._send(notice)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("notice %s to %s not settled", notice.notice_id, notice.receiver)
        else:
            tracker.settle(notice.group_key, upto)
        finally:
            if self.inflight.get(notice.group_key) is asyncio.current_task():
                del self.inflight[notice.group_key]
            self._wake.set()

    async def _send(self, notice: Notice) -> None:
        channel = self.channels[notice.receiver]
        kind = channel.kind
        outcome = await self._retrying(partial(self.store.outcome, notice))
        if outcome == "delivered":  # before a restart: the log entry came with it
            logger.info("notice %s to %s: already delivered", notice.notice_id, notice.receiver)
            return
        detected = max((a.detected_at for a in notice.alerts), default=None)
        # what the receiver is told, and what the notices table keeps of it: one clock
        shown = in_zone(notice, self.zone)
        attempt = await self._retrying(partial(self.store.record_notice, shown, kind, detected))
        before = attempt  # tries of earlier rounds (a failed notice is tried again later)
        settings = self.settings
        while True:
            attempt += 1
            result = await _deliver_safely(channel, shown)
            at = utcnow()
            tried = attempt
            await self._retrying(partial(self.store.record_attempt, notice, tried, at, result))
            if result.ok:
                await self._retrying(partial(self.store.mark_delivered, notice, at))
                self.metrics.attempts.labels(notice.receiver, kind, "ok").inc()
                self.metrics.notices.labels(notice.receiver, kind, "delivered").inc()
                if detected is not None:
                    seconds = (at - detected).total_seconds()
                    self.metrics.latency.labels(notice.receiver, kind).observe(seconds)
                logger.info(
                    "notice %s delivered to %s (%s, %d alerts, try %d)",
                    notice.notice_id,
                    notice.receiver,
                    kind,
                    len(notice.alerts),
                    attempt,
                )
                return
            final = not result.retriable or attempt - before >= settings.notify_max_attempts
            self.metrics.attempts.labels(notice.receiver, kind, "error" if final else "retry").inc()
            if final:
                await self._retrying(partial(self.store.mark_failed, notice, result.detail))
                self.metrics.notices.labels(notice.receiver, kind, "failed").inc()
                self.grouper.failed(notice, at)
                logger.error(
                    "notice %s to %s failed after %d tries: %s",
                    notice.notice_id,
                    notice.receiver,
                    attempt,
                    result.detail,
                )
                return
            delay = min(
                settings.notify_retry_max_s,
                settings.notify_retry_base_s * 2 ** (attempt - before - 1),
            )
            delay *= 0.5 + random.random()  # noqa: S311 - jitter, not security
            logger.warning(
                "notice %s to %s: try %d failed (%s); again in %.1f s",
                notice.notice_id,
                notice.receiver,
                attempt,
                result.detail,
                delay,
            )
            await asyncio.sleep(delay)

    async def _settle_inflight(self, timeout_s: float) -> None:
        """Let the deliveries under way finish (for at most ``timeout_s``); cancel the rest,
        which leaves their records unsettled, to be read again."""
        tasks = list(self.inflight.values())
        if tasks:
            _done, late = await asyncio.wait(tasks, timeout=timeout_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    # -- state from PostgreSQL --------------------------------------------------------------
    async def refresh(self) -> None:
        """Silences and the open episodes that may inhibit others, as of now."""
        now = utcnow()
        self.silences = await self._retrying(lambda: self.store.silences(since=now))
        inhibitor = Inhibitor.from_config(self.config)
        for alert in await self._retrying(self.store.open_alerts):
            inhibitor.observe(alert)
        self.inhibitor = inhibitor

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(REFRESH_S)
            await self.refresh()
            if any(s.is_active(utcnow()) for s in self.silences) or self.grouper.group_keys():
                self._wake.set()

    async def rebuild(self, assigned: set[TopicPartition]) -> None:
        """After a rebalance: the grouper from the notification log, the still-open episodes of
        the groups this notifier now owns (so repeats go on), and the records not yet settled
        (the consumer reads them again from the committed offsets)."""
        async with self._rebuilding:
            self._generation += 1
            self.grouper = Grouper(self.routes)
            self.tracker = OffsetTracker()
            self.grouper.restore(await self._retrying(self.store.notified_entries))
            owned = {tp.partition for tp in assigned if tp.topic == self.groups_topic}
            count = self._groups_partitions()
            now = utcnow()
            for alert in await self._retrying(self.store.open_alerts):
                for route in self.routes.routes_for(alert.labels):
                    key = route.group_key(route.group_labels(alert.labels))
                    if partition_for(key, count) in owned:
                        self.grouper.add(alert, now, only=key)
            self.status.assigned = bool(assigned)
            logger.info(
                "notifier owns %d group partitions; %d groups open",
                len(owned),
                len(self.grouper.group_keys()),
            )

    def _groups_partitions(self) -> int:
        found = self._consumer.partitions_for_topic(self.groups_topic) if self._consumer else None
        return len(found) if found else self.settings.partitions

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run a database call, waiting for the database while it is unavailable."""
        delay = 0.5
        while True:
            try:
                value = await call()
            except DatabaseUnavailableError as exc:
                if self.status.database:
                    logger.warning("database unavailable (%s); retrying", exc)
                self.status.database = False
                self.metrics.database_available.set(0)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            if not self.status.database:
                logger.warning("database available again")
            self.status.database = True
            self.metrics.database_available.set(1)
            return value

    # -- offsets ----------------------------------------------------------------------------
    async def _commit_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self._commit()

    async def _commit(self) -> None:
        consumer = self._consumer
        if consumer is None:
            return
        assigned = consumer.assignment()
        tracker = self.tracker
        moved = {tp: offset for tp, offset in tracker.commits().items() if tp in assigned}
        if moved:
            try:
                await consumer.commit(moved)
            except Exception:  # noqa: BLE001 - a commit lost to a rebalance is retried later
                logger.warning("offset commit failed; it is tried again")
                return
            tracker.committed(moved)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc] # untyped base
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.notifier._settle_inflight(REVOKE_WAIT_S)
        await self.notifier._commit()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.notifier.rebuild(set(assigned))


def _alert(value: bytes | None, where: str) -> Alert | None:
    try:
        return Alert.model_validate_json(value or b"")
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)[:3]
        )
        logger.warning("%s: not an alert, skipped: %s", where, problems)
        return None


async def _deliver_safely(channel: AlertChannel, notice: Notice) -> DeliveryResult:
    """A channel never raises; should one do so anyway, it is a retriable failure."""
    try:
        return await channel.deliver(notice)
    except Exception as exc:
        logger.exception("channel %s raised", channel.kind)
        return DeliveryResult(ok=False, detail=f"{type(exc).__name__}: {exc}", retriable=True)


def run_notifier(
    settings: Settings, config: NotifyConfig, *, console: TextIO | None = None
) -> None:
    """Run one notifier until SIGTERM or SIGINT."""
    import signal

    from stationwatch.db.ready import require_schema
    from stationwatch.groups import leave_groups_on_stop

    require_schema(settings.dsn)  # one clear line, at once, when the database is not ready
    leave_groups_on_stop()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        notifier = Notifier(settings, config, console=console)
        logger.info(
            "notifier reading %s for %d receivers (%s), HTTP on %s:%d",
            notifier.alerts_topic,
            len(notifier.channels),
            ", ".join(sorted(notifier.channels)),
            settings.web_bind,
            settings.notifier_port,
        )
        await notifier.run(stop)

    asyncio.run(main())

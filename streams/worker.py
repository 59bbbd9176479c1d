"""`stationwatch worker`: create missing topics, then run one Faust worker until stopped."""

from __future__ import annotations

import asyncio
import logging

import faust
import mode.loop

from schemas.topics import ALERTS, DEADLETTER, INPUT_TOPICS, REGISTRY
from stationwatch.allocator import describe
from stationwatch.broker import ensure_topics
from stationwatch.collector import collect_young_less_often, time_collections
from stationwatch.db.ready import require_schema
from stationwatch.groups import leave_groups_on_stop
from stationwatch.heap import map_large_blocks
from stationwatch.kafka_auth import client_auth
from stationwatch.settings import Settings
from streams.app import create_app, ticks_topic_name

logger = logging.getLogger(__name__)


def run_worker(settings: Settings) -> None:
    logger.info(describe(settings.allocator))  # chosen as the command started
    map_large_blocks()  # before anything is allocated in bursts
    require_schema(settings.dsn)  # one clear line, at once, when the database is not ready
    leave_groups_on_stop()
    # uvloop (Faust's own choice of loop, ``mode.loop.use``): every loop of the worker, its
    # consumer thread's included, spends less per message than asyncio's own
    mode.loop.use("uvloop")
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    topics = loop.run_until_complete(
        ensure_topics(
            settings.kafka,
            [
                *(settings.topic(name) for name in (*INPUT_TOPICS, ALERTS, DEADLETTER)),
                ticks_topic_name(settings),
            ],
            settings.partitions,
            compacted=[settings.topic(REGISTRY)],
            replication_factor=settings.replication_factor,
            auth=client_auth(settings),
        )
    )
    # the tables' changelogs get the same number of copies as the topics
    settings = settings.model_copy(update={"replication_factor": topics.replication_factor})
    runtime = create_app(settings)
    collect_young_less_often()  # the whole process: see stationwatch.collector
    time_collections(runtime.metrics.gc_pauses)
    if runtime.feed is not None:  # the API server starts while the worker joins its group
        runtime.feed.begin(loop)
    worker = faust.Worker(
        runtime.app,
        loop=loop,
        loglevel=settings.log_level.lower(),
        override_logging=False,
    )
    logger.info(
        "worker %s consuming %s from %s, web on %s:%d",
        settings.app_id,
        ", ".join(settings.topic(n) for n in INPUT_TOPICS),
        settings.kafka,
        settings.web_bind,
        settings.web_port,
    )
    worker.execute_from_commandline()

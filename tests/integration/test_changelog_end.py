"""A worker killed between a batch of the live table's changelog and the last record that
follows it alone (streams.changelog) starts again, every time, with the stations it held.

The embedded broker reports a partition's end offset as the first record of its newest batch
plus one. Left behind by the kill, a batch of several records is the newest: the next start
reads all of it and stores the offset of its last record, beyond the end the broker reports,
and Faust's recovery then refused every later start ("the persisted offset ... is higher than
the last offset in that topic"). The kill is reproduced by what it leaves: the worker stopped,
a batch of three records sent to its changelog as its writer would have sent them."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stationwatch.broker import EmbeddedBroker, bootstrap_servers
from tests.factories import dumps, profile
from tests.integration.harness import Producer, WorkerProcess, wait_for, worker_env

pytestmark = pytest.mark.integration

STATIONS = [f"SY-{n:04d}" for n in range(1, 13)]


async def registered(worker: WorkerProcess) -> bool:
    for sid in STATIONS:
        if (await worker.get(f"/stations/{sid}")).status_code != 200:
            return False
    return True


async def last_record(bootstrap: str, tp: TopicPartition) -> tuple[int, bytes, bytes] | None:
    """The broker's end offset of ``tp`` and the key and value of its last record."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        if end == 0:
            return None
        consumer.seek(tp, end - 1)
        records = (await consumer.getmany(tp, timeout_ms=5000)).get(tp, [])
        assert records, f"{tp}: no record at offset {end - 1}"
        last = records[-1]
        assert last.key is not None
        assert last.value is not None
        return end, last.key, last.value
    finally:
        await consumer.stop()


async def test_a_changelog_ending_in_a_batch_of_several_records_is_recovered(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str
) -> None:
    env = worker_env(
        kafka_url=broker.url, database_url=database_url, token=unique, data_dir=tmp_path / "data"
    )
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    bootstrap = bootstrap_servers(broker.url)
    try:
        await worker.wait_healthy()
        async with Producer(broker.url, env["STATIONWATCH_TOPIC_PREFIX"]) as producer:
            for sid in STATIONS:
                await producer.send("station.registry", sid, dumps(profile(sid)))
        await wait_for(lambda: registered(worker), timeout_s=60, what="every station")
    finally:
        worker.stop()

    # What the kill leaves: a batch of several records last on a partition of the changelog
    # (the same state three times: a station's newest state, as the writer sends it again).
    changelog = f"{env['STATIONWATCH_APP_ID']}-station_state-changelog"
    found = None
    for partition in range(int(env["STATIONWATCH_PARTITIONS"])):
        tp = TopicPartition(changelog, partition)
        found = await last_record(bootstrap, tp)
        if found is not None:
            break
    assert found is not None, "the changelog is empty"
    end, key, value = found
    sender = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=200)
    await sender.start()
    try:
        sent = [await sender.send(changelog, value, key=key, partition=tp.partition) for _ in "abc"]
        offsets = [(await delivery).offset for delivery in sent]
    finally:
        await sender.stop()
    assert offsets == [end, end + 1, end + 2]
    after = await last_record(bootstrap, tp)
    assert after is not None
    assert after[0] == end + 1, "the broker now reports the end offset right: nothing to test"
    station_id = orjson.loads(key)  # a table's key as Faust encodes it: JSON

    # The first start reads the batch (from the offset it had, below the reported end); each
    # later one finds its table beyond the reported end and reads the real end again.
    for start, ahead in (("reads the batch", False), ("ahead", True), ("ahead again", True)):
        reported = await last_record(bootstrap, tp)
        assert reported is not None
        assert reported[0] == end + 1, f"{start}: the changelog's end moved; nothing to test"
        log_before = len(worker.log())
        worker.start()
        try:
            await worker.wait_healthy(timeout_s=60)  # raises with the log if the worker exits
            answer = await worker.get(f"/stations/{station_id}")
            assert answer.status_code == 200, (start, answer.text)
            assert answer.json()["name"] == profile(station_id)["name"], start
            assert await registered(worker), start
        finally:
            worker.stop()
        read_again = "recovering up to it" in worker.log()[log_before:]
        assert read_again == ahead, start

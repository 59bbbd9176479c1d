"""Records the worker's consumer skipped are read again from the real broker: the offsets of
the hole, in order, with their keys, values and times, and nothing beyond it."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from stationwatch.broker import EmbeddedBroker, bootstrap_servers, ensure_topics
from stationwatch.kafka_auth import start_offset_reader, start_record_reader
from stationwatch.settings import Settings
from streams.holes import read_again

pytestmark = pytest.mark.integration


async def test_a_hole_is_read_again_from_the_broker(broker: EmbeddedBroker, unique: str) -> None:
    topic = f"holes-{unique}.station.heartbeat"
    await ensure_topics(broker.url, [topic], 2)
    # twenty records on partition 1: offsets 0 to 19
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers(broker.url))
    await producer.start()
    try:
        for n in range(20):
            await producer.send_and_wait(
                topic, key=b"SY-0001", value=f'{{"n": {n}}}'.encode(), partition=1
            )
    finally:
        await producer.stop()
    reader = await start_record_reader(Settings(kafka=broker.url, app_id=f"holes-{unique}"))
    try:
        found = await read_again(reader, topic, 1, 5, 12)
        again = await read_again(reader, topic, 1, 18, 20)  # the same client, another hole
    finally:
        await reader.stop()
    assert [event.message.offset for event in found] == list(range(5, 12))
    assert [event.value for event in found] == [f'{{"n": {n}}}'.encode() for n in range(5, 12)]
    assert {event.key for event in found} == {b"SY-0001"}
    assert all(event.message.tp.partition == 1 for event in found)
    assert all(event.message.timestamp > 1.7e9 for event in found)  # seconds, as Faust gives
    assert [event.message.offset for event in again] == [18, 19]


async def test_the_end_offset_reader_knows_the_groups_committed_offsets(
    broker: EmbeddedBroker, unique: str
) -> None:
    """After a rebalance the worker expects each new partition's first record at the group's
    committed offset (streams.app.expect_committed), asked by a client that never joins."""
    app_id = f"committed-{unique}"
    topic = f"{app_id}.station.heartbeat"
    await ensure_topics(broker.url, [topic], 2)
    member = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(broker.url), group_id=app_id, enable_auto_commit=False
    )
    await member.start()
    try:
        member.assign([TopicPartition(topic, 1)])
        await member.commit({TopicPartition(topic, 1): 17})
    finally:
        await member.stop()
    reader = await start_offset_reader(Settings(kafka=broker.url, app_id=app_id))
    try:
        assert await reader.committed(TopicPartition(topic, 1)) == 17
        assert await reader.committed(TopicPartition(topic, 0)) is None
        assert reader.assignment() == set()
    finally:
        await reader.stop()

"""`stationwatch stations import/export` end to end, as a user runs them: real broker, real
PostgreSQL, a real worker writing the `stations` table, the commands as subprocesses."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas import topics
from stationwatch.broker import EmbeddedBroker, bootstrap_servers, ensure_topics
from stationwatch.settings import Settings
from stationwatch.simulator import Fleet
from tests.integration.conftest import migrated_database
from tests.integration.harness import Producer, WorkerProcess, running_worker, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "stations-template.csv"
TEMPLATE_IDS = [f"SY-900{i}" for i in range(1, 7)]


@dataclass
class Registry:
    """A database of its own and a worker writing its `stations` table."""

    database_url: str
    worker: WorkerProcess

    @property
    def env(self) -> dict[str, str]:
        return {**self.worker.env, "STATIONWATCH_DATABASE_URL": self.database_url}

    @property
    def topic(self) -> str:
        return self.env["STATIONWATCH_TOPIC_PREFIX"] + topics.REGISTRY


@pytest.fixture
def fresh_database() -> Iterator[str]:
    yield from migrated_database()


@pytest.fixture
async def registry(
    broker: EmbeddedBroker, fresh_database: str, tmp_path: Path
) -> AsyncIterator[Registry]:
    async with running_worker(broker.url, fresh_database, tmp_path) as worker:
        yield Registry(fresh_database, worker)


def stations(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run `stationwatch stations …` as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "stationwatch.cli", "stations", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
        check=False,
    )


async def read_topic(kafka_url: str, topic: str, timeout_s: float = 30) -> list[Any]:
    """Every record of ``topic`` from the beginning up to its high watermark (as fetched)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers(kafka_url), enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic)
        deadline = time.monotonic() + timeout_s
        while not parts and time.monotonic() < deadline:
            await consumer.force_metadata_update()
            parts = consumer.partitions_for_topic(topic)
        assert parts, f"no topic {topic}"
        assigned = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        records: list[Any] = []
        while time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=300)).values():
                records.extend(batch)
            marks = [consumer.highwater(tp) for tp in assigned]
            positions = [await consumer.position(tp) for tp in assigned]
            if all(m is not None and p >= m for m, p in zip(marks, positions, strict=True)):
                return records
        raise AssertionError(f"timed out reading {topic}")
    finally:
        await consumer.stop()


def table_profiles(database_url: str) -> dict[str, dict[str, Any]]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT station_id, profile FROM stationwatch.stations").fetchall()
    return {sid: profile for sid, profile in rows}


async def wait_table(database_url: str, want: set[str], timeout_s: float = 60) -> dict[str, Any]:
    async def holds() -> dict[str, Any] | None:
        found = table_profiles(database_url)
        return found if set(found) == want else None

    result: dict[str, Any] = await wait_for(
        holds, timeout_s=timeout_s, what=f"the stations table to hold {len(want)} stations"
    )
    return result


def without_import_fields(profile: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v for k, v in profile.items() if k not in ("updated_at", "changed_by", "changed_via")
    }


async def test_importing_the_template_publishes_exactly_its_rows(registry: Registry) -> None:
    done = stations(registry.env, "import", str(TEMPLATE), "--yes", "--by", "测试员")
    assert done.returncode == 0, done.stderr
    assert "新增 6，修改 0，未变 0，删除 0，错误 0" in done.stdout

    records = await read_topic(registry.env["STATIONWATCH_KAFKA"], registry.topic)
    assert sorted(r.key.decode() for r in records) == TEMPLATE_IDS
    published = {r.key.decode(): orjson.loads(r.value) for r in records}
    for profile in published.values():
        assert profile["changed_by"] == "测试员"
        assert profile["changed_via"] == "import stations-template.csv"
        age = datetime.now(UTC) - datetime.fromisoformat(profile["updated_at"])
        assert 0 <= age.total_seconds() < 120
    # what the template's rows say, checked by hand
    assert published["SY-9001"]["opening_hours"] == {
        "always_open": True,
        "weekly": {},
        "holidays_open": True,
    }
    assert published["SY-9001"]["category"] == "business_circle_24h"
    assert published["SY-9002"]["services"][-5:] == [
        "washing",
        "dining_area",
        "medicine",
        "wifi",
        "reading",
    ]
    workdays = [["08:30", "12:00"], ["13:30", "17:30"]]
    assert published["SY-9003"]["opening_hours"]["weekly"] == {
        **{d: workdays for d in ("mon", "tue", "wed", "thu", "fri")},
        "sat": [["09:00", "12:00"]],
    }
    assert published["SY-9003"]["responsible_person"] == "李娜"
    assert published["SY-9004"]["opening_hours"]["holidays_open"] is True
    assert published["SY-9004"]["heartbeat_interval_s"] is None
    assert published["SY-9004"]["opening_hours"]["weekly"]["sun"] == [["09:00", "17:00"]]
    assert published["SY-9005"]["opening_hours"]["weekly"]["wed"] == [["20:00", "02:00"]]
    assert published["SY-9005"]["lifecycle"] == "temporarily_closed"
    assert published["SY-9005"]["closed_until"] == "2027-01-05T08:00:00+08:00"
    assert published["SY-9005"]["closure_reason"] == "店面装修"
    assert published["SY-9006"]["lifecycle"] == "decommissioned"
    assert published["SY-9006"]["capacity"] is None

    # the worker wrote exactly these rows to the stations table
    table = await wait_table(registry.database_url, set(TEMPLATE_IDS))
    assert {sid: without_import_fields(p) for sid, p in table.items()} == {
        sid: without_import_fields(p) for sid, p in published.items()
    }

    # the same file again: nothing to publish, nothing sent
    again = stations(registry.env, "import", str(TEMPLATE), "--yes")
    assert again.returncode == 0, again.stderr
    assert "没有需要发布的变化" in again.stdout
    assert len(await read_topic(registry.env["STATIONWATCH_KAFKA"], registry.topic)) == 6


BAD_ROWS = """编号,名称,纬度,经度,开放时间,类别,座位,服务
SY-8001,好站一,40.1,116.6,08:00-20:00,标准,10,饮水
SY-8002,坏站一,40.1,116.6,8:00-25:00,标准,10,饮水
SY-8003,好站二,40.1,116.6,24小时,标准,10,饮水
SY-8004,坏站二,北纬40,116.6,08:00-20:00,标准,10,饮水
SY-8005,坏站三,40.1,116.6,08:00-20:00,大型,10,饮水
SY-8006,坏站四,40.1,116.6,08:00-20:00,标准,十个,饮水
SY-8007,好站三,40.1,116.6,周一至周五 8:00-18:00,标准,10,饮水
SY-8008,坏站五,40.1,116.6,08:00-20:00,标准,10,饮水、按摩
"""


async def test_five_bad_rows_exit_2_with_five_errors_and_publish_nothing(
    broker: EmbeddedBroker, database_url: str, tmp_path: Path, unique: str
) -> None:
    env = {
        "STATIONWATCH_KAFKA": broker.url,
        "STATIONWATCH_DATABASE_URL": database_url,
        "STATIONWATCH_TOPIC_PREFIX": f"t{unique}.",
        "STATIONWATCH_PARTITIONS": "2",
    }
    topic = f"t{unique}.{topics.REGISTRY}"
    await ensure_topics(broker.url, [topic], 2)
    path = tmp_path / "驿站.csv"
    path.write_text(BAD_ROWS, encoding="utf-8")

    done = stations(env, "import", str(path), "--yes")

    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("第")]
    assert errors == [
        "第 3 行，开放时间: '8:00-25:00' 不是有效的时间段（25:00 不是一天中的时刻）",
        "第 5 行，纬度: '北纬40' 不是数字",
        "第 6 行，类别: '大型' 不是有效的类别（可填: 标准、24小时智能、货车司机、商圈24小时）",
        "第 7 行，座位: '十个' 不是整数",
        "第 9 行，服务: '按摩' 不是有效的服务（可填: 饮水、热饭、充电、休息、避雨、取暖、纳凉、"
        "如厕、便民服务、法律援助、困难帮扶、心理疏导、洗漱、就餐区、常用药品、无线网络、阅读）",
    ]
    assert "驿站.csv: 5 个错误（5 行）；未发布任何内容" in done.stderr
    assert await read_topic(broker.url, topic) == []

    # the same file in English headers answers in English
    english = tmp_path / "stations.csv"
    english.write_text(
        BAD_ROWS.replace(
            "编号,名称,纬度,经度,开放时间,类别,座位,服务",
            "station_id,name,lat,lon,opening_hours,category,capacity,services",
        ),
        encoding="utf-8",
    )
    done = stations(env, "import", str(english), "--yes")
    assert done.returncode == 2
    assert "row 3, opening hours: '8:00-25:00' is not a valid time span" in done.stderr
    assert "stations.csv: 5 errors in 5 rows; nothing was published" in done.stderr
    assert await read_topic(broker.url, topic) == []

    # without the bad rows the file is published: the reading above would have seen it
    good = tmp_path / "good.csv"
    good.write_text(
        "\n".join(line for line in BAD_ROWS.splitlines() if "坏站" not in line), encoding="utf-8"
    )
    done = stations(env, "import", str(good), "--yes")
    assert done.returncode == 0, done.stderr
    keys = sorted(r.key.decode() for r in await read_topic(broker.url, topic))
    assert keys == ["SY-8001", "SY-8003", "SY-8007"]


async def test_dry_run_after_editing_an_export(registry: Registry, tmp_path: Path) -> None:
    assert stations(registry.env, "import", str(TEMPLATE), "--yes").returncode == 0
    await wait_table(registry.database_url, set(TEMPLATE_IDS))
    exported = tmp_path / "registry.csv"
    done = stations(registry.env, "export", "--out", str(exported))
    assert done.returncode == 0, done.stderr
    assert "exported 6 stations" in done.stderr

    with exported.open(encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.reader(stream))
    header = rows[0]
    col = {name: header.index(name) for name in header}
    by_id = {row[0]: row for row in rows[1:]}
    by_id["SY-9001"][col["名称"]] = "空港祥云工会驿站（新址）"
    by_id["SY-9003"][col["开放时间"]] = "周一至周五 8:00-18:00"
    by_id["SY-9004"][col["状态"]] = "暂停"
    by_id["SY-9004"][col["关闭至"]] = "2027-02-01"
    by_id["SY-9004"][col["关闭原因"]] = "道路施工"
    del by_id["SY-9006"]
    new = list(by_id["SY-9002"])
    new[col["编号"]], new[col["名称"]] = "SY-9010", "南彩镇新建工会驿站"
    by_id["SY-9010"] = new
    edited = tmp_path / "edited.csv"
    with edited.open("w", encoding="utf-8-sig", newline="") as stream:
        csv.writer(stream).writerows([header, *by_id.values()])
    before = len(await read_topic(registry.env["STATIONWATCH_KAFKA"], registry.topic))

    done = stations(registry.env, "import", str(edited), "--dry-run")

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "新增    SY-9010 南彩镇新建工会驿站",
        "修改  SY-9001 空港祥云工会驿站（新址）",
        "    名称: '空港祥云工会驿站' → '空港祥云工会驿站（新址）'",
        "修改  SY-9003 胜利街道党群服务中心工会驿站",
        "    开放时间: '周一至周五 08:30-12:00,13:30-17:30; 周六 09:00-12:00' → "
        "'周一至周五 08:00-18:00'",
        "修改  SY-9004 后沙峪镇快递工会驿站",
        "    状态: '正常' → '暂停'",
        "    关闭至: '' → '2027-02-01T00:00:00+08:00'",
        "    关闭原因: '' → '道路施工'",
        "删除  SY-9006 马坡镇超市工会驿站: "
        "登记中有、文件中没有：仅报告，加 --remove-missing 才删除",
        "状态变化:",
        "    SY-9004 后沙峪镇快递工会驿站: 正常 → 暂停",
        "新增 1，修改 3，未变 2，删除 1（仅报告），错误 0",
        "试运行：未发布任何内容",
    ]
    assert len(await read_topic(registry.env["STATIONWATCH_KAFKA"], registry.topic)) == before

    # confirmed, with the removal: the table follows
    done = stations(registry.env, "import", str(edited), "--yes", "--remove-missing")
    assert done.returncode == 0, done.stderr
    want = (set(TEMPLATE_IDS) - {"SY-9006"}) | {"SY-9010"}
    table = await wait_table(registry.database_url, want)
    assert table["SY-9004"]["lifecycle"] == "temporarily_closed"
    assert table["SY-9004"]["closed_until"] == "2027-02-01T00:00:00+08:00"
    assert table["SY-9004"]["changed_via"] == "import edited.csv"


async def test_the_simulated_fleet_round_trips_through_export_and_import(
    registry: Registry, tmp_path: Path
) -> None:
    """The simulator's 1,419 stations: export (CSV and XLSX, Chinese and English), then
    import --dry-run finds nothing to change."""
    settings = Settings(
        kafka=registry.env["STATIONWATCH_KAFKA"],
        topic_prefix=registry.env["STATIONWATCH_TOPIC_PREFIX"],
    )
    fleet = Fleet(settings, 1419, seed=1, interval=30)  # what `stationwatch simulate` sends
    async with Producer(registry.env["STATIONWATCH_KAFKA"], settings.topic_prefix) as producer:
        for topic, key, value in fleet.registry():
            await producer.send(topic, key, value)
        await producer.flush()
    want = {state.profile.station_id for state in fleet.states}
    assert len(want) == 1419
    table = await wait_table(registry.database_url, want, timeout_s=120)

    for name, extra in (
        ("fleet.csv", []),
        ("fleet.xlsx", []),
        ("fleet-en.xlsx", ["--language", "en"]),
    ):
        path = tmp_path / name
        done = stations(registry.env, "export", "--out", str(path), *extra)
        assert done.returncode == 0, done.stderr
        check = stations(registry.env, "import", str(path), "--dry-run")
        assert check.returncode == 0, check.stderr
        summary = "0 added, 0 changed, 1419 unchanged, 0 removed, 0 errors"
        if not extra:
            summary = "新增 0，修改 0，未变 1419，删除 0，错误 0"
        assert check.stdout.splitlines() == [
            summary,
            "试运行：未发布任何内容" if not extra else "dry run: nothing was published",
        ], name

    # opening hours are written in the human form and parse to the same structure
    from stationwatch.registry.opening_hours import parse_hours

    with (tmp_path / "fleet.csv").open(encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 1419
    forms = {row["开放时间"] for row in rows}
    assert "24小时" in forms
    assert any(form.startswith("周一至周五 ") for form in forms)
    for row in rows:
        hours = parse_hours(row["开放时间"])
        stored = table[row["编号"]]["opening_hours"]
        weekly = {d: [list(s) for s in spans] for d, spans in hours.weekly.items()}
        assert (hours.always_open, weekly) == (stored["always_open"], stored["weekly"])


def test_export_refuses_a_workbook_on_the_terminal() -> None:
    done = stations({}, "export", "--format", "xlsx")
    assert done.returncode == 2
    assert "needs --out" in done.stderr


async def test_import_without_yes_off_a_terminal_publishes_nothing(
    broker: EmbeddedBroker, database_url: str, unique: str
) -> None:
    env = {
        "STATIONWATCH_KAFKA": broker.url,
        "STATIONWATCH_DATABASE_URL": database_url,
        "STATIONWATCH_TOPIC_PREFIX": f"t{unique}.",
    }
    topic = f"t{unique}.{topics.REGISTRY}"
    await ensure_topics(broker.url, [topic], 2)
    done = stations(env, "import", str(TEMPLATE))
    assert done.returncode == 1
    assert "add --yes" in done.stderr
    assert await read_topic(broker.url, topic) == []

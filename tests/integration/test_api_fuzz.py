"""Schemathesis against the live-state API of real workers, with and without a bearer token:
a worker that requires one is fuzzed with the right token, with none and with a wrong one; a
worker that requires none is fuzzed without. Not one answer may be a 5xx.

Every request and answer is recorded (a HAR file) and counted, so a run that quietly sent
nothing cannot pass. A one-line JSON summary is printed (``pytest -s``).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from stationwatch.broker import EmbeddedBroker
from streams.api import OPEN_PATHS
from tests.factories import dumps, heartbeat, occupancy, profile
from tests.integration.harness import Producer, WorkerProcess, wait_for, worker_env

pytestmark = pytest.mark.integration

TOKEN = "fuzz-s3cret"  # noqa: S105 - the test worker's own token
WRONG = "Authorization: Bearer not-the-token"
CENTER = (40.0800, 116.5800)
STATIONS = 6
# (worker, Authorization header sent or None, checks): who may answer what
CASES: dict[str, tuple[str, str | None, str]] = {
    "token-required/right-token": (
        "secured",
        f"Authorization: Bearer {TOKEN}",
        "not_a_server_error,status_code_conformance,response_schema_conformance",
    ),
    "token-required/no-token": ("secured", None, "not_a_server_error,status_code_conformance"),
    "token-required/wrong-token": ("secured", WRONG, "not_a_server_error,status_code_conformance"),
    "no-token-required/no-token": (
        "open",
        None,
        "not_a_server_error,status_code_conformance,response_schema_conformance",
    ),
}
SUMMARY: dict[str, dict[str, Any]] = {}


async def start_worker(
    broker: EmbeddedBroker, database_url: str, tmp: Path, token: str | None
) -> WorkerProcess:
    """A worker with a few stations it knows, ready to answer."""
    unique = uuid.uuid4().hex[:8]
    env = worker_env(
        kafka_url=broker.url, database_url=database_url, token=unique, data_dir=tmp / "data"
    )
    if token is not None:
        env["STATIONWATCH_API_TOKEN"] = token
    worker = WorkerProcess(env, tmp / "worker.log").start()
    worker.headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        await worker.wait_healthy()
        now = datetime.now(UTC)
        async with Producer(broker.url, env["STATIONWATCH_TOPIC_PREFIX"]) as producer:
            for i in range(STATIONS):
                sid = f"AF-{unique.upper()[:6]}{i:02d}"
                angle, distance = i * 2.4, 300.0 * (i + 1)
                lat = CENTER[0] + distance / 111_195 * math.cos(angle)
                lon = CENTER[1] + distance / 85_000 * math.sin(angle)
                location = {"lat": round(lat, 6), "lon": round(lon, 6)}
                await producer.send("station.registry", sid, dumps(profile(sid, location=location)))
                await producer.send("station.heartbeat", sid, dumps(heartbeat(sid, now, 1)))
                await producer.send("station.occupancy", sid, dumps(occupancy(sid, now, i)))
            await producer.flush()

        async def listed() -> bool:
            body = (await worker.get("/stations", limit="100")).json()
            return bool(body.get("total") == STATIONS and body.get("complete"))

        await wait_for(listed, timeout_s=30, what="the worker to list its stations")
    except BaseException:
        worker.stop()
        raise
    return worker


@pytest.fixture(scope="module")
async def workers(
    broker: EmbeddedBroker, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, WorkerProcess]]:
    tmp = tmp_path_factory.mktemp("api-fuzz")
    started: dict[str, WorkerProcess] = {}
    try:
        for name, token in (("secured", TOKEN), ("open", None)):
            (tmp / name).mkdir()
            started[name] = await start_worker(broker, database_url, tmp / name, token)
        yield started
    finally:
        for worker in started.values():
            worker.stop()
        if SUMMARY:
            print(json.dumps({"test": "fuzz_api", "runs": SUMMARY}, sort_keys=True))  # noqa: T201 - the report, shown with `pytest -s`


def fetch_schema(worker: WorkerProcess, path: Path) -> Path:
    """The worker's OpenAPI document (it takes the token when the worker requires one)."""
    response = httpx.get(f"{worker.url}/openapi.json", headers=worker.headers, timeout=10)
    response.raise_for_status()
    path.write_text(response.text, encoding="utf-8")
    return path


@dataclass(frozen=True, slots=True)
class Exchange:
    method: str
    path: str
    authorized: bool  # an Authorization header was sent (its value is filtered in the file)
    status: int


def exchanges(har: Path) -> list[Exchange]:
    """Every request schemathesis sent, with the answer's status."""
    entries = json.loads(har.read_text(encoding="utf-8"))["log"]["entries"]
    return [
        Exchange(
            method=entry["request"]["method"],
            path=urlsplit(entry["request"]["url"]).path,
            authorized=any(
                h["name"].lower() == "authorization" for h in entry["request"]["headers"]
            ),
            status=int(entry["response"]["status"]),
        )
        for entry in entries
    ]


@pytest.mark.parametrize("case", CASES)
def test_schemathesis_gets_no_server_error_with_or_without_a_token(
    workers: dict[str, WorkerProcess], case: str, tmp_path: Path
) -> None:
    which, header, checks = CASES[case]
    worker = workers[which]
    schema = fetch_schema(worker, tmp_path / "openapi.json")
    har = tmp_path / "requests.har"
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", str(schema), "--url", worker.url,
        "--checks", checks, "--max-examples", "30", "--phases", "examples,coverage,fuzzing",
        "--exclude-path", "/metrics", "--seed", "1", "--request-timeout", "10",
        "--report", "har", "--report-har-path", str(har),
    ]  # fmt: skip
    if header is not None:
        command += ["--header", header]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    sent = exchanges(har)
    seen = Counter(x.status for x in sent)
    server_errors = [x for x in sent if x.status >= 500]
    SUMMARY[case] = {
        "requests": len(sent),
        "server_errors": len(server_errors),
        "statuses": {str(k): v for k, v in sorted(seen.items())},
    }
    assert not server_errors, server_errors[:10]
    assert len(sent) >= 100, seen  # it did fuzz
    if which == "secured" and header != f"Authorization: Bearer {TOKEN}":
        # no token or a wrong one: nothing but the open paths answers
        protected = [x for x in sent if x.path not in OPEN_PATHS]
        assert protected, seen
        assert {x.status for x in protected} == {401}, Counter(x.status for x in protected)
        return
    if which == "open":
        assert 401 not in seen, seen
    else:  # refused only where schemathesis left the token out on purpose
        assert not [x for x in sent if x.authorized and x.status == 401], seen
    assert seen[200], seen  # real answers, and the bad queries refused as such
    assert seen[400], seen

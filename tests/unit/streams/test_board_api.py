"""The live board over HTTP, against an API server app in-process: the page and its files,
``/board.json``, the bearer token, and how old the data is said to be."""

from __future__ import annotations

import asyncio
import time
import tomllib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from schemas.api import Board
from streams.api import BOARD_REUSE_S, Replica, build_app
from streams.board import ASSETS
from tests.board_replica import filled_replica, fleet_states, with_liveness

STATIONS = 60
TOKEN = "s3cret"  # noqa: S105 - a test's token


async def client_for(replica: Replica) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = TestClient(TestServer(build_app(replica)))
    await client.start_server()
    return client


@pytest.fixture
async def served() -> AsyncIterator[tuple[TestClient[Any, Any], Replica]]:
    replica = filled_replica(fleet_states(STATIONS))
    client = await client_for(replica)
    try:
        yield client, replica
    finally:
        await client.close()
        await replica.close()


@pytest.mark.parametrize(
    ("path", "content_type", "contains"),
    [
        pytest.param("/", "text/html", "board/board.js", id="page"),
        pytest.param("/board/board.js", "text/javascript", "board.json", id="script"),
        pytest.param("/board/board.css", "text/css", ".dot.offline", id="style"),
    ],
)
async def test_the_page_and_its_files_are_served(
    served: tuple[TestClient[Any, Any], Replica], path: str, content_type: str, contains: str
) -> None:
    client, _ = served
    response = await client.get(path)
    assert response.status == 200
    assert response.content_type == content_type
    assert response.charset == "utf-8"
    assert contains in await response.text()


async def test_the_page_allows_only_its_own_script_and_style(
    served: tuple[TestClient[Any, Any], Replica],
) -> None:
    client, _ = served
    policy = (await client.get("/")).headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "default-src 'none'" in policy
    assert "unsafe-inline" not in policy


async def test_board_json_has_every_station_and_the_counts(
    served: tuple[TestClient[Any, Any], Replica],
) -> None:
    client, replica = served
    response = await client.get("/board.json", headers={"Accept-Encoding": "gzip"})
    assert response.status == 200
    assert response.headers["Content-Encoding"] == "gzip"
    board = await response.json()
    Board.model_validate(board)
    expected: dict[str, int] = {}
    for entry in replica.index:
        expected[entry.liveness] = expected.get(entry.liveness, 0) + 1
    assert {k: v for k, v in board["by_liveness"].items() if v} == expected
    assert board["total"] == STATIONS
    assert len(board["stations"]) == STATIONS
    assert board["stations"][0]["name"] == "空港祥云工会驿站"
    assert board["complete"] is True
    assert 0 <= board["data_age_s"] < 5


async def test_board_json_says_how_old_the_workers_last_report_is(
    served: tuple[TestClient[Any, Any], Replica],
) -> None:
    client, replica = served
    replica.status_at = time.monotonic() - 42
    board = await (await client.get("/board.json")).json()
    assert board["data_age_s"] >= 42
    assert board["data_age_s"] > board["data_old_after_s"]


async def test_board_json_takes_no_parameters(
    served: tuple[TestClient[Any, Any], Replica],
) -> None:
    client, _ = served
    response = await client.get("/board.json", params={"liveness": "offline"})
    assert response.status == 400
    assert await response.json() == {
        "error": "liveness: unknown parameter",
        "parameter": "liveness",
    }


async def test_with_a_token_the_page_is_open_and_the_data_is_not() -> None:
    replica = filled_replica(fleet_states(5), api_token=TOKEN)
    client = await client_for(replica)
    try:
        assert (await client.get("/")).status == 200
        assert (await client.get("/board/board.js")).status == 200
        assert (await client.get("/board.json")).status == 401
        allowed = await client.get("/board.json", headers={"Authorization": f"Bearer {TOKEN}"})
        assert allowed.status == 200
        assert (await allowed.json())["total"] == 5
    finally:
        await client.close()
        await replica.close()


def test_every_file_of_the_page_is_served_and_installed() -> None:
    """A file added to streams/board/ must be served and be package data in the wheel (an
    editable install would hide its absence)."""
    root = Path(__file__).resolve().parents[3]
    folder = root / "streams"
    files = sorted(p.relative_to(folder) for p in (folder / "board").iterdir() if p.is_file())
    assert sorted(Path("board", name) for name, _ in ASSETS.values()) == files
    config = tomllib.loads((root / "pyproject.toml").read_text("utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["streams"]
    for file in files:
        assert any(file.match(pattern) for pattern in patterns), file


async def test_one_merged_board_serves_every_request_for_a_second(
    served: tuple[TestClient[Any, Any], Replica],
) -> None:
    """However many pages poll, the server merges at most once per BOARD_REUSE_S; a change
    shows in the next merge."""
    client, replica = served
    before = await (await client.get("/board.json")).json()
    entry = next(e for e in replica.index if e.liveness == "online")
    replica.index.put(entry.station_id, 0, with_liveness(entry.state, "offline", datetime.now(UTC)))
    again = await (await client.get("/board.json")).json()
    assert again == before  # the same answer, within the second
    deadline = time.monotonic() + BOARD_REUSE_S + 2
    while True:
        board = await (await client.get("/board.json")).json()
        if board["by_liveness"]["offline"] == before["by_liveness"]["offline"] + 1:
            break
        assert time.monotonic() < deadline, "the change never showed"
        await asyncio.sleep(0.1)
    assert entry.station_id in board["offline"]

"""streams.eager: a coroutine run at once, up to where it first waits; the rest of it, when it
does wait, behaves as it would in a task."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stationwatch.settings import Settings
from streams.app import faust_app
from streams.eager import Finished, step


async def test_a_coroutine_that_never_waits_runs_to_its_end_in_place() -> None:
    seen: list[str] = []

    async def put(item: str) -> int:
        seen.append(item)
        return len(seen)

    started = step(put("a"))
    assert isinstance(started, Finished)
    assert started.value == 1
    assert seen == ["a"]


async def test_a_coroutine_that_waits_is_resumed_where_it_stopped() -> None:
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    seen: list[str] = []

    async def put() -> str:
        seen.append("before")
        value = await gate
        await asyncio.sleep(0)  # a bare yield as well
        seen.append(value)
        return value.upper()

    rest = step(put())
    assert not isinstance(rest, Finished)
    assert seen == ["before"]  # ran up to the wait, at once
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    assert not task.done()
    gate.set_result("after")
    assert await task == "AFTER"
    assert seen == ["before", "after"]


async def test_the_error_of_what_it_waits_for_is_raised_inside_it() -> None:
    gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def put() -> str:
        try:
            await gate
        except KeyError as exc:
            return f"caught {exc}"
        return "not caught"

    rest = step(put())
    assert not isinstance(rest, Finished)
    gate.set_exception(KeyError("k"))
    assert await rest == "caught 'k'"


async def test_cancelling_the_rest_cancels_the_coroutine_where_it_waits() -> None:
    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cleaned: list[str] = []

    async def put() -> None:
        try:
            await gate
        finally:
            cleaned.append("cleaned")

    rest = step(put())
    assert not isinstance(rest, Finished)
    task = asyncio.ensure_future(rest)
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["cleaned"]


async def test_the_consumer_hands_over_at_once_or_races_the_rest_as_faust_does() -> None:
    """The drain's call: ``wait_first(callback(message), suspend_flow.wait())``."""
    app: Any = faust_app(Settings())
    consumer = app.consumer
    suspended = asyncio.Event()

    async def callback(value: str) -> str:
        return value

    done = await consumer.wait_first(callback("put"), suspended.wait())
    assert (done.results, done.stopped) == (["put"], False)

    full: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cancelled: list[bool] = []

    async def blocked() -> str:
        try:
            await full  # a full stream buffer
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return "put late"

    async def suspend_soon() -> None:
        await asyncio.sleep(0.01)
        suspended.set()

    suspending = asyncio.ensure_future(suspend_soon())
    try:
        done = await consumer.wait_first(blocked(), suspended.wait())
        await suspending
        assert done.results == [True]  # the suspension won; the message was not handed over
        await asyncio.sleep(0.01)  # the loser's cancellation, delivered at its next step
        assert cancelled == [True]
    finally:
        consumer._thread.thread_loop.close()  # the consumer thread's loop, never run

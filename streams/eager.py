"""Running a coroutine at once, up to the point where it first has to wait.

Faust's consumer hands every fetched message to the streams through
``wait_first(callback(message), suspend_flow.wait())``: four tasks and an ``asyncio.wait``
per message, about a tenth of a saturated worker's time, although the callback (putting
the event in its stream's buffer) almost never waits. :func:`step` runs such a coroutine in
place; only one that does wait becomes an awaitable for the race, which resumes it where it
stopped. (Python 3.12's eager tasks do the same; the worker runs on 3.11.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


class Finished:
    """A coroutine that ran to its end without waiting."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def step(coro: Coroutine[Any, Any, Any]) -> Finished | Coroutine[Any, Any, Any]:
    """Run ``coro`` until it returns or first waits: its result as :class:`Finished`, else
    a coroutine that waits for what it waits for and runs the rest of it (cancelled: the
    cancellation reaches ``coro`` where it waits, as in a task)."""
    try:
        waiting = coro.send(None)
    except StopIteration as stop:
        return Finished(stop.value)
    return _rest(coro, waiting)


async def _rest(coro: Coroutine[Any, Any, Any], waiting: Any) -> Any:
    while True:
        error: BaseException | None = None
        try:
            if waiting is None:  # a bare yield (asyncio.sleep(0)): one turn of the loop
                await asyncio.sleep(0)
            else:  # a future: until it is done (its outcome is read by coro itself)
                await asyncio.wait((waiting,))
        except BaseException as exc:  # noqa: BLE001 - handed to coro, which decides
            error = exc
        try:
            waiting = coro.send(None) if error is None else coro.throw(error)
        except StopIteration as stop:
            return stop.value

"""The console receiver: readable lines on a stream, never an exception."""

from __future__ import annotations

import io

import pytest

from consumers.channels.console import ConsoleChannel
from tests.unit.consumers.channels.golden import check_golden
from tests.unit.consumers.channels.notices import NOTICE


async def test_writes_the_notice_to_its_stream() -> None:
    stream = io.StringIO()
    result = await ConsoleChannel(stream).deliver(NOTICE)
    assert result.ok
    check_golden("console.txt", stream.getvalue())


async def test_standard_output_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert (await ConsoleChannel(language="en").deliver(NOTICE)).ok
    assert "空港街道: 2 stations offline, 1 resolved" in capsys.readouterr().out


async def test_a_closed_stream_is_a_final_failure() -> None:
    stream = io.StringIO()
    stream.close()
    result = await ConsoleChannel(stream).deliver(NOTICE)
    assert (result.ok, result.retriable) == (False, False)

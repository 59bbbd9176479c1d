"""stationwatch.errors: a database driver's error as one line of a message."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from stationwatch.errors import driver_message


class DriverError(Exception):
    """An error as psycopg raises one: ``diag`` holds the primary message apart."""

    def __init__(self, text: str, primary: str | None) -> None:
        super().__init__(text)
        self.diag = SimpleNamespace(message_primary=primary)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        pytest.param(
            DriverError("connection failed\nHINT: is it running?", 'server "db" refused'),
            'server "db" refused',
            id="primary-message",
        ),
        pytest.param(
            DriverError("\n  connection failed: timeout  \nHINT: x", None),
            "connection failed: timeout",
            id="first-line-not-blank",
        ),
        pytest.param(OSError("[Errno 111] Connect call failed"), "[Errno 111] Connect call failed"),
        pytest.param(TimeoutError(), "TimeoutError", id="no-text"),
    ],
)
def test_a_driver_error_is_one_line(exc: BaseException, expected: str) -> None:
    assert driver_message(exc) == expected

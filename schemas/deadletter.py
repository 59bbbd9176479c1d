"""`station.deadletter`: every input that could not be used, with the reason."""

from __future__ import annotations

from pydantic import AwareDatetime

from schemas.common import WireModel

RAW_LIMIT = 64 * 1024


class DeadLetter(WireModel):
    topic: str
    partition: int
    offset: int
    key: str | None
    error: str
    raw: str
    at: AwareDatetime

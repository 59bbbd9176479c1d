"""Pieces shared by every message model.

Whatever validates here can be stored: PostgreSQL refuses a NUL character in `text` and `jsonb`
(and Python cannot encode a lone UTF-16 surrogate to UTF-8), so every free-text field is
:data:`Text` or a bounded form of it; every integer is bounded by its column (`int` or
`bigint`); every time lies in :data:`TIME_FLOOR` … :data:`TIME_CEILING`, where converting it
to UTC cannot overflow and liveness arithmetic on it stays in range.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

STATION_ID_PATTERN = r"^[A-Z]{2,4}-[0-9A-Z]{1,12}$"

StationId = Annotated[str, StringConstraints(pattern=STATION_ID_PATTERN)]

INT_MAX = 2**31 - 1  # PostgreSQL `int`
BIGINT_MAX = 2**63 - 1  # PostgreSQL `bigint`

_SURROGATE = re.compile("[\ud800-\udfff]")


def _storable(text: str) -> str:
    if "\x00" in text:
        raise PydanticCustomError(
            "text_nul", "must not contain NUL (\\u0000): PostgreSQL cannot store it"
        )
    if _SURROGATE.search(text):  # pydantic refuses them today; this keeps it so
        raise PydanticCustomError(
            "text_surrogate", "must not contain a lone UTF-16 surrogate (\\ud800-\\udfff)"
        )
    return text


@dataclass(frozen=True, slots=True)
class Storable:
    """Refuse text PostgreSQL cannot store; the JSON Schema says so with a pattern.

    Goes after any ``StringConstraints``, so length errors keep their own messages.
    """

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(_storable, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = "^[^\\u0000]*$"
        return json_schema


STORABLE = Storable()

Text = Annotated[str, STORABLE]
ShortText = Annotated[str, StringConstraints(max_length=64), STORABLE]

TIME_FLOOR = datetime(2000, 1, 1, tzinfo=UTC)
TIME_CEILING = datetime(2100, 1, 1, tzinfo=UTC)


_NO_OFFSET = timedelta(0)


def _in_range(moment: datetime) -> datetime:
    # A time at UTC ("Z", "+00:00") is given Python's own UTC (the same instant, written the
    # same way): see WireTime.
    if moment.tzinfo is not UTC and moment.utcoffset() == _NO_OFFSET:
        moment = moment.replace(tzinfo=UTC)
    # Comparing aware datetimes subtracts offsets without building a UTC datetime: no overflow.
    if not TIME_FLOOR <= moment < TIME_CEILING:
        raise PydanticCustomError(
            "time_range",
            "must be from 2000-01-01T00:00:00Z up to (not including) 2100-01-01T00:00:00Z",
        )
    return moment


WireTime = Annotated[
    AwareDatetime,
    AfterValidator(_in_range),
    Field(
        description="ISO-8601 with an offset or `Z`, from 2000-01-01T00:00:00Z up to (not "
        "including) 2100-01-01T00:00:00Z"
    ),
]
"""A time on the wire: aware, and inside the range every part of the system can handle.

A time at UTC is given ``datetime.UTC`` as its time zone (pydantic gives it a time zone object
of its own; a time with another offset keeps the one pydantic gives it). Python compares and
subtracts two times of the same time zone object without asking it for their offsets, and
converts a time to the zone it already has without work: every heartbeat's time is compared
with and subtracted from the state's times (decoded with ``datetime.UTC``) and the worker's
clock, and converted to UTC by the database driver. With pydantic's object each of those asks
it for the offset twice (about 0.3 µs instead of 0.03 to 0.07); measured on a saturated worker
at 150,000 stations, that was 3.8% of its busy time.

Python raises ``OverflowError`` converting ``0001-01-01T00:00:00+08:00`` or
``9999-12-31T23:59:59-08:00`` to UTC (the database driver does that for every `timestamptz`),
and liveness adds intervals to heartbeat times. How far from the time of receipt a message's
own time may be is judged by ``streams.decode`` (future skew, maximum age).
"""


class WireModel(BaseModel):
    """Base of every message: immutable, strict types, unknown fields ignored (contract)."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        strict=True,
        allow_inf_nan=False,
        validate_default=True,
    )

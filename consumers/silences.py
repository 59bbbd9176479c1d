"""Silences and the label matchers they (and routes and inhibition rules) are written in.

A matcher is Alertmanager's: ``label=value``, ``label!=value``, ``label=~regex``,
``label!~regex``. A value may be double-quoted (``street="空港 街道"``, with ``\\"`` and
``\\\\`` escapes); a regex must match the whole value. A label the alert lacks counts as the
empty string, so ``street=""`` matches an alert without a street.

A silence mutes the alerts all its matchers match while ``starts_at <= now < ends_at``. Pure:
storing, listing and expiring them is the CLI's and the database's business.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from stationwatch.errors import StationwatchError

MatchOp = Literal["=", "!=", "=~", "!~"]
LABEL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MATCHER = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*", re.DOTALL)
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"', re.DOTALL)
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)

SilenceState = Literal["pending", "active", "expired"]


class MatcherError(StationwatchError, ValueError):
    """A matcher string that cannot be read (a ValueError, so pydantic reports it in place)."""


def compile_regex(text: str) -> re.Pattern[str]:
    """Compile a label regex, or say in plain words why it is not one."""
    try:
        return re.compile(text)
    except re.error as exc:
        raise MatcherError(f"not a valid regular expression {text!r}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label condition. Build it from text with :func:`parse_matcher`."""

    name: str
    op: MatchOp
    value: str
    pattern: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not LABEL_NAME.fullmatch(self.name):
            raise MatcherError(f"not a label name: {self.name!r} (letters, digits, _)")
        if self.op in ("=~", "!~") and self.pattern is None:
            object.__setattr__(self, "pattern", compile_regex(self.value))

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        assert self.pattern is not None  # noqa: S101 # set in __post_init__
        found = self.pattern.fullmatch(actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            _coerce, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "examples": ['street="空港街道"', "kind=~offline|stale"]}


def _coerce(value: object) -> Matcher:
    if isinstance(value, Matcher):
        return value
    if isinstance(value, str):
        return parse_matcher(value)
    raise MatcherError(f"a matcher is a string like 'street=空港街道', not {value!r}")


def parse_matcher(text: str) -> Matcher:
    """Read ``label=value``, ``label!=value``, ``label=~re`` or ``label!~re``."""
    found = _MATCHER.fullmatch(text)
    if found is None:
        raise MatcherError(
            f"not a matcher: {text!r}; write label=value, label!=value, label=~regex "
            "or label!~regex"
        )
    name, op, raw = found.groups()
    if raw.startswith('"'):
        quoted = _QUOTED.fullmatch(raw)
        if quoted is None:
            raise MatcherError(f"badly quoted value in matcher {text!r}")
        raw = _UNESCAPE.sub(r"\1", quoted.group(1))
    try:
        return Matcher(name, op, raw)  # type: ignore[arg-type] # op is one of the four
    except MatcherError as exc:
        raise MatcherError(f"in matcher {text!r}: {exc}") from None


def parse_matchers(texts: Iterable[str]) -> tuple[Matcher, ...]:
    return tuple(parse_matcher(text) for text in texts)


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    return all(matcher.matches(labels) for matcher in matchers)


class Silence(BaseModel):
    """Mutes every alert its matchers all match, from ``starts_at`` until ``ends_at``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    matchers: tuple[Matcher, ...] = Field(min_length=1)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    created_by: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    comment: str = ""

    @model_validator(mode="after")
    def _sound(self) -> Silence:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if matches_all(self.matchers, {}):
            # Alertmanager's rule: otherwise the silence mutes every alert there is.
            raise ValueError("at least one matcher must not match an empty label (e.g. street=…)")
        return self

    def state(self, now: datetime) -> SilenceState:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def is_active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, labels: Mapping[str, str]) -> bool:
        return matches_all(self.matchers, labels)


def silenced_by(
    labels: Mapping[str, str], silences: Sequence[Silence], now: datetime
) -> list[Silence]:
    """The silences active at ``now`` that mute an alert with these labels (empty: not muted)."""
    return [s for s in silences if s.is_active(now) and s.matches(labels)]

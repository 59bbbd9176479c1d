"""Opening hours as people write them: every accepted form, and precise messages for the rest."""

from __future__ import annotations

import pytest

from schemas.registry import WEEKDAYS, OpeningHours
from stationwatch.fleet import build_fleet
from stationwatch.registry.bilingual import Language
from stationwatch.registry.opening_hours import HoursError, format_hours, parse_hours

WORKDAYS = ("mon", "tue", "wed", "thu", "fri")
LANGUAGES: tuple[Language, ...] = ("zh", "en")


def every(*days: str, spans: list[tuple[str, str]]) -> dict[str, list[tuple[str, str]]]:
    return {day: spans for day in days}


@pytest.mark.parametrize(
    ("text", "always", "weekly", "holidays"),
    [
        ("08:00-20:00", False, every(*WEEKDAYS, spans=[("08:00", "20:00")]), None),
        ("8:00-20:00", False, every(*WEEKDAYS, spans=[("08:00", "20:00")]), None),
        ("8:00 - 20:00", False, every(*WEEKDAYS, spans=[("08:00", "20:00")]), None),
        ("8：00－20：00", False, every(*WEEKDAYS, spans=[("08:00", "20:00")]), None),
        ("8:00~20:00", False, every(*WEEKDAYS, spans=[("08:00", "20:00")]), None),
        ("8:00至20:00", False, every(*WEEKDAYS, spans=[("08:00", "20:00")]), None),
        ("24小时", True, {}, None),
        ("全天", True, {}, None),
        ("24 hours", True, {}, None),
        ("24/7", True, {}, None),
        ("每天 24小时", True, {}, None),
        ("周一至周五 8:00-18:00", False, every(*WORKDAYS, spans=[("08:00", "18:00")]), None),
        ("周一－周五 8:00-18:00", False, every(*WORKDAYS, spans=[("08:00", "18:00")]), None),
        ("周一到周五 8:00-18:00", False, every(*WORKDAYS, spans=[("08:00", "18:00")]), None),
        ("周一至五 8:00-18:00", False, every(*WORKDAYS, spans=[("08:00", "18:00")]), None),
        ("星期一至星期五 8:00-18:00", False, every(*WORKDAYS, spans=[("08:00", "18:00")]), None),
        ("工作日 8:00-18:00", False, every(*WORKDAYS, spans=[("08:00", "18:00")]), None),
        ("Mon-Fri 8:00-18:00", False, every(*WORKDAYS, spans=[("08:00", "18:00")]), None),
        ("Monday to Friday 8:00-18:00", False, every(*WORKDAYS, spans=[("08:00", "18:00")]), None),
        ("周六日 9:00-17:00", False, every("sat", "sun", spans=[("09:00", "17:00")]), None),
        ("周末 9:00-17:00", False, every("sat", "sun", spans=[("09:00", "17:00")]), None),
        ("周六、周日 9:00-17:00", False, every("sat", "sun", spans=[("09:00", "17:00")]), None),
        ("Sat, Sun 9:00-17:00", False, every("sat", "sun", spans=[("09:00", "17:00")]), None),
        (
            "周一三五 9:00-11:00",
            False,
            every("mon", "wed", "fri", spans=[("09:00", "11:00")]),
            None,
        ),
        (
            "周五至周一 10:00-12:00",
            False,
            every("mon", "fri", "sat", "sun", spans=[("10:00", "12:00")]),
            None,
        ),
        (
            "周一至周五 8:00-12:00,14:00-18:00; 周六 9:00-12:00",
            False,
            every(*WORKDAYS, spans=[("08:00", "12:00"), ("14:00", "18:00")])
            | {"sat": [("09:00", "12:00")]},
            None,
        ),
        (
            "周一至周五 8:00-12:00，14:00-18:00；周六 9:00-12:00",
            False,
            every(*WORKDAYS, spans=[("08:00", "12:00"), ("14:00", "18:00")])
            | {"sat": [("09:00", "12:00")]},
            None,
        ),
        (
            "周一至周五 8:00-12:00 14:00-18:00\n周六 9:00-12:00",
            False,
            every(*WORKDAYS, spans=[("08:00", "12:00"), ("14:00", "18:00")])
            | {"sat": [("09:00", "12:00")]},
            None,
        ),
        ("20:00-02:00", False, every(*WEEKDAYS, spans=[("20:00", "02:00")]), None),
        ("周五 18:00-24:00", False, {"fri": [("18:00", "24:00")]}, None),
        ("0:00-24:00", False, every(*WEEKDAYS, spans=[("00:00", "24:00")]), None),
        ("周一至周六 24小时", False, every(*WEEKDAYS[:6], spans=[("00:00", "24:00")]), None),
        ("24小时 节假日开放", True, {}, True),
        ("节假日开放 8:00-20:00", False, every(*WEEKDAYS, spans=[("08:00", "20:00")]), True),
        (
            "周一至周五 8:00-18:00; 节假日休息",
            False,
            every(*WORKDAYS, spans=[("08:00", "18:00")]),
            False,
        ),
        (
            "Mon-Fri 8:00-18:00; closed on holidays",
            False,
            every(*WORKDAYS, spans=[("08:00", "18:00")]),
            False,
        ),
        (
            "周一至周六 8:00-18:00 周日休息",
            False,
            every(*WEEKDAYS[:6], spans=[("08:00", "18:00")]),
            None,
        ),
        ("不开放", False, {}, None),
        ("closed", False, {}, None),
    ],
)
def test_forms_people_write(
    text: str,
    always: bool,
    weekly: dict[str, list[tuple[str, str]]],
    holidays: bool | None,
) -> None:
    hours = parse_hours(text)
    assert hours.always_open is always
    assert hours.weekly == weekly
    assert hours.holidays_open is holidays
    # and the registry schema takes it
    OpeningHours.model_validate(
        {"always_open": always, "weekly": hours.weekly, "holidays_open": bool(holidays)},
        strict=False,
    )


@pytest.mark.parametrize(
    ("text", "zh", "en"),
    [
        (
            "8:00-25:00",
            "'8:00-25:00' 不是有效的时间段（25:00 不是一天中的时刻）",
            "'8:00-25:00' is not a valid time span (25:00 is not a time of day)",
        ),
        (
            "8:00-12:60",
            "'8:00-12:60' 不是有效的时间段（12:60 不是一天中的时刻）",
            "'8:00-12:60' is not a valid time span (12:60 is not a time of day)",
        ),
        (
            "8:00-24:30",
            "'8:00-24:30' 不是有效的时间段（24:30 不是一天中的时刻）",
            "'8:00-24:30' is not a valid time span (24:30 is not a time of day)",
        ),
        (
            "8:00-",
            "'8:00-' 不是有效的时间段（缺少结束时间）",
            "'8:00-' is not a valid time span (no end time)",
        ),
        (
            "周一至周五 8:00",
            "'8:00' 不是有效的时间段（缺少结束时间）",
            "'8:00' is not a valid time span (no end time)",
        ),
        (
            "8.00-20.00",
            "'8.00-20.00' 不是有效的时间段（时刻请写成 8:00 或 08:00）",
            "'8.00-20.00' is not a valid time span (write times as 8:00 or 08:00)",
        ),
        (
            "8:0-20:00",
            "'8:0-20:00' 不是有效的时间段（8:0 不是一天中的时刻）",
            "'8:0-20:00' is not a valid time span (8:0 is not a time of day)",
        ),
        (
            "24:00-08:00",
            "'24:00-08:00' 不是有效的时间段（24:00 只能作结束时间，开始请写 00:00）",
            "'24:00-08:00' is not a valid time span (24:00 can only end a span: start at 00:00)",
        ),
        (
            "08:00-08:00",
            "'08:00-08:00' 不是有效的时间段（开始和结束相同）",
            "'08:00-08:00' is not a valid time span (it starts when it ends)",
        ),
        ("", "没有填写", "is empty"),
        ("   ", "没有填写", "is empty"),
        (
            "周一至周五",
            "'周一至周五' 后面没有时间段（例如 周一至周五 8:00-18:00）",
            "'周一至周五' has no hours (write e.g. 周一至周五 8:00-18:00)",
        ),
        (
            "节假日开放",
            "'节假日开放' 没有写开放时间（例如 周一至周五 8:00-18:00）",
            "'节假日开放' gives no hours (write e.g. Mon-Fri 8:00-18:00)",
        ),
        (
            "早八晚六",
            "无法识别 '早八晚六'（请写成如 周一至周五 8:00-18:00; 周六 9:00-12:00）",
            "'早八晚六' is not understood (write e.g. Mon-Fri 8:00-18:00; Sat 9:00-12:00)",
        ),
        (
            "周八 8:00-18:00",
            "无法识别 '周八'（请写成如 周一至周五 8:00-18:00; 周六 9:00-12:00）",
            "'周八' is not understood (write e.g. Mon-Fri 8:00-18:00; Sat 9:00-12:00)",
        ),
        (
            "8:00-12:00,11:00-14:00",
            "周一: 08:00-12:00 与 11:00-14:00 重叠",
            "Mon: 08:00-12:00 overlaps 11:00-14:00",
        ),
        (
            "周六 20:00-02:00, 22:00-23:00",
            "周六: 20:00-02:00 与 22:00-23:00 重叠",
            "Sat: 20:00-02:00 overlaps 22:00-23:00",
        ),
        (
            "8:00-18:00; 周六 9:00-12:00",
            "'8:00-18:00' 没写是星期几：分几组写时每组都要写（例如 周一至周五 8:00-18:00; "
            "周六 9:00-12:00）",
            "'8:00-18:00' names no days: with several groups each needs its days "
            "(e.g. Mon-Fri 8:00-18:00; Sat 9:00-12:00)",
        ),
        (
            "周一至周六 8:00-18:00; 周六 9:00-12:00",
            "周六 写了两次（'周一至周六' 和 '周六'）",
            "Sat is given twice ('周一至周六' and '周六')",
        ),
        (
            "24小时 8:00-20:00",
            "'24小时' 与 '8:00-20:00' 矛盾",
            "'24 hours' contradicts '8:00-20:00'",
        ),
        (
            "周日 休息 8:00-12:00",
            "'8:00-12:00' 与 '休息/不开放' 写在了同一组",
            "'8:00-12:00' is given for days also said to be closed",
        ),
        (
            "8:00-20:00 节假日开放 节假日休息",
            "节假日既写了开放又写了休息",
            "holidays are said to be both open and closed",
        ),
    ],
)
def test_malformed_hours_say_what_is_wrong(text: str, zh: str, en: str) -> None:
    with pytest.raises(HoursError) as caught:
        parse_hours(text)
    assert caught.value.said.zh == zh
    assert caught.value.said.en == en


@pytest.mark.parametrize(
    ("always", "weekly", "zh", "en"),
    [
        (True, {}, "24小时", "24 hours"),
        (False, {}, "不开放", "closed"),
        (False, every(*WEEKDAYS, spans=[("08:00", "20:00")]), "08:00-20:00", "08:00-20:00"),
        (
            False,
            every(*WORKDAYS, spans=[("08:30", "12:00"), ("13:30", "17:30")])
            | {"sat": [("09:00", "17:00")]},
            "周一至周五 08:30-12:00,13:30-17:30; 周六 09:00-17:00",
            "Mon-Fri 08:30-12:00,13:30-17:30; Sat 09:00-17:00",
        ),
        (
            False,
            every("mon", "wed", "fri", spans=[("20:00", "02:00")]),
            "周一、周三、周五 20:00-02:00",
            "Mon, Wed, Fri 20:00-02:00",
        ),
        (
            False,
            every("sat", "sun", spans=[("09:00", "17:00")]) | {"mon": [("00:00", "24:00")]},
            "周一 00:00-24:00; 周六、周日 09:00-17:00",
            "Mon 00:00-24:00; Sat, Sun 09:00-17:00",
        ),
    ],
)
def test_written_back_in_the_human_form(
    always: bool, weekly: dict[str, list[tuple[str, str]]], zh: str, en: str
) -> None:
    assert format_hours(always, weekly, "zh") == zh  # type: ignore[arg-type]
    assert format_hours(always, weekly, "en") == en  # type: ignore[arg-type]
    for text in (zh, en):
        again = parse_hours(text)
        assert (again.always_open, again.weekly) == (always, weekly)


def test_every_simulated_stations_hours_round_trip() -> None:
    """The simulator's 1,419 stations: written back, every one parses to the same structure."""
    from datetime import UTC, datetime

    fleet = build_fleet(1419, 1, datetime(2026, 12, 2, tzinfo=UTC))
    for profile in fleet:
        hours = profile.opening_hours.model_dump(mode="json")
        for language in LANGUAGES:
            text = format_hours(hours["always_open"], hours["weekly"], language)
            again = parse_hours(text)
            weekly = {d: [list(s) for s in spans] for d, spans in again.weekly.items()}
            assert (again.always_open, weekly) == (hours["always_open"], hours["weekly"]), text

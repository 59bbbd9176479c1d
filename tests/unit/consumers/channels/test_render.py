"""The human text of a notice: titles, station lines, the cap, the byte budget."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from consumers.channels import render
from consumers.notice import Notice
from tests.unit.consumers.channels.golden import check_golden
from tests.unit.consumers.channels.notices import (
    ALERTS,
    NOTICE,
    RESOLVED,
    at,
    many,
    notice,
    station_alert,
)


@pytest.mark.parametrize("language", ["zh", "en"])
def test_plain_text_golden(language: render.Language) -> None:
    check_golden(f"plain_{language}.txt", render.plain(NOTICE, language, footer=True))


@pytest.mark.parametrize("language", ["zh", "en"])
def test_markdown_golden(language: render.Language) -> None:
    check_golden(f"markdown_{language}.md", render.markdown(NOTICE, language))


STALE = station_alert("SY-0009", "机场驿站", kind="stale", severity="warning", starts_at=at(8, 0))


@pytest.mark.parametrize(
    ("the_notice", "language", "expected"),
    [
        (NOTICE, "zh", "空港街道: 2 个驿站离线，1 个已恢复"),
        (NOTICE, "en", "空港街道: 2 stations offline, 1 resolved"),
        (notice(ALERTS[:2]), "zh", "空港街道: 2 个驿站离线"),
        (notice(ALERTS[:1]), "en", "空港街道: 1 station offline"),
        (RESOLVED, "zh", "空港街道: 2 个驿站离线已恢复"),
        (RESOLVED, "en", "空港街道: 2 stations offline, resolved"),
        (notice((STALE,)), "zh", "空港街道: 1 个驿站心跳延迟"),
        (notice((*ALERTS, STALE)), "zh", "空港街道: 3 个驿站告警，1 个已恢复"),
        (many(12), "zh", "空港街道: 12 个驿站离线"),
    ],
)
def test_title(the_notice: Notice, language: render.Language, expected: str) -> None:
    assert render.title(the_notice, language) == expected


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("offline", "离线"),
        ("stale", "心跳延迟"),
        ("closed_during_hours", "营业时间内关闭"),
        ("over_capacity", "超员"),
        ("flapping", "状态频繁变化"),
        ("a_kind_added_later", "a_kind_added_later"),
    ],
)
def test_every_kind_has_chinese_words(kind: str, words: str) -> None:
    assert render.kind_text(kind) == words


def test_title_names_the_district_or_receiver_without_a_street() -> None:
    bare = replace(NOTICE, group_labels={}, common_labels={"district": "顺义区"})
    assert render.title(bare).startswith("顺义区: ")
    assert render.title(replace(bare, common_labels={})).startswith("konggang-wecom: ")


def test_station_line_keeps_the_alerts_own_offset() -> None:
    utc = station_alert("SY-0001", "空港祥云工会驿站", starts_at=at(0, 5, tz=UTC))
    newfoundland = timezone(timedelta(hours=-3, minutes=-30))
    west = station_alert("SY-0001", "空港祥云工会驿站", starts_at=at(0, 5, tz=newfoundland))
    assert "自 2026-11-30T00:05:00+00:00" in render.station_line(utc)
    assert "自 2026-11-30T00:05:00-03:30" in render.station_line(west)
    assert render.clock(datetime(2026, 11, 30, 8, 5)) == "2026-11-30T08:05:00"  # noqa: DTZ001


def test_lines_are_ordered_by_station_whatever_the_notice_order() -> None:
    text = render.plain(NOTICE)
    assert text.index("SY-0001") < text.index("SY-0002") < text.index("SY-0003")
    assert render.plain(notice(tuple(reversed(ALERTS)))) == text


def test_twenty_lines_then_how_many_more() -> None:
    text = render.plain(many(25))
    assert text.count("\n- ") == 20
    assert "SY-0020" in text
    assert "SY-0021" not in text
    assert text.rstrip().endswith("…还有 5 个")
    assert render.plain(many(25), "en").rstrip().endswith("…and 5 more")


def test_the_cap_spans_firing_then_resolved() -> None:
    text = render.plain(NOTICE, limit=2)
    assert "SY-0003" not in text
    assert "已恢复 (1):\n…还有 1 个" in text


def test_fit_drops_station_lines_until_the_text_fits() -> None:
    big = many(20, name="空港街道" * 20 + "{n}")

    def lines(limit: int) -> str:
        return render.markdown(big, limit=limit)

    assert len(lines(20).encode()) > 4096
    text = render.fit(lines, 4096)
    assert len(text.encode()) <= 4096
    shown = text.count("\n- ") - 1  # the last item says how many more
    assert shown > 0
    assert f"…还有 {20 - shown} 个" in text
    assert len(lines(shown + 1).encode()) > 4096  # the fullest text that fits


def test_fit_cuts_at_a_character_when_even_the_title_is_too_long() -> None:
    text = render.fit(lambda _: "驿站" * 100, 10)
    assert text == "驿站…"
    assert len(text.encode()) <= 10

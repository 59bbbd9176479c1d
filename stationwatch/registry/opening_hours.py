"""Opening hours as people write them in a spreadsheet, to and from the registry's structure.

Pure: no I/O. :func:`parse_hours` reads the forms people write —

- ``08:00-20:00``, ``8:00-20:00`` (every day), ``20:00-02:00`` (past midnight),
- ``24小时`` / ``全天`` / ``24 hours`` (always open),
- ``周一至周五 8:00-18:00``, ``周六日 9:00-17:00``, ``工作日`` / ``周末`` / ``每天``,
  ``Mon-Fri 8:00-18:00``, ``Sat, Sun 9:00-17:00``,
- several spans a day and several day groups:
  ``周一至周五 8:00-12:00,14:00-18:00; 周六 9:00-12:00``,
- ``周日休息`` (closed that day), ``不开放`` / ``closed`` (no hours at all),
- ``节假日开放`` / ``节假日休息`` (whether it opens on public holidays)

— and says precisely what is wrong with anything else (:class:`HoursError`, in both languages).
:func:`format_hours` writes the structure back in the same human form, and parsing that gives
the same structure again.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from schemas.registry import WEEKDAYS, Weekday
from stationwatch.registry.bilingual import BilingualError, Language, Said

Span = tuple[str, str]

ZH_DAY_NAMES = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
EN_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WHOLE_DAY: Span = ("00:00", "24:00")


class HoursError(BilingualError):
    """Opening hours that cannot be read; the message quotes the part that is wrong."""


@dataclass(frozen=True)
class Hours:
    """Parsed opening hours: the registry's ``opening_hours`` but ``holidays_open`` is ``None``
    when the text does not say."""

    always_open: bool = False
    weekly: dict[Weekday, list[Span]] = field(default_factory=dict)
    holidays_open: bool | None = None


# -- the scanner -------------------------------------------------------------------------------

_DASH = r"(?:-|－|–|—|~|～|至|到|to\b)"
_ZH_DAY = "一二三四五六日天"
_ZH_DAYS = re.compile(
    rf"(?:周|星期|礼拜)([{_ZH_DAY}])([{_ZH_DAY}]*)"
    rf"(?:\s*(?:至|到|-|－|–|—|~|～)\s*(?:周|星期|礼拜)?([{_ZH_DAY}]))?"
)
_EN_DAY = (
    r"(mon(?:day)?|tue(?:s(?:day)?)?|wed(?:nesday)?|thu(?:r(?:s(?:day)?)?)?|fri(?:day)?"
    r"|sat(?:urday)?|sun(?:day)?)"
)
_EN_DAYS = re.compile(rf"{_EN_DAY}\b(?:\s*(?:-|–|—|~|to\b)\s*{_EN_DAY}\b)?", re.IGNORECASE)
_TIME = r"(\d{1,2})\s*[:：]\s*(\d{1,2})"
_SPAN = re.compile(rf"{_TIME}\s*{_DASH}\s*{_TIME}", re.IGNORECASE)
# what looks like a time span, to quote it whole when it is not one
_LOOSE_SPAN = re.compile(
    r"[\d:：.点时]+(?:\s*(?:-|－|–|—|~|～|至|到|to\b)\s*[\d:：.点时]*)?", re.IGNORECASE
)
_SEPARATORS = re.compile(r"[\s,，、;；]+")
_WORD = re.compile(r"[^\s,，、;；]+")

_ALL = tuple(range(7))
# keywords, longest first where one begins another; English ones end at a word boundary
_KEYWORDS: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("holidays_open", "节假日照常开放", ()),
    ("holidays_open", "节假日正常开放", ()),
    ("holidays_open", "节假日开放", ()),
    ("holidays_open", "节假日营业", ()),
    ("holidays_open", "open on public holidays", ()),
    ("holidays_open", "open on holidays", ()),
    ("holidays_open", "holidays open", ()),
    ("holidays_closed", "节假日不开放", ()),
    ("holidays_closed", "节假日休息", ()),
    ("holidays_closed", "节假日关闭", ()),
    ("holidays_closed", "closed on public holidays", ()),
    ("holidays_closed", "closed on holidays", ()),
    ("holidays_closed", "holidays closed", ()),
    ("always", "24小时营业", ()),
    ("always", "24小时开放", ()),
    ("always", "24小时", ()),
    ("always", "24 小时", ()),
    ("always", "全天候", ()),
    ("always", "全天", ()),
    ("always", "24/7", ()),
    ("always", "24 hours", ()),
    ("always", "24h", ()),
    ("always", "always open", ()),
    ("always", "all day", ()),
    ("closed", "暂停开放", ()),
    ("closed", "不开放", ()),
    ("closed", "休息", ()),
    ("closed", "关闭", ()),
    ("closed", "closed", ()),
    ("days", "工作日", (0, 1, 2, 3, 4)),
    ("days", "weekdays", (0, 1, 2, 3, 4)),
    ("days", "workdays", (0, 1, 2, 3, 4)),
    ("days", "双休日", (5, 6)),
    ("days", "周末", (5, 6)),
    ("days", "weekends", (5, 6)),
    ("days", "weekend", (5, 6)),
    ("days", "每天", _ALL),
    ("days", "每日", _ALL),
    ("days", "天天", _ALL),
    ("days", "daily", _ALL),
    ("days", "every day", _ALL),
    ("days", "everyday", _ALL),
)


@dataclass(frozen=True)
class _Token:
    kind: str  # days | span | always | closed | holidays_open | holidays_closed
    text: str
    days: tuple[int, ...] = ()
    span: Span = ("", "")


def _zh_day(char: str) -> int:
    return 6 if char in "日天" else "一二三四五六".index(char)


def _en_day(word: str) -> int:
    return ("mon", "tue", "wed", "thu", "fri", "sat", "sun").index(word[:3].lower())


def _day_range(first: int, last: int) -> tuple[int, ...]:
    """``first`` to ``last`` inclusive; ``周五至周一`` wraps over the weekend."""
    return tuple((first + i) % 7 for i in range((last - first) % 7 + 1))


def _clock(hours: str, mins: str, text: str, *, end: bool) -> str:
    h, m = int(hours), int(mins)
    clock = f"{h:02d}:{m:02d}"
    if len(mins) != 2 or m > 59 or h > 24 or (h == 24 and m != 0):
        raise HoursError(
            Said(
                f"'{text}' 不是有效的时间段（{hours}:{mins} 不是一天中的时刻）",
                f"'{text}' is not a valid time span ({hours}:{mins} is not a time of day)",
            )
        )
    if clock == "24:00" and not end:
        raise HoursError(
            Said(
                f"'{text}' 不是有效的时间段（24:00 只能作结束时间，开始请写 00:00）",
                f"'{text}' is not a valid time span (24:00 can only end a span: start at 00:00)",
            )
        )
    return clock


def _span(text: str) -> _Token:
    match = _SPAN.fullmatch(text)
    if match is None:
        has_dash = re.search(_DASH, text, re.IGNORECASE) is not None
        if not has_dash or not re.search(rf"{_DASH}\s*\d", text, re.IGNORECASE):
            reason = Said("缺少结束时间", "no end time")
        else:
            reason = Said("时刻请写成 8:00 或 08:00", "write times as 8:00 or 08:00")
        raise HoursError(
            Said(
                f"'{text}' 不是有效的时间段（{reason.zh}）",
                f"'{text}' is not a valid time span ({reason.en})",
            )
        )
    start = _clock(match[1], match[2], text, end=False)
    end = _clock(match[3], match[4], text, end=True)
    if start == end:
        raise HoursError(
            Said(
                f"'{text}' 不是有效的时间段（开始和结束相同）",
                f"'{text}' is not a valid time span (it starts when it ends)",
            )
        )
    return _Token("span", text, span=(start, end))


def _tokens(text: str) -> Iterator[_Token]:
    pos, lowered = 0, text.lower()
    while pos < len(text):
        sep = _SEPARATORS.match(text, pos)
        if sep:
            pos = sep.end()
            continue
        for kind, word, days in _KEYWORDS:
            end = pos + len(word)
            if lowered.startswith(word, pos) and not (
                word[-1].isascii() and word[-1].isalpha() and lowered[end : end + 1].isalpha()
            ):
                yield _Token(kind, text[pos:end], days=days)
                pos = end
                break
        else:
            if zh := _ZH_DAYS.match(text, pos):
                listed = [_zh_day(zh[1]), *(_zh_day(c) for c in zh[2])]
                if zh[3]:
                    listed[-1:] = _day_range(listed[-1], _zh_day(zh[3]))
                yield _Token("days", zh[0], days=tuple(listed))
                pos = zh.end()
            elif en := _EN_DAYS.match(text, pos):
                first = _en_day(en[1])
                days = _day_range(first, _en_day(en[2])) if en[2] else (first,)
                yield _Token("days", en[0], days=days)
                pos = en.end()
            elif text[pos].isdigit():
                loose = _LOOSE_SPAN.match(text, pos)
                assert loose is not None  # a digit always matches  # noqa: S101
                yield _span(loose[0].strip())
                pos = loose.end()
            else:
                unknown = _WORD.match(text, pos)
                assert unknown is not None  # not a separator, so a word  # noqa: S101
                raise HoursError(
                    Said(
                        f"无法识别 '{unknown[0]}'（请写成如 "
                        "周一至周五 8:00-18:00; 周六 9:00-12:00）",
                        f"'{unknown[0]}' is not understood (write e.g. "
                        "Mon-Fri 8:00-18:00; Sat 9:00-12:00)",
                    )
                )


# -- groups of days and their spans -------------------------------------------------------------


@dataclass
class _Group:
    days: list[int] | None = None  # None: no day named (every day)
    days_text: list[str] = field(default_factory=list)
    spans: list[_Token] = field(default_factory=list)
    closed: bool = False
    closed_text: str = ""
    always: bool = False

    @property
    def label(self) -> str:
        return " ".join(self.days_text)


def _groups(text: str) -> tuple[list[_Group], bool | None]:
    groups: list[_Group] = []
    current = _Group()
    holidays: bool | None = None
    for token in _tokens(text):
        if token.kind == "days":
            if current.spans or current.closed:
                groups.append(current)
                current = _Group()
            current.days = [*(current.days or []), *token.days]
            current.days_text.append(token.text)
        elif token.kind in ("span", "always"):
            if current.closed:
                raise HoursError(
                    Said(
                        f"'{token.text}' 与 '休息/不开放' 写在了同一组",
                        f"'{token.text}' is given for days also said to be closed",
                    )
                )
            if token.kind == "always":
                current.always = True
                token = _Token("always", token.text, span=WHOLE_DAY)
            current.spans.append(token)
        elif token.kind == "closed":
            if current.spans:
                raise HoursError(
                    Said(
                        f"'{token.text}' 与 '{current.spans[0].text}' 写在了同一组",
                        f"'{token.text}' is given with '{current.spans[0].text}' for the same days",
                    )
                )
            current.closed = True
            current.closed_text = token.text
        else:
            said = token.kind == "holidays_open"
            if holidays is not None and holidays != said:
                raise HoursError(
                    Said(
                        "节假日既写了开放又写了休息", "holidays are said to be both open and closed"
                    )
                )
            holidays = said
    if current.days is not None or current.spans or current.closed:
        groups.append(current)
    return groups, holidays


def _check_overlaps(day: int, spans: list[Span]) -> None:
    # within one day; a span past midnight counts up to midnight here
    bounds = sorted((_minutes(s), _minutes(e) if e > s else 1440, (s, e)) for s, e in spans)
    for (_, end, first), (start, _, second) in itertools.pairwise(bounds):
        if start < end:
            names = (ZH_DAY_NAMES[day], EN_DAY_NAMES[day])
            one, two = "-".join(first), "-".join(second)
            raise HoursError(
                Said(f"{names[0]}: {one} 与 {two} 重叠", f"{names[1]}: {one} overlaps {two}")
            )


def _minutes(clock: str) -> int:
    hours, mins = clock.split(":")
    return int(hours) * 60 + int(mins)


def parse_hours(text: str) -> Hours:
    """The structure of the opening hours ``text``; :class:`HoursError` when it cannot be read."""
    if not text.strip():
        raise HoursError(Said("没有填写", "is empty"))
    groups, holidays = _groups(text)
    if not groups:
        raise HoursError(
            Said(
                f"'{text.strip()}' 没有写开放时间（例如 周一至周五 8:00-18:00）",
                f"'{text.strip()}' gives no hours (write e.g. Mon-Fri 8:00-18:00)",
            )
        )
    for group in groups:
        if group.days is not None and not group.spans and not group.closed:
            raise HoursError(
                Said(
                    f"'{group.label}' 后面没有时间段（例如 {group.label} 8:00-18:00）",
                    f"'{group.label}' has no hours (write e.g. {group.label} 8:00-18:00)",
                )
            )
        if group.days is None and len(groups) > 1:
            first = group.spans[0].text if group.spans else group.closed_text
            raise HoursError(
                Said(
                    f"'{first}' 没写是星期几：分几组写时每组都要写（例如 周一至周五 8:00-18:00; "
                    "周六 9:00-12:00）",
                    f"'{first}' names no days: with several groups each needs its days "
                    "(e.g. Mon-Fri 8:00-18:00; Sat 9:00-12:00)",
                )
            )
        if group.always and len(group.spans) > 1:
            other = next((s for s in group.spans if s.kind == "span"), group.spans[1])
            raise HoursError(
                Said(
                    f"'24小时' 与 '{other.text}' 矛盾",
                    f"'24 hours' contradicts '{other.text}'",
                )
            )
    seen: dict[int, str] = {}
    weekly: dict[Weekday, list[Span]] = {}
    for group in groups:
        for day in group.days if group.days is not None else _ALL:
            if day in seen:
                raise HoursError(
                    Said(
                        f"{ZH_DAY_NAMES[day]} 写了两次（'{seen[day]}' 和 '{group.label}'）",
                        f"{EN_DAY_NAMES[day]} is given twice ('{seen[day]}' and '{group.label}')",
                    )
                )
            seen[day] = group.label or "-"
            if group.spans:
                spans = [token.span for token in group.spans]
                _check_overlaps(day, spans)
                weekly[WEEKDAYS[day]] = spans
    always = all(g.always for g in groups) and len(weekly) == 7
    in_order = {day: weekly[day] for day in WEEKDAYS if day in weekly}
    return Hours(always_open=always, weekly={} if always else in_order, holidays_open=holidays)


# -- back to text ---------------------------------------------------------------------------------


def _days_label(days: list[int], language: Language) -> str:
    names = ZH_DAY_NAMES if language == "zh" else EN_DAY_NAMES
    runs: list[list[int]] = []
    for day in days:
        if runs and runs[-1][-1] == day - 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts: list[str] = []
    for run in runs:
        if len(run) >= 3:
            parts.append(f"{names[run[0]]}{'至' if language == 'zh' else '-'}{names[run[-1]]}")
        else:
            parts.extend(names[d] for d in run)
    return ("、" if language == "zh" else ", ").join(parts)


def format_hours(always_open: bool, weekly: dict[Weekday, list[Span]], language: Language) -> str:
    """Opening hours in the form people write (without the holidays, which have a column)."""
    if always_open:
        return "24小时" if language == "zh" else "24 hours"
    if not weekly:
        return "不开放" if language == "zh" else "closed"
    groups: dict[tuple[Span, ...], list[int]] = {}
    for day, name in enumerate(WEEKDAYS):
        if weekly.get(name):
            spans = tuple((start, end) for start, end in weekly[name])
            groups.setdefault(spans, []).append(day)
    parts: list[str] = []
    for day_spans, days in groups.items():
        hours = ",".join(f"{start}-{end}" for start, end in day_spans)
        parts.append(hours if len(days) == 7 else f"{_days_label(days, language)} {hours}")
    return "; ".join(parts)

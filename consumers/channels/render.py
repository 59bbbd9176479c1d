"""The human text of a notice, in Chinese or English: a title, one line per station, capped.

Every channel that shows text to a person (robots, e-mail, the console) renders through here, so
a notice reads the same everywhere. Pure and deterministic: the same notice gives the same text.

    空港街道: 2 个驿站离线，1 个已恢复
    告警中 (2):
    - 空港祥云工会驿站 (SY-0001) 离线，自 2026-11-30T08:05:00+08:00，最后心跳 …
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from consumers.notice import Notice, NoticeAlert

Language = Literal["zh", "en"]

# How many station lines a notice shows before "…还有 N 个".
DEFAULT_LIMIT = 20


@dataclass(frozen=True, slots=True)
class _Words:
    kinds: dict[str, str]
    alerts: str  # the kind word when a notice mixes kinds
    firing: str
    resolved: str
    count: Callable[[int, str], str]  # "2 个驿站离线"
    and_resolved: Callable[[int], str]  # "，1 个已恢复"
    all_resolved: Callable[[int, str], str]  # "3 个驿站离线已恢复"
    since: Callable[[str], str]
    last_heartbeat: Callable[[str], str]
    between: Callable[[str, str], str]
    more: Callable[[int], str]
    receiver: str
    group: str


ZH = _Words(
    kinds={
        "offline": "离线",
        "stale": "心跳延迟",
        "closed_during_hours": "营业时间内关闭",
        "over_capacity": "超员",
        "flapping": "状态频繁变化",
    },
    alerts="告警",
    firing="告警中",
    resolved="已恢复",
    count=lambda n, kind: f"{n} 个驿站{kind}",
    and_resolved=lambda n: f"，{n} 个已恢复",
    all_resolved=lambda n, kind: f"{n} 个驿站{kind}已恢复",
    since=lambda at: f"自 {at}",
    last_heartbeat=lambda at: f"最后心跳 {at}",
    between=lambda start, end: f"{start} 至 {end}",
    more=lambda n: f"…还有 {n} 个",
    receiver="接收方",
    group="分组",
)

EN = _Words(
    kinds={
        "offline": "offline",
        "stale": "heartbeat late",
        "closed_during_hours": "closed during opening hours",
        "over_capacity": "over capacity",
        "flapping": "flapping",
    },
    alerts="alerting",
    firing="Firing",
    resolved="Resolved",
    count=lambda n, kind: f"{n} station{'' if n == 1 else 's'} {kind}",
    and_resolved=lambda n: f", {n} resolved",
    all_resolved=lambda n, kind: f"{n} station{'' if n == 1 else 's'} {kind}, resolved",
    since=lambda at: f"since {at}",
    last_heartbeat=lambda at: f"last heartbeat {at}",
    between=lambda start, end: f"from {start} to {end}",
    more=lambda n: f"…and {n} more",
    receiver="Receiver",
    group="Group",
)

WORDS: dict[Language, _Words] = {"zh": ZH, "en": EN}


def clock(moment: datetime) -> str:
    """``2026-11-30T08:05:00+08:00``: ISO 8601 to the second, in the moment's own offset as
    given (the notifier hands channels every notice in STATIONWATCH_TIMEZONE)."""
    return moment.isoformat(timespec="seconds")


def kind_text(kind: str, language: Language = "zh") -> str:
    """The kind in words; a kind added later shows as its name until it gets words."""
    return WORDS[language].kinds.get(kind, kind)


def last_heartbeat_at(alert: NoticeAlert) -> datetime | None:
    """When the station was last heard, if the alert carries it.

    ``NoticeAlert`` has no such field yet (``station.alerts`` does: ``last_heartbeat_at``); read
    it when present so the line shows it as soon as the notice carries it."""
    value = getattr(alert, "last_heartbeat_at", None)
    return value if isinstance(value, datetime) else None


def _stations(alerts: tuple[NoticeAlert, ...]) -> int:
    return len({alert.station_id for alert in alerts})


def _kind(notice: Notice, language: Language) -> str:
    kinds = {alert.kind for alert in notice.alerts}
    if len(kinds) == 1:
        return kind_text(kinds.pop(), language)
    return WORDS[language].alerts


def scope(notice: Notice) -> str:
    """What the notice is about: its street, else its district, else its receiver."""
    labels = {**notice.common_labels, **notice.group_labels}
    return labels.get("street") or labels.get("district") or notice.receiver


def title(notice: Notice, language: Language = "zh") -> str:
    """``空港街道: 12 个驿站离线`` (and ``，1 个已恢复``), or ``…离线已恢复`` once all resolved."""
    words = WORDS[language]
    kind = _kind(notice, language)
    firing, resolved = notice.firing, notice.resolved
    if not firing:
        return f"{scope(notice)}: {words.all_resolved(_stations(resolved), kind)}"
    text = f"{scope(notice)}: {words.count(_stations(firing), kind)}"
    if resolved:
        text += words.and_resolved(_stations(resolved))
    return text


def station_line(alert: NoticeAlert, language: Language = "zh") -> str:
    """One station: name, id, kind, since when, last heartbeat (or when it ended)."""
    words = WORDS[language]
    name = alert.labels.get("name")
    who = f"{name} ({alert.station_id})" if name else alert.station_id
    parts = [f"{who} {kind_text(alert.kind, language)}"]
    if alert.status == "resolved":
        ended = alert.ends_at or alert.detected_at
        parts.append(words.between(clock(alert.starts_at), clock(ended)))
    else:
        parts.append(words.since(clock(alert.starts_at)))
        heard = last_heartbeat_at(alert)
        if heard is not None:
            parts.append(words.last_heartbeat(clock(heard)))
    separator = "，" if language == "zh" else ", "
    return separator.join(parts)


def ordered(alerts: tuple[NoticeAlert, ...]) -> list[NoticeAlert]:
    """Alerts by station, then kind: the order every channel lists them in."""
    return sorted(alerts, key=lambda alert: (alert.station_id, alert.kind, alert.alert_id))


def _sections(notice: Notice, language: Language, limit: int) -> list[tuple[str, list[str], int]]:
    """(heading, station lines, how many more) for firing, then resolved; ``limit`` lines in all."""
    words = WORDS[language]
    sections: list[tuple[str, list[str], int]] = []
    budget = max(limit, 0)
    for heading, alerts in ((words.firing, notice.firing), (words.resolved, notice.resolved)):
        if not alerts:
            continue
        shown = ordered(alerts)[:budget]
        budget -= len(shown)
        lines = [station_line(alert, language) for alert in shown]
        sections.append((f"{heading} ({len(alerts)})", lines, len(alerts) - len(shown)))
    return sections


def plain(
    notice: Notice, language: Language = "zh", *, limit: int = DEFAULT_LIMIT, footer: bool = False
) -> str:
    """Plain text: the title, then each section's lines; ``footer`` adds receiver and group."""
    words = WORDS[language]
    lines = [title(notice, language)]
    for heading, items, more in _sections(notice, language, limit):
        lines.append("")
        lines.append(f"{heading}:")
        lines.extend(f"- {item}" for item in items)
        if more:
            lines.append(words.more(more))
    if footer:
        lines.append("")
        lines.append(f"{words.receiver}: {notice.receiver}")
        lines.append(f"{words.group}: {notice.group_key}")
    return "\n".join(lines) + "\n"


def markdown(notice: Notice, language: Language = "zh", *, limit: int = DEFAULT_LIMIT) -> str:
    """The robots' Markdown (the subset WeCom and DingTalk both show): heading, bold, lists."""
    words = WORDS[language]
    blocks = [f"### {title(notice, language)}"]
    for heading, items, more in _sections(notice, language, limit):
        lines = [f"**{heading}**", ""]
        lines.extend(f"- {item}" for item in items)
        if more:
            lines.append(f"- {words.more(more)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def subject(notice: Notice, language: Language = "zh") -> str:
    """The e-mail subject: the title, marked as stationwatch's."""
    return f"[stationwatch] {title(notice, language)}"


def fit(render: Callable[[int], str], max_bytes: int, *, limit: int = DEFAULT_LIMIT) -> str:
    """The fullest ``render(lines)`` whose UTF-8 fits ``max_bytes``: fewer station lines first,
    then, if even the title alone is too long, the text cut at a character and ``…``."""
    for lines in range(max(limit, 0), -1, -1):
        text = render(lines)
        if len(text.encode()) <= max_bytes:
            return text
    ellipsis = "…"
    room = max_bytes - len(ellipsis.encode())
    cut = text.encode()[: max(room, 0)].decode(errors="ignore")
    return cut + ellipsis if room >= 0 else ""

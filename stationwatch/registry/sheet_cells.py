"""One spreadsheet cell to a registry value: each parser returns the value or raises
:class:`BilingualError` saying, in both languages, what is wrong with the text. Pure."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from schemas.common import STATION_ID_PATTERN
from stationwatch.registry.bilingual import BilingualError, Said
from stationwatch.registry.sheet_columns import (
    BY_FIELD,
    FALSE_WORDS,
    TRUE_WORDS,
    code_of,
    known_values,
    normalize,
)

_LIST_SEPARATORS = re.compile(r"[,，、;；/\s]+")
_ID = re.compile(STATION_ID_PATTERN)
# "no device" in a heartbeat cell, as normalized text ("-" normalizes to "")
NONE_WORDS = frozenset(
    normalize(w) for w in ("无", "没有", "无设备", "-", "—", "none", "no device", "n/a")
)


def integer(text: str, low: int, high: int) -> int:
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if number != number or number != int(number):  # NaN or a fraction
        raise BilingualError(Said(f"'{text}' 不是整数", f"'{text}' is not a whole number"))
    if not low <= number <= high:
        raise BilingualError(
            Said(f"{text} 不在 {low} 到 {high} 之间", f"{text} is not between {low} and {high}")
        )
    return int(number)


def degrees(text: str, limit: int) -> float:
    try:
        number = float(text)
    except ValueError:
        raise BilingualError(Said(f"'{text}' 不是数字", f"'{text}' is not a number")) from None
    if not -limit <= number <= limit:
        raise BilingualError(
            Said(
                f"{text} 不在 -{limit} 到 {limit} 之间",
                f"{text} is not between -{limit} and {limit}",
            )
        )
    return number


def coded(field: str, text: str) -> str:
    code = code_of(field, text)
    if code is None:
        column = BY_FIELD[field]
        raise BilingualError(
            Said(
                f"'{text}' 不是有效的{column.zh}（可填: {known_values(field, 'zh')}）",
                f"'{text}' is not a known {column.en_label.removesuffix('s')} "
                f"({known_values(field, 'en')})",
            )
        )
    return code


def services(text: str) -> list[str]:
    services: list[str] = []
    for item in _LIST_SEPARATORS.split(text):
        if not item:
            continue
        code = coded("services", item)
        if code in services:
            raise BilingualError(Said(f"'{item}' 重复了", f"'{item}' is listed twice"))
        services.append(code)
    return services


def yes_or_no(text: str) -> bool:
    word = normalize(text)
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise BilingualError(Said(f"'{text}' 请填 是 或 否", f"'{text}' is not yes or no"))


def moment(text: str, zone: ZoneInfo) -> str:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BilingualError(
            Said(
                f"'{text}' 不是有效的时间（如 2026-12-05 或 2026-12-05T18:00）",
                f"'{text}' is not a date or time like 2026-12-05 or 2026-12-05T18:00",
            )
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.isoformat()


def optional_text(text: str) -> str | None:
    return text or None


def station_id(text: str) -> str:
    if not _ID.fullmatch(text):
        raise BilingualError(
            Said(
                f"'{text}' 不是有效的编号（大写字母-数字，如 SY-0001）",
                f"'{text}' is not a station id like SY-0001",
            )
        )
    return text


def required(text: str) -> str:
    if not text:
        raise BilingualError(Said("没有填写", "is empty"))
    return text


def heartbeat_interval(text: str) -> int | None:
    """Seconds between a device's heartbeats; empty (or 无, none): the station has no device."""
    if not text or normalize(text) in NONE_WORDS:
        return None
    return integer(text, 1, 86_400)

"""Spreadsheet rows to registry profiles and back, with errors per row and column.

Pure: no I/O. :func:`read_header` maps a file's headers to the template's columns and tells its
language; :func:`profile_from_row` turns one row into a :class:`StationProfile` validated against
the registry schema, or into every error the row has; :func:`row_from_profile` writes a profile
as a template row, so that reading it back gives the same profile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from schemas.registry import StationProfile
from stationwatch.registry import sheet_cells
from stationwatch.registry.bilingual import BilingualError, Language, Said
from stationwatch.registry.opening_hours import HoursError, format_hours, parse_hours
from stationwatch.registry.sheet_columns import (
    BY_FIELD,
    COLUMNS,
    Column,
    label_of,
    match_header,
    yes_no,
)

# set by the import itself, never read from a file
NOT_COMPARED = ("updated_at", "changed_by", "changed_via")


@dataclass(frozen=True)
class RowError:
    """What is wrong, where: ``row`` as the spreadsheet numbers it (the header is row 1), or
    ``None`` for the header itself."""

    row: int | None
    column: Column | None
    said: Said

    def render(self, language: Language) -> str:
        where = self.column.label(language) if self.column else ""
        text = self.said.in_(language)
        if language == "zh":
            head = "表头" if self.row is None else f"第 {self.row} 行"
            return f"{head}，{where}: {text}" if where else f"{head}: {text}"
        head = "header" if self.row is None else f"row {self.row}"
        return f"{head}, {where}: {text}" if where else f"{head}: {text}"


@dataclass(frozen=True)
class Header:
    columns: list[Column | None]  # by position; None: a column without a header
    language: Language
    errors: list[RowError]

    @property
    def present(self) -> frozenset[str]:
        return frozenset(c.field for c in self.columns if c is not None)


def read_header(headers: list[str]) -> Header:
    """The template columns ``headers`` name, the file's language (the one most headers are
    written in), and what is wrong with them: unknown, repeated or missing required columns."""
    written = [h.strip() for h in headers]
    ascii_count = sum(1 for h in written if h and h.isascii())
    language: Language = "en" if ascii_count * 2 > sum(1 for h in written if h) else "zh"
    columns: list[Column | None] = []
    errors: list[RowError] = []
    seen: dict[str, str] = {}  # field: the header that named it
    for header in written:
        found = match_header(header) if header else None
        if header and found is None:
            errors.append(
                RowError(
                    None,
                    None,
                    Said(
                        f"不认识的列 '{header}'（可用的列: {'、'.join(c.zh for c in COLUMNS)}）",
                        f"unknown column '{header}' (known columns: "
                        f"{', '.join(c.field for c in COLUMNS)})",
                    ),
                )
            )
        column = found[0] if found else None
        if column is not None and column.field in seen:
            said = Said(
                f"这一列出现了两次（'{seen[column.field]}' 和 '{header}'）",
                f"this column appears twice ('{seen[column.field]}' and '{header}')",
            )
            errors.append(RowError(None, column, said))
            column = None
        if column is not None:
            seen[column.field] = header
        columns.append(column)
    errors.extend(
        RowError(None, column, Said("缺少这一列", "this column is missing"))
        for column in COLUMNS
        if column.required and column.field not in seen
    )
    return Header(columns, language, errors)


# -- a row -----------------------------------------------------------------------------------

_PYDANTIC_ZH: dict[str, Callable[[dict[str, Any]], str]] = {
    "string_too_long": lambda ctx: f"最多 {ctx.get('max_length')} 个字符",
    "string_too_short": lambda ctx: "没有填写",
    "text_nul": lambda ctx: "不能含 NUL 字符",
    "greater_than_equal": lambda ctx: f"不能小于 {ctx.get('ge')}",
    "less_than_equal": lambda ctx: f"不能大于 {ctx.get('le')}",
    "time_range": lambda ctx: "须在 2000 年到 2099 年之间",
}


def _schema_errors(row_no: int, exc: ValidationError) -> list[RowError]:
    errors: list[RowError] = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        message = str(error["msg"]).removeprefix("Value error, ")
        field = loc[0] if loc else ""
        if field == "location" and len(loc) > 1:
            field = loc[1]
        elif not field and ":" in message:  # a model check names its field first
            field, _, message = message.partition(": ")
        column = BY_FIELD.get(field)
        zh = _PYDANTIC_ZH.get(error["type"])
        errors.append(
            RowError(row_no, column, Said(zh(error.get("ctx") or {}) if zh else message, message))
        )
    return errors


def profile_from_row(
    row_no: int,
    cells: dict[str, str],
    language: Language,
    *,
    live: StationProfile | None,
    now: datetime,
    zone: ZoneInfo,
    changed_by: str | None,
    changed_via: str,
) -> StationProfile | list[RowError]:
    """The profile a row describes, or every error it has.

    ``cells`` holds the columns the file has (stripped text); a column the file lacks keeps the
    ``live`` profile's value (the schema's default for a new station), and so do fields the
    template does not hold."""
    data: dict[str, Any] = live.model_dump(mode="json") if live else {}
    errors: list[RowError] = []

    def cell(field: str, parse: Callable[[str], Any]) -> Any:
        try:
            return parse(cells[field])
        except BilingualError as exc:
            errors.append(RowError(row_no, BY_FIELD[field], exc.said))
            return None

    simple: dict[str, Callable[[str], Any]] = {
        "station_id": sheet_cells.station_id,
        "name": sheet_cells.required,
        "district": lambda t: t,
        "street": lambda t: t,
        "category": lambda t: sheet_cells.coded("category", t) if t else "standard",
        "host": lambda t: sheet_cells.coded("host", t) if t else "other",
        "services": sheet_cells.services,
        "capacity": lambda t: sheet_cells.integer(t, 0, 100_000) if t else None,
        "heartbeat_interval_s": sheet_cells.heartbeat_interval,
        "contact_phone": sheet_cells.optional_text,
        "responsible_person": sheet_cells.optional_text,
        "responsible_phone": sheet_cells.optional_text,
        "lifecycle": lambda t: sheet_cells.coded("lifecycle", t) if t else "active",
        "closed_until": lambda t: sheet_cells.moment(t, zone) if t else None,
        "closure_reason": sheet_cells.optional_text,
    }
    for field, parse in simple.items():
        if field in cells:
            data[field] = cell(field, parse)
    location = dict(data.get("location") or {})
    if "lat" in cells:
        location["lat"] = cell("lat", lambda t: sheet_cells.degrees(sheet_cells.required(t), 90))
    if "lon" in cells:
        location["lon"] = cell("lon", lambda t: sheet_cells.degrees(sheet_cells.required(t), 180))
    data["location"] = location
    _hours(row_no, cells, data, errors)
    if errors:
        return errors
    if data.get("closed_until") and data.get("lifecycle") != "temporarily_closed":
        return [
            RowError(
                row_no,
                BY_FIELD["closed_until"],
                Said(
                    f"只有状态为{label_of('lifecycle', 'temporarily_closed', 'zh')}"
                    "的驿站才有关闭期限",
                    "only a temporarily_closed station has one",
                ),
            )
        ]
    data |= {"updated_at": now.isoformat(), "changed_by": changed_by, "changed_via": changed_via}
    try:
        return StationProfile.model_validate(data, strict=False)
    except ValidationError as exc:
        return _schema_errors(row_no, exc)


def _hours(
    row_no: int, cells: dict[str, str], data: dict[str, Any], errors: list[RowError]
) -> None:
    """Opening hours and the holidays column, which must agree with what the hours text says.

    Whether it opens on holidays comes from the column, else from the hours text, else (no
    column in the file) stays as it was."""
    hours = dict(data.get("opening_hours") or {})
    hours.setdefault("holidays_open", False)
    said_in_text: bool | None = None
    if "opening_hours" in cells:
        try:
            parsed = parse_hours(cells["opening_hours"])
        except HoursError as exc:
            errors.append(RowError(row_no, BY_FIELD["opening_hours"], exc.said))
            return
        said_in_text = parsed.holidays_open
        hours["always_open"], hours["weekly"] = parsed.always_open, parsed.weekly
        if said_in_text is not None:
            hours["holidays_open"] = said_in_text
        elif "holidays_open" in cells:
            hours["holidays_open"] = False
    if cells.get("holidays_open"):
        try:
            column = sheet_cells.yes_or_no(cells["holidays_open"])
        except BilingualError as exc:
            errors.append(RowError(row_no, BY_FIELD["holidays_open"], exc.said))
            return
        if said_in_text is not None and said_in_text != column:
            errors.append(
                RowError(
                    row_no,
                    BY_FIELD["holidays_open"],
                    Said(
                        f"'{cells['holidays_open']}' 与开放时间 '{cells['opening_hours']}' 矛盾",
                        f"'{cells['holidays_open']}' contradicts the opening hours "
                        f"'{cells['opening_hours']}'",
                    ),
                )
            )
            return
        hours["holidays_open"] = column
    data["opening_hours"] = hours


def row_from_profile(profile: StationProfile, language: Language) -> list[str]:
    """The template row of a profile, in the order of :data:`COLUMNS`."""
    hours = profile.opening_hours
    values: dict[str, str] = {
        "station_id": profile.station_id,
        "name": profile.name,
        "district": profile.district,
        "street": profile.street,
        "category": label_of("category", profile.category, language),
        "host": label_of("host", profile.host, language),
        "lat": repr(profile.location.lat),
        "lon": repr(profile.location.lon),
        "services": ("、" if language == "zh" else ", ").join(
            label_of("services", s, language) for s in profile.services
        ),
        "capacity": "" if profile.capacity is None else str(profile.capacity),
        "opening_hours": format_hours(hours.always_open, dict(hours.weekly), language),
        "holidays_open": yes_no(hours.holidays_open, language),
        "heartbeat_interval_s": (
            "" if profile.heartbeat_interval_s is None else str(profile.heartbeat_interval_s)
        ),
        "contact_phone": profile.contact_phone or "",
        "responsible_person": profile.responsible_person or "",
        "responsible_phone": profile.responsible_phone or "",
        "lifecycle": label_of("lifecycle", profile.lifecycle, language),
        "closed_until": profile.closed_until.isoformat() if profile.closed_until else "",
        "closure_reason": profile.closure_reason or "",
    }
    return [values[column.field] for column in COLUMNS]


def comparable(profile: StationProfile) -> dict[str, Any]:
    """What an import compares: the profile without the fields the import itself sets."""
    data = profile.model_dump(mode="json")
    for field in NOT_COMPARED:
        data.pop(field, None)
    return data


__all__ = [
    "Header",
    "RowError",
    "comparable",
    "profile_from_row",
    "read_header",
    "row_from_profile",
]

"""`stationwatch stations export`: the live registry (the `stations` table) as the import
template, CSV or XLSX, Chinese or English headers — what `stations import` reads back unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, get_args

from schemas.registry import StationProfile
from stationwatch.registry.bilingual import Language
from stationwatch.registry.sheet_columns import COLUMNS, known_values
from stationwatch.registry.sheet_files import (
    Format,
    SheetFileError,
    format_of,
    write_csv,
    write_xlsx,
)
from stationwatch.registry.sheet_registry import live_registry
from stationwatch.registry.sheet_rows import row_from_profile
from stationwatch.settings import Settings

EXIT_OK, EXIT_INVALID = 0, 2

# what each column takes, for the XLSX's notes sheet (the README has the same)
_NOTES: dict[str, tuple[str, str]] = {
    "station_id": ("必填，如 SY-0001", "required, like SY-0001"),
    "name": ("必填", "required"),
    "category": ("", ""),
    "host": ("", ""),
    "lat": ("必填，WGS-84 纬度", "required, WGS-84 latitude"),
    "lon": ("必填，WGS-84 经度", "required, WGS-84 longitude"),
    "services": ("用顿号或逗号分隔: ", "separated by commas: "),
    "capacity": ("整数，可空", "whole number, may be empty"),
    "opening_hours": (
        "必填: 08:00-20:00 / 24小时 / 周一至周五 8:00-12:00,14:00-18:00; 周六 9:00-12:00 / "
        "20:00-02:00（跨午夜）/ 不开放",
        "required: 08:00-20:00 / 24 hours / Mon-Fri 8:00-12:00,14:00-18:00; Sat 9:00-12:00 / "
        "20:00-02:00 (past midnight) / closed",
    ),
    "holidays_open": ("是 / 否", "yes / no"),
    "heartbeat_interval_s": ("设备上报间隔（秒）；空 = 无设备", "seconds; empty = no device"),
    "lifecycle": ("", ""),
    "closed_until": (
        "仅暂停的驿站: 2026-12-05 或 2026-12-05T18:00（北京时间）",
        "temporarily closed only: 2026-12-05 or 2026-12-05T18:00 (station-local time)",
    ),
}


def template_notes(language: Language) -> list[tuple[str, str]]:
    """(header, what it takes) for every column."""
    zh = language == "zh"
    notes = [("列" if zh else "column", "说明" if zh else "what it takes")]
    for column in COLUMNS:
        text = _NOTES.get(column.field, ("", ""))[0 if zh else 1]
        if column.field in ("category", "host", "services", "lifecycle"):
            text += known_values(column.field, language)
        notes.append((column.header(language), text))
    return notes


@dataclass(frozen=True)
class ExportRequest:
    out: Path | None = None  # None: CSV on standard output
    format: str | None = None  # csv | xlsx; None: from the file name, else csv
    language: str = "zh"


def export_rows(profiles: list[StationProfile], language: Language) -> list[list[str]]:
    return [row_from_profile(profile, language) for profile in profiles]


def run_export(
    settings: Settings,
    request: ExportRequest,
    *,
    stdout: TextIO,
    err: Callable[[str], None],
) -> int:
    """Write the registry; returns the exit code. Raises :class:`StationwatchError` when the
    database fails."""
    if request.language not in get_args(Language):
        err(f"error: --language: {request.language!r} is not zh or en")
        return EXIT_INVALID
    language: Language = "zh" if request.language == "zh" else "en"
    fmt: Format
    try:
        if request.format is not None:
            if request.format not in ("csv", "xlsx"):
                err(f"error: --format: {request.format!r} is not csv or xlsx")
                return EXIT_INVALID
            fmt = "csv" if request.format == "csv" else "xlsx"
        else:
            fmt = format_of(request.out) if request.out is not None else "csv"
    except SheetFileError as exc:
        err(f"error: {exc}")
        return EXIT_INVALID
    if fmt == "xlsx" and request.out is None:
        err("error: --format xlsx needs --out FILE.xlsx (a workbook is not written to a terminal)")
        return EXIT_INVALID
    registry = asyncio.run(live_registry(settings))
    profiles = [registry[sid] for sid in sorted(registry)]
    header = [column.header(language) for column in COLUMNS]
    rows = export_rows(profiles, language)
    try:
        if fmt == "xlsx":
            assert request.out is not None  # checked above  # noqa: S101
            fields = [column.field for column in COLUMNS]
            write_xlsx(request.out, header, fields, rows, template_notes(language))
        else:
            write_csv(request.out if request.out is not None else stdout, header, rows)
    except (SheetFileError, OSError) as exc:
        err(f"error: {exc}")
        return 1
    if request.out is not None:
        err(f"exported {len(profiles)} stations to {request.out}")
    return EXIT_OK

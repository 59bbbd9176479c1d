"""`stationwatch stations import FILE`: a spreadsheet into the registry, all or nothing.

Every row is validated first; one error anywhere and nothing is published (exit code 2, every
error listed by row and column in the file's header language). Then the difference against the
live registry is shown (the `stations` table); ``--dry-run`` stops there. Confirmed (``--yes``
or interactively), the new and changed stations are published to `station.registry` with
``changed_via`` = ``import <file name>``, ``changed_by`` = ``--by`` and ``updated_at`` = now;
stations the file lacks are only reported, unless ``--remove-missing`` (tombstones).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from schemas import topics
from schemas.registry import StationProfile
from stationwatch.registry.bilingual import Language, Said
from stationwatch.registry.sheet_columns import BY_FIELD
from stationwatch.registry.sheet_diff import Plan, plan, render, summary
from stationwatch.registry.sheet_files import SheetFileError, Table, read_table
from stationwatch.registry.sheet_registry import live_registry, publish
from stationwatch.registry.sheet_rows import Header, RowError, profile_from_row, read_header
from stationwatch.settings import Settings

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
CHANGED_BY_MAX = 64  # schemas.common.ShortText


@dataclass(frozen=True)
class ImportRequest:
    path: Path
    dry_run: bool = False
    yes: bool = False
    remove_missing: bool = False
    changed_by: str | None = None


@dataclass(frozen=True)
class Checked:
    """A file read and validated: its language, its profiles, and every error."""

    language: Language
    profiles: list[StationProfile]
    errors: list[RowError]


def check_table(
    table: Table,
    *,
    live: dict[str, StationProfile],
    now: datetime,
    zone: ZoneInfo,
    changed_by: str | None,
    changed_via: str,
    advance: Callable[[int], None] = lambda _n: None,
) -> Checked:
    """Validate every row of ``table`` (pure)."""
    header: Header = read_header(table.header)
    if header.errors:
        return Checked(header.language, [], header.errors)
    language = header.language
    profiles: list[StationProfile] = []
    errors: list[RowError] = []
    first_row: dict[str, int] = {}
    for row_no, values in table.rows:
        cells: dict[str, str] = {}
        for index, value in enumerate(values):
            column = header.columns[index] if index < len(header.columns) else None
            if column is not None:
                cells[column.field] = value
            elif value:
                errors.append(
                    RowError(
                        row_no,
                        None,
                        Said(
                            f"第 {index + 1} 列有内容 '{value}' 但没有表头",
                            f"column {index + 1} holds '{value}' but has no header",
                        ),
                    )
                )
        result = profile_from_row(
            row_no,
            cells,
            language,
            live=live.get(cells.get("station_id", "")),
            now=now,
            zone=zone,
            changed_by=changed_by,
            changed_via=changed_via,
        )
        advance(1)
        if isinstance(result, list):
            errors.extend(result)
            continue
        if result.station_id in first_row:
            errors.append(
                RowError(
                    row_no,
                    BY_FIELD["station_id"],
                    Said(
                        f"'{result.station_id}' 已在第 {first_row[result.station_id]} 行出现",
                        f"'{result.station_id}' is already on row {first_row[result.station_id]}",
                    ),
                )
            )
            continue
        first_row[result.station_id] = row_no
        profiles.append(result)
    return Checked(language, profiles, errors)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def run_import(
    settings: Settings,
    request: ImportRequest,
    *,
    out: Callable[[str], None],
    err: Callable[[str], None],
    confirm: Callable[[str], bool],
    console: Console | None = None,
) -> int:
    """Run one import; returns the exit code. Raises :class:`StationwatchError` when the
    database or the broker fails."""
    console = console or Console(stderr=True)
    if request.changed_by is not None and not 0 < len(request.changed_by) <= CHANGED_BY_MAX:
        err(f"error: --by: give a name of 1 to {CHANGED_BY_MAX} characters")
        return EXIT_INVALID
    try:
        table = read_table(request.path)
    except SheetFileError as exc:
        err(f"error: {exc}")
        return EXIT_INVALID
    if not table.rows:  # with --remove-missing it would empty the registry
        err(f"error: {request.path.name}: no stations below the header (表头下没有驿站)")
        return EXIT_INVALID
    live = asyncio.run(live_registry(settings))
    zone = ZoneInfo(settings.timezone)
    with _progress(console) as progress:
        task = progress.add_task("检查 / checking", total=len(table.rows))
        checked = check_table(
            table,
            live=live,
            now=datetime.now(zone),
            zone=zone,
            changed_by=request.changed_by,
            changed_via=f"import {request.path.name}"[:300],
            advance=lambda n: progress.advance(task, n),
        )
    language = checked.language
    zh = language == "zh"
    if checked.errors:
        for error in sorted(checked.errors, key=lambda e: -1 if e.row is None else e.row):
            err(error.render(language))
        rows = len({e.row for e in checked.errors})
        err(
            f"{request.path.name}: {len(checked.errors)} 个错误（{rows} 行）；未发布任何内容"
            if zh
            else f"{request.path.name}: {len(checked.errors)} errors in {rows} rows; "
            "nothing was published"
        )
        return EXIT_INVALID
    changes: Plan = plan(checked.profiles, live, language)
    for line in render(changes, language, remove_missing=request.remove_missing):
        out(line)
    counts = summary(changes, language, remove_missing=request.remove_missing)
    records = changes.records(remove_missing=request.remove_missing)
    if request.dry_run:
        out(f"{counts}\n" + ("试运行：未发布任何内容" if zh else "dry run: nothing was published"))
        return EXIT_OK
    if not records:
        out(f"{counts}\n" + ("没有需要发布的变化" if zh else "nothing to publish"))
        return EXIT_OK
    question = (
        f"{counts}\n发布这 {len(records)} 条变化到登记?"
        if zh
        else f"{counts}\npublish these {len(records)} changes to the registry?"
    )
    if not request.yes and not confirm(question):
        err("未发布任何内容" if zh else "nothing was published")
        return EXIT_FAILED
    with _progress(console) as progress:
        task = progress.add_task("发布 / publishing", total=len(records))
        sent = asyncio.run(publish(settings, records, lambda n: progress.advance(task, n)))
    out(
        f"{counts}\n已发布 {sent} 条到 {settings.topic(topics.REGISTRY)}"
        if zh
        else f"{counts}\npublished {sent} records to {settings.topic(topics.REGISTRY)}"
    )
    return EXIT_OK

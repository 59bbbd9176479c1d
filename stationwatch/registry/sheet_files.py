"""Reading and writing the registry spreadsheet as CSV or XLSX (openpyxl).

A file is read as its header and its rows as text, each with the row number a spreadsheet
shows; empty rows are skipped, and so are up to five title rows above the header (the header is
the first row naming two template columns). CSV may be UTF-8 (with or
without the byte-order mark Excel writes) or GB18030/GBK (what Excel on a Chinese Windows saves),
separated by commas or tabs; exports are UTF-8 with the byte-order mark, so Excel shows the
Chinese right. XLSX: the first worksheet is read; numbers, dates and times are turned into the
text they stand for.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Literal, TextIO

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter
from openpyxl.utils.exceptions import InvalidFileException

from stationwatch.errors import StationwatchError
from stationwatch.registry.sheet_columns import match_header

Format = Literal["csv", "xlsx"]
FORMATS: dict[str, Format] = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".xlsx": "xlsx"}
# numeric columns are written as numbers in XLSX, everything else as text (ids, phones)
NUMERIC_FIELDS = frozenset({"lat", "lon", "capacity", "heartbeat_interval_s"})
TITLE_ROWS_MAX = 5  # rows above the header (a title, a date) that are skipped


class SheetFileError(StationwatchError):
    """The file cannot be read as a spreadsheet (format, encoding, damage)."""


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[tuple[int, list[str]]]  # (row number as a spreadsheet shows it, cells)


def format_of(path: Path) -> Format:
    """The format a file name says; :class:`SheetFileError` for any other."""
    suffix = path.suffix.lower()
    if suffix in FORMATS:
        return FORMATS[suffix]
    if suffix in (".xls", ".et", ".ods", ".numbers"):
        raise SheetFileError(
            f"{path.name}: {suffix} workbooks are not read; save it as .xlsx or .csv "
            "(另存为 .xlsx 或 .csv)"
        )
    raise SheetFileError(f"{path.name}: give a .csv or .xlsx file (请使用 .csv 或 .xlsx 文件)")


def read_table(path: Path) -> Table:
    if not path.is_file():
        raise SheetFileError(f"{path}: no such file (文件不存在)")
    kind = format_of(path)
    raw = _read_csv(path) if kind == "csv" else _read_xlsx(path)
    filled = [(number, cells) for number, cells in raw if any(cells)]
    if not filled:
        raise SheetFileError(f"{path.name}: the file is empty (文件是空的)")
    # A title row ("顺义区工会驿站登记表") may sit above the header: the header is the first of
    # the first rows that names at least two template columns, else the first row.
    start = next(
        (
            i
            for i, (_number, cells) in enumerate(filled[: TITLE_ROWS_MAX + 1])
            if sum(1 for cell in cells if cell and match_header(cell)) >= 2
        ),
        0,
    )
    return Table(filled[start][1], filled[start + 1 :])


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise SheetFileError(
            f"{path.name}: not UTF-8 or GB18030/GBK text (文件编码无法识别，请另存为 UTF-8 CSV)"
        ) from None


def _read_csv(path: Path) -> Iterable[tuple[int, list[str]]]:
    text = _decode(path)
    first = text.split("\n", 1)[0]
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    try:
        for number, cells in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter), 1):
            yield number, [cell.strip() for cell in cells]
    except csv.Error as exc:
        raise SheetFileError(f"{path.name}: not a valid CSV file: {exc} (CSV 格式有误)") from None


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.strftime("%H:%M")
    return str(value).strip()


def _read_xlsx(path: Path) -> Iterable[tuple[int, list[str]]]:
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as exc:
        raise SheetFileError(
            f"{path.name}: not an XLSX workbook ({exc}) (不是有效的 .xlsx 文件)"
        ) from None
    try:
        sheet = workbook.worksheets[0]
        for number, values in enumerate(sheet.iter_rows(values_only=True), 1):
            yield number, [_cell_text(value) for value in values]
    finally:
        workbook.close()


def write_csv(target: TextIO | Path, header: Sequence[str], rows: Iterable[list[str]]) -> None:
    """Write CSV to a path (UTF-8 with the byte-order mark) or to an open text stream."""
    if isinstance(target, Path):
        with target.open("w", encoding="utf-8-sig", newline="") as stream:
            _write_csv(stream, header, rows)
    else:
        _write_csv(target, header, rows)


def _write_csv(stream: TextIO, header: Sequence[str], rows: Iterable[list[str]]) -> None:
    writer = csv.writer(stream)
    writer.writerow(header)
    writer.writerows(rows)


def write_xlsx(
    path: Path,
    header: Sequence[str],
    fields: Sequence[str],
    rows: Iterable[list[str]],
    notes: Sequence[tuple[str, str]] = (),
) -> None:
    """One worksheet with the header in bold and frozen; ``notes`` (column, what it takes) on a
    second worksheet. Numeric columns are numbers; the rest stay text, also when they begin
    with ``=`` (never a formula)."""
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None  # a new workbook has one sheet  # noqa: S101
    sheet.title = "驿站" if not header[0].isascii() else "stations"
    sheet.append(list(header))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    sheet.freeze_panes = "B2"
    numeric = [field in NUMERIC_FIELDS for field in fields]
    for number, cells in enumerate(rows, 2):
        for col, (text, is_number) in enumerate(zip(cells, numeric, strict=True), 1):
            if is_number and text:
                value: float = int(text) if text.lstrip("-").isdigit() else float(text)
                sheet.cell(number, col, value)
            elif text:
                cell = sheet.cell(number, col, text)
                cell.data_type = "s"
    for col, title in enumerate(header, 1):
        width = 40 if fields[col - 1] in ("name", "opening_hours", "services") else 14
        sheet.column_dimensions[get_column_letter(col)].width = max(width, len(title) * 2 + 2)
    if notes:
        about = workbook.create_sheet("说明" if not header[0].isascii() else "notes")
        for row in notes:
            about.append(list(row))
        about.column_dimensions["A"].width = 22
        about.column_dimensions["B"].width = 100
    try:
        workbook.save(path)
    except OSError as exc:
        raise SheetFileError(f"{path}: cannot write: {exc}") from None

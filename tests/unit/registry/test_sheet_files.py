"""CSV and XLSX files as people save them: encodings, separators, numbers Excel made of text,
and the templates shipped in deploy/."""

from __future__ import annotations

from datetime import datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook, load_workbook

from stationwatch.registry.sheet_columns import COLUMNS, VALUE_LABELS
from stationwatch.registry.sheet_files import SheetFileError, read_table, write_csv, write_xlsx
from stationwatch.registry.sheet_import import check_table
from stationwatch.registry.sheet_rows import comparable, read_header

ROOT = Path(__file__).resolve().parents[3]
ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=ZONE)
HEADER = "编号,名称,纬度,经度,开放时间\n"
ROW = 'SY-0001,空港祥云工会驿站,40.08,116.58,"周一至周五 8:00-12:00,14:00-18:00"\n'


@pytest.mark.parametrize(
    ("encoding", "text"),
    [
        ("utf-8", HEADER + ROW),
        ("utf-8-sig", HEADER + ROW),  # Excel's "CSV UTF-8"
        ("gb18030", HEADER + ROW),  # Excel's CSV on a Chinese Windows
        (
            "utf-8",
            (HEADER + ROW)
            .replace(",", "\t")
            .replace('"周一至周五 8:00-12:00\t', '"周一至周五 8:00-12:00,'),
        ),
        ("utf-8", HEADER + "\n,,,,\n" + ROW),  # empty rows are skipped, numbering kept
    ],
)
def test_csv_as_saved(tmp_path: Path, encoding: str, text: str) -> None:
    path = tmp_path / "stations.csv"
    path.write_bytes(text.encode(encoding))
    table = read_table(path)
    assert table.header == ["编号", "名称", "纬度", "经度", "开放时间"]
    assert len(table.rows) == 1
    number, cells = table.rows[0]
    assert number == text.count("\n")  # the row number a spreadsheet shows
    assert cells == [
        "SY-0001",
        "空港祥云工会驿站",
        "40.08",
        "116.58",
        "周一至周五 8:00-12:00,14:00-18:00",
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.xls", b"\xd0\xcf", "a.xls: .xls workbooks are not read; save it as .xlsx or .csv"),
        ("a.pdf", b"%PDF", "a.pdf: give a .csv or .xlsx file"),
        ("a.xlsx", b"not a zip", "a.xlsx: not an XLSX workbook"),
        ("a.csv", b"", "a.csv: the file is empty"),
        ("a.csv", b"\xff\xfe\x00\xd8\x00", "a.csv: not UTF-8 or GB18030/GBK text"),
    ],
)
def test_unreadable_files_say_why(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(SheetFileError) as caught:
        read_table(path)
    assert str(caught.value).startswith(message)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SheetFileError, match="no such file"):
        read_table(tmp_path / "nope.csv")


def test_xlsx_cells_typed_by_excel_read_as_their_text(tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["编号", "名称", "纬度", "经度", "开放时间", "座位", "关闭至", "联系电话"])
    excel_date = datetime(2026, 12, 5)  # noqa: DTZ001 - Excel keeps dates without a zone
    sheet.append(["SY-0001", "站", 40.0801, 116.5842, "8:00-20:00", 12.0, excel_date, 13800000000])
    sheet.append([None] * 8)
    sheet.append(["SY-0002", "站2", 40, 116, time(8, 30), None, None, None])
    path = tmp_path / "stations.xlsx"
    workbook.save(path)
    table = read_table(path)
    assert table.rows == [
        (
            2,
            [
                "SY-0001",
                "站",
                "40.0801",
                "116.5842",
                "8:00-20:00",
                "12",
                "2026-12-05T00:00:00",
                "13800000000",
            ],
        ),
        (4, ["SY-0002", "站2", "40", "116", "08:30", "", "", ""]),
    ]


def test_xlsx_written_reads_back_the_same_text(tmp_path: Path) -> None:
    header = [c.zh for c in COLUMNS]
    fields = [c.field for c in COLUMNS]
    row = [
        "SY-0001",
        '=HYPERLINK("x")',
        "顺义区",
        "",
        "标准",
        "其他",
        "40.08011",
        "116.5",
        "饮水",
        "12",
        "08:00-20:00",
        "否",
        "",
        "010-0000",
        "",
        "",
        "正常",
        "",
        "",
    ]
    path = tmp_path / "out.xlsx"
    write_xlsx(path, header, fields, [row], [("列", "说明")])
    table = read_table(path)
    assert table.header == header
    assert table.rows == [(2, row)]  # text beginning with = stays text, never a formula
    workbook = load_workbook(path)
    assert workbook.sheetnames == ["驿站", "说明"]
    assert workbook["驿站"]["G2"].value == 40.08011  # coordinates are numbers


def test_csv_written_with_a_byte_order_mark_for_excel(tmp_path: Path) -> None:
    path = tmp_path / "out.csv"
    write_csv(path, ["编号"], [["SY-0001"]])
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert read_table(path).rows == [(2, ["SY-0001"])]


def test_the_shipped_templates_are_valid_and_say_the_same() -> None:
    """deploy/stations-template.csv (Chinese) and .en.csv (English) hold the same stations."""
    checked = {}
    for name in ("stations-template.csv", "stations-template.en.csv"):
        table = read_table(ROOT / "deploy" / name)
        result = check_table(
            table, live={}, now=NOW, zone=ZONE, changed_by=None, changed_via=f"import {name}"
        )
        assert result.errors == [], name
        assert read_header(table.header).present == {c.field for c in COLUMNS}, name
        checked[name] = [comparable(p) for p in result.profiles]
    zh, en = checked.values()
    assert zh == en
    assert len(zh) == 6
    lifecycles = {p["lifecycle"] for p in zh}
    assert lifecycles == {"active", "temporarily_closed", "decommissioned"}


def test_the_readme_documents_every_column_and_label() -> None:
    """The README's header mapping names every column in both languages and every code's
    Chinese label, as the code reads them."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Station spreadsheets") :]
    table = section[
        section.index("| 中文表头") : section.index("\n\n", section.index("| 中文表头"))
    ]
    for column in COLUMNS:
        assert column.zh in table, column.zh
        assert f"`{column.field}`" in table, column.field
    for field, labels in VALUE_LABELS.items():
        for code, (label, _others) in labels.items():
            assert f"{label} `{code}`" in table, (field, code)


def test_title_rows_above_the_header_are_skipped(tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["顺义区工会驿站登记表"])
    sheet.append(["填表日期: 2026-12-01"])
    sheet.append(["编号", "名称", "纬度", "经度", "开放时间"])
    sheet.append(["SY-0001", "站", 40.1, 116.6, "24小时"])
    path = tmp_path / "titled.xlsx"
    workbook.save(path)
    table = read_table(path)
    assert table.header == ["编号", "名称", "纬度", "经度", "开放时间"]
    assert table.rows == [(4, ["SY-0001", "站", "40.1", "116.6", "24小时"])]

"""Spreadsheet headers and rows: the header mapping in both languages, one precise error per
bad cell (row, column, in the file's language), and rows that read back as they were written."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from schemas.registry import StationProfile
from stationwatch.fleet import build_fleet
from stationwatch.registry.sheet_columns import COLUMNS, match_header
from stationwatch.registry.sheet_files import Table
from stationwatch.registry.sheet_import import check_table
from stationwatch.registry.sheet_rows import (
    comparable,
    profile_from_row,
    read_header,
    row_from_profile,
)

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=ZONE)
ZH_HEADER = [c.zh for c in COLUMNS]
EN_HEADER = [c.field for c in COLUMNS]
GOOD_ZH = {
    "station_id": "SY-0001",
    "name": "空港祥云工会驿站",
    "district": "顺义区",
    "street": "空港街道",
    "category": "商圈24小时",
    "host": "商圈",
    "lat": "40.0801",
    "lon": "116.5842",
    "services": "饮水、热饭、充电",
    "capacity": "12",
    "opening_hours": "24小时",
    "holidays_open": "是",
    "heartbeat_interval_s": "30",
    "contact_phone": "010-00000000",
    "responsible_person": "张伟",
    "responsible_phone": "13800000000",
    "lifecycle": "正常",
    "closed_until": "",
    "closure_reason": "",
}


def read(cells: dict[str, str], live: StationProfile | None = None) -> StationProfile:
    result = profile_from_row(
        2, cells, "zh", live=live, now=NOW, zone=ZONE, changed_by="王", changed_via="import a.csv"
    )
    assert isinstance(result, StationProfile), result
    return result


@pytest.mark.parametrize(
    ("header", "field", "language"),
    [
        ("编号", "station_id", "zh"),
        ("station_id", "station_id", "en"),
        ("Station ID", "station_id", "en"),
        ("站点编号", "station_id", "zh"),
        ("名称", "name", "zh"),
        ("区", "district", "zh"),
        ("街道", "street", "zh"),
        ("类别", "category", "zh"),
        ("承办方", "host", "zh"),
        ("纬度", "lat", "zh"),
        ("latitude", "lat", "en"),
        ("经度", "lon", "zh"),
        ("lng", "lon", "en"),
        ("服务", "services", "zh"),
        ("座位", "capacity", "zh"),
        ("座位数", "capacity", "zh"),
        ("开放时间", "opening_hours", "zh"),
        ("Opening Hours", "opening_hours", "en"),
        ("opening-hours", "opening_hours", "en"),
        ("节假日开放", "holidays_open", "zh"),
        ("心跳间隔(秒)", "heartbeat_interval_s", "zh"),
        ("心跳间隔（秒）", "heartbeat_interval_s", "zh"),
        ("heartbeat_interval_s", "heartbeat_interval_s", "en"),
        ("联系电话", "contact_phone", "zh"),
        ("负责人", "responsible_person", "zh"),
        ("负责人电话", "responsible_phone", "zh"),
        ("responsible_phone", "responsible_phone", "en"),
        ("状态", "lifecycle", "zh"),
        ("lifecycle", "lifecycle", "en"),
        ("关闭至", "closed_until", "zh"),
        ("关闭原因", "closure_reason", "zh"),
        (" CLOSURE_REASON ", "closure_reason", "en"),
    ],
)
def test_header_mapping(header: str, field: str, language: str) -> None:
    found = match_header(header)
    assert found is not None
    assert (found[0].field, found[1]) == (field, language)


def test_a_header_in_chinese_or_english_maps_every_column() -> None:
    for header, language in ((ZH_HEADER, "zh"), (EN_HEADER, "en")):
        read_back = read_header(header)
        assert read_back.errors == []
        assert read_back.language == language
        assert [c.field for c in read_back.columns if c] == [c.field for c in COLUMNS]


@pytest.mark.parametrize(
    ("header", "messages"),
    [
        (
            ["编号", "名称", "纬度", "经度", "开放时间", "备注"],
            [
                "表头: 不认识的列 '备注'（可用的列: 编号、名称、区、街道、类别、承办方、"
                "纬度、经度、服务、座位、开放时间、节假日开放、心跳间隔(秒)、联系电话、负责人、负责人电话、状态、"
                "关闭至、关闭原因）"
            ],
        ),
        (
            ["station_id", "name", "lat", "lon", "opening_hours", "station id"],
            ["header, station id: this column appears twice ('station_id' and 'station id')"],
        ),
        (["编号", "名称", "纬度", "开放时间"], ["表头，经度: 缺少这一列"]),
        (
            ["station_id", "name", "lat"],
            [
                "header, longitude: this column is missing",
                "header, opening hours: this column is missing",
            ],
        ),
    ],
)
def test_bad_headers(header: list[str], messages: list[str]) -> None:
    read_back = read_header(header)
    assert [e.render(read_back.language) for e in read_back.errors] == messages


def test_a_row_in_chinese() -> None:
    profile = read(GOOD_ZH)
    assert profile.category == "business_circle_24h"
    assert profile.host == "business_circle"
    assert profile.services == ["water", "hot_meal", "charging"]
    assert profile.opening_hours.always_open
    assert profile.opening_hours.holidays_open
    assert (profile.changed_by, profile.changed_via, profile.updated_at) == (
        "王",
        "import a.csv",
        NOW,
    )


@pytest.mark.parametrize(
    ("field", "value", "zh", "en"),
    [
        (
            "station_id",
            "sy-1",
            "'sy-1' 不是有效的编号（大写字母-数字，如 SY-0001）",
            "'sy-1' is not a station id like SY-0001",
        ),
        ("name", "", "没有填写", "is empty"),
        ("name", "名" * 201, "最多 200 个字符", "String should have at most 200 characters"),
        (
            "category",
            "大型",
            "'大型' 不是有效的类别（可填: 标准、24小时智能、货车司机、商圈24小时）",
            "'大型' is not a known category "
            "(standard, smart_24h, truck_driver, business_circle_24h)",
        ),
        (
            "host",
            "学校",
            "'学校' 不是有效的承办方（可填: 党群服务中心、餐饮、快递、超市、商圈、市场、其他）",
            "'学校' is not a known host (party_service_center, restaurant, courier_station, "
            "supermarket, business_circle, market, other)",
        ),
        ("lat", "北纬40", "'北纬40' 不是数字", "'北纬40' is not a number"),
        ("lat", "95", "95 不在 -90 到 90 之间", "95 is not between -90 and 90"),
        ("lon", "", "没有填写", "is empty"),
        (
            "services",
            "饮水、按摩",
            "'按摩' 不是有效的服务（可填: 饮水、热饭、充电、休息、避雨、取暖、纳凉、如厕、"
            "便民服务、法律援助、困难帮扶、心理疏导、洗漱、就餐区、常用药品、无线网络、阅读）",
            "'按摩' is not a known service (water, hot_meal, charging, rest, rain_shelter, "
            "warming, cooling, toilet, convenience, legal_aid, hardship_aid, counseling, washing, "
            "dining_area, medicine, wifi, reading)",
        ),
        ("services", "饮水、water", "'water' 重复了", "'water' is listed twice"),
        ("capacity", "十二", "'十二' 不是整数", "'十二' is not a whole number"),
        ("capacity", "12.5", "'12.5' 不是整数", "'12.5' is not a whole number"),
        ("capacity", "-1", "-1 不在 0 到 100000 之间", "-1 is not between 0 and 100000"),
        (
            "opening_hours",
            "8:00-25:00",
            "'8:00-25:00' 不是有效的时间段（25:00 不是一天中的时刻）",
            "'8:00-25:00' is not a valid time span (25:00 is not a time of day)",
        ),
        ("holidays_open", "也许", "'也许' 请填 是 或 否", "'也许' is not yes or no"),
        ("heartbeat_interval_s", "0", "0 不在 1 到 86400 之间", "0 is not between 1 and 86400"),
        ("contact_phone", "1" * 33, "最多 32 个字符", "String should have at most 32 characters"),
        (
            "lifecycle",
            "坏了",
            "'坏了' 不是有效的状态（可填: 正常、暂停、撤销）",
            "'坏了' is not a known lifecycle (active, temporarily_closed, decommissioned)",
        ),
        (
            "closed_until",
            "下周一",
            "'下周一' 不是有效的时间（如 2026-12-05 或 2026-12-05T18:00）",
            "'下周一' is not a date or time like 2026-12-05 or 2026-12-05T18:00",
        ),
        (
            "closed_until",
            "2026-12-05",
            "只有状态为暂停的驿站才有关闭期限",
            "only a temporarily_closed station has one",
        ),
        (
            "closure_reason",
            "x\x00",
            "不能含 NUL 字符",
            "must not contain NUL (\\u0000): PostgreSQL cannot store it",
        ),
    ],
)
def test_one_error_per_bad_cell(field: str, value: str, zh: str, en: str) -> None:
    result = profile_from_row(
        17,
        GOOD_ZH | {field: value},
        "zh",
        live=None,
        now=NOW,
        zone=ZONE,
        changed_by=None,
        changed_via="import a.csv",
    )
    assert isinstance(result, list)
    assert len(result) == 1
    column = next(c for c in COLUMNS if c.field == field)
    assert result[0].render("zh") == f"第 17 行，{column.zh}: {zh}"
    assert result[0].render("en") == f"row 17, {column.en_label}: {en}"


def test_the_issues_example_message() -> None:
    result = profile_from_row(
        17,
        GOOD_ZH | {"opening_hours": "8:00-25:00"},
        "zh",
        live=None,
        now=NOW,
        zone=ZONE,
        changed_by=None,
        changed_via="import a.csv",
    )
    assert isinstance(result, list)
    assert result[0].render("zh").startswith("第 17 行，开放时间: '8:00-25:00' 不是有效的时间段")
    assert (
        result[0]
        .render("en")
        .startswith("row 17, opening hours: '8:00-25:00' is not a valid time span")
    )


def test_every_bad_cell_of_a_row_is_reported() -> None:
    result = profile_from_row(
        5,
        GOOD_ZH | {"lat": "x", "capacity": "y", "lifecycle": "z"},
        "zh",
        live=None,
        now=NOW,
        zone=ZONE,
        changed_by=None,
        changed_via="import a.csv",
    )
    assert isinstance(result, list)
    assert [e.column.field for e in result if e.column] == ["capacity", "lifecycle", "lat"]


@pytest.mark.parametrize(
    ("hours", "column", "expected"),
    [
        ("08:00-20:00", "是", True),
        ("08:00-20:00", "否", False),
        ("08:00-20:00", "", False),
        ("08:00-20:00 节假日开放", "", True),
        ("08:00-20:00 节假日开放", "是", True),
        ("08:00-20:00 节假日休息", "", False),
    ],
)
def test_holidays_from_the_column_or_the_hours(hours: str, column: str, expected: bool) -> None:
    profile = read(GOOD_ZH | {"opening_hours": hours, "holidays_open": column})
    assert profile.opening_hours.holidays_open is expected


def test_holidays_column_contradicting_the_hours_is_an_error() -> None:
    result = profile_from_row(
        3,
        GOOD_ZH | {"opening_hours": "8:00-20:00 节假日开放", "holidays_open": "否"},
        "zh",
        live=None,
        now=NOW,
        zone=ZONE,
        changed_by=None,
        changed_via="import a.csv",
    )
    assert isinstance(result, list)
    assert [e.render("zh") for e in result] == [
        "第 3 行，节假日开放: '否' 与开放时间 '8:00-20:00 节假日开放' 矛盾"
    ]


def test_a_column_the_file_lacks_keeps_the_live_value() -> None:
    live = read(GOOD_ZH | {"responsible_person": "李", "capacity": "40"})
    cells = {k: v for k, v in GOOD_ZH.items() if k not in ("responsible_person", "capacity")}
    again = read(cells | {"name": "新名字"}, live=live)
    assert (again.responsible_person, again.capacity, again.name) == ("李", 40, "新名字")
    # an empty cell in a column the file has clears it
    cleared = read(GOOD_ZH | {"responsible_person": ""}, live=live)
    assert cleared.responsible_person is None


def test_closed_until_without_offset_is_station_local() -> None:
    profile = read(GOOD_ZH | {"lifecycle": "暂停", "closed_until": "2026-12-05 18:00"})
    assert profile.closed_until == datetime(2026, 12, 5, 18, 0, tzinfo=ZONE)
    assert profile.lifecycle == "temporarily_closed"


def _table(header: list[str], rows: list[list[str]]) -> Table:
    return Table(header, [(i, row) for i, row in enumerate(rows, 2)])


def test_duplicate_ids_and_stray_cells_are_errors() -> None:
    row = [GOOD_ZH[c.field] for c in COLUMNS]
    table = _table(ZH_HEADER, [row, [*row, "多出来的"], row])
    checked = check_table(
        table, live={}, now=NOW, zone=ZONE, changed_by=None, changed_via="import a.csv"
    )
    assert [e.render("zh") for e in checked.errors] == [
        "第 3 行: 第 20 列有内容 '多出来的' 但没有表头",
        "第 3 行，编号: 'SY-0001' 已在第 2 行出现",
        "第 4 行，编号: 'SY-0001' 已在第 2 行出现",
    ]


@pytest.mark.parametrize("language", ["zh", "en"])
def test_the_simulated_fleet_reads_back_unchanged(language: str) -> None:
    """Every one of the simulator's 1,419 stations, written as a row and read back, is the
    same profile (the file's header language either way)."""
    fleet = build_fleet(1419, 1, datetime(2026, 11, 30, tzinfo=UTC))
    header = [c.header(language) for c in COLUMNS]  # type: ignore[arg-type]
    table = _table(header, [row_from_profile(p, language) for p in fleet])  # type: ignore[arg-type]
    checked = check_table(
        table, live={}, now=NOW, zone=ZONE, changed_by=None, changed_via="import a.csv"
    )
    assert checked.errors == []
    assert checked.language == language
    assert [comparable(p) for p in checked.profiles] == [comparable(p) for p in fleet]


@pytest.mark.parametrize(
    ("written", "interval"),
    [
        ("", None),
        ("无", None),
        ("无设备", None),
        ("-", None),
        ("none", None),
        ("No device", None),
        ("30", 30),
        ("60.0", 60),
    ],
)
def test_heartbeat_interval_or_no_device(written: str, interval: int | None) -> None:
    assert read(GOOD_ZH | {"heartbeat_interval_s": written}).heartbeat_interval_s == interval

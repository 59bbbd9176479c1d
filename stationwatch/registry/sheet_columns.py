"""The registry spreadsheet template: its columns, their Chinese and English headers, and the
labels of coded values (category, host, services, lifecycle) in both languages.

Pure: no I/O. A header matches a column by its template header in either language or an alias,
ignoring case, spaces, ``_``/``-`` and full-width brackets; a coded value matches by its English
code or a Chinese label, the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import get_args

from schemas.registry import Category, Host, Lifecycle, Service
from stationwatch.registry.bilingual import Language


@dataclass(frozen=True)
class Column:
    field: str  # the template's English header, and the registry field it fills
    zh: str  # the template's Chinese header
    en_label: str  # how English messages name it
    aliases: tuple[str, ...] = ()
    required: bool = False

    def label(self, language: Language) -> str:
        return self.zh if language == "zh" else self.en_label

    def header(self, language: Language) -> str:
        return self.zh if language == "zh" else self.field


COLUMNS: tuple[Column, ...] = (
    Column("station_id", "编号", "station id", ("站点编号", "驿站编号", "id"), required=True),
    Column("name", "名称", "name", ("驿站名称", "站点名称", "station name"), required=True),
    Column("district", "区", "district", ("所属区", "区县", "行政区")),
    Column("street", "街道", "street", ("街道乡镇", "街乡", "所属街道", "街道/乡镇", "town")),
    Column("category", "类别", "category", ("类型", "驿站类别", "type")),
    Column("host", "承办方", "host", ("依托单位", "承建单位", "host type")),
    Column("lat", "纬度", "latitude", ("latitude",), required=True),
    Column("lon", "经度", "longitude", ("longitude", "lng"), required=True),
    Column("services", "服务", "services", ("服务项目", "服务内容")),
    Column("capacity", "座位", "capacity", ("座位数", "容量", "seats")),
    Column("opening_hours", "开放时间", "opening hours", ("营业时间", "hours"), required=True),
    Column("holidays_open", "节假日开放", "holidays open", ("节假日", "holidays")),
    Column(
        "heartbeat_interval_s",
        "心跳间隔(秒)",
        "heartbeat interval (s)",
        ("心跳间隔", "heartbeat interval", "heartbeat_interval"),
    ),
    Column("contact_phone", "联系电话", "contact phone", ("电话", "phone", "contact")),
    Column("responsible_person", "负责人", "responsible person", ("responsible",)),
    Column("responsible_phone", "负责人电话", "responsible phone", ("负责人联系电话",)),
    Column("lifecycle", "状态", "lifecycle", ("运行状态", "status", "state")),
    Column("closed_until", "关闭至", "closed until", ("暂停至", "关闭截止")),
    Column("closure_reason", "关闭原因", "closure reason", ("暂停原因",)),
)
BY_FIELD = {column.field: column for column in COLUMNS}


def normalize(text: str) -> str:
    """Case, spaces, ``_``/``-`` and full-width brackets do not matter in headers and codes."""
    text = text.strip().lower().replace("（", "(").replace("）", ")")
    return re.sub(r"[\s_\-]+", "", text)


_HEADERS: dict[str, tuple[Column, Language]] = {}
for _column in COLUMNS:
    _HEADERS[normalize(_column.field)] = (_column, "en")
    _HEADERS[normalize(_column.en_label)] = (_column, "en")
    _HEADERS[normalize(_column.zh)] = (_column, "zh")
    for _alias in _column.aliases:
        _HEADERS[normalize(_alias)] = (_column, "zh" if not _alias.isascii() else "en")


def match_header(header: str) -> tuple[Column, Language] | None:
    """The column a header names, and the language it is written in; ``None`` if unknown."""
    return _HEADERS.get(normalize(header))


# -- coded values -------------------------------------------------------------------------------

# code: (the Chinese label written on export, other Chinese forms accepted)
CATEGORY_LABELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "standard": ("标准", ("普通", "标准驿站", "普通驿站")),
    "smart_24h": ("24小时智能", ("智能24小时", "24小时智慧", "智慧24小时", "24小时智能驿站")),
    "truck_driver": ("货车司机", ("货车司机驿站", "货车司机之家")),
    "business_circle_24h": ("商圈24小时", ("24小时商圈", "商圈24小时驿站")),
}
HOST_LABELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "party_service_center": ("党群服务中心", ("党群服务站", "党群中心")),
    "restaurant": ("餐饮", ("餐馆", "饭店", "餐厅")),
    "courier_station": ("快递", ("快递站", "快递网点", "驿站快递")),
    "supermarket": ("超市", ("商超", "便利店")),
    "business_circle": ("商圈", ("商场", "商业综合体")),
    "market": ("市场", ("农贸市场", "批发市场")),
    "other": ("其他", ("其它",)),
}
SERVICE_LABELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "water": ("饮水", ("热水", "喝水", "饮用水")),
    "hot_meal": ("热饭", ("热餐", "餐食加热", "加热饭菜")),
    "charging": ("充电", ("手机充电", "电动车充电")),
    "rest": ("休息", ("歇脚", "休憩")),
    "rain_shelter": ("避雨", ("避风避雨", "遮风避雨")),
    "warming": ("取暖", ("御寒",)),
    "cooling": ("纳凉", ("避暑", "降温")),
    "toilet": ("如厕", ("厕所", "卫生间", "洗手间")),
    "convenience": ("便民服务", ("便民",)),
    "legal_aid": ("法律援助", ("法律咨询",)),
    "hardship_aid": ("困难帮扶", ("帮扶",)),
    "counseling": ("心理疏导", ("心理咨询",)),
    "washing": ("洗漱", ("洗浴", "洗衣", "洗漱区")),
    "dining_area": ("就餐区", ("用餐区", "就餐")),
    "medicine": ("常用药品", ("药品", "药箱", "医药箱")),
    "wifi": ("无线网络", ("无线上网", "网络")),
    "reading": ("阅读", ("图书", "书报", "阅读角")),
}
LIFECYCLE_LABELS: dict[str, tuple[str, tuple[str, ...]]] = {
    "active": ("正常", ("运行", "运行中", "开放", "在用", "运营")),
    "temporarily_closed": ("暂停", ("临时关闭", "暂时关闭", "暂停开放", "临时闭站", "暂停服务")),
    "decommissioned": ("撤销", ("已撤销", "停用", "关停", "撤站", "已撤站")),
}
VALUE_LABELS: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "category": CATEGORY_LABELS,
    "host": HOST_LABELS,
    "services": SERVICE_LABELS,
    "lifecycle": LIFECYCLE_LABELS,
}
# every code of the registry schema has its labels
assert set(CATEGORY_LABELS) == set(get_args(Category))  # noqa: S101
assert set(HOST_LABELS) == set(get_args(Host))  # noqa: S101
assert set(SERVICE_LABELS) == set(get_args(Service))  # noqa: S101
assert set(LIFECYCLE_LABELS) == set(get_args(Lifecycle))  # noqa: S101

_CODES: dict[str, dict[str, str]] = {
    field: {
        normalize(form): code
        for code, (label, others) in labels.items()
        for form in (code, label, *others)
    }
    for field, labels in VALUE_LABELS.items()
}


def code_of(field: str, value: str) -> str | None:
    """The English code a written value stands for (code or Chinese label), or ``None``."""
    return _CODES[field].get(normalize(value))


def label_of(field: str, code: str, language: Language) -> str:
    """How a code is written in a file of ``language``: its Chinese label, or the code."""
    return VALUE_LABELS[field][code][0] if language == "zh" else code


def known_values(field: str, language: Language) -> str:
    """The values a column takes, for error messages."""
    return ("、" if language == "zh" else ", ").join(
        label_of(field, code, language) for code in VALUE_LABELS[field]
    )


TRUE_WORDS = frozenset({"是", "开放", "对", "√", "✓", "yes", "y", "true", "1"})
FALSE_WORDS = frozenset({"否", "不开放", "不", "×", "✗", "no", "n", "false", "0"})


def yes_no(value: bool, language: Language) -> str:
    if language == "zh":
        return "是" if value else "否"
    return "yes" if value else "no"

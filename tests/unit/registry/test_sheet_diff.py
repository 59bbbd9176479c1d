"""What an import would change: added, changed fields old → new, lifecycle changes, stations
missing from the file (reported; removed only when asked)."""

from __future__ import annotations

from datetime import UTC, datetime

from schemas.registry import StationProfile
from stationwatch.fleet import build_fleet
from stationwatch.registry.sheet_diff import plan, render, summary

NOW = datetime(2026, 12, 2, tzinfo=UTC)


def fleet() -> list[StationProfile]:
    return build_fleet(6, 1, NOW)


def edited(profile: StationProfile, **changes: object) -> StationProfile:
    data = profile.model_dump(mode="json") | changes
    return StationProfile.model_validate(data, strict=False)


def test_no_change_when_only_the_import_fields_differ() -> None:
    live = {p.station_id: p for p in fleet()}
    again = [
        edited(p, updated_at="2026-12-03T00:00:00Z", changed_by="王", changed_via="import x.csv")
        for p in fleet()
    ]
    result = plan(again, live, "zh")
    assert (result.added, result.changed, result.unchanged, result.removed) == ([], [], 6, [])
    assert result.records(remove_missing=True) == []


def test_added_changed_lifecycle_and_missing() -> None:
    stations = fleet()
    live = {p.station_id: p for p in stations[:5]}
    new = stations[5]
    hours = {"always_open": False, "weekly": {"mon": [["08:00", "12:00"]]}, "holidays_open": True}
    file = [
        edited(stations[0], name="新名字", opening_hours=hours),
        edited(stations[1], lifecycle="decommissioned"),
        stations[2],
        stations[3],
        new,
    ]
    result = plan(file, live, "zh")
    assert [p.station_id for p in result.added] == [new.station_id]
    assert [c.new.station_id for c in result.changed] == ["SY-0001", "SY-0002"]
    assert [c.new.station_id for c in result.lifecycle_changes] == ["SY-0002"]
    assert result.unchanged == 2
    assert [p.station_id for p in result.removed] == ["SY-0005"]
    first = result.changed[0].fields
    assert [(f.label, f.old, f.new) for f in first] == [
        ("名称", "空港祥云工会驿站", "新名字"),
        ("开放时间", "24小时", "周一 08:00-12:00"),
    ]
    lines = render(result, "zh", remove_missing=False)
    assert f"新增    {new.station_id} {new.name}" in lines
    assert "    名称: '空港祥云工会驿站' → '新名字'" in lines
    assert any(line.startswith("删除  SY-0005") and "仅报告" in line for line in lines)
    assert "状态变化:" in lines
    assert f"    SY-0002 {stations[1].name}: 正常 → 撤销" in lines
    english = render(plan(file, live, "en"), "en", remove_missing=True)
    assert "    name: '空港祥云工会驿站' → '新名字'" in english
    assert "    opening hours: '24 hours' → 'Mon 08:00-12:00'" in english
    assert any(
        line.startswith("removed  SY-0005") and "will be removed" in line for line in english
    )
    # missing stations are published (tombstones) only when asked
    kept = result.records(remove_missing=False)
    assert [(sid, p is None) for sid, p in kept] == [
        (new.station_id, False),
        ("SY-0001", False),
        ("SY-0002", False),
    ]
    assert result.records(remove_missing=True)[-1] == ("SY-0005", None)
    assert summary(result, "en", remove_missing=False) == (
        "1 added, 2 changed, 2 unchanged, 1 removed (reported only), 0 errors"
    )
    assert summary(result, "zh", remove_missing=True) == ("新增 1，修改 2，未变 2，删除 1，错误 0")

"""History entries from two registry records: what changed, old and new values, and when."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from stationwatch.registry.history import (
    HISTORY_COLUMNS,
    changed_fields,
    describe_values,
    inspection_entry,
    registry_change,
)
from tests import factories

T1 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
T2 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


def record(at: datetime, **overrides: Any) -> dict[str, Any]:
    """As the worker stores it: the whole model dumped as JSON, unset fields null."""
    base = factories.profile("SY-0001", updated_at=at.isoformat(), **overrides)
    base.setdefault("closed_until", None)
    base.setdefault("closure_reason", None)
    base.setdefault("changed_by", None)
    base.setdefault("changed_via", None)
    return base


def test_a_first_record_is_added_with_its_data() -> None:
    entry = registry_change(None, record(T1, changed_by="王", changed_via="import a.xlsx"))
    assert entry is not None
    assert (entry.what, entry.time, entry.changed_by, entry.changed_via) == (
        "added",
        T1,
        "王",
        "import a.xlsx",
    )
    assert entry.old is None
    assert entry.new is not None
    assert entry.new["name"] == "测试工会驿站 SY-0001"
    assert "updated_at" not in entry.new  # bookkeeping, not data
    assert "closed_until" not in entry.new  # unset fields are left out


@pytest.mark.parametrize(
    ("change", "what", "old", "new"),
    [
        pytest.param(
            {"capacity": 20}, "changed", {"capacity": 10}, {"capacity": 20}, id="one-field"
        ),
        pytest.param(
            {"services": ["water"], "contact_phone": None},
            "changed",
            {"contact_phone": "010-00000000", "services": ["water", "charging", "rest"]},
            {"contact_phone": None, "services": ["water"]},
            id="two-fields-one-cleared",
        ),
        pytest.param(
            {
                "lifecycle": "temporarily_closed",
                "closed_until": "2026-12-10T00:00:00+08:00",
                "closure_reason": "供暖检修",
            },
            "lifecycle",
            {"closed_until": None, "closure_reason": None, "lifecycle": "active"},
            {
                "closed_until": "2026-12-10T00:00:00+08:00",
                "closure_reason": "供暖检修",
                "lifecycle": "temporarily_closed",
            },
            id="closure",
        ),
        pytest.param(
            {"lifecycle": "decommissioned", "capacity": 0},
            "lifecycle",
            {"capacity": 10, "lifecycle": "active"},
            {"capacity": 0, "lifecycle": "decommissioned"},
            id="lifecycle-with-other-fields",
        ),
        pytest.param(
            {"responsible_person": "李强"},
            "changed",
            {"responsible_person": None},
            {"responsible_person": "李强"},
            id="field-missing-before",
        ),
    ],
)
def test_a_change_keeps_only_the_changed_fields(
    change: dict[str, Any], what: str, old: dict[str, Any], new: dict[str, Any]
) -> None:
    before = record(T1)
    before.pop("responsible_person", None)
    entry = registry_change(before, record(T2, changed_by="王", **change))
    assert entry is not None
    assert (entry.what, entry.time, entry.changed_by) == (what, T2, "王")
    assert (entry.old, entry.new) == (old, new)


def test_only_bookkeeping_changed_is_no_entry() -> None:
    again = record(T2, changed_by="someone else", changed_via="stations import b.csv")
    assert registry_change(record(T1), again) is None


def test_a_removal_keeps_what_was_there() -> None:
    entry = registry_change(record(T1), None, removed_at=T2)
    assert entry is not None
    assert (entry.what, entry.time, entry.new) == ("removed", T2, None)
    assert entry.old is not None
    assert entry.old["name"] == "测试工会驿站 SY-0001"
    assert registry_change(None, None, removed_at=T2) is None


def test_changed_fields_compare_values_not_presence_of_nulls() -> None:
    assert changed_fields({"a": None, "b": 1}, {"b": 1}) == ({}, {})
    assert changed_fields({"a": 1}, {"a": 2, "updated_at": "x"}) == ({"a": 1}, {"a": 2})


def test_a_row_holds_jsonb_as_text_in_column_order() -> None:
    entry = inspection_entry("SY-0001", at=T1, result="issues", note="饮水机故障", by="李强")
    row = dict(zip(HISTORY_COLUMNS, entry.row(), strict=True))
    assert row["what"] == "inspection"
    assert row["changed_via"] == "stations inspect"
    assert row["old"] is None
    assert json.loads(row["new"]) == {"result": "issues", "note": "饮水机故障"}
    assert "饮水机故障" in row["new"]  # readable, not \\u-escaped


def test_values_described_for_people() -> None:
    assert describe_values({"lifecycle": "active"}, {"lifecycle": "decommissioned"}) == (
        "lifecycle: active → decommissioned"
    )
    assert describe_values(None, {"result": "pass", "note": "ok"}) == "result: pass; note: ok"
    assert describe_values({"name": "驿站"}, None) == "removed: 驿站"
    assert describe_values({"closed_until": None}, {"closed_until": "x"}) == "closed_until: — → x"

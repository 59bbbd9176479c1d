"""What an import would change in the registry: added, changed (field by field, old → new,
lifecycle changes apart), unchanged, and stations in the registry the file does not hold.

Pure: no I/O. Values are shown as the file writes them (:func:`row_from_profile`), in its
language.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.registry import StationProfile
from stationwatch.registry.bilingual import Language
from stationwatch.registry.sheet_columns import COLUMNS, label_of
from stationwatch.registry.sheet_rows import comparable, row_from_profile


@dataclass(frozen=True)
class FieldChange:
    label: str  # the column, as the file's language names it
    old: str
    new: str


@dataclass(frozen=True)
class Changed:
    old: StationProfile
    new: StationProfile
    fields: list[FieldChange]

    @property
    def lifecycle_changed(self) -> bool:
        return self.old.lifecycle != self.new.lifecycle


@dataclass(frozen=True)
class Plan:
    added: list[StationProfile] = field(default_factory=list)
    changed: list[Changed] = field(default_factory=list)
    unchanged: int = 0
    removed: list[StationProfile] = field(default_factory=list)

    def records(self, *, remove_missing: bool) -> list[tuple[str, StationProfile | None]]:
        """What to publish, by station id: new and changed profiles, and (``remove_missing``)
        a tombstone (``None``) for every station the file does not hold."""
        out: list[tuple[str, StationProfile | None]] = [(p.station_id, p) for p in self.added]
        out += [(c.new.station_id, c.new) for c in self.changed]
        if remove_missing:
            out += [(p.station_id, None) for p in self.removed]
        return out

    @property
    def lifecycle_changes(self) -> list[Changed]:
        return [c for c in self.changed if c.lifecycle_changed]


def plan(
    profiles: list[StationProfile], live: dict[str, StationProfile], language: Language
) -> Plan:
    """Compare the file's ``profiles`` with the ``live`` registry (by station id)."""
    added: list[StationProfile] = []
    changed: list[Changed] = []
    unchanged = 0
    in_file: set[str] = set()
    for profile in profiles:
        in_file.add(profile.station_id)
        old = live.get(profile.station_id)
        if old is None:
            added.append(profile)
        elif comparable(old) == comparable(profile):
            unchanged += 1
        else:
            changed.append(Changed(old, profile, _fields(old, profile, language)))
    removed = [p for sid, p in sorted(live.items()) if sid not in in_file]
    return Plan(added, changed, unchanged, removed)


def _fields(old: StationProfile, new: StationProfile, language: Language) -> list[FieldChange]:
    before, after = row_from_profile(old, language), row_from_profile(new, language)
    changes = [
        FieldChange(column.label(language), was, now)
        for column, was, now in zip(COLUMNS, before, after, strict=True)
        if was != now
    ]
    if not changes:  # a field the template does not show
        a, b = comparable(old), comparable(new)
        changes = [
            FieldChange(key, str(a.get(key)), str(b.get(key)))
            for key in sorted(set(a) | set(b))
            if a.get(key) != b.get(key)
        ]
    return changes


def _station(profile: StationProfile) -> str:
    return f"{profile.station_id} {profile.name}"


def render(plan: Plan, language: Language, *, remove_missing: bool) -> list[str]:
    """The difference, one line per station and one per changed field."""
    zh = language == "zh"
    lines = [f"{'新增' if zh else 'added'}    {_station(profile)}" for profile in plan.added]
    for change in plan.changed:
        lines.append(f"{'修改' if zh else 'changed'}  {_station(change.new)}")
        lines.extend(f"    {f.label}: '{f.old}' → '{f.new}'" for f in change.fields)
    for profile in plan.removed:
        if remove_missing:
            note = "将从登记中删除" if zh else "will be removed from the registry"
        else:
            note = (
                "登记中有、文件中没有：仅报告，加 --remove-missing 才删除"
                if zh
                else "in the registry, not in the file: reported only (--remove-missing removes it)"
            )
        lines.append(f"{'删除' if zh else 'removed'}  {_station(profile)}: {note}")
    if plan.lifecycle_changes:
        lines.append("状态变化:" if zh else "lifecycle changes:")
        for change in plan.lifecycle_changes:
            old = label_of("lifecycle", change.old.lifecycle, language)
            new = label_of("lifecycle", change.new.lifecycle, language)
            lines.append(f"    {_station(change.new)}: {old} → {new}")
    return lines


def summary(plan: Plan, language: Language, *, remove_missing: bool, errors: int = 0) -> str:
    """``added/changed/unchanged/removed/errors`` counts in one line."""
    removed = len(plan.removed)
    if language == "zh":
        kept = "" if remove_missing or not removed else "（仅报告）"
        return (
            f"新增 {len(plan.added)}，修改 {len(plan.changed)}，未变 {plan.unchanged}，"
            f"删除 {removed}{kept}，错误 {errors}"
        )
    kept = "" if remove_missing or not removed else " (reported only)"
    return (
        f"{len(plan.added)} added, {len(plan.changed)} changed, {plan.unchanged} unchanged, "
        f"{removed} removed{kept}, {errors} errors"
    )

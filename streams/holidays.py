"""The holiday calendar: Chinese public holidays and make-up working days from the
`chinese-calendar` package, with the operator's own file (``STATIONWATCH_HOLIDAYS_FILE``,
documented in ``deploy/holidays.yaml``) merged over it.

- An operator entry overrides the package for its date; a date neither names is an ordinary day.
- Known until: the later of the package's last covered day and the file's ``covers_until`` (or,
  without it, the file's last listed date). Past it every day is an ordinary day, which turns a
  closed Spring Festival into a false alarm: health, a gauge and the log say so well before.
- The worker looks at the file's modification every ``CHECK_INTERVAL_S`` and swaps the calendar
  the schedule uses (`streams.schedule.use_calendar`) when it changed and is valid; an invalid
  file keeps the previous calendar and is reported once, naming the line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import chinese_calendar
import yaml
from chinese_calendar.constants import holidays as _library_holidays

from stationwatch.errors import ConfigurationError

if TYPE_CHECKING:
    from prometheus_client import Gauge

    from stationwatch.settings import Settings
    from streams.runtime import Runtime

logger = logging.getLogger(__name__)

CHECK_INTERVAL_S = 30.0  # how often the worker looks whether the file changed
SECONDS_PER_DAY = 86_400  # stationwatch_holiday_calendar_left_seconds is in base units
LIBRARY_FIRST_DAY = date(min(_library_holidays).year, 1, 1)
LIBRARY_LAST_DAY = date(max(_library_holidays).year, 12, 31)
_SECTIONS = ("holidays", "workdays")
_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_EMPTY: Mapping[date, str] = MappingProxyType({})


@dataclass(frozen=True, eq=False)
class HolidayCalendar:
    """The package's calendar with the operator's entries over it. Immutable: a reload makes
    a new one."""

    holidays: Mapping[date, str] = field(default_factory=lambda: _EMPTY)
    workdays: Mapping[date, str] = field(default_factory=lambda: _EMPTY)
    covers_until: date | None = None  # the file says it is complete up to here
    source: str | None = None  # the file it came from

    def day_kind(self, day: date) -> str:
        """``holiday``, ``makeup_workday`` (a Saturday or Sunday declared a working day) or
        ``normal`` (also: any day neither the package nor the file knows)."""
        if day in self.holidays:
            return "holiday"
        if day in self.workdays:
            return "makeup_workday" if day.weekday() >= 5 else "normal"
        if not LIBRARY_FIRST_DAY <= day <= LIBRARY_LAST_DAY:
            return "normal"
        on_holiday, name = chinese_calendar.get_holiday_detail(day)
        if on_holiday and name is not None:
            return "holiday"
        if not on_holiday and day.weekday() >= 5:
            return "makeup_workday"
        return "normal"

    @property
    def known_until(self) -> date:
        listed = [*self.holidays, *self.workdays]
        own = self.covers_until or (max(listed) if listed else None)
        return max(LIBRARY_LAST_DAY, own) if own else LIBRARY_LAST_DAY

    def knows(self, day: date) -> bool:
        return LIBRARY_FIRST_DAY <= day <= self.known_until

    def describe(self) -> str:
        if self.source is None:
            return f"chinese-calendar only, known until {self.known_until}"
        return (
            f"chinese-calendar with {self.source} ({len(self.holidays)} holidays, "
            f"{len(self.workdays)} working days), known until {self.known_until}"
        )


# -- the file --------------------------------------------------------------------------------
def _fail(source: str, node: yaml.Node | None, problem: str) -> ConfigurationError:
    where = f", line {node.start_mark.line + 1}" if node is not None else ""
    return ConfigurationError(f"holidays file {source}{where}: {problem}")


def _date(source: str, node: yaml.Node) -> date:
    match = _DATE.match(str(node.value)) if isinstance(node, yaml.ScalarNode) else None
    if match is None:
        raise _fail(source, node, f"{node.value!r} is not a date (YYYY-MM-DD)")
    try:
        return date(*(int(part) for part in match.groups()))
    except ValueError as exc:
        raise _fail(source, node, f"{node.value!r} is not a date ({exc})") from None


def _section(source: str, node: yaml.Node, name: str) -> dict[date, tuple[str, yaml.Node]]:
    """A section's entries: date → (name, the node of its date, for errors found later)."""
    if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
        return {}
    if not isinstance(node, yaml.MappingNode):
        raise _fail(source, node, f"{name} must map dates to names, e.g. 2027-01-01: 元旦")
    entries: dict[date, tuple[str, yaml.Node]] = {}
    for key, value in node.value:
        day = _date(source, key)
        if day in entries:
            raise _fail(source, key, f"{day} is listed twice under {name}")
        if not isinstance(value, yaml.ScalarNode):
            raise _fail(source, value, f"the name of {day} must be text")
        entries[day] = ("" if value.tag.endswith(":null") else str(value.value), key)
    return entries


def parse_holidays(text: str, source: str) -> HolidayCalendar:
    """The calendar a holidays file describes; :class:`ConfigurationError` naming the line
    of the first problem."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigurationError(f"holidays file {source}{where}: {problem}") from None
    if root is None:
        return HolidayCalendar(source=source)
    if not isinstance(root, yaml.MappingNode):
        raise _fail(source, root, "expected holidays:, workdays: and covers_until: at the top")
    sections: dict[str, dict[date, tuple[str, yaml.Node]]] = {}
    covers_until: date | None = None
    seen: set[str] = set()
    for key, value in root.value:
        name = str(key.value)
        if name in seen:
            raise _fail(source, key, f"{name} appears twice")
        seen.add(name)
        if name in _SECTIONS:
            sections[name] = _section(source, value, name)
        elif name == "covers_until":
            covers_until = _date(source, value)
        else:
            known = ", ".join((*_SECTIONS, "covers_until"))
            raise _fail(source, key, f"unknown key {name!r} (known: {known})")
    holidays = sections.get("holidays", {})
    workdays = sections.get("workdays", {})
    for day, (_, node) in sorted(workdays.items()):
        if day in holidays:
            raise _fail(source, node, f"{day} is both a holiday and a working day")
    return HolidayCalendar(
        holidays=MappingProxyType({day: name for day, (name, _) in holidays.items()}),
        workdays=MappingProxyType({day: name for day, (name, _) in workdays.items()}),
        covers_until=covers_until,
        source=source,
    )


def load_holidays(path: Path | None) -> HolidayCalendar:
    """The package's calendar, with ``path`` merged over it when given."""
    if path is None:
        return HolidayCalendar()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"holidays file {path}: cannot be read ({exc})") from exc
    return parse_holidays(text, str(path))


# -- what it tells operators -----------------------------------------------------------------
def days_left(calendar: HolidayCalendar, today: date) -> int:
    """Days from ``today`` to the last day the calendar knows (negative: already past it)."""
    return (calendar.known_until - today).days


def calendar_warnings(calendar: HolidayCalendar, today: date, warn_days: int) -> list[str]:
    left, until = days_left(calendar, today), calendar.known_until
    if left >= warn_days:
        return []
    where = (
        f"ended on {until}: every later day is judged as an ordinary day"
        if left < 0
        else f"is known only until {until} ({left} days left)"
    )
    return [
        f"the holiday calendar {where}; list the official holidays and make-up working days "
        "after it in STATIONWATCH_HOLIDAYS_FILE (see deploy/holidays.yaml)"
    ]


def holiday_health(settings: Settings, today: date | None = None) -> dict[str, Any]:
    """The part of the /health body about the calendar the schedule uses now."""
    from streams.schedule import active_calendar

    calendar = active_calendar()
    today = today or datetime.now(ZoneInfo(settings.timezone)).date()
    return {
        "holidays_known_until": calendar.known_until.isoformat(),
        "warnings": calendar_warnings(calendar, today, settings.holidays_warn_days),
    }


# -- following the file ----------------------------------------------------------------------
_MISSING = (-1, -1, -1)


def _signature(path: Path) -> tuple[int, int, int]:
    """What tells one version of the file from the next (an editor may replace the file)."""
    try:
        stat = os.stat(path)
    except OSError:
        return _MISSING
    return stat.st_mtime_ns, stat.st_size, stat.st_ino


@dataclass
class HolidayWatch:
    """Follows the holidays file: :meth:`check` (called by a timer) installs a changed, valid
    file's calendar in the schedule, keeps the gauge current and warns once a day."""

    path: Path | None
    zone: ZoneInfo
    warn_days: int
    calendar: HolidayCalendar = field(default_factory=HolidayCalendar)
    gauge: Gauge | None = None
    signature: tuple[int, int, int] | None = None  # of the file the calendar was read from
    reported: tuple[int, int, int] | None = None  # a bad version already reported
    warned_on: date | None = None
    announce: bool = True  # log the daily warning (the worker does, its API server does not)

    @classmethod
    def start(
        cls,
        settings: Settings,
        gauge: Gauge | None = None,
        *,
        today: date | None = None,
        announce: bool = True,
    ) -> HolidayWatch:
        """Load the file (a bad one raises :class:`ConfigurationError`), install it, and say
        when the calendar ends soon."""
        path = settings.holidays_file
        zone, warn_days = ZoneInfo(settings.timezone), settings.holidays_warn_days
        watch = cls(path, zone, warn_days, gauge=gauge, announce=announce)
        signature = _signature(path) if path is not None else None
        watch._install(load_holidays(path), signature)
        watch.check(today)
        return watch

    def _install(self, calendar: HolidayCalendar, signature: tuple[int, int, int] | None) -> None:
        from streams.schedule import use_calendar

        self.calendar, self.signature, self.reported = calendar, signature, None
        use_calendar(calendar)
        logger.info("holiday calendar: %s", calendar.describe())

    def reload_if_changed(self) -> bool:
        """Read the file again when it changed since it was last read; ``True`` when a new
        calendar is in use."""
        if self.path is None:
            return False
        signature = _signature(self.path)
        if signature == self.signature or signature == self.reported:
            return False
        try:
            calendar = load_holidays(self.path)
        except ConfigurationError as exc:
            self.reported = signature
            logger.error(  # noqa: TRY400 - the message is the whole story, no trace
                "%s; still using the previous calendar (%s)", exc, self.calendar.describe()
            )
            return False
        self._install(calendar, signature)
        return True

    def check(self, today: date | None = None) -> None:
        self.reload_if_changed()
        today = today or datetime.now(self.zone).date()
        if self.gauge is not None:
            self.gauge.set(days_left(self.calendar, today) * SECONDS_PER_DAY)
        if self.announce and self.warned_on != today:
            for warning in calendar_warnings(self.calendar, today, self.warn_days):
                logger.warning("%s", warning)
                self.warned_on = today


async def follow_holidays_file(watch: HolidayWatch) -> None:
    """The same, in a process without a Faust app (the API server): run it as a task."""
    while True:
        await asyncio.sleep(CHECK_INTERVAL_S)
        watch.check()


def install_holiday_reload(runtime: Runtime) -> HolidayWatch:
    """Load the holidays file (stopping the worker when it is invalid) and look for changes
    every ``CHECK_INTERVAL_S``."""
    watch = HolidayWatch.start(runtime.settings, runtime.metrics.holiday_left)

    @runtime.app.timer(interval=CHECK_INTERVAL_S)  # type: ignore[untyped-decorator]
    async def reload_holidays() -> None:
        watch.check()

    return watch

"""`stationwatch stations close|reopen|decommission|inspect|overdue|history`: the command line
of the registry's upkeep. Thin: parse and check the words, then call
:mod:`stationwatch.registry.commands`. Registered on the `stations` group by
:func:`add_upkeep_commands`, so `stationwatch/cli.py` only names it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

import typer

from stationwatch.errors import StationwatchError
from stationwatch.settings import Settings


# The main command line's helpers, imported when a command runs (`stationwatch.cli` imports
# this module, so not at import time): one way to read settings and report errors everywhere.
def _settings() -> Settings:
    from stationwatch.cli import _settings as settings

    return settings()


def _fail(exc: Exception) -> typer.Exit:
    from stationwatch.cli import _fail as fail

    return fail(exc)


def _moment(text: str | None, settings: Settings, option: str) -> datetime | None:
    from stationwatch.cli import _moment as moment

    return moment(text, settings, option)


def add_upkeep_commands(app: typer.Typer) -> None:
    """Add the commands to the `stations` group."""
    app.command("close")(stations_close)
    app.command("reopen")(stations_reopen)
    app.command("decommission")(stations_decommission)
    app.command("inspect")(stations_inspect)
    app.command("overdue")(stations_overdue)
    app.command("history")(stations_history)


_BY_HELP = "who makes the change (default: your login name); kept in the station's history"
_STATION_HELP = "the station's id, e.g. SY-0001"


def _station(station_id: str) -> str:
    from stationwatch.registry.commands import check_station_id
    from stationwatch.registry.lifecycle import LifecycleError

    try:
        return check_station_id(station_id)
    except LifecycleError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _by(by: str | None) -> str:
    import getpass

    return by if by else getpass.getuser()


def _lifecycle(
    action: Literal["close", "reopen", "decommission"],
    station_id: str,
    by: str | None,
    *,
    reason: str | None = None,
    until: datetime | None = None,
) -> None:
    from stationwatch.registry import commands

    settings = _settings()
    request = commands.LifecycleRequest(action, _station(station_id), _by(by), reason, until)
    now = datetime.now(ZoneInfo(settings.timezone))
    try:
        done = commands.change_lifecycle(settings, request, now)
    except StationwatchError as exc:
        raise _fail(exc) from None
    typer.echo(done)


def stations_close(
    station_id: Annotated[str, typer.Argument(help=_STATION_HELP)],
    reason: Annotated[str, typer.Option(help="why it closes (kept in its history)")],
    until: Annotated[
        str | None,
        typer.Option(
            help="reopens by itself then: a day (2026-12-10 = that day's start in "
            "STATIONWATCH_TIMEZONE) or a time (2026-12-10T14:00, 2026-12-10T14:00+08:00); "
            "without it, closed until `stations reopen`"
        ),
    ] = None,
    by: Annotated[str | None, typer.Option(help=_BY_HELP)] = None,
) -> None:
    """Close a station temporarily (with --until: it reopens by itself then).

    The worker honours it at once: no offline alert while closed; open alerts resolve.

    Publishes the changed record to station.registry; kept in the station's history.

    Example: stationwatch stations close SY-0001 --until 2026-12-10 --reason 供暖检修 --by 王芳
    """
    from stationwatch.registry.lifecycle import LifecycleError, parse_until

    settings = _settings()
    moment = None
    if until is not None:
        try:
            moment = parse_until(
                until, ZoneInfo(settings.timezone), datetime.now(ZoneInfo(settings.timezone))
            )
        except LifecycleError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
    _lifecycle("close", station_id, by, reason=reason, until=moment)


def stations_reopen(
    station_id: Annotated[str, typer.Argument(help=_STATION_HELP)],
    by: Annotated[str | None, typer.Option(help=_BY_HELP)] = None,
) -> None:
    """Open a temporarily closed station again (before its --until, or closed without one).

    Its liveness is judged again at once: a silent device raises alerts as usual.

    Example: stationwatch stations reopen SY-0001 --by 王芳
    """
    _lifecycle("reopen", station_id, by)


def stations_decommission(
    station_id: Annotated[str, typer.Argument(help=_STATION_HELP)],
    by: Annotated[str | None, typer.Option(help=_BY_HELP)] = None,
    reason: Annotated[str | None, typer.Option(help="why (kept in its history)")] = None,
) -> None:
    """Take a station out of service for good.

    It stays in the registry and its history but is never monitored again.

    Example: stationwatch stations decommission SY-0001 --reason 场地拆迁 --by 王芳
    """
    _lifecycle("decommission", station_id, by, reason=reason)


class InspectionResult(StrEnum):
    passed = "pass"
    issues = "issues"


def stations_inspect(
    station_id: Annotated[str, typer.Argument(help=_STATION_HELP)],
    result: Annotated[InspectionResult, typer.Option(help="pass, or issues found")],
    note: Annotated[str, typer.Option(help="what was seen or done")],
    by: Annotated[str, typer.Option(help="who inspected")],
    at: Annotated[
        str | None, typer.Option(help="when it was inspected (ISO time; default: now)")
    ] = None,
) -> None:
    """Record a patrol or inspection of a station.

    Written to PostgreSQL (tables inspections and station_history) for the dashboards.

    The same inspection recorded twice (station, time, inspector, result, note) is kept once.

    Example: stationwatch stations inspect SY-0001 --result issues --note 饮水机故障 --by 李强
    """
    from stationwatch.registry import commands

    settings = _settings()
    sid = _station(station_id)
    now = datetime.now(ZoneInfo(settings.timezone))
    moment = _moment(at, settings, "--at") or now
    if moment > now:
        typer.echo(f"error: --at: {moment.isoformat()} is in the future", err=True)
        raise typer.Exit(2)
    try:
        done = commands.inspect(settings, sid, result=result.value, note=note, by=by, at=moment)
    except StationwatchError as exc:
        raise _fail(exc) from None
    typer.echo(done)


def stations_overdue(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """List the stations overdue for a patrol.

    Stations in service not inspected for STATIONWATCH_PATROL_INTERVAL_DAYS (default 30).

    Never inspected first, then the longest overdue; dashboards read view stations_overdue.

    Example: stationwatch stations overdue --json
    """
    from rich.console import Console

    from stationwatch.registry import commands

    settings = _settings()
    zone = ZoneInfo(settings.timezone)
    try:
        found = commands.overdue(settings, datetime.now(zone))
    except StationwatchError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(commands.overdue_json(found))
        return
    Console().print(commands.overdue_table(found, zone, settings.patrol_interval_days))
    typer.echo(f"{len(found)} station(s) overdue")


def stations_history(
    station_id: Annotated[str, typer.Argument(help=_STATION_HELP)],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of lines")] = False,
) -> None:
    """Show a station's history: every registry change and inspection, oldest first.

    Each line: when, what, by whom, via which command or import file, old → new values.

    Example: stationwatch stations history SY-0001
    """
    from stationwatch.registry import commands

    settings = _settings()
    sid = _station(station_id)
    try:
        entries = commands.history(settings, sid)
    except StationwatchError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(commands.history_json(entries))
        return
    for line in commands.history_lines(entries, ZoneInfo(settings.timezone)):
        typer.echo(line)
    if not entries:
        typer.echo(f"no history for {sid}")

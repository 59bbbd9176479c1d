"""`stationwatch …`: the command line. Thin: parse, build Settings once, call the module."""

from __future__ import annotations

import sys
from pathlib import Path

from stationwatch.allocator import restart_early

# `stationwatch worker` starts itself again with jemalloc (stationwatch.allocator) before the
# imports below, not after
restart_early(sys.argv, entry=__name__ == "__main__" or Path(sys.argv[0]).name == "stationwatch")

import asyncio
import logging
from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from pydantic import ValidationError
from typer.exceptions import TyperException

from stationwatch.errors import StationwatchError
from stationwatch.registry.upkeep_cli import add_upkeep_commands
from stationwatch.settings import Settings

app = typer.Typer(
    name="stationwatch",
    help="Live telemetry backend for networks of public service stations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
schemas_app = typer.Typer(help="JSON Schemas of the wire messages.", no_args_is_help=True)
app.add_typer(schemas_app, name="schemas")
silence_app = typer.Typer(
    help="Silences: time-bounded label matchers whose alerts are recorded, not delivered.",
    no_args_is_help=True,
)
app.add_typer(silence_app, name="silence")
stations_app = typer.Typer(
    help="The station registry: spreadsheets in and out, closures, inspections, history.",
    no_args_is_help=True,
)
app.add_typer(stations_app, name="stations")
add_upkeep_commands(stations_app)  # close, reopen, decommission, inspect, overdue, history


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"STATIONWATCH_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
            if err["loc"]
            else str(err["msg"]).removeprefix("Value error, ")
            for err in exc.errors()
        )
        typer.echo(f"error: invalid configuration: {problems}", err=True)
        raise typer.Exit(2) from None


def _logging(settings: Settings, level: str | None = None) -> None:
    """Log lines on standard error, timed in STATIONWATCH_TIMEZONE (as every shown time)."""
    from stationwatch.zone import configure_logging

    configure_logging(level or settings.log_level, settings.timezone)


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


@app.command()
def migrate() -> None:
    """Create or upgrade the database (schema `stationwatch`); creates the database if missing."""
    from stationwatch.db.migrate import migrate as run_migrations

    settings = _settings()
    _logging(settings)
    from stationwatch.registry.store import record_patrol_interval

    try:
        result = run_migrations(settings.dsn, settings.db_flavor)
        record_patrol_interval(settings.dsn, settings.patrol_interval_days)
    except StationwatchError as exc:
        raise _fail(exc) from None
    typer.echo(result.describe())


WORKER_HELP = (
    "Run one stream-processing worker (several may share the partitions).\n\n"
    "Liveness: online; stale after STATIONWATCH_STALE_AFTER heartbeat intervals of silence; "
    "offline after STATIONWATCH_OFFLINE_AFTER. A station never heard from is counted from its "
    "registration: unknown for its first STALE_AFTER intervals, then stale, then offline, with "
    "alerts when it is expected open. Every time shown is in STATIONWATCH_TIMEZONE."
)


@app.command(help=WORKER_HELP)
def worker() -> None:
    """Run one stream-processing worker (several may share the partitions)."""
    from stationwatch.allocator import use_chosen_allocator

    settings = _settings()
    try:
        use_chosen_allocator(settings.allocator)  # may start this command again, with jemalloc
    except StationwatchError as exc:
        raise _fail(exc) from None
    _logging(settings)
    from streams.worker import run_worker

    try:
        run_worker(settings)
    except StationwatchError as exc:
        raise _fail(exc) from None


@app.command()
def dev(
    duration: Annotated[
        float | None, typer.Option(help="stop after this many seconds (default: until Ctrl-C)")
    ] = None,
    stations: Annotated[int, typer.Option(min=1, max=20_000, help="simulated stations")] = 300,
) -> None:
    """Run the whole stack on embedded defaults: broker, database, worker and a simulated fleet."""
    from stationwatch.dev import run_dev

    settings = _settings()
    # The in-process notifier and simulator log warnings (any level, when chosen) above the
    # live summary; the worker logs to its own file.
    _logging(settings, None if "log_level" in settings.model_fields_set else "WARNING")
    try:
        code = run_dev(settings, duration=duration, stations=stations)
    except StationwatchError as exc:
        raise _fail(exc) from None
    raise typer.Exit(code)


SIMULATE_HELP = (
    "Send a simulated fleet's registry, heartbeats, occupancy and open/closed events, with "
    "faults injected at the rates given.\n\n"
    "The fleet is the seed district (顺义区: 1,419 stations) and, beyond it, further districts "
    "(朝阳区 CY-…, 海淀区 HD-…, …). Rates are per device-hour (per street-hour for power cuts, per "
    "open station-hour for staff closures): a Poisson rate, 2 = twice an hour; per message for "
    "duplicates, reordering and malformed messages; per scheduled closing for late closing. "
    "0 switches a fault off.\n\n"
    "The same --seed, --start and --duration give the same messages. --speed N runs the "
    "simulated clock N times as fast and stamps its times on every message: a worker "
    "dead-letters messages more than STATIONWATCH_MAX_CLOCK_SKEW_S ahead of its own clock "
    "(the simulator warns when that will happen; README: 'The simulator')."
)


@app.command(help=SIMULATE_HELP)
def simulate(
    stations: Annotated[
        int, typer.Option(min=1, max=200_000, help="simulated stations (seed district: 1,419)")
    ] = 1419,
    duration: Annotated[
        float | None,
        typer.Option(min=0, help="stop after this many real seconds (default: until Ctrl-C)"),
    ] = None,
    seed: Annotated[int, typer.Option(help="random seed: the same seed, the same run")] = 1,
    speed: Annotated[float, typer.Option(help="simulated seconds per real second (above 0)")] = 1.0,
    start: Annotated[
        str | None,
        typer.Option(help="the simulated clock's first moment, ISO 8601 (default: now)"),
    ] = None,
    heartbeat_interval: Annotated[
        int, typer.Option(min=1, max=86_400, help="seconds between a device's heartbeats")
    ] = 30,
    outage_rate: Annotated[
        float,
        typer.Option(min=0, help="per device-hour: goes quiet for a while", show_default="1/12"),
    ] = 1 / 12,
    death_rate: Annotated[float, typer.Option(min=0, help="per device-hour: stops for good")] = 0.0,
    flap_rate: Annotated[
        float, typer.Option(min=0, help="per device-hour: flaps (off and on) for 10-30 min")
    ] = 0.0,
    power_cut_rate: Annotated[
        float,
        typer.Option(min=0, help="per street-hour: all its devices quiet for 10-45 min"),
    ] = 0.0,
    clock_skew_rate: Annotated[
        float,
        typer.Option(min=0, help="per device-hour: its clock goes off by --clock-skew-s"),
    ] = 0.0,
    clock_skew_s: Annotated[
        float, typer.Option(min=0, help="how far a skewed clock is off, ahead or behind")
    ] = 600.0,
    manual_close_rate: Annotated[
        float,
        typer.Option(
            min=0, help="per open station-hour: staff close it for a while", show_default="1/168"
        ),
    ] = 1 / 168,
    late_close_rate: Annotated[
        float,
        typer.Option(min=0, max=1, help="per scheduled closing: staff close 5-30 min late"),
    ] = 0.0,
    duplicate_rate: Annotated[
        float, typer.Option(min=0, max=1, help="per message: sent twice")
    ] = 0.0,
    reorder_rate: Annotated[
        float,
        typer.Option(min=0, max=1, help="per message: sent after the station's next one"),
    ] = 0.0,
    malformed_rate: Annotated[
        float,
        typer.Option(min=0, max=1, help="per message: followed by a malformed one"),
    ] = 0.001,
) -> None:
    """Send a simulated fleet's messages, with faults (see SIMULATE_HELP)."""
    from stationwatch.fault_injection import FaultRates
    from stationwatch.simulator import run_simulator

    settings = _settings()
    _logging(settings)
    if not speed > 0:
        typer.echo(f"error: --speed: {speed} must be above 0", err=True)
        raise typer.Exit(2)
    begin = _moment(start, settings, "--start")
    try:
        faults = FaultRates(
            outage=outage_rate,
            death=death_rate,
            flapping=flap_rate,
            power_cut=power_cut_rate,
            clock_skew=clock_skew_rate,
            clock_skew_s=clock_skew_s,
            manual_close=manual_close_rate,
            late_close=late_close_rate,
            duplicate=duplicate_rate,
            reorder=reorder_rate,
            malformed=malformed_rate,
        )
    except StationwatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        asyncio.run(
            run_simulator(
                settings,
                stations=stations,
                duration=duration,
                seed=seed,
                heartbeat_interval_s=heartbeat_interval,
                faults=faults,
                speed=speed,
                start=begin,
            )
        )
    except KeyboardInterrupt:
        pass
    except StationwatchError as exc:
        raise _fail(exc) from None


@app.command()
def bench(
    stations: Annotated[
        int | None,
        typer.Option(
            min=100, max=1_000_000, help="stations in the fleet (default 150,000; --quick: 1,000)"
        ),
    ] = None,
    requests: Annotated[
        int | None,
        typer.Option(
            min=10, max=100_000, help="timed requests per kind (default 1,000; --quick: 100)"
        ),
    ] = None,
    ingest_rate: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=100_000,
            help="heartbeats/s sent while requests are timed, at most 80 % of the measured "
            "pipeline rate (default 2,000; --quick: 500)",
        ),
    ] = None,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick", help="every figure at a small size and short phases (within 2 minutes)"
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="random seed of fleet and samples")] = 1,
) -> None:
    """Measure the worker on this machine (ingest at saturation, registry load, sink, detection
    delay, API latency, memory, recovery, failover, two workers) against raw baselines in the
    same run; progress on stderr, JSON on stdout. 6 to 10 minutes at the default size."""
    import json

    from stationwatch.bench import Sizes, run_bench

    settings = _settings()
    _logging(settings, "WARNING")
    sizes = Sizes.choose(
        quick=quick,
        stations=stations,
        requests=requests,
        ingest_rate=ingest_rate,
        batch_size=settings.batch_size,
    )
    try:
        result = asyncio.run(run_bench(settings, sizes, seed=seed))
    except (StationwatchError, TimeoutError, RuntimeError) as exc:
        raise _fail(exc) from None
    typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
    if "error" in result:
        raise _fail(RuntimeError(f"bench: a phase did not finish: {result['error']}"))


@app.command()
def notifier(
    check_config: Annotated[
        Path | None,
        typer.Option(
            "--check-config",
            help="validate this notifier configuration file, print its routes, and exit",
        ),
    ] = None,
) -> None:
    """Deliver alerts to the receivers in STATIONWATCH_NOTIFY_CONFIG (routes, grouping,
    inhibition, silences; see deploy/notify.example.yaml). Several may run side by side."""
    from consumers.config import load_config

    if check_config is not None:
        try:
            config = load_config(check_config)
        except StationwatchError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        from consumers.routing import RouteTree

        typer.echo(f"{check_config}: valid; {len(config.receivers)} receivers; routes:")
        for line in RouteTree.from_config(config).describe():
            typer.echo(f"  {line}")
        return
    settings = _settings()
    _logging(settings)
    if settings.notify_config is None:
        typer.echo(
            "error: STATIONWATCH_NOTIFY_CONFIG is not set: point it at a notifier "
            "configuration (see deploy/notify.example.yaml)",
            err=True,
        )
        raise typer.Exit(2)
    try:
        config = load_config(settings.notify_config)
    except StationwatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    from consumers.notifier import run_notifier

    try:
        run_notifier(settings, config)
    except StationwatchError as exc:
        raise _fail(exc) from None


def _moment(text: str | None, settings: Settings, option: str) -> datetime | None:
    """An ISO time from the command line; without an offset it is in STATIONWATCH_TIMEZONE."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        typer.echo(f"error: {option}: {text!r} is not a time like 2026-12-02T18:00", err=True)
        raise typer.Exit(2) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(settings.timezone))
    return moment


@silence_app.command("add")
def silence_add(
    matchers: Annotated[
        list[str],
        typer.Argument(help="label matchers, all must match: street=空港街道 kind=~stale|offline"),
    ],
    comment: Annotated[str, typer.Option(help="why (shown to everyone)")],
    by: Annotated[str, typer.Option(help="who sets it")],
    duration: Annotated[str | None, typer.Option(help="how long, e.g. 2h or 1h30m")] = None,
    until: Annotated[str | None, typer.Option(help="until this time (ISO 8601)")] = None,
    start: Annotated[str | None, typer.Option(help="from this time (default: now)")] = None,
) -> None:
    """Silence the alerts the matchers match, e.g. `stationwatch silence add street=空港街道
    kind=offline --duration 2h --by 王 --comment 停电检修`."""
    from consumers import silence_admin

    settings = _settings()
    now = datetime.now(ZoneInfo(settings.timezone))
    try:
        silence = silence_admin.new_silence(
            matchers,
            now=now,
            comment=comment,
            created_by=by,
            duration=duration,
            until=_moment(until, settings, "--until"),
            starts_at=_moment(start, settings, "--start"),
        )
    except StationwatchError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        asyncio.run(silence_admin.add(settings.dsn, silence))
    except StationwatchError as exc:
        raise _fail(exc) from None
    typer.echo(silence_admin.describe(silence, now))


@silence_app.command("list")
def silence_list(
    all_: Annotated[bool, typer.Option("--all", help="include expired silences")] = False,
) -> None:
    """List the silences that are active or pending (with --all, expired ones too)."""
    from consumers import silence_admin

    settings = _settings()
    now = datetime.now(ZoneInfo(settings.timezone))
    try:
        found = asyncio.run(silence_admin.listed(settings.dsn, now=now, include_expired=all_))
    except StationwatchError as exc:
        raise _fail(exc) from None
    for silence in found:
        typer.echo(silence_admin.describe(silence, now))
    if not found:
        typer.echo("no silences")


@silence_app.command("expire")
def silence_expire(
    silence_id: Annotated[str, typer.Argument(help="the silence's id (from `silence list`)")],
) -> None:
    """End a silence now."""
    from consumers import silence_admin

    settings = _settings()
    now = datetime.now(ZoneInfo(settings.timezone))
    try:
        ended = asyncio.run(silence_admin.expire(settings.dsn, silence_id, now=now))
    except StationwatchError as exc:
        raise _fail(exc) from None
    if not ended:
        typer.echo(f"error: no active or pending silence {silence_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"expired {silence_id}")


def _confirm(question: str) -> bool:
    """Ask on a terminal; anywhere else the answer is no (``--yes`` says yes)."""
    if not sys.stdin.isatty():
        typer.echo(question)
        typer.echo("error: not on a terminal, so not asked: add --yes to publish", err=True)
        return False
    return typer.confirm(question, default=False)


_IMPORT_HELP = (
    "Import stations from a CSV or XLSX spreadsheet into the registry.\n\n"
    "Headers in Chinese or English, as in the template deploy/stations-template.csv (README: "
    "'Station spreadsheets'). Every row is checked first: on any error, each is listed by row "
    "and column and nothing is published (exit code 2). Then the difference against the live "
    "registry (the stations table) is shown: added, changed fields old → new, lifecycle "
    "changes, and stations missing from the file. Confirmed (or --yes), new and changed "
    "stations are published to station.registry; missing ones are only reported unless "
    "--remove-missing.\n\n"
    "\b\nExamples:\n"
    "  stationwatch stations import 驿站.xlsx --dry-run\n"
    "  stationwatch stations import 驿站.xlsx --yes --by 王芳\n"
    "  stationwatch stations import stations.csv --remove-missing"
)
_EXPORT_HELP = (
    "Export the live registry (the stations table) in the import template, as CSV or XLSX, "
    "with Chinese or English headers: export, edit, import.\n\n"
    "\b\nExamples:\n"
    "  stationwatch stations export --format xlsx --out 驿站.xlsx\n"
    "  stationwatch stations export --language en > stations.csv"
)


@stations_app.command("import", help=_IMPORT_HELP)
def stations_import(
    file: Annotated[Path, typer.Argument(help="the spreadsheet: .csv or .xlsx")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="show the difference, publish nothing")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="publish without asking")] = False,
    remove_missing: Annotated[
        bool,
        typer.Option(
            "--remove-missing",
            help="also remove (tombstone) the stations the file does not hold",
        ),
    ] = False,
    by: Annotated[
        str | None, typer.Option("--by", help="who makes the change (kept in the history)")
    ] = None,
) -> None:
    """Import stations from a CSV or XLSX spreadsheet into the registry (see _IMPORT_HELP)."""
    from stationwatch.registry.sheet_import import ImportRequest, run_import

    settings = _settings()
    request = ImportRequest(
        path=file, dry_run=dry_run, yes=yes, remove_missing=remove_missing, changed_by=by
    )
    try:
        code = run_import(
            settings,
            request,
            out=typer.echo,
            err=lambda line: typer.echo(line, err=True),
            confirm=_confirm,
        )
    except StationwatchError as exc:
        raise _fail(exc) from None
    raise typer.Exit(code)


@stations_app.command("export", help=_EXPORT_HELP)
def stations_export(
    format_: Annotated[
        str | None,
        typer.Option("--format", help="csv or xlsx (default: from --out's name, else csv)"),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="file to write (default: CSV on stdout)")
    ] = None,
    language: Annotated[
        str, typer.Option("--language", help="zh (Chinese headers and labels) or en")
    ] = "zh",
) -> None:
    """Export the live registry in the import template (see _EXPORT_HELP)."""
    from stationwatch.registry.sheet_export import ExportRequest, run_export

    settings = _settings()
    request = ExportRequest(out=out, format=format_, language=language)
    try:
        code = run_export(
            settings, request, stdout=sys.stdout, err=lambda line: typer.echo(line, err=True)
        )
    except StationwatchError as exc:
        raise _fail(exc) from None
    raise typer.Exit(code)


@schemas_app.command("export")
def schemas_export(
    directory: Annotated[Path, typer.Argument(help="folder to write the JSON Schema files to")],
) -> None:
    """Write a JSON Schema file for every message of the contract."""
    from schemas.export import export_json_schemas

    for path in export_json_schemas(directory):
        typer.echo(str(path))


def main() -> None:
    """Every failure ends in one line on stderr and a non-zero exit code — a bad option or
    argument too (exit code 2, as click's); the traceback of an unexpected one only with
    STATIONWATCH_LOG_LEVEL=DEBUG."""
    try:
        code = typer.main.get_command(app).main(standalone_mode=False)
    except TyperException as exc:  # click's errors, as typer vendors them
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help, as before
            typer.echo(exc.format_message())
            sys.exit(exc.exit_code)
        path = f"{ctx.command_path}: " if ctx is not None else ""
        hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        typer.echo(f"error: {path}{exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("error: aborted", err=True)
        sys.exit(1)
    except OSError as exc:  # a path that cannot be read or written, a port that is taken, …
        where = f": {exc.filename}" if exc.filename else ""
        typer.echo(f"error: {exc.strerror or exc}{where}", err=True)
        sys.exit(1)
    except Exception as exc:
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            raise
        typer.echo(
            f"error: unexpected {type(exc).__name__}: {exc} "
            "(STATIONWATCH_LOG_LEVEL=DEBUG shows where)",
            err=True,
        )
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()

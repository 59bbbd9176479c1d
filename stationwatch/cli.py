"""`stationwatch …`: the command line. Thin: parse, build Settings once, call the module."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from pydantic import ValidationError

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
            for err in exc.errors()
        )
        typer.echo(f"error: invalid configuration: {problems}", err=True)
        raise typer.Exit(2) from None


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


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
        result = run_migrations(settings.dsn)
        record_patrol_interval(settings.dsn, settings.patrol_interval_days)
    except StationwatchError as exc:
        raise _fail(exc) from None
    typer.echo(result.describe())


@app.command()
def worker() -> None:
    """Run one stream-processing worker (several may share the partitions)."""
    from streams.worker import run_worker

    settings = _settings()
    _logging(settings)
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
    try:
        code = run_dev(settings, duration=duration, stations=stations)
    except StationwatchError as exc:
        raise _fail(exc) from None
    raise typer.Exit(code)


@app.command()
def simulate(
    stations: Annotated[int, typer.Option(min=1, max=200_000, help="simulated stations")] = 300,
    duration: Annotated[
        float | None, typer.Option(help="stop after this many seconds (default: until Ctrl-C)")
    ] = None,
    seed: Annotated[int, typer.Option(help="random seed: the same seed, the same fleet")] = 1,
) -> None:
    """Send a simulated fleet's registry, heartbeats, occupancy and open/closed events."""
    from stationwatch.simulator import run_simulator

    settings = _settings()
    _logging(settings)
    try:
        asyncio.run(run_simulator(settings, stations=stations, duration=duration, seed=seed))
    except KeyboardInterrupt:
        pass
    except StationwatchError as exc:
        raise _fail(exc) from None


@app.command()
def bench(
    stations: Annotated[
        int, typer.Option(min=100, max=1_000_000, help="stations in the table")
    ] = 150_000,
    requests: Annotated[
        int, typer.Option(min=10, max=100_000, help="timed requests per kind")
    ] = 2000,
    ingest_rate: Annotated[
        int, typer.Option(min=0, max=100_000, help="heartbeats/s sent while requests are timed")
    ] = 2000,
    seed: Annotated[int, typer.Option(help="random seed of fleet and samples")] = 1,
) -> None:
    """Measure ingest and API latency on this machine against raw baselines; prints JSON."""
    import json

    from stationwatch.bench import run_bench

    settings = _settings()
    logging.basicConfig(level="WARNING", stream=sys.stderr)
    try:
        result = asyncio.run(
            run_bench(
                settings, stations=stations, requests=requests, ingest_rate=ingest_rate, seed=seed
            )
        )
    except (StationwatchError, TimeoutError, RuntimeError) as exc:
        raise _fail(exc) from None
    typer.echo(json.dumps(result, indent=2))


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


@schemas_app.command("export")
def schemas_export(
    directory: Annotated[Path, typer.Argument(help="folder to write the JSON Schema files to")],
) -> None:
    """Write a JSON Schema file for every message of the contract."""
    from schemas.export import export_json_schemas

    for path in export_json_schemas(directory):
        typer.echo(str(path))


def main() -> None:
    app()


if __name__ == "__main__":
    main()

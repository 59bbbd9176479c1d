"""`stationwatch …`: the command line. Thin: parse, build Settings once, call the module."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from stationwatch.errors import StationwatchError
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
    try:
        result = run_migrations(settings.dsn)
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

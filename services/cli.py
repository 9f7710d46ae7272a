"""`wardflow`: the one command for the stack, each service, the simulator and the tools."""

from __future__ import annotations

import asyncio
import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="wardflow: real-time event streaming for hospitals.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics.", no_args_is_help=True)
schemas_app = typer.Typer(
    help="The published contract (JSON Schema, AsyncAPI).", no_args_is_help=True
)
app.add_typer(topics_app, name="topics")
app.add_typer(schemas_app, name="schemas")
keys_app = typer.Typer(help="API keys for sources that send to ingest.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


class ServiceName(StrEnum):
    ingest = "ingest"
    cleaning = "cleaning"
    fusion = "fusion"
    diagnosis = "diagnosis"
    scheduler = "scheduler"


@app.command()
def up(
    duration: Annotated[
        float, typer.Option(help="Stop after this many seconds; 0 runs until Ctrl-C.")
    ] = 0,
    simulate: Annotated[
        bool, typer.Option(help="Drive the stack with the built-in hospital.")
    ] = True,
    partitions: Annotated[int, typer.Option(min=1, help="Partitions per topic.")] = 4,
    var_dir: Annotated[
        Path, typer.Option(help="Where stack.json, summary.json, logs and state go.")
    ] = Path("var"),
) -> None:
    """Start the whole pipeline (embedded broker and Redis unless configured) with a live view."""
    from services.launcher.up import UpOptions, run_up

    raise typer.Exit(
        run_up(
            UpOptions(
                duration_seconds=duration, simulate=simulate, partitions=partitions, var_dir=var_dir
            )
        )
    )


@app.command()
def service(name: ServiceName) -> None:
    """Run one service in the foreground, configured by environment variables."""
    from services.common.runtime import run_service, run_stage

    if name is ServiceName.ingest:
        from services.ingest import service as ingest
        from services.ingest.config import IngestSettings

        ingest_settings = IngestSettings()
        run_service(name.value, ingest_settings, lambda stop: ingest.run(ingest_settings, stop))
    elif name is ServiceName.cleaning:
        from services.cleaning.app import build as build_cleaning
        from services.cleaning.config import CleaningSettings

        cleaning_settings = CleaningSettings()
        runner = build_cleaning(cleaning_settings)
        run_service(name.value, cleaning_settings, lambda stop: run_stage(runner, stop))
    elif name is ServiceName.fusion:
        from services.fusion.config import FusionSettings
        from services.fusion.service import main as fusion_main

        fusion_main(FusionSettings())
    elif name is ServiceName.diagnosis:
        from services.diagnosis.app import build as build_diagnosis
        from services.diagnosis.config import DiagnosisSettings

        diagnosis_settings = DiagnosisSettings()
        runner = build_diagnosis(diagnosis_settings)
        run_service(name.value, diagnosis_settings, lambda stop: run_stage(runner, stop))
    else:
        from services.scheduler import service as scheduler
        from services.scheduler.config import SchedulerSettings

        scheduler_settings = SchedulerSettings()
        run_service(
            name.value, scheduler_settings, lambda stop: scheduler.run(scheduler_settings, stop)
        )


@app.command()
def simulate() -> None:
    """Run the hospital simulator against an ingest endpoint (WARDFLOW_SIMULATOR_* settings)."""
    from services.simulator.app import main as simulator_main
    from services.simulator.config import SimulatorSettings

    simulator_main(SimulatorSettings())


@topics_app.command("create")
def topics_create(
    partitions: Annotated[int, typer.Option(min=1, help="Partitions per topic.")] = 4,
) -> None:
    """Create every wardflow topic that does not exist yet."""
    from services.common.kafka import create_topics
    from services.common.settings import ServiceSettings

    names = asyncio.run(create_topics(ServiceSettings(), partitions))
    typer.echo(json.dumps({"topics": names}))


@schemas_app.command("generate")
def schemas_generate() -> None:
    """Write JSON Schema per topic and the AsyncAPI document to schemas/generated/."""
    from schemas.generate import write

    for path in write():
        typer.echo(str(path))


@schemas_app.command("check")
def schemas_check() -> None:
    """Exit 1 when schemas/generated/ differs from the models (run `make schemas`)."""
    from schemas.generate import drifted

    stale = drifted()
    if stale:
        typer.echo(f"out of date: {', '.join(stale)}; run `make schemas`", err=True)
        raise typer.Exit(1)
    typer.echo("schemas/generated is up to date")


@keys_app.command("new")
def keys_new(
    source: Annotated[str, typer.Option(help="The source's name, e.g. bedside-gateway.")],
    kinds: Annotated[
        list[str], typer.Option("--kind", help="An event kind it may send; repeat. Default: all.")
    ] = [],  # noqa: B006 - typer reads the default, it is never mutated
) -> None:
    """Make a new API key: give the key to the sender, put the printed table in the sources file."""
    from services.ingest.sources import new_key

    key, digest = new_key()
    allowed = ", ".join(f'"{kind}"' for kind in kinds) if kinds else '"*"'
    typer.echo(
        f"# API key for {source} (shown once; give it to the sender, store it nowhere else):"
    )
    typer.echo(f"# {key}")
    typer.echo("[[sources]]")
    typer.echo(f'name = "{source}"')
    typer.echo(f'key_sha256 = "{digest}"')
    typer.echo(f"kinds = [{allowed}]")


def main() -> None:
    app()


if __name__ == "__main__":
    main()

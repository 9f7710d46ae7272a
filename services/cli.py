"""`wardflow`: the one command for the stack, each service, the simulator and the tools."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
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
dlq_app = typer.Typer(help="The dead-letter topic (events.dlq).", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
state_app = typer.Typer(help="The scheduler's live state in Redis.", no_args_is_help=True)
app.add_typer(state_app, name="state")
layout_app = typer.Typer(
    help="The hospital layout: wards changed while the scheduler runs.", no_args_is_help=True
)
app.add_typer(layout_app, name="layout")


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
        from services.cleaning.codes import LocalCodesError
        from services.cleaning.config import CleaningSettings

        cleaning_settings = CleaningSettings()
        try:
            runner = build_cleaning(cleaning_settings)
        except LocalCodesError as error:
            typer.echo(f"cleaning: local code map: {error}", err=True)
            raise typer.Exit(2) from None
        run_service(name.value, cleaning_settings, lambda stop: run_stage(runner, stop))
    elif name is ServiceName.fusion:
        from services.fusion.config import FusionSettings
        from services.fusion.service import run as run_fusion

        fusion_settings = FusionSettings()
        run_service(name.value, fusion_settings, lambda stop: run_fusion(fusion_settings, stop))
    elif name is ServiceName.diagnosis:
        from services.common.hospital import LayoutError
        from services.diagnosis.app import build as build_diagnosis
        from services.diagnosis.config import DiagnosisSettings
        from services.diagnosis.rules import RulesError

        diagnosis_settings = DiagnosisSettings()
        try:
            runner = build_diagnosis(diagnosis_settings)
        except RulesError as error:
            typer.echo(f"diagnosis: rules file: {error}", err=True)
            raise typer.Exit(2) from None
        except (LayoutError, OSError) as error:
            typer.echo(f"diagnosis: hospital layout: {error}", err=True)
            raise typer.Exit(2) from None
        run_service(name.value, diagnosis_settings, lambda stop: run_stage(runner, stop))
    else:
        from services.scheduler import service as scheduler
        from services.scheduler.config import SchedulerSettings
        from services.scheduler.policy import PolicyError, configured_policy

        scheduler_settings = SchedulerSettings()
        try:
            configured_policy()  # refused before anything starts, with every entry at fault
        except PolicyError as error:
            typer.echo(f"scheduler: policy file: {error}", err=True)
            raise typer.Exit(2) from None
        run_service(
            name.value, scheduler_settings, lambda stop: scheduler.run(scheduler_settings, stop)
        )


@app.command()
def simulate() -> None:
    """Run the hospital simulator against an ingest endpoint (WARDFLOW_SIMULATOR_* settings)."""
    from services.simulator.app import main as simulator_main
    from services.simulator.config import SimulatorSettings

    simulator_main(SimulatorSettings())


@app.command()
def score() -> None:
    """Read one set of observations as JSON on standard input; print NEWS2, qSOFA and SIRS.

    Fields: respiration_rate, spo2_percent, spo2_scale (1 or 2), on_oxygen, systolic_bp, pulse,
    consciousness (A, C, V, P or U), temperature_celsius, gcs, wbc (10^9/L), paco2_mmhg. A field
    left out is missing, and the scores say so.
    """
    import sys
    from datetime import UTC, datetime

    from pydantic import ValidationError

    from services.common.errors import summarise
    from services.diagnosis.calculator import Observations
    from services.diagnosis.calculator import score as calculate

    try:
        observations = Observations.model_validate_json(sys.stdin.read() or "{}")
    except ValidationError as error:
        typer.echo(f"invalid observations: {summarise(error)}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(calculate(observations, datetime.now(UTC)), indent=2))


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
        list[str],
        typer.Option(
            "--kind",
            help="An event kind it may send; repeat. Default: all (none with --read or --write).",
        ),
    ] = [],  # noqa: B006 - typer reads the default, it is never mutated
    read: Annotated[
        bool, typer.Option("--read", help="It may read the scheduler's API (bed boards).")
    ] = False,
    write: Annotated[
        bool,
        typer.Option(
            "--write",
            help="It may write through the scheduler's API (bed requests, cancellations,"
            " blocking beds).",
        ),
    ] = False,
) -> None:
    """Make a new API key: give the key to the sender, put the printed table in the sources file."""
    from services.ingest.sources import KNOWN_KINDS, new_key, unknown_kinds

    unknown = unknown_kinds(kinds)
    if unknown:
        raise typer.BadParameter(
            f"not an event kind: {', '.join(unknown)}; known: {', '.join(sorted(KNOWN_KINDS))}",
            param_hint="--kind",
        )
    key, digest = new_key()
    allowed = ", ".join(f'"{kind}"' for kind in kinds) if kinds or read or write else '"*"'
    typer.echo(
        f"# API key for {source} (shown once; give it to the sender, store it nowhere else):"
    )
    typer.echo(f"# {key}")
    typer.echo("[[sources]]")
    typer.echo(f'name = "{source}"')
    typer.echo(f'key_sha256 = "{digest}"')
    typer.echo(f"kinds = [{allowed}]")
    if read:
        typer.echo("read = true")
    if write:
        typer.echo("write = true")


def _utc_timestamp(text: str) -> datetime:
    """An ISO 8601 date-time with an offset (`Z` or `+01:00`), for --since and --until."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter("not an ISO 8601 date-time, e.g. 2025-03-01T10:00:00Z") from None
    if moment.tzinfo is None:
        raise typer.BadParameter("give the offset too, e.g. 2025-03-01T10:00:00Z or +01:00")
    return moment


@dlq_app.command("replay")
def dlq_replay(
    reason: Annotated[
        list[str], typer.Option("--reason", help="Only letters with this reason; repeat.")
    ] = [],  # noqa: B006 - typer reads the default, it is never mutated
    since: Annotated[
        datetime | None,
        typer.Option(parser=_utc_timestamp, help="Only letters dead-lettered at or after this."),
    ] = None,
    until: Annotated[
        datetime | None,
        typer.Option(parser=_utc_timestamp, help="Only letters dead-lettered before this."),
    ] = None,
    stage: Annotated[
        str | None, typer.Option(help="Only letters of this stage, e.g. cleaning.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be replayed; send nothing.")
    ] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="Replay at most this many.")] = None,
    timeout: Annotated[
        float, typer.Option(min=1, help="Give up reading events.dlq after this many seconds.")
    ] = 60.0,
) -> None:
    """Send dead-lettered events back to their original topic, after a fix.

    Reads events.dlq up to where it ended at the start; prints counts by reason, never a payload.
    """
    from rich.console import Console
    from rich.table import Table

    from services.cleaning.replay import ReplayError, ReplayFilter, replay
    from services.common.settings import ServiceSettings

    chosen = ReplayFilter(frozenset(reason), stage, since, until)
    try:
        summary = asyncio.run(
            replay(ServiceSettings(), chosen, dry_run=dry_run, limit=limit, timeout_seconds=timeout)
        )
    except ReplayError as error:
        typer.echo(f"dlq replay: {error}", err=True)
        raise typer.Exit(2) from None
    done = "would replay" if dry_run else "replayed"
    table = Table("reason", done, "skipped", title="events.dlq replay" + (" (dry run)" * dry_run))
    for name in summary.reasons:
        table.add_row(name, str(summary.replayed[name]), str(summary.skipped[name]))
    table.add_row("total", str(summary.replayed.total()), str(summary.skipped.total()))
    Console().print(table)
    if not summary.complete:
        typer.echo(
            f"dlq replay: stopped after {timeout:g} s before the end of events.dlq", err=True
        )
        raise typer.Exit(1)


def main() -> None:
    app()


if __name__ == "__main__":
    main()


@state_app.command("rebuild")
def state_rebuild(
    check: Annotated[
        bool, typer.Option("--check", help="Only compare Redis with Kafka; change nothing.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds allowed to read beds.state.")] = 120.0,
) -> None:
    """Restore the scheduler's Redis state from beds.state (stop the scheduler first).

    Reads the latest snapshot of every ward and critical-care queue from Kafka and writes each
    scope that differs back to Redis (REDIS_URL, WARDFLOW_REDIS_KEY_PREFIX, WARDFLOW_REDIS_CLUSTER;
    the key names follow WARDFLOW_HOSPITAL_LAYOUT, as the scheduler's). Exit 1 with --check when
    something differs.
    """
    import asyncio

    from services.common.hospital import load_layout
    from services.common.redis_client import make_redis
    from services.scheduler.config import SchedulerSettings
    from services.scheduler.follower import current_layout
    from services.scheduler.rebuild import rebuild
    from services.scheduler.store import RedisBedStore

    settings = SchedulerSettings()

    async def main() -> int:
        # The scopes are those of the layout the scheduler has: its file and hospital.layout.
        layout = await current_layout(settings, load_layout(settings.hospital_layout), timeout)
        redis = make_redis(settings.redis_url, cluster=settings.redis_cluster)
        try:
            store = RedisBedStore(redis, settings.redis_key_prefix, layout=layout)
            report = await rebuild(
                settings, store, check_only=check, timeout_seconds=timeout, layout=layout
            )
        finally:
            await redis.aclose()
        typer.echo(
            f"beds.state: {report.records_read} records, {len(report.scopes)} scopes;"
            f" differing from Redis: {len(report.differing)}"
            + ("" if check else f"; restored: {len(report.restored)}")
        )
        for scope in report.differing:
            typer.echo(f"  {'differs' if check else 'restored'}: {scope}")
        for scope in report.outside_layout:
            typer.echo(f"  not in the layout, left alone: {scope}")
        for scope in report.not_on_kafka:
            typer.echo(f"  no snapshot on beds.state (the scheduler creates it): {scope}")
        return 1 if check and report.differing else 0

    raise typer.Exit(asyncio.run(main()))


@layout_app.command("publish")
def layout_publish(
    file: Annotated[
        Path, typer.Argument(help="A layout TOML file, shaped as WARDFLOW_HOSPITAL_LAYOUT's.")
    ],
    wards: Annotated[
        list[str], typer.Option("--ward", help="Only this ward of the file; repeat.")
    ] = [],  # noqa: B006 - typer reads the default, it is never mutated
    role: Annotated[
        str, typer.Option(help="The role applying the file (never a person's name).")
    ] = "layout-admin",
    reason: Annotated[
        str | None,
        typer.Option(help="Why, as a code: new_ward, capacity, reconfiguration, ... (see docs)."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds allowed to read the topic.")] = 120.0,
) -> None:
    """Publish the wards of a layout file to hospital.layout: running schedulers apply them.

    Wards equal to the current layout (the scheduler's file, WARDFLOW_HOSPITAL_LAYOUT, with
    hospital.layout folded over it) are skipped. If a ward would lose a bed in use, or change
    its level of care with beds occupied or reserved, nothing is published (exit 1). An invalid
    file exits 2, naming the entry.
    """
    import tomllib
    from typing import get_args

    from pydantic import TypeAdapter, ValidationError

    from schemas.base import Identifier
    from schemas.layout import LayoutChangeReason
    from services.common.hospital import LayoutError
    from services.scheduler.config import SchedulerSettings
    from services.scheduler.layout_file import publish_file

    try:
        TypeAdapter(Identifier).validate_python(role)
    except ValidationError:
        raise typer.BadParameter("letters, digits and . _ : - only", param_hint="--role") from None
    codes = get_args(LayoutChangeReason)
    if reason is not None and reason not in codes:
        raise typer.BadParameter(f"one of {', '.join(codes)}", param_hint="--reason")
    try:
        report = asyncio.run(
            publish_file(SchedulerSettings(), str(file), wards, role, reason, timeout)  # type: ignore[arg-type]
        )
    except (LayoutError, OSError, tomllib.TOMLDecodeError) as error:
        typer.echo(f"layout publish: {file.name}: {error}", err=True)
        raise typer.Exit(2) from None
    for ward in report.published:
        typer.echo(f"published: {ward}")
    for ward in report.unchanged:
        typer.echo(f"unchanged: {ward}")
    for ward, refused in report.refused.items():
        typer.echo(f"refused: {ward}: {refused.reason}: {', '.join(refused.beds)}", err=True)
    if report.refused:
        typer.echo("layout publish: nothing was published", err=True)
        raise typer.Exit(1)

"""`python -m bench` (`make bench`): run each scenario family, write bench/results/<family>.json
and .md, print the table. Exit 0 when the bench ran, targets met or not; 1 when it could not run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import platform
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table

from bench import diagnosis, ingest, pipeline, report, scheduler, scoring, stages
from bench.common import Options

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
Family = Callable[[Options], Awaitable[tuple[list[dict[str, Any]], dict[str, Any]]]]
Rows = Callable[[list[dict[str, Any]]], list[list[str]]]


def machine_info() -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    cpu_model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": commit or "unknown",
        "cpu_count": psutil.cpu_count(logical=True),
        "cpu_model": cpu_model,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def table_rows(scenarios: list[dict[str, Any]]) -> list[list[str]]:
    """Header and one row per scenario, shared by the Markdown file and the console table."""
    rows = [
        [
            "scenario",
            "offered/s",
            "events/s",
            "req/s",
            "ACK p50 / p95 / p99 ms",
            "ingest CPU",
            "events/core-s",
            "CPU s ingest/broker/client",
            "errors",
            "target",
        ]
    ]
    for s in scenarios:
        ack, cpu, target = s["ack_latency_ms"], s["cpu_seconds"], s["target"]
        per_core = s["events_per_core_second"]
        verdict = (
            ""
            if target is None
            else f"{target['text']}: "
            + ({True: "met", False: "MISSED", None: "n/a"}[target["met"]])
        )
        rows.append(
            [
                s["name"],
                f"{s['offered_per_second']:,.0f}" if s["offered_per_second"] else "closed loop",
                f"{s['events_per_second']:,.0f}",
                f"{s['requests_per_second']:,.0f}",
                " / ".join(
                    "-" if ack[k] is None else f"{ack[k]:.1f}" for k in ("p50", "p95", "p99")
                ),
                f"{s['ingest_cpu_utilisation']:.0%}",
                "-" if per_core is None else f"{per_core:,.0f}",
                " / ".join(f"{cpu.get(name, 0.0):.1f}" for name in ("ingest", "broker", "client")),
                ", ".join(f"{n} {kind}" for kind, n in s["error_kinds"].items()) or "0",
                verdict,
            ]
        )
    return rows


FAMILIES: dict[str, tuple[Family, Rows]] = {
    "ingest": (ingest.run, table_rows),
    "stages": (stages.run, stages.table_rows),
    "scoring": (scoring.run, scoring.table_rows),
    "diagnosis": (diagnosis.run, diagnosis.table_rows),
    "scheduler": (scheduler.run, scheduler.table_rows),
    "pipeline": (pipeline.run, report.table_rows),
}
WRITERS: dict[str, Callable[[Path, dict[str, Any]], list[Path]]] = {
    "pipeline": report.write,  # latest.json, pipeline.md and pipeline.png
}
HEADLINES: dict[str, Callable[[dict[str, Any]], list[str]]] = {
    "pipeline": report.headline_lines,  # the maxima and the targets, beside the table
}
SCENARIO_BOUND = {"pipeline": 60}  # windows a family may take before it is deemed hung


def write_results(directory: Path, family: str, report: dict[str, Any]) -> list[Path]:
    """`<family>.json` (everything) and `<family>.md` (the table), both meant to be committed."""
    if family in WRITERS:
        return WRITERS[family](directory, report)
    directory.mkdir(parents=True, exist_ok=True)
    json_path, md_path = directory / f"{family}.json", directory / f"{family}.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    machine, options = report["machine"], report["options"]
    rows = FAMILIES[family][1](report["scenarios"])
    lines = [
        f"# wardflow bench: {family}",
        "",
        f"{machine['date']}, commit {machine['git_commit']}, {machine['cpu_count']} CPUs "
        f"({machine['cpu_model']}), Python {machine['python']}. Each scenario: "
        f"{options['warmup_seconds']:g} s warm-up, then {options['duration_seconds']:g} s "
        "measured. Loopback; the broker, the services and the load generator share the machine. "
        "Produced by `make bench`; targets are reported, never asserted.",
        "",
        "| " + " | ".join(rows[0]) + " |",
        "|" + "---|" * len(rows[0]),
        *("| " + " | ".join(row) + " |" for row in rows[1:]),
        "",
        *(f"- {s['name']}: {s['description']}" for s in report["scenarios"]),
        *(f"- {key}: {value}" for key, value in report["checks"].items()),
    ]
    md_path.write_text("\n".join(lines) + "\n")
    return [json_path, md_path]


def print_table(console: Console, family: str, scenarios: list[dict[str, Any]]) -> None:
    rows = FAMILIES[family][1](scenarios)
    table = Table(title=f"wardflow bench: {family}")
    for header in rows[0]:
        table.add_column(header, overflow="fold")
    for row in rows[1:]:
        style = "red" if row[-1].endswith("MISSED") else None
        table.add_row(*row, style=style)
    console.print(table)


async def run_families(names: list[str], options: Options, console: Console) -> None:
    # Bounded as a whole too: every scenario ends by itself, this catches anything that hangs.
    for name in names:
        bound = 300 + SCENARIO_BOUND.get(name, 10) * (
            options.warmup_seconds + options.duration_seconds
        )
        console.print(f"[bold]{name}[/]: logs in {options.log_dir}")
        async with asyncio.timeout(bound):
            results, checks = await FAMILIES[name][0](options)
        settings = {k: v for k, v in asdict(options).items() if k != "log_dir"}
        report = {"family": name, "machine": machine_info(), "options": settings,
                  "scenarios": results, "checks": checks}  # fmt: skip
        paths = write_results(RESULTS_DIR, name, report)
        print_table(console, name, results)
        for key, value in checks.items():
            console.print(f"{key}: {value}")
        for line in HEADLINES.get(name, lambda _: [])(report):
            console.print(line)
        console.print("written: " + ", ".join(str(p.relative_to(ROOT)) for p in paths))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("families", nargs="*", metavar="FAMILY", help=f"default: all {[*FAMILIES]}")
    parser.add_argument("--quick", action="store_true", help="about 4 s per scenario")
    parser.add_argument("--duration", type=float, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds before each")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.families) - set(FAMILIES))
    if unknown:
        parser.error(f"unknown families {unknown}; choose from {[*FAMILIES]}")
    duration = args.duration or (4.0 if args.quick else 15.0)
    warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    options = Options(duration, warmup, ROOT / "var" / "bench" / "logs")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # start-up polls log refusals
    console = Console() if sys.stdout.isatty() else Console(width=160)
    try:
        asyncio.run(run_families(args.families or [*FAMILIES], options, console))
    except KeyboardInterrupt:
        console.print("interrupted; every process the bench started was stopped")
        return 130
    except Exception as error:
        console.print(f"[red]the bench could not run:[/] {type(error).__name__}: {error}")
        console.print(f"logs: {options.log_dir}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

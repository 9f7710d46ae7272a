"""The pipeline family's results: `latest.json` (the headline figures, every rate, the machine),
`pipeline.md` (the tables) and `pipeline.png` (latency against sustained throughput)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.figures import RatePoint, max_sustained

RATIO_TARGET = 0.60
P99_TARGET_SECONDS = 0.200
P99_TARGET_RATE = 1_000.0
DEFINITIONS = {
    "offered_eps": "vital signs/s posted to ingest on the open-loop timetable (baseline: written "
    "to the first relay topic)",
    "sustained_eps": "records/s taken in over the measured window by the last stage every event "
    "passes: fusion (events.clean); baseline: the last relay",
    "sustained": "sustained_eps >= 95 % of offered, no stage's backlog grew by more than 5 % of "
    "its inflow (least-squares slope over the window, at least 2 records/s), no request failed, "
    "and everything drained within 30 s of the last send",
    "max_throughput_eps": "sustained_eps at the highest offered rate that was sustained",
    "e2e": "patients.state record timestamp - cause_recorded_at (when ingest accepted the event "
    "that made that version), over snapshots whose cause was accepted in the window; baseline: "
    "third relay topic's record timestamp - the moment the bench wrote the record (same hops)",
    "hops": "each output record's timestamp minus its input record's (events.raw - recorded_at, "
    "events.clean - events.raw by event id, patients.state - the causing events.clean record, "
    "the assessment - the snapshot it assessed)",
    "events_lost": "per stage: received - (passed on or taken in + deduplicated + dead-lettered "
    "+ dropped for a counted reason), summed over the stages; must be 0",
}


def headline(rows: list[dict[str, Any]]) -> dict[str, Any]:
    points = [RatePoint(r["offered_eps"], r["sustained_eps"], r["sustained"]) for r in rows]
    best = max_sustained(points)
    return {
        "max_throughput_eps": None if best is None else best.through,
        "max_sustained_offered_eps": None if best is None else best.offered,
        "every_rate_sustained": bool(rows) and all(r["sustained"] for r in rows),
        "rates": rows,
    }


def latest(report: dict[str, Any]) -> dict[str, Any]:
    rows = report["scenarios"]
    pipeline = headline([r for r in rows if r["system"] == "pipeline"])
    baseline = headline([r for r in rows if r["system"] == "baseline"])
    at_1000 = next((r for r in pipeline["rates"] if r["offered_eps"] == P99_TARGET_RATE), None)
    p99 = None if at_1000 is None or at_1000["e2e_ms"]["p99"] is None else at_1000["e2e_ms"]["p99"]
    pipeline["p99_seconds_at_1000_eps"] = None if p99 is None else round(p99 / 1000, 4)
    ratio = None
    if pipeline["max_throughput_eps"] and baseline["max_throughput_eps"]:
        ratio = round(pipeline["max_throughput_eps"] / baseline["max_throughput_eps"], 3)
    machine = report["machine"]
    return {
        "family": "pipeline",
        "date": machine["date"],
        "commit": machine["git_commit"],
        "machine": machine,
        "options": report["options"],
        "pipeline": pipeline,
        "baseline": baseline,
        "ratio": ratio,
        "targets": [
            verdict("pipeline max / relay max >= 0.6", ratio, RATIO_TARGET, at_least=True),
            verdict(
                "e2e p99 <= 200 ms at 1,000 events/s",
                pipeline["p99_seconds_at_1000_eps"],
                P99_TARGET_SECONDS,
                at_least=False,
                unit="s",
            ),
        ],
        "definitions": DEFINITIONS,
        "checks": report["checks"],
    }


def verdict(
    text: str, value: float | None, threshold: float, *, at_least: bool, unit: str = ""
) -> dict[str, Any]:
    met = None if value is None else (value >= threshold if at_least else value <= threshold)
    return {"text": text, "value": value, "unit": unit, "threshold": threshold, "met": met}


def _ms(summary: dict[str, Any], *points: str) -> str:
    # Record timestamps are whole milliseconds: a hop shorter than that can show as -0.x.
    return " / ".join("-" if summary[p] is None else f"{max(0.0, summary[p]):,.0f}" for p in points)


def table_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    """The main table: one line per system and rate."""
    table = [["system", "offered/s", "sustained/s", "sustained", "e2e p50 / p95 / p99 ms",
              "samples", "drained s", "lost", "CPU cores (all)", "other load"]]  # fmt: skip
    for r in rows:
        why = "; ".join(r["not_sustained_because"])
        table.append([
            r["system"], f"{r['offered_eps']:,.0f}", f"{r['sustained_eps']:,.0f}",
            "yes" if r["sustained"] else f"no ({why})",
            _ms(r["e2e_ms"], "p50", "p95", "p99"), f"{r['e2e_samples']:,}",
            "-" if r["drained_seconds_after_last_send"] is None
            else f"{r['drained_seconds_after_last_send']:g}",
            str(r["events_lost"]), f"{sum(r['cpu_share'].values()):.2f}",
            "-" if r.get("other_load_cores") is None else f"{r['other_load_cores']:.2f}",
        ])  # fmt: skip
    return table


def stage_rows(rows: list[dict[str, Any]]) -> list[list[str]]:
    """Per stage of the pipeline: hop latencies, CPU (share of a core) and peak RSS."""
    names = ("ingest", "cleaning", "fusion", "diagnosis", "scheduler", "broker", "redis", "client")
    hops = ["accept->raw", "raw->clean", "clean->state", "state->assessment"]
    table = [["offered/s", *hops, "ACK p99 ms", "CPU " + "/".join(names),
              "peak RSS MiB " + "/".join(names)]]  # fmt: skip
    for r in rows:
        if r["system"] != "pipeline":
            continue
        hops = r["hop_ms"]
        table.append([
            f"{r['offered_eps']:,.0f}",
            *(_ms(hops[h], "p50", "p99") for h in ("accept_to_raw", "raw_to_clean",
                                                   "clean_to_state", "state_to_assessment")),
            _ms(r["ack_ms"], "p99"),
            " / ".join(f"{r['cpu_share'].get(n, 0):.2f}" for n in names),
            " / ".join(f"{r['peak_rss_mib'].get(n, 0):.0f}" for n in names),
        ])  # fmt: skip
    return table


def markdown(summary: dict[str, Any]) -> str:
    machine, options = summary["machine"], summary["options"]
    rows = summary["pipeline"]["rates"] + summary["baseline"]["rates"]

    def table(cells: list[list[str]]) -> list[str]:
        return ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0]),
                *("| " + " | ".join(row) + " |" for row in cells[1:])]  # fmt: skip

    lines = [
        "# wardflow bench: pipeline",
        "",
        f"{machine['date']}, commit {machine['git_commit']}, {machine['cpu_count']} CPUs "
        f"({machine['cpu_model']}), Python {machine['python']}. Per rate: "
        f"{options['warmup_seconds']:g} s warm-up, then {options['duration_seconds']:g} s "
        "measured. Loopback; the broker, the services and the load generator share the machine "
        "(`other load` is CPU used by other processes during the window, in cores). Produced "
        "by `make bench`; targets are reported, never asserted.",
        "",
        *(f"- {line}" for line in summary_lines(summary)),
        "",
        *table(table_rows(rows)),
        "",
        "Pipeline, per stage (p50 / p99 ms; CPU as a share of one core over the window):",
        "",
        *table(stage_rows(rows)),
        "",
        "Definitions:",
        "",
        *(f"- **{name}**: {text}" for name, text in summary["definitions"].items()),
        "",
        *(f"- {key}: {value}" for key, value in summary["checks"].items()),
    ]
    return "\n".join(lines) + "\n"


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The two maxima and each target with its value and verdict (Markdown emphasis)."""

    def figure(value: float | None, unit: str = "") -> str:
        return "-" if value is None else f"{value:,.1f}{unit}"

    lines = []
    for system, name in (("pipeline", "pipeline"), ("baseline", "relay baseline")):
        part = summary[system]
        lines.append(
            f"{name} max sustained: **{figure(part['max_throughput_eps'], ' events/s')}** "
            f"(offered {figure(part['max_sustained_offered_eps'], '/s')})"
            + (" (every rate tried was sustained: a lower bound)"
               if part["every_rate_sustained"] else "")
        )  # fmt: skip
    for target in summary["targets"]:
        verdict = {True: "met", False: "**MISSED**", None: "n/a"}[target["met"]]
        value = "-" if target["value"] is None else f"{target['value']:g} {target['unit']}".strip()
        lines.append(f"target {target['text']}: {value} -> {verdict}")
    return lines


def headline_lines(report: dict[str, Any]) -> list[str]:
    """For the console: the maxima and the targets of a run, without Markdown emphasis."""
    return [line.replace("**", "") for line in summary_lines(latest(report))]


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 5), dpi=110)
    styles = {"pipeline": "tab:red", "baseline": "tab:blue"}
    for system, colour in styles.items():
        rows = [r for r in summary[system]["rates"] if r["e2e_ms"]["p50"] is not None]
        for point, dash in (("p50", "-"), ("p99", "--")):
            xs = [r["sustained_eps"] for r in rows]
            ys = [r["e2e_ms"][point] for r in rows]
            axes.plot(xs, ys, dash, color=colour, label=f"{system} {point}")
            for r, x, y in zip(rows, xs, ys, strict=True):
                axes.plot(x, y, "o", color=colour, fillstyle="full" if r["sustained"] else "none")
    axes.axhline(P99_TARGET_SECONDS * 1000, color="grey", linestyle=":", linewidth=1)
    axes.annotate("target: p99 <= 200 ms at 1,000 events/s", (0.01, P99_TARGET_SECONDS * 1000),
                  xycoords=("axes fraction", "data"), fontsize=8, color="grey",
                  verticalalignment="bottom")  # fmt: skip
    axes.set_yscale("log")
    axes.set_xlabel("sustained throughput (events/s)")
    axes.set_ylabel("end-to-end latency (ms)")
    axes.set_title(
        f"wardflow pipeline vs plain aiokafka relay, {summary['date'][:10]}, {summary['commit']}"
        "\n(hollow markers: rate not sustained)",
        fontsize=10,
    )
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write(directory: Path, report: dict[str, Any]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    summary = latest(report)
    paths = [directory / "latest.json", directory / "pipeline.md", directory / "pipeline.png"]
    paths[0].write_text(json.dumps(summary, indent=2) + "\n")
    paths[1].write_text(markdown(summary))
    plot(summary, paths[2])
    return paths

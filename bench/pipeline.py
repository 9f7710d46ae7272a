"""The whole pipeline at a sweep of offered rates, and its physical reference (`baseline.py`).

The embedded broker, valkey and the five services as processes (`wardflow service <name>`), driven
through ingest over HTTP by the simulator's hospital (`load.py`): for each rate, in increasing
order, a new cohort of PATIENTS patients is admitted, their vital signs are posted on an open-loop
timetable (warm-up, then the measured window), everything drains, they are discharged, and the
stage topics are read back (`readback.py`) for the loss account and the latencies. The sweep
stops at the first rate the pipeline clearly cannot sustain (`figures.should_stop`); the relay's
rates (`baseline.py`) are interleaved with it. Definitions are in bench/README.md ("Pipeline").
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

import httpx

from bench import baseline
from bench.common import Options, Stack, running_stack
from bench.figures import (
    Ladder,
    StageAccount,
    Verdict,
    ids_account,
    judge,
    latency_summary,
)
from bench.http_client import KeepAlivePool
from bench.ingest import Ingest, start_ingest
from bench.load import CONNECTIONS, Cohort, Poster, bodies, timetable
from bench.probe import (
    IN,
    OUT,
    Flow,
    Probe,
    Sample,
    backlog_growth,
    cpu_share,
    drained,
    other_load,
    peak_rss_mib,
    rate,
    total,
)
from bench.probe import inflow as inflows
from bench.readback import PipelineRecords, TopicTail
from schemas.topics import (
    EVENTS_CLEAN,
    EVENTS_DLQ,
    EVENTS_RAW,
    PATIENTS_ASSESSMENTS,
    PATIENTS_STATE,
)
from services.common.embedded import FETCH_WAIT_MS, free_port, start_redis
from services.common.kafka import topic

log = logging.getLogger(__name__)

RATES = (1000.0, 4000.0, 6000.0, 6500.0, 7000.0, 7500.0, 8000.0, 8500.0, 9000.0)
"""From the rate of the latency target up, in 500/s steps where the maximum has been (7,000-8,000/s
since producers send a partition's records as one batch): in the run with 3,000 and 5,000/s as
well, the time budget ended the sweep at 7,500/s with every rate sustained."""
ALWAYS_UP_TO = 1000.0  # the rate of the latency target is measured even after a clear miss
BUDGET_WINDOWS = 15  # no new rate starts after this many (warm-up + window)s: make bench < 10 min
PATIENTS = 1000
DRAIN_SECONDS = 30.0
SERVICES = ("cleaning", "fusion", "diagnosis", "scheduler")  # ingest is started first
FLOWS = (
    Flow("cleaning", (("ingest", OUT, "events.raw"),), (("cleaning", IN, "events.raw"),)),
    Flow("fusion", (("cleaning", OUT, "events.clean"),), (("fusion", IN, "events.clean"),)),
    Flow("diagnosis", (("fusion", OUT, "patients.state"),), (("diagnosis", IN, "patients.state"),)),
    Flow(
        "scheduler",
        (("cleaning", OUT, "events.clean"), ("diagnosis", OUT, "patients.assessments")),
        (("scheduler", IN, "events.clean"), ("scheduler", IN, "patients.assessments")),
    ),
)
THROUGH = ("fusion", IN, "events.clean")
"""The last hop every event takes: after fusion the stream is patient snapshots (throttled)."""
TOPICS = (EVENTS_RAW, EVENTS_CLEAN, EVENTS_DLQ, PATIENTS_STATE, PATIENTS_ASSESSMENTS)
READER_KEY = "bench-reader-key-0123456789"


@dataclass
class Pipeline:
    """The stack under test as the bench drives and watches it."""

    stack: Stack
    ingest: Ingest
    pool: KeepAlivePool
    tail: TopicTail
    urls: dict[str, str]
    pids: dict[str, int]


async def wait_drained(pipeline: Pipeline, seconds: float) -> float | None:
    """Seconds until every stage has taken in all that was written to it (None: not in time)."""
    probe, started = Probe(pipeline.urls, {}), time.perf_counter()
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.perf_counter() - started < seconds:
            if drained(await probe.sample(client), FLOWS):
                return round(time.perf_counter() - started, 2)
            await asyncio.sleep(0.2)
    return None


async def run_rate(pipeline: Pipeline, number: int, per_second: float, options: Options) -> dict:
    """One offered rate with a new cohort: admit, timetable, drain, discharge, read back."""
    cohort = Cohort(number, PATIENTS, datetime.now(UTC))
    poster = Poster(pipeline.pool)
    probe = Probe(pipeline.urls, pipeline.pids)
    async with httpx.AsyncClient(timeout=2.0) as client:
        base = await probe.sample(client)  # the account's start: before this rate sends anything
    stop = asyncio.Event()
    sampling = asyncio.create_task(probe.run(stop))
    phases: dict[str, float] = {}
    began = time.perf_counter()

    def phase(name: str) -> None:
        phases[name] = round(time.perf_counter() - began - sum(phases.values()), 1)

    try:
        await poster.burst(bodies(cohort.admissions()))
        admitted_in = await wait_drained(pipeline, DRAIN_SECONDS)
        phase("admissions")
        seconds = options.warmup_seconds + options.duration_seconds
        stamped = time.time() + 0.5 + per_second * seconds * 40e-6  # after the bodies are made
        slices = timetable(cohort, per_second, seconds, stamped)
        start = max(stamped, time.time() + 0.05)  # if late, readings are sent a little later
        window = (start + options.warmup_seconds, start + seconds)
        await asyncio.sleep(max(0.0, start - time.time()))
        await poster.on_timetable(slices, start)
        phase("timetable")
        drained_in = await wait_drained(pipeline, DRAIN_SECONDS)
        phase("drain")
        await poster.burst(bodies(cohort.discharges(datetime.now(UTC))))
        await wait_drained(pipeline, DRAIN_SECONDS)
        phase("discharges")
    finally:
        stop.set()
        await sampling
    names = {topic(pipeline.stack.settings, spec): spec.name for spec in TOPICS}
    records = PipelineRecords()
    for name, items in (await pipeline.tail.read()).items():
        records.add(names[name], items)
    async with httpx.AsyncClient(timeout=2.0) as client:
        final = await probe.sample(client)
    phase("read_back")
    row = rate_row(per_second, probe, (base, final), records, poster, window, drained_in,
                   admitted_in)  # fmt: skip
    return {**row, "phase_seconds": phases}


def delta(first: Sample, last: Sample, process: str, metric: str, **labels: str) -> int:
    before = total(first.counters.get(process, {}), metric, **labels)
    return round(total(last.counters.get(process, {}), metric, **labels) - before)


def accounts(
    first: Sample, last: Sample, records: PipelineRecords, accepted: set[str]
) -> list[StageAccount]:
    """Where every event accepted during this rate went, stage by stage."""
    raw, clean = set(records.raw), set(records.clean)
    assessments = sum(records.assessment_kinds.values())
    queued = {flow.stage: max(0, round(last.backlog(flow))) for flow in FLOWS}

    def dlq(stage: str) -> int:
        return delta(first, last, stage, OUT, stage=stage, topic="events.dlq")

    def taken(stage: str, *topics: str) -> int:
        return sum(delta(first, last, stage, IN, stage=stage, topic=t) for t in topics)

    def counted(stage: str, received: int, *topics: str) -> StageAccount:
        return StageAccount(stage, received, taken(stage, *topics) - dlq(stage),
                            dead_lettered=dlq(stage), queued=queued[stage])  # fmt: skip

    return [
        ids_account("ingest", accepted, raw, set()),
        ids_account(
            "cleaning", raw, clean, records.dead_lettered("cleaning"),
            deduplicated=delta(first, last, "cleaning", "wardflow_duplicates_dropped_total"),
            dropped=delta(first, last, "cleaning", "wardflow_events_dropped_total"),
            queued=queued["cleaning"],
        ),
        counted("fusion", len(clean), "events.clean"),
        counted("diagnosis", len(records.states), "patients.state"),
        counted("scheduler", len(clean) + assessments, "events.clean", "patients.assessments"),
    ]  # fmt: skip


def rate_row(
    per_second: float,
    probe: Probe,
    account_span: tuple[Sample, Sample],
    records: PipelineRecords,
    poster: Poster,
    window: tuple[float, float],
    drained_in: float | None,
    admitted_in: float | None,
) -> dict[str, Any]:
    inside = probe.between(*window)
    first, last = inside[0], inside[-1]
    through = rate(first, last, THROUGH)
    growth = backlog_growth(inside, FLOWS)
    arriving = inflows(first, last, FLOWS)
    errors = sum(poster.sent.errors.values())
    verdict = judge(per_second, through, growth, arriving, errors=errors,
                    drained=drained_in is not None)  # fmt: skip
    stage_accounts = accounts(*account_span, records, poster.sent.accepted)
    latencies = records.latencies(*window)
    snapshots = len(latencies["e2e_state"])
    return {
        "system": "pipeline",
        "offered_eps": per_second,
        "sustained_eps": round(through, 1),
        "sustained": verdict.sustained,
        "clearly_not_sustained": verdict.clearly_not,
        "not_sustained_because": list(verdict.reasons),
        "e2e_ms": latency_summary(latencies["e2e_state"]),
        "e2e_samples": snapshots,
        "e2e_assessment_ms": latency_summary(latencies["e2e_assessment"]),
        "e2e_assessment_samples": len(latencies["e2e_assessment"]),
        "hop_ms": {
            hop: latency_summary(values)
            for hop, values in latencies.items()
            if not hop.startswith("e2e")
        },
        "ack_ms": latency_summary(poster.sent.ack_latencies(*window)),
        "request_errors": dict(poster.sent.errors),
        "generator_max_lag_ms": round(poster.sent.max_lag_seconds * 1000, 1),
        "snapshots_per_event": round(snapshots / max(1, len(latencies["accept_to_raw"])), 4),
        "backlog_growth_per_second": {k: round(v, 1) for k, v in growth.items()},
        "drained_seconds_after_last_send": drained_in,
        "admissions_drained_seconds": admitted_in,
        "cpu_share": cpu_share(first, last),
        "other_load_cores": other_load(first, last),
        "peak_rss_mib": peak_rss_mib(probe.samples),
        "accounts": [{**asdict(a), "lost": a.lost} for a in stage_accounts],
        "events_accepted": len(poster.sent.accepted),
        "events_lost": sum(a.lost for a in stage_accounts),
        "dead_letters": records.dead_letter_reasons(),
        "bytes_per_record": records.bytes_per_record,
    }


async def start_pipeline(stack: Stack, options: Options) -> tuple[Ingest, dict[str, int]]:
    redis = await start_redis(options.log_dir, options.log_dir / "pipeline-redis")
    stack.servers.append(redis)
    common = {"WARDFLOW_TOPIC_PREFIX": stack.settings.topic_prefix, "WARDFLOW_PARTITIONS": "4",
              "WARDFLOW_KAFKA_FETCH_MAX_WAIT_MS": str(FETCH_WAIT_MS),
              "REDIS_URL": redis.url}  # fmt: skip
    ingest = await start_ingest(stack, common)
    scheduler = {"WARDFLOW_HTTP_PORT": str(free_port()),
                 "WARDFLOW_API_KEYS": f'{{"bench": "{READER_KEY}"}}'}  # fmt: skip
    await asyncio.gather(  # together: each start is mostly imports, and there are two cores
        *(
            stack.start_service(
                name, common | (scheduler if name == "scheduler" else {}), timeout_seconds=120.0
            )
            for name in SERVICES
        )
    )
    return ingest, {**stack.pids(), "redis": redis.process.pid}


async def rate_on_a_fresh_stack(
    options: Options, number: int, per_second: float
) -> tuple[dict[str, Any], list[tuple[bytes | None, bytes]]]:
    """One rate on its own broker, Redis and services: the embedded broker's memory storage is
    never freed and its CPU per event grows with what it holds (bench/README.md), so a rate run
    after others would measure the earlier rates' leftovers. Returns the row and a sample of the
    events.raw records for the relay baseline."""
    options = replace(options, log_dir=options.log_dir / f"pipeline-{per_second:g}")
    async with running_stack(options.log_dir) as stack:
        ingest, pids = await start_pipeline(stack, options)
        names = [topic(stack.settings, spec) for spec in TOPICS]
        tail = TopicTail(stack.kafka_url, names)
        await tail.start()
        try:
            async with ingest.client(CONNECTIONS) as pool:
                urls = {n: f"http://127.0.0.1:{p}/metrics" for n, p in stack.metrics_ports.items()}
                pipeline = Pipeline(stack, ingest, pool, tail, urls, pids)
                row = await run_rate(pipeline, number, per_second, options)
            sample = await baseline.raw_sample(stack, baseline.POOL_RECORDS)
        finally:
            await tail.stop()
    return row, sample


async def run(options: Options) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The two sweeps, interleaved: a pipeline rate, then a relay rate, and so on, each on its own
    ladder, stop rule and time budget. Run one after the other, a slow spell of the shared machine
    (they last minutes here) would fall on one system's sweep and skew their ratio; interleaved,
    both meet it. The relay replays events.raw records of the latest pipeline rate."""
    window = options.warmup_seconds + options.duration_seconds
    pipeline = Ladder(RATES, BUDGET_WINDOWS * window, always_up_to=ALWAYS_UP_TO)
    relay = Ladder(baseline.RATES, baseline.BUDGET_WINDOWS * window)
    pipeline_rows: list[dict[str, Any]] = []
    baseline_rows: list[dict[str, Any]] = []
    sample: list[tuple[bytes | None, bytes]] = []
    failure: str | None = None
    while True:
        ran = False
        if (per_second := pipeline.next_rate()) is not None:
            started = time.monotonic()
            number = len(pipeline_rows) + 1
            row, sample = await rate_on_a_fresh_stack(options, number, per_second)
            pipeline_rows.append(row)
            pipeline.record(verdict_of(row), time.monotonic() - started)
            ran = True
        if failure is None and (per_second := relay.next_rate()) is not None:
            started = time.monotonic()
            try:
                row = await baseline.rate_on_a_fresh_broker(options, sample, per_second)
            except Exception as error:  # the pipeline's figures are kept; the ratio is then n/a
                log.exception("relay baseline failed")
                failure = f"{type(error).__name__}: {error}"
            else:
                baseline_rows.append(row)
                relay.record(verdict_of(row), time.monotonic() - started)
                ran = True
        if not ran:
            break
    for ladder, rows in ((pipeline, pipeline_rows), (relay, baseline_rows)):
        if ladder.cut_by_budget and rows:
            rows[-1]["sweep_cut_by_time_budget"] = True
    every_row = pipeline_rows + baseline_rows
    return every_row, checks_of(every_row, failure)


def verdict_of(row: dict[str, Any]) -> Verdict:
    return Verdict(row["sustained"], row["clearly_not_sustained"])


def checks_of(rows: list[dict[str, Any]], baseline_failure: str | None) -> dict[str, Any]:
    """What the report lists besides the figures: each rate's loss, a sweep the time budget
    cut, and a relay baseline that could not run (the pipeline's rows are reported anyway)."""
    checks: dict[str, Any] = {
        f"{r['system']} {r['offered_eps']:,.0f}/s: events lost": r["events_lost"] for r in rows
    }
    for row in rows:
        if row.get("sweep_cut_by_time_budget"):
            checks[f"{row['system']} sweep"] = (
                f"stopped by the time budget after {row['offered_eps']:,.0f}/s"
            )
    if baseline_failure is not None:
        checks["baseline"] = f"could not run, so no ratio: {baseline_failure}"
    return checks

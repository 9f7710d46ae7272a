"""The physical reference: plain aiokafka relays through as many hops as the pipeline has.

On a fresh embedded broker (the same Tansu, topics with the same 4 partitions), RELAYS relay
processes (`relay.py`) pass every record from `bench.relay.0` to `.1`, `.2` and `.3`, as cleaning,
fusion and diagnosis pass events.raw to events.clean, patients.state and patients.assessments. The
bench stands in for ingest: on the same open-loop timetable it writes, per slice, one batch of
real events.raw records read back from the pipeline run (same keys, hence the same partitions, and
the same sizes; each with a fresh event id of the same length) with ingest's `BatchWriter`.

Sustained throughput is the last relay's intake; latency is each relay topic's record timestamp
minus the moment the bench wrote the record.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import asdict, replace
from typing import Any

import httpx
from aiokafka.errors import KafkaError

from bench.common import PARTITIONS, Options, Stack, running_stack
from bench.figures import (
    StageAccount,
    judge,
    latency_summary,
    slice_counts,
)
from bench.load import SLICE_SECONDS
from bench.probe import (
    IN,
    OUT,
    Flow,
    Labels,
    Probe,
    backlog_growth,
    cpu_share,
    drained,
    other_load,
    peak_rss_mib,
    rate,
)
from bench.probe import inflow as inflows
from bench.readback import TopicTail
from schemas.topics import EVENTS_RAW
from services.common.embedded import FETCH_WAIT_MS
from services.common.kafka import BatchWriter, ensure_topics, make_producer, topic

RELAYS = 3
TOPICS = tuple(f"bench.relay.{hop}" for hop in range(RELAYS + 1))
RATES = (1_000.0, 16_000.0, 22_000.0, 25_000.0, 28_000.0, 31_000.0, 34_000.0, 40_000.0)
"""The rate of the latency target, then from above the pipeline's range up to the relay's maximum
(the ratio's denominator) in steps of at most 1/8 where it has been (about 28,000/s since
producers send a partition's records as one batch): the low rates tell nothing about it and would
use the time budget."""
POOL_RECORDS = 20_000
DRAIN_SECONDS = 30.0
BUDGET_WINDOWS = 11  # no new rate starts after this many (warm-up + window)s: make bench < 10 min
FLOWS = tuple(
    Flow(
        f"relay-{hop}",
        (("client" if hop == 1 else f"relay-{hop - 1}", OUT, TOPICS[hop - 1]),),
        ((f"relay-{hop}", IN, TOPICS[hop - 1]),),
    )
    for hop in range(1, RELAYS + 1)
)
THROUGH = (f"relay-{RELAYS}", IN, TOPICS[RELAYS - 1])
ID_FIELD = b'"event_id":"'


async def raw_sample(stack: Stack, count: int) -> list[tuple[bytes | None, bytes]]:
    """Up to `count` VitalSignsObserved records of events.raw, as ingest wrote them."""
    tail = TopicTail(stack.kafka_url, [topic(stack.settings, EVENTS_RAW)])
    await tail.start()
    try:
        records = [r for items in (await tail.read()).values() for r in items]
    finally:
        await tail.stop()
    vitals = [(r.key, r.value) for r in records if r.value and b'"VitalSignsObserved"' in r.value]
    return vitals[-count:]


class Driver:
    """Writes the pool's records to the first relay topic on a timetable, each with a fresh event
    id, one BatchWriter.write per slice (as ingest writes one per request)."""

    def __init__(self, writer: BatchWriter, pool: list[tuple[bytes | None, bytes]]) -> None:
        self.writer = writer
        self.pool = [(key, value, value.index(ID_FIELD) + len(ID_FIELD)) for key, value in pool]
        self.next = 0
        self.written = 0
        self.sent_at: dict[bytes, float] = {}  # event id -> epoch seconds when written
        self.errors: Counter[str] = Counter()
        self.tasks: set[asyncio.Task[None]] = set()

    def counters(self) -> dict[tuple[str, Labels], float]:
        return {(OUT, frozenset({("topic", TOPICS[0])})): float(self.written)}

    def records(self, count: int, at: float) -> list[tuple[bytes | None, bytes]]:
        batch = []
        for _ in range(count):
            key, value, at_id = self.pool[self.next % len(self.pool)]
            event_id = b"00000000-0000-4000-8000-%012d" % self.next
            self.next += 1
            self.sent_at[event_id] = at
            batch.append((key, value[:at_id] + event_id + value[at_id + 36 :]))
        return batch

    async def write(self, records: list[tuple[bytes | None, bytes]]) -> None:
        """One batch, as ingest writes one request's events; a batch the producer could not
        write is counted as a failed request and its records as never written."""
        try:
            await self.writer.write(records)
        except KafkaError as error:
            self.errors[type(error).__name__] += 1
            for _, value in records:
                at_id = value.index(ID_FIELD) + len(ID_FIELD)
                self.sent_at.pop(value[at_id : at_id + 36], None)
            return
        self.written += len(records)

    async def on_timetable(self, per_second: float, seconds: float, start: float) -> float:
        """Open loop; returns the generator's worst lateness (seconds)."""
        lag = 0.0
        for index, count in enumerate(slice_counts(per_second, seconds, SLICE_SECONDS)):
            due = start + index * SLICE_SECONDS
            delay = due - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            lag = max(lag, -delay)
            if count:
                task = asyncio.create_task(self.write(self.records(count, time.time())))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=60.0)  # each ends by the request timeout
        return lag


def relay_latencies(
    driver: Driver, records: dict[str, list[Any]], start: float, end: float
) -> dict[str, list[float]]:
    hops: dict[str, list[float]] = {}
    for name, items in records.items():
        values = hops.setdefault(name, [])
        for record in items:
            at_id = record.value.index(ID_FIELD) + len(ID_FIELD)
            sent = driver.sent_at.get(record.value[at_id : at_id + 36])
            if sent is not None and start <= sent <= end:
                values.append(record.timestamp / 1000 - sent)
    return hops


def delivered(driver: Driver, records: dict[str, list[Any]]) -> set[bytes]:
    """The ids written during this rate that reached the last relay topic."""
    found = set()
    for record in records[TOPICS[-1]]:
        at_id = record.value.index(ID_FIELD) + len(ID_FIELD)
        event_id = record.value[at_id : at_id + 36]
        if event_id in driver.sent_at:
            found.add(event_id)
    return found


async def wait_drained(probe: Probe, seconds: float) -> float | None:
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=2.0) as client:
        while time.perf_counter() - started < seconds:
            if drained(await probe.sample(client), FLOWS):
                return round(time.perf_counter() - started, 2)
            await asyncio.sleep(0.2)
    return None


async def run_rate(
    stack: Stack, driver: Driver, tail: TopicTail, per_second: float, options: Options
) -> dict[str, Any]:
    urls = {n: f"http://127.0.0.1:{p}/metrics" for n, p in stack.metrics_ports.items()}
    probe = Probe(urls, stack.pids(), local=driver.counters)
    stop = asyncio.Event()
    sampling = asyncio.create_task(probe.run(stop))
    driver.sent_at.clear()
    driver.errors.clear()
    try:
        seconds = options.warmup_seconds + options.duration_seconds
        start = time.time() + 0.3
        window = (start + options.warmup_seconds, start + seconds)
        lag = await driver.on_timetable(per_second, seconds, start)
        drained_in = await wait_drained(Probe(urls, {}, local=driver.counters), DRAIN_SECONDS)
    finally:
        stop.set()
        await sampling
    records = await tail.read()
    async with httpx.AsyncClient(timeout=2.0) as client:
        final = await probe.sample(client)  # what is still queued when the account is taken
    inside = probe.between(*window)
    first, last = inside[0], inside[-1]
    through = rate(first, last, THROUGH)
    growth = backlog_growth(inside, FLOWS)
    errors = sum(driver.errors.values())
    verdict = judge(per_second, through, growth, inflows(first, last, FLOWS), errors=errors,
                    drained=drained_in is not None)  # fmt: skip
    latencies = relay_latencies(driver, records, *window)
    queued = sum(max(0, round(final.backlog(flow))) for flow in FLOWS)
    account = StageAccount(
        "relays", len(driver.sent_at), len(delivered(driver, records)), queued=queued
    )
    return {
        "system": "baseline",
        "offered_eps": per_second,
        "sustained_eps": round(through, 1),
        "sustained": verdict.sustained,
        "clearly_not_sustained": verdict.clearly_not,
        "not_sustained_because": list(verdict.reasons),
        "e2e_ms": latency_summary(latencies[TOPICS[2]]),
        "e2e_samples": len(latencies[TOPICS[2]]),
        "e2e_3_hops_ms": latency_summary(latencies[TOPICS[3]]),
        "generator_max_lag_ms": round(lag * 1000, 1),
        "request_errors": dict(driver.errors),
        "backlog_growth_per_second": {k: round(v, 1) for k, v in growth.items()},
        "drained_seconds_after_last_send": drained_in,
        "cpu_share": cpu_share(first, last),
        "other_load_cores": other_load(first, last),
        "peak_rss_mib": peak_rss_mib(probe.samples),
        "accounts": [{**asdict(account), "lost": account.lost}],
        "events_lost": account.lost,
        "bytes_per_record": round(sum(len(v) for _, v, _ in driver.pool) / len(driver.pool)),
    }


async def rate_on_a_fresh_broker(
    options: Options, pool: list[tuple[bytes | None, bytes]], per_second: float
) -> dict[str, Any]:
    """One rate on its own broker and relays, as the pipeline's rates (`pipeline.py`)."""
    if not pool:
        raise RuntimeError("no events.raw records from the pipeline run to relay")
    options = replace(options, log_dir=options.log_dir / f"baseline-{per_second:g}")
    async with running_stack(options.log_dir) as stack:
        await ensure_topics(stack.settings, dict.fromkeys(TOPICS, False), PARTITIONS)
        env = {"WARDFLOW_KAFKA_FETCH_MAX_WAIT_MS": str(FETCH_WAIT_MS)}  # as the pipeline
        await asyncio.gather(
            *(
                stack.start_service(
                    f"relay-{hop}",
                    env,
                    module=["bench.relay", f"relay-{hop}", TOPICS[hop - 1], TOPICS[hop]],
                )
                for hop in range(1, RELAYS + 1)
            )
        )
        producer = make_producer(stack.settings)
        await producer.start()
        tail = TopicTail(stack.kafka_url, [TOPICS[2], TOPICS[3]])
        await tail.start()
        try:
            driver = Driver(BatchWriter(producer, TOPICS[0]), pool)
            return await run_rate(stack, driver, tail, per_second, options)
        finally:
            await tail.stop()
            await producer.stop()

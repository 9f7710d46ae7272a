"""Reading back what the pipeline wrote, after each rate, for the loss account and the latencies.

`TopicTail` keeps one group-less consumer on the stage topics and, after a rate has drained, reads
every record written since the last read. `PipelineRecords` keeps what the figures need from
them: event ids per topic, record timestamps (set by the producing stage when it sends), ingest's
`recorded_at`, fusion's `cause_recorded_at` and the snapshot each assessment was made from
(diagnosis names an assessment `uuid5("wardflow:assessment:<snapshot id>")`).
"""

from __future__ import annotations

import base64
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias
from uuid import NAMESPACE_URL, uuid5

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

Record: TypeAlias = ConsumerRecord[bytes, bytes]


class TopicTail:
    """Everything appended to `topics` since the previous `read()`."""

    def __init__(self, kafka_url: str, topics: list[str]) -> None:
        self.topics = topics
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka_url,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=20,
            max_partition_fetch_bytes=8 * 2**20,
        )

    async def start(self) -> None:
        await self.consumer.start()
        await self.consumer.topics()  # metadata of every topic, so their partitions are known
        partitions = [
            TopicPartition(name, p)
            for name in self.topics
            for p in sorted(self.consumer.partitions_for_topic(name) or ())
        ]
        self.consumer.assign(partitions)
        await self.consumer.seek_to_beginning(*partitions)

    async def stop(self) -> None:
        await self.consumer.stop()

    async def read(self, timeout_seconds: float = 60.0) -> dict[str, list[Record]]:
        """Read up to the end offsets the broker gave when the read began. The embedded broker
        gives the base offset of the last record batch + 1, short of the end when that batch
        holds several records; but a fetch returns whole batches, so reaching that offset means
        having read the last batch too."""
        deadline = time.monotonic() + timeout_seconds
        records: dict[str, list[Record]] = {name: [] for name in self.topics}
        partitions = self.consumer.assignment()
        ends = await self.consumer.end_offsets(list(partitions))
        while True:
            positions = {tp: await self.consumer.position(tp) for tp in partitions}
            if all(positions[tp] >= ends[tp] for tp in partitions):
                return records
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics not read to their end in {timeout_seconds:g} s")
            batch = await self.consumer.getmany(timeout_ms=100, max_records=20_000)
            for tp, items in batch.items():
                records[tp.topic].extend(items)


def _epoch(text: str) -> float:
    return round(datetime.fromisoformat(text).timestamp(), 6)


@dataclass
class PipelineRecords:
    """The records of one rate, by stage topic (topic names without a prefix)."""

    raw: dict[str, tuple[float, float]] = field(default_factory=dict)  # id -> (ts, recorded_at)
    clean: dict[str, float] = field(default_factory=dict)  # id -> record ts
    clean_by_cause: dict[tuple[str, float], float] = field(default_factory=dict)
    states: list[tuple[float, float, str]] = field(default_factory=list)  # ts, cause, patient
    state_of_assessment: dict[str, tuple[float, float]] = field(default_factory=dict)
    assessments: list[tuple[float, str]] = field(default_factory=list)  # ts, event_id
    assessment_kinds: Counter[str] = field(default_factory=Counter)
    dead_letters: list[tuple[str, str, str | None]] = field(default_factory=list)
    bytes_per_record: dict[str, float] = field(default_factory=dict)

    def add(self, topic: str, records: list[Record]) -> None:
        if records:
            self.bytes_per_record[topic] = round(
                sum(len(r.value or b"") for r in records) / len(records)
            )
        for record in records:
            body: dict[str, Any] = orjson.loads(record.value or b"{}")
            ts = record.timestamp / 1000
            if topic == "events.raw":
                self.raw[str(body["event_id"])] = (ts, _epoch(body["recorded_at"]))
            elif topic == "events.clean":
                event_id, at = str(body["event_id"]), _epoch(body["recorded_at"])
                self.clean[event_id] = ts
                key = (str(body.get("patient_id")), at)
                self.clean_by_cause[key] = max(ts, self.clean_by_cause.get(key, 0.0))
            elif topic == "patients.state":
                cause = _epoch(body["cause_recorded_at"])
                self.states.append((ts, cause, str(body["patient_id"])))
                assessment = str(uuid5(NAMESPACE_URL, f"wardflow:assessment:{body['event_id']}"))
                self.state_of_assessment[assessment] = (ts, cause)
            elif topic == "patients.assessments":
                kind = str(body.get("kind"))
                self.assessment_kinds[kind] += 1
                if kind == "AssessmentIssued":
                    self.assessments.append((ts, str(body["event_id"])))
            elif topic == "events.dlq":
                self.dead_letters.append(
                    (str(body["stage"]), str(body["reason"]), original_id(body))
                )

    def dead_lettered(self, stage: str) -> set[str]:
        return {i for s, _, i in self.dead_letters if s == stage and i is not None}

    def dead_letter_reasons(self) -> dict[str, int]:
        return dict(Counter(f"{stage}:{reason}" for stage, reason, _ in self.dead_letters))

    def latencies(self, start: float, end: float) -> dict[str, list[float]]:
        """Seconds per hop and end to end, for events ingest accepted in [start, end]."""
        hops: dict[str, list[float]] = {
            "accept_to_raw": [], "raw_to_clean": [], "clean_to_state": [],
            "state_to_assessment": [], "e2e_state": [], "e2e_assessment": [],
        }  # fmt: skip
        for event_id, (raw_ts, accepted) in self.raw.items():
            if start <= accepted <= end:
                hops["accept_to_raw"].append(raw_ts - accepted)
                if (clean_ts := self.clean.get(event_id)) is not None:
                    hops["raw_to_clean"].append(clean_ts - raw_ts)
        for ts, cause, patient in self.states:
            if start <= cause <= end:
                hops["e2e_state"].append(ts - cause)
                if (clean_ts := self.clean_by_cause.get((patient, cause))) is not None:
                    hops["clean_to_state"].append(ts - clean_ts)
        for ts, assessment in self.assessments:
            state = self.state_of_assessment.get(assessment)
            if state is not None and start <= state[1] <= end:
                hops["state_to_assessment"].append(ts - state[0])
                hops["e2e_assessment"].append(ts - state[1])
        return hops


def original_id(letter: dict[str, Any]) -> str | None:
    """The event id inside a dead letter's original record, when it has one."""
    value = str(letter.get("original_value", ""))
    with contextlib.suppress(ValueError, TypeError):
        if letter.get("original_value_encoding") == "base64":
            value = base64.b64decode(value).decode()
        event_id = orjson.loads(value).get("event_id")
        return None if event_id is None else str(event_id)
    return None

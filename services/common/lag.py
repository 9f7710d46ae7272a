"""Consumer lag: how many records of its input topics a stage has not processed yet.

The end of a partition is the larger of two readings. The high watermark of the consumer's latest
fetch response is exact, but only as fresh as that fetch: a stage stuck in a handler stops
fetching, and its lag would freeze instead of growing. The broker's end offset (ListOffsets) keeps
moving, but the embedded broker answers it with the base offset of its last record batch plus
one, short of the end when a batch held several records (see `kafka.read_to_end`). Neither is
ever past the end, so the larger of the two is the best estimate.

The consumed side is the position processed to: the first offset of the batch being processed
for a partition in it, else the consumer's position (every record before it is processed; the
commit follows within `commit_interval_seconds`, and fusion's once its changes are on its
changelog).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition


@dataclass(frozen=True)
class PartitionOffsets:
    topic: str
    fetched_end: int | None  # the high watermark of the last fetch response; None before one
    broker_end: int | None  # the broker's end offset (ListOffsets)
    consumed: int | None  # the position processed to


def lag_by_topic(partitions: Iterable[PartitionOffsets], topics: Iterable[str]) -> dict[str, int]:
    """Per topic (every one of `topics`, 0 when none of its partitions lags), the sum over the
    partitions of end minus consumed; a partition whose end or position is unknown counts 0."""
    lag = dict.fromkeys(topics, 0)
    for partition in partitions:
        ends = [end for end in (partition.fetched_end, partition.broker_end) if end is not None]
        if not ends or partition.consumed is None:
            continue
        lag[partition.topic] = lag.get(partition.topic, 0) + max(0, max(ends) - partition.consumed)
    return lag


async def read_offsets(
    consumer: AIOKafkaConsumer, in_flight: Mapping[TopicPartition, int]
) -> list[PartitionOffsets]:
    """The offsets of every partition assigned to `consumer`. `in_flight`: the first offset of
    each partition of the batch being processed (the position processed to until it is done).

    Raises aiokafka's `IllegalStateError` when a partition is revoked meanwhile (try again later).
    """
    assigned = sorted(consumer.assignment())
    if not assigned:
        return []
    fetched = {tp: consumer.highwater(tp) for tp in assigned}  # no await: still assigned
    broker = await consumer.end_offsets(assigned)
    offsets = []
    for tp in assigned:
        consumed = in_flight.get(tp)
        if consumed is None:
            consumed = await consumer.position(tp)
        offsets.append(PartitionOffsets(tp.topic, fetched[tp], broker.get(tp), consumed))
    return offsets

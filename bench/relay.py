"""The physical reference: a plain aiokafka relay, one hop per process.

`python -m bench.relay NAME SOURCE TARGET` consumes SOURCE and produces every record unchanged
(same key, value and partition) to TARGET, then commits: the consume -> produce -> commit loop of
a wardflow stage without decoding, rules or encoding. It commits after every batch, where the
stages commit at most every `WARDFLOW_COMMIT_INTERVAL_SECONDS`: committing every 0.5 s made the
relay slower on the embedded broker (bench/README.md), and the reference is the faster relay.

It runs as the services do (uvloop, the same garbage-collector settings, the same consumer and
producer settings from the same environment: `KAFKA_BOOTSTRAP_SERVERS`,
`WARDFLOW_KAFKA_FETCH_MAX_WAIT_MS`, `WARDFLOW_METRICS_PORT`) and reports the same counters
(`wardflow_events_in_total`, `wardflow_events_out_total`, `wardflow_stage_ready`) with its NAME
as the stage.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from services.common import metrics
from services.common.kafka import make_consumer, make_producer
from services.common.runtime import run_service
from services.common.settings import ServiceSettings
from services.common.stage import STAGE_READY

log = logging.getLogger(__name__)


async def relay(
    settings: ServiceSettings, name: str, source: str, target: str, stop: asyncio.Event
) -> None:
    consumer = make_consumer(settings, f"bench-{name}", source)
    producer = make_producer(settings)
    taken, passed = metrics.EVENTS_IN.labels(name, source), metrics.EVENTS_OUT.labels(name, target)
    await producer.start()
    try:
        await consumer.start()
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200)
                if consumer.assignment():
                    STAGE_READY.labels(name).set(1)
                pending: list[asyncio.Future[Any]] = []
                for tp, records in batch.items():
                    taken.inc(len(records))
                    for record in records:
                        pending.append(
                            await producer.send(
                                target, record.value, key=record.key, partition=tp.partition
                            )
                        )
                    passed.inc(len(records))
                if pending:
                    await asyncio.gather(*pending)
                    await consumer.commit()
        finally:
            STAGE_READY.labels(name).set(0)
            await consumer.stop()
    finally:
        await producer.stop()


def main(argv: list[str]) -> None:
    name, source, target = argv
    settings = ServiceSettings()
    run_service(name, settings, lambda stop: relay(settings, name, source, target, stop))


if __name__ == "__main__":
    main(sys.argv[1:])

"""Ingest HTTP API: `POST /v1/events` -> events.raw, answered only after the broker acknowledged."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request, Response
from prometheus_client import Counter

from schemas.codec import encode
from schemas.topics import EVENTS_RAW
from services.common import metrics
from services.ingest.config import IngestSettings
from services.ingest.domain import BatchRefused, Problem, accept, authenticate

STAGE = "ingest"
RETRY_AFTER_SECONDS = "5"

HTTP_REQUESTS = Counter(
    "wardflow_http_requests_total", "HTTP requests answered, by status.", ["stage", "status"]
)


def _refusal(status: int, reason: str, problems: list[Problem], **headers: str) -> Response:
    metrics.EVENTS_REJECTED.labels(STAGE, reason).inc()
    HTTP_REQUESTS.labels(STAGE, str(status)).inc()
    body = {"reason": reason, "errors": [p.as_dict() for p in problems]}
    return _json(body, status, headers)


def create_api(settings: IngestSettings, producer: AIOKafkaProducer, raw_topic: str) -> FastAPI:
    api = FastAPI(title="wardflow ingest", version="1")
    keys = {source: key.get_secret_value() for source, key in settings.api_keys.items()}

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.post("/v1/events", status_code=202)
    async def post_events(request: Request) -> Response:
        source = authenticate(request.headers.get("authorization"), keys)
        if source is None:
            problem = Problem(0, "Authorization", "a valid 'Bearer <api key>' is required")
            return _refusal(401, "unauthenticated", [problem], **{"WWW-Authenticate": "Bearer"})
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > settings.max_body_bytes:
            return _body_too_large(settings.max_body_bytes)
        raw = await request.body()
        if len(raw) > settings.max_body_bytes:
            return _body_too_large(settings.max_body_bytes)
        try:
            body: Any = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            return _refusal(400, "invalid_json", [Problem(0, "(body)", f"not valid JSON: {error}")])
        with metrics.processing(STAGE):
            now = datetime.now(UTC)
            try:
                events = accept(
                    body, source=source, now=now, max_events=settings.max_events_per_request
                )
            except BatchRefused as refused:
                return _refusal(refused.status, refused.reason, refused.problems)
            metrics.EVENTS_IN.labels(STAGE, "http").inc(len(events))
            for event in events:
                lag = (now - event.occurred_at).total_seconds()
                metrics.EVENT_TIME_LAG_SECONDS.labels(STAGE).observe(max(0.0, lag))
            try:
                async with asyncio.timeout(settings.broker_timeout_seconds):
                    futures = [
                        await producer.send(raw_topic, value=encode(e), key=e.kafka_key())
                        for e in events
                    ]
                    await asyncio.gather(*futures)
            except (KafkaError, TimeoutError):
                problem = Problem(0, "(broker)", "the event broker did not confirm; retry later")
                return _refusal(
                    503, "broker_unavailable", [problem], **{"Retry-After": RETRY_AFTER_SECONDS}
                )
        metrics.EVENTS_OUT.labels(STAGE, EVENTS_RAW.name).inc(len(events))
        HTTP_REQUESTS.labels(STAGE, "202").inc()
        ids = [str(e.event_id) for e in events]
        return _json({"accepted": ids}, 202)

    return api


def _body_too_large(limit: int) -> Response:
    problem = Problem(0, "(body)", f"larger than {limit} bytes")
    return _refusal(413, "body_too_large", [problem])


def _json(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers or None, media_type="application/json")

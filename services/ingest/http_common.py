"""What every ingest HTTP endpoint shares: authentication, body limits, answer counting."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request, Response
from prometheus_client import Counter

from services.common import metrics
from services.common.auth import bearer_token
from services.ingest.domain import BatchRefused, Problem
from services.ingest.gateway import STAGE, Gateway
from services.ingest.sources import Source

HTTP_REQUESTS = Counter(
    "wardflow_http_requests_total", "HTTP requests answered, by status.", ["stage", "status"]
)


async def authenticated_body(request: Request, gateway: Gateway) -> tuple[Source, bytes]:
    """The request's source and body, or BatchRefused (401, 413)."""
    source = gateway.registry.by_key(bearer_token(request.headers.get("authorization")))
    if source is None:
        problem = Problem(0, "Authorization", "a valid 'Bearer <api key>' is required")
        raise BatchRefused(401, "unauthenticated", [problem])
    limit = gateway.settings.max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BatchRefused(
            413, "body_too_large", [Problem(0, "(body)", f"larger than {limit} bytes")]
        )
    body = await request.body()
    if len(body) > limit:
        raise BatchRefused(
            413, "body_too_large", [Problem(0, "(body)", f"larger than {limit} bytes")]
        )
    return source, body


def counted(status: int, reason: str | None = None) -> None:
    HTTP_REQUESTS.labels(STAGE, str(status)).inc()
    if reason is not None:
        metrics.EVENTS_REJECTED.labels(STAGE, reason).inc()


def json_response(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


BROKER_RETRY_AFTER_SECONDS = 5


def broker_unavailable() -> BatchRefused:
    """The refusal for a write the broker did not confirm: nothing was written, retry later."""
    problem = Problem(0, "(broker)", "the event broker did not confirm; nothing was written")
    return BatchRefused(503, "broker_unavailable", [problem], BROKER_RETRY_AFTER_SECONDS)

"""Ingest HTTP API: native JSON, FHIR R4 and HL7 v2 in; every answer only after the broker
acknowledged (acks=all), or a precise refusal that wrote nothing."""

from __future__ import annotations

import math
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response

from services.ingest import fhir_endpoints
from services.ingest.config import IngestSettings
from services.ingest.domain import BatchRefused, Problem, items_of
from services.ingest.gateway import BrokerUnavailable, Gateway, derived_id, digest
from services.ingest.hl7_handler import Hl7Handler
from services.ingest.http_common import (
    BROKER_RETRY_AFTER_SECONDS,
    authenticated_body,
    broker_unavailable,
    counted,
    json_response,
)
from services.ingest.openapi import HL7_BODY, events_request_body, inbound_components, refusals

HL7_MEDIA_TYPE = "application/hl7-v2"


def refusal_response(refused: BatchRefused) -> Response:
    counted(refused.status, refused.reason)
    headers = {"WWW-Authenticate": "Bearer"} if refused.status == 401 else None
    if refused.retry_after_seconds is not None:
        headers = {"Retry-After": str(math.ceil(refused.retry_after_seconds))}
    body = {"reason": refused.reason, "errors": [p.as_dict() for p in refused.problems]}
    return json_response(body, refused.status, headers)


def create_api(settings: IngestSettings, gateway: Gateway, hl7: Hl7Handler) -> FastAPI:
    api = FastAPI(
        title="wardflow ingest",
        version="1",
        description="Send hospital events: native JSON, FHIR R4 (Observation, Encounter, Bundle) "
        "or HL7 v2. Authenticate with `Authorization: Bearer <api key>`.",
    )

    @api.get(
        "/healthz",
        responses={200: {"description": "Ingest is up."}},
        openapi_extra={"security": []},  # probes need no credential
    )
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @api.post(
        "/v1/events",
        status_code=202,
        openapi_extra={"requestBody": events_request_body()},
        responses={
            202: {
                "description": "Durably written.",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}
                },
            },
            **refusals(400, 401, 403, 413, 422, 429, 503),
        },
    )
    async def post_events(request: Request) -> Response:
        """One event or `{"events": [...]}`. An `Idempotency-Key` header makes a retry safe:
        the same key and body get the same answer and nothing is written twice."""
        try:
            source, raw = await authenticated_body(request, gateway)
            try:
                body: Any = orjson.loads(raw)
            except orjson.JSONDecodeError as error:
                problem = Problem(0, "(body)", f"not valid JSON: {error}")
                raise BatchRefused(400, "invalid_json", [problem]) from None
            items = items_of(body, settings.max_events_per_request)
            key = request.headers.get("idempotency-key", "").strip()[:200]

            async def compute() -> tuple[tuple[int, dict[str, Any]], bool]:
                try:
                    ids = await gateway.submit(
                        source,
                        items,
                        channel="json",
                        default_id=(lambda i: derived_id(source.name, "key", key, i))
                        if key
                        else None,
                    )
                except BatchRefused as refused:
                    if refused.status == 429:
                        raise
                    payload = {
                        "reason": refused.reason,
                        "errors": [p.as_dict() for p in refused.problems],
                    }
                    return (refused.status, payload), True
                return (202, {"accepted": ids}), True

            if key:
                status, payload = await gateway.once(
                    f"{source.name}:key:{key}", digest(raw), compute
                )
            else:
                (status, payload), _ = await compute()
        except BatchRefused as refused:
            return refusal_response(refused)
        except BrokerUnavailable:
            return refusal_response(broker_unavailable())
        if status != 202:
            counted(status, payload["reason"])
        else:
            counted(202)
        return json_response(payload, status)

    @api.post(
        "/v1/hl7",
        openapi_extra={"requestBody": HL7_BODY},
        responses={
            200: {
                "description": "The HL7 ACK (AA, AE or AR with an ERR segment).",
                "content": {HL7_MEDIA_TYPE: {"schema": {"type": "string"}}},
            },
            503: {
                "description": "Broker down: an ACK AE; retry after Retry-After.",
                "content": {HL7_MEDIA_TYPE: {"schema": {"type": "string"}}},
            },
            **refusals(401, 413),
        },
    )
    async def post_hl7(request: Request) -> Response:
        """An HL7 v2 message or batch (ER7). Answered with the ACK, AA only once stored."""
        try:
            source, raw = await authenticated_body(request, gateway)
        except BatchRefused as refused:
            return refusal_response(refused)
        reply = await hl7.handle(raw, source=source, channel="hl7_http")
        status = 503 if reply.transient else 200
        counted(status)
        headers = {"Retry-After": str(BROKER_RETRY_AFTER_SECONDS)} if reply.transient else None
        return Response(reply.text, status, headers, media_type=HL7_MEDIA_TYPE)

    fhir_endpoints.install(api, gateway)

    original_openapi = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            document = original_openapi()  # cached by FastAPI in api.openapi_schema
            components = document.setdefault("components", {}).setdefault("schemas", {})
            components.update(inbound_components())
            components["Accepted"] = {
                "type": "object",
                "required": ["accepted"],
                "properties": {
                    "accepted": {"type": "array", "items": {"type": "string", "format": "uuid"}}
                },
            }
            document["components"]["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}
            }
            document["security"] = [{"bearer": []}]
        assert api.openapi_schema is not None
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
    return api

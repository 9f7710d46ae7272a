"""FHIR R4 over HTTP: `POST /fhir/Observation`, `POST /fhir/Encounter`, `POST /fhir` (Bundle).

Answers are FHIR: an OperationOutcome naming the element for every refusal, a transaction- or
batch-response Bundle for bundles. A transaction is all-or-nothing; batch entries stand alone.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response

from services.ingest.domain import BatchRefused, Problem
from services.ingest.fhir import (
    EntryResult,
    Mapped,
    bundle_response,
    informational_outcome,
    map_bundle,
    map_resource,
    operation_outcome,
)
from services.ingest.gateway import BrokerUnavailable, Gateway, derived_id, digest
from services.ingest.http_common import authenticated_body, broker_unavailable, counted
from services.ingest.mapping import MappingError
from services.ingest.openapi import FHIR_BODY
from services.ingest.sources import Source

FHIR_JSON = "application/fhir+json"
ISSUE_CODES = {
    401: "login",
    403: "forbidden",
    413: "too-costly",
    429: "throttled",
    503: "transient",
}


def outcome(description: str) -> dict[str, Any]:
    schema = {"type": "object", "required": ["resourceType", "issue"]}
    return {"description": description, "content": {FHIR_JSON: {"schema": schema}}}


FHIR_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: outcome("Not JSON, or not the resource the URL names."),
    401: outcome("No valid API key."),
    403: outcome("The source may not send this kind of event."),
    413: outcome("Body over the limit."),
    422: outcome("The resource cannot be used; `expression` names the element."),
    429: outcome("Over the source's rate; see Retry-After."),
    503: outcome("The broker did not confirm; nothing was written. Retry later."),
}


def fhir_response(
    resource: dict[str, Any], status: int, headers: dict[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(resource), status, headers, media_type=FHIR_JSON)


def refused_outcome(refused: BatchRefused) -> Response:
    counted(refused.status, refused.reason)
    code = ISSUE_CODES.get(refused.status, "invalid")
    errors = [MappingError(p.field, code, f"{p.field}: {p.problem}") for p in refused.problems]
    headers = None
    if refused.retry_after_seconds is not None:
        headers = {"Retry-After": str(math.ceil(refused.retry_after_seconds))}
    return fhir_response(operation_outcome(errors), refused.status, headers)


def install(api: FastAPI, gateway: Gateway) -> None:
    async def write(source: Source, mapped: Mapped, basis: str, channel: str = "fhir") -> list[str]:
        if not mapped.items:
            return []
        return await gateway.submit(
            source,
            mapped.items,
            channel=channel,
            default_id=lambda index: derived_id(source.name, "fhir", basis, index),
        )

    def basis_of(request: Request, mapped: Mapped, fallback: str) -> str:
        key = request.headers.get("idempotency-key", "").strip()[:200]
        if key:
            return f"key:{key}"
        if mapped.resource_id:
            # Without a versionId, the content tells a resend from a changed resource.
            return f"{mapped.resource_type}/{mapped.resource_id}/{mapped.version_id or fallback}"
        return fallback  # no id at all: the content digest stands in

    async def read(request: Request) -> tuple[Source, Any, bytes]:
        source, raw = await authenticated_body(request, gateway)
        try:
            return source, orjson.loads(raw), raw
        except orjson.JSONDecodeError as error:
            problem = Problem(0, "(body)", f"not valid JSON: {error}")
            raise BatchRefused(400, "invalid_json", [problem]) from None

    async def write_transaction(
        request: Request, source: Source, results: list[EntryResult], body_digest: str
    ) -> list[tuple[str, dict[str, Any] | None]]:
        """Every entry's events in one validated write: all stored, or none."""
        mapped = [r.mapped for r in results if r.mapped is not None]
        items = [item for m in mapped for item in m.items]
        combined = Mapped(items, "Bundle", None, None, None)
        await write(source, combined, basis_of(request, combined, f"transaction:{body_digest}"))
        return [
            ("201 Created" if m.items else "200 OK", informational_outcome(m.note or "recorded"))
            for m in mapped
        ]

    async def write_batch(
        request: Request, source: Source, results: list[EntryResult], entries_json: list[Any]
    ) -> list[tuple[str, dict[str, Any] | None]]:
        """Each entry on its own: one bad entry does not stop the others."""
        entries: list[tuple[str, dict[str, Any] | None]] = []
        for result in results:
            if result.error is not None or result.mapped is None:
                outcome = operation_outcome([result.error]) if result.error else None
                entries.append(("422 Unprocessable Entity", outcome))
                continue
            entry_digest = digest(orjson.dumps(entries_json[result.index]))
            basis = basis_of(request, result.mapped, entry_digest)
            try:
                ids = await write(source, result.mapped, f"{basis}:entry:{result.index}")
            except BatchRefused as refused:
                problems = [MappingError(p.field, "invalid", p.problem) for p in refused.problems]
                entries.append((f"{refused.status} Refused", operation_outcome(problems)))
                continue
            note = result.mapped.note or f"recorded {len(ids)} event(s)"
            entries.append(("201 Created" if ids else "200 OK", informational_outcome(note)))
        return entries

    async def post_resource(resource_type: str, request: Request) -> Response:
        try:
            source, resource, raw = await read(request)
            if not isinstance(resource, dict) or resource.get("resourceType") != resource_type:
                problem = Problem(0, "resourceType", f"must be {resource_type}, as in the URL")
                raise BatchRefused(400, "invalid_resource", [problem])
            mapped = map_resource(resource)
            ids = await write(source, mapped, basis_of(request, mapped, digest(raw)))
        except MappingError as error:
            counted(422, "invalid_resource")
            return fhir_response(operation_outcome([error]), 422)
        except BatchRefused as refused:
            return refused_outcome(refused)
        except BrokerUnavailable:
            return refused_outcome(broker_unavailable())
        note = mapped.note or f"recorded {len(ids)} event(s): {', '.join(ids)}"
        return fhir_response(informational_outcome(note), 201 if ids else 200)

    for resource_type, summary in (
        (
            "Observation",
            "A vital-signs Observation (heart rate, SpO2, BP panel, ...) or a laboratory result "
            "(white cell count, PaCO2).",
        ),
        ("Encounter", "An Encounter: admission, transfer, discharge or cancellation."),
    ):

        async def endpoint(request: Request, resource_type: str = resource_type) -> Response:
            return await post_resource(resource_type, request)

        api.add_api_route(
            f"/fhir/{resource_type}",
            endpoint,
            methods=["POST"],
            summary=f"Post an {resource_type}",
            description=summary,
            openapi_extra={"requestBody": FHIR_BODY, "parameters": []},
            responses={
                201: outcome("Stored; an informational OperationOutcome lists the event ids."),
                200: outcome("Accepted, nothing to record (e.g. entered-in-error, cancelled)."),
                **FHIR_REFUSALS,
            },
        )

    @api.post(
        "/fhir",
        openapi_extra={"requestBody": FHIR_BODY},
        responses={
            200: {
                "description": "A transaction-response or batch-response Bundle.",
                "content": {FHIR_JSON: {"schema": {"type": "object"}}},
            },
            **FHIR_REFUSALS,
        },
    )
    async def post_bundle(request: Request) -> Response:
        """A Bundle of type transaction (all-or-nothing) or batch (entries independent)."""
        try:
            source, bundle, raw = await read(request)
            if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
                raise BatchRefused(
                    400, "invalid_resource", [Problem(0, "resourceType", "must be Bundle")]
                )
            results = map_bundle(bundle)
            bundle_type = str(bundle.get("type"))
            errors = [r.error for r in results if r.error is not None]
            if bundle_type == "transaction" and errors:
                counted(422, "invalid_resource")
                return fhir_response(operation_outcome(errors), 422)
            if bundle_type == "transaction":
                entries = await write_transaction(request, source, results, digest(raw))
            else:
                entries = await write_batch(request, source, results, bundle.get("entry", []))
        except MappingError as error:
            return fhir_response(operation_outcome([error]), 422)
        except BatchRefused as refused:
            return refused_outcome(refused)
        except BrokerUnavailable:
            return refused_outcome(broker_unavailable())
        return fhir_response(bundle_response(bundle_type, entries), 200)

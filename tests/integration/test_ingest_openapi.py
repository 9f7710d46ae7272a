"""Property-based fuzzing of ingest's published OpenAPI document (schemathesis), on the real
service process and the real broker: no 5xx, and every answer matches what the document says."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from services.common.embedded import free_port
from services.ingest.config import IngestSettings
from tests.integration.ingest_fixtures import KEY, PSEUDONYM_KEY
from tests.support import ServiceProcess

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
        "ignored_auth",
    ]
)


async def test_fuzzing_the_openapi_document_finds_no_5xx_and_no_schema_break(
    settings_factory, tmp_path: Path
) -> None:
    settings = await settings_factory(IngestSettings)
    http_port = free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "WARDFLOW_TOPIC_PREFIX": settings.topic_prefix,
        "WARDFLOW_HTTP_PORT": str(http_port),
        "WARDFLOW_MLLP_PORT": "0",
        "WARDFLOW_API_KEYS": f'{{"fuzzer": "{KEY}"}}',
        "WARDFLOW_PSEUDONYM_KEY": PSEUDONYM_KEY,
    }
    async with ServiceProcess("ingest", env, tmp_path / "ingest.log", free_port()):
        command = [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"http://127.0.0.1:{http_port}/openapi.json",
            "--header",
            f"Authorization: Bearer {KEY}",
            "--checks",
            CHECKS,
            "--max-examples",
            "40",
            "--seed",
            "20261128",
            "--report-dir",
            str(tmp_path / "report"),
        ]
        result = await asyncio.to_thread(
            subprocess.run, command, capture_output=True, text=True, timeout=400, cwd=tmp_path
        )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "passed" in result.stdout

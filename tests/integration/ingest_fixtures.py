"""Running ingest in this event loop, and a plain MLLP client, for the ingest integration tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx

from services.ingest.config import IngestSettings
from services.ingest.service import run

KEY = "test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
PSEUDONYM_KEY = "pseudonym-key-for-tests-0123456789abcdef"
VT, FS, CR = b"\x0b", b"\x1c", b"\r"


@contextlib.asynccontextmanager
async def running_ingest(settings: IngestSettings) -> AsyncIterator[str]:
    """Ingest (HTTP and, when configured, MLLP) until the block ends; yields the HTTP base URL."""
    stop = asyncio.Event()
    task = asyncio.create_task(run(settings, stop))
    base = f"http://127.0.0.1:{settings.http_port}"
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{base}/healthz")).status_code == 200:
                    break
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("ingest did not answer /healthz")
    try:
        yield base
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


class MllpClient:
    """A plain MLLP client: VT <message> FS CR out, one framed ACK back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> MllpClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send_raw(self, frame: bytes) -> str:
        self.writer.write(frame)
        await self.writer.drain()
        reply = await asyncio.wait_for(self.reader.readuntil(FS + CR), timeout=15)
        assert reply.startswith(VT), "an ACK is framed too"
        return reply[1:-2].decode()

    async def send(self, message: str) -> str:
        return await self.send_raw(VT + message.encode() + FS + CR)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def segments(ack: str) -> dict[str, list[str]]:
    """`{"MSA": [fields...], "ERR": [...]}` of an ACK (first occurrence of each segment)."""
    found: dict[str, list[str]] = {}
    for segment in ack.replace("\n", "\r").split("\r"):
        if segment:
            found.setdefault(segment[:3], segment.split("|"))
    return found


def hl7_time(at: datetime | None = None) -> str:
    return (at or datetime.now(UTC)).strftime("%Y%m%d%H%M%S+0000")


def adt(trigger: str, control_id: str, mrn: str, ward: str, bed: str = "", prior: str = "") -> str:
    now = hl7_time()
    pv1_6 = f"{prior}^^" if prior else ""
    return "\r".join(
        [
            f"MSH|^~\\&|EPIC|MAINHOSP|WARDFLOW|WARDFLOW|{now}||ADT^{trigger}^ADT_A01|{control_id}|P|2.5",
            f"EVN|{trigger}|{now}",
            f"PID|1||{mrn}^^^MAINHOSP^MR||DOE^JANE^^^^^L||19700101|F|||1 HIGH ST^^LEEDS"
            "||0113 496 0999",
            f"PV1|1|I|{ward}^^{bed}|||{pv1_6}||||||||||||V{control_id}",
        ]
    )


def oru(control_id: str, mrn: str, observations: list[tuple[str, str, str]]) -> str:
    now = hl7_time()
    lines = [
        f"MSH|^~\\&|MONITORS|MAINHOSP|WARDFLOW|WARDFLOW|{now}||ORU^R01^ORU_R01|{control_id}|P|2.5",
        f"PID|1||{mrn}^^^MAINHOSP^MR||DOE^JANE",
        f"OBR|1|||vitals^Vital signs|||{now}",
    ]
    for index, (loinc, value, unit) in enumerate(observations, start=1):
        lines.append(f"OBX|{index}|NM|{loinc}^^LN||{value}|{unit}|||||F|||{now}")
    return "\r".join(lines)


def fhir_observation(mrn: str, loinc: str, value: float, unit: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "vital-signs",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "subject": {"identifier": {"system": "urn:mrn", "value": mrn}, "display": "Jane Doe"},
        "effectiveDateTime": datetime.now(UTC).isoformat(),
        "valueQuantity": {
            "value": value,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        },
        **extra,
    }

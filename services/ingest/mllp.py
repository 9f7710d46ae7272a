"""The MLLP listener: HL7 v2 over TCP (optionally TLS) with standard framing (VT ... FS CR).

Each frame is answered with an ACK; a frame that is malformed or too large is answered with AR and
the connection stays usable. A connection that closes mid-frame loses only that unacknowledged
frame, which the sender still holds.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from datetime import UTC, datetime

from hl7.mllp import InvalidBlockError, start_hl7_server
from prometheus_client import Gauge

from services.ingest.hl7_ack import ack
from services.ingest.hl7_handler import Hl7Handler
from services.ingest.mapping import MappingError

log = logging.getLogger(__name__)

MLLP_CONNECTIONS = Gauge("wardflow_mllp_connections", "Open MLLP connections.")


def tls_context(cert: str, key: str) -> ssl.SSLContext | None:
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key or None)
    return context


async def serve_mllp(
    handler: Hl7Handler,
    host: str,
    port: int,
    *,
    max_frame_bytes: int,
    tls: ssl.SSLContext | None = None,
) -> asyncio.Server:
    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        MLLP_CONNECTIONS.inc()
        try:
            while True:
                try:
                    frame = await reader.readblock()  # type: ignore[attr-defined]
                except asyncio.IncompleteReadError:
                    return  # closed, possibly mid-frame: nothing was acknowledged
                except InvalidBlockError:
                    reply = _reject("framing", "a frame must start with the VT (0x0B) character")
                except ValueError:
                    reply = _reject("too_large", f"frame larger than {max_frame_bytes} bytes")
                else:
                    reply = (await handler.handle(frame, source=None, channel="mllp")).text
                writer.writeblock(reply.encode())  # type: ignore[attr-defined]
                await writer.drain()
        except ConnectionError:
            return
        finally:
            MLLP_CONNECTIONS.dec()
            writer.close()

    return await start_hl7_server(on_connection, host, port, limit=max_frame_bytes, ssl=tls)


def _reject(code: str, message: str) -> str:
    return ack(None, "AR", now=datetime.now(UTC), error=MappingError("MLLP", code, message))

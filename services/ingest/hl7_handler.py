"""HL7 v2 in (MLLP or HTTP): parse, authorise the sender, write, and acknowledge.

The ACK is AA only after the broker confirmed every event of the message. A repeated MSH-10 from
the same source gets the same ACK back without a second write. One bad message in a batch does not
affect the others; the connection always stays usable.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Literal

from services.ingest.domain import BatchRefused
from services.ingest.gateway import BrokerUnavailable, Gateway, derived_id, digest
from services.ingest.hl7_ack import ack, batch_ack
from services.ingest.hl7v2 import Header, Parsed, items_of, normalise, parse, split_messages
from services.ingest.mapping import MappingError
from services.ingest.sources import Source

log = logging.getLogger(__name__)

# Message problems the sender cannot fix by correcting content are rejections (AR); content
# errors and transient failures are errors (AE).
REJECT_CODES = frozenset(
    {"encoding", "unsupported_message_type", "unsupported_event",
     "unknown_sender", "kind_not_allowed", "framing", "too_large", "control_id_reused"}
)  # fmt: skip


@dataclass(frozen=True)
class Hl7Reply:
    text: str
    transient: bool  # the broker did not confirm: the sender must retry


class Hl7Handler:
    def __init__(self, gateway: Gateway, timezone: tzinfo) -> None:
        self.gateway = gateway
        self.timezone = timezone

    async def handle(self, payload: bytes, *, source: Source | None, channel: str) -> Hl7Reply:
        """The acknowledgement for one MLLP frame or HTTP body (a message or a batch).

        `source` is the authenticated HTTP source; over MLLP (None) the sender is looked up by
        MSH-3/MSH-4 in the allow-list.
        """
        now = datetime.now(UTC)
        try:
            text = normalise(payload)
            messages = split_messages(text)
        except MappingError as error:
            return Hl7Reply(ack(None, "AR", now=now, error=error), transient=False)
        if not messages:
            empty = MappingError("MSH", "segment_sequence", "no message in the frame")
            return Hl7Reply(ack(None, "AR", now=now, error=empty), transient=False)
        replies = [await self._one(message, source, channel) for message in messages]
        transient = any(reply.transient for reply in replies)
        if len(messages) == 1 and not text.startswith(("FHS", "BHS")):
            return replies[0]
        return Hl7Reply(batch_ack([r.text for r in replies], now=now), transient)

    async def _one(self, message: str, source: Source | None, channel: str) -> Hl7Reply:
        now = datetime.now(UTC)
        try:
            parsed = parse(message)
        except MappingError as error:
            return Hl7Reply(ack(None, "AR", now=now, error=error), transient=False)
        header = parsed.header
        sender = source or self.gateway.registry.by_hl7_sender(
            header.sending_application, header.sending_facility
        )
        if sender is None:
            unknown = MappingError(
                "MSH-3", "unknown_sender", "sending application and facility are not allowed"
            )
            return _refusal(header, unknown)

        async def compute() -> tuple[Hl7Reply, bool]:
            reply = await self._write(parsed, sender, channel)
            return reply, not reply.transient

        try:
            key = f"{sender.name}:hl7:{header.control_id}"
            return await self.gateway.once(key, digest(message), compute)
        except BatchRefused:
            reused = MappingError(
                "MSH-10",
                "control_id_reused",
                "this control id was already used for another message",
            )
            return _refusal(header, reused)

    async def _write(self, parsed: Parsed, source: Source, channel: str) -> Hl7Reply:
        now, header = datetime.now(UTC), parsed.header
        try:
            items = items_of(parsed, tz=self.timezone)
            await self.gateway.submit(
                source,
                items,
                channel=channel,
                default_id=lambda index: derived_id(source.name, "hl7", header.control_id, index),
            )
        except MappingError as error:
            return _refusal(header, error)
        except BatchRefused as refused:
            first = refused.problems[0]
            problem = MappingError(first.field, refused.reason, f"{first.field}: {first.problem}")
            return Hl7Reply(
                ack(header, _code(refused.reason), now=now, error=problem), refused.status == 429
            )
        except BrokerUnavailable:
            down = MappingError("MSH", "broker_unavailable", "not stored; send it again later")
            return Hl7Reply(ack(header, "AE", now=now, error=down), transient=True)
        return Hl7Reply(ack(header, "AA", now=now), transient=False)


def _code(reason: str) -> Literal["AE", "AR"]:
    return "AR" if reason in REJECT_CODES else "AE"


def _refusal(header: Header, error: MappingError) -> Hl7Reply:
    return Hl7Reply(ack(header, _code(error.code), now=datetime.now(UTC), error=error), False)

"""Resources context: equipment status reported by biomedical engineering or device gateways."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from schemas.base import Event, Identifier

ResourceStatus = Literal["available", "in_use", "cleaning", "maintenance", "out_of_service"]


class ResourceStatusReported(Event):
    """A piece of equipment (ventilator, infusion pump, monitor) changed status."""

    key_field: ClassVar[str] = "ward"
    kind: Literal["ResourceStatusReported"] = "ResourceStatusReported"
    ward: Identifier
    resource_id: Identifier
    resource_type: Identifier
    status: ResourceStatus
    reason: str | None = Field(default=None, max_length=200)

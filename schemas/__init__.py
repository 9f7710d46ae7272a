"""wardflow's only shared contract: pydantic event models, the topic registry and the codec."""

from schemas.base import SCHEMA_VERSION, Event

__all__ = ["SCHEMA_VERSION", "Event"]

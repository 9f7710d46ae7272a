"""Who may send what: per-source credentials, allowed event kinds, rates and HL7 senders.

API keys are never stored: a source is configured with the SHA-256 of its key; hashing, the shared
fields of an entry and the key lookup are in `services/common/auth.py` (the scheduler's read API
uses them too). Sources come from a TOML file (`WARDFLOW_SOURCES_FILE`) and, for development, from
`WARDFLOW_API_KEYS` (plain keys, hashed in memory, allowed every kind). An entry with `read = true`
or `write = true` may leave out `kinds`: it is a client of the scheduler's API that sends nothing
to ingest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from schemas.topics import EVENTS_RAW
from services.common.auth import (
    KeyRing,
    SourcesError,
    key_digest,
    key_entry,
    new_key,
    source_tables,
)

__all__ = [
    "ANY",
    "KNOWN_KINDS",
    "Source",
    "SourceRegistry",
    "SourcesError",
    "dev_sources",
    "key_digest",
    "new_key",
    "sources_from_toml",
    "unknown_kinds",
]

ANY = "*"
KNOWN_KINDS = frozenset(model.__name__ for model in EVENTS_RAW.events)
"""The event kinds a source may be allowed (every event of events.raw)."""


@dataclass(frozen=True)
class Source:
    name: str
    key_sha256: str
    kinds: frozenset[str]  # event kinds it may send; "*" for all
    rate_per_second: float
    burst: float
    hl7_senders: frozenset[str]  # "APP|FACILITY" pairs it may send as over MLLP; "*" for any

    def may_send(self, kind: str) -> bool:
        return ANY in self.kinds or kind in self.kinds

    def sends_as(self, application: str, facility: str) -> bool:
        return ANY in self.hl7_senders or f"{application}|{facility}" in self.hl7_senders


def unknown_kinds(kinds: Iterable[str]) -> list[str]:
    """The kinds (other than "*") that name no event ingest accepts: a typo would otherwise
    refuse everything that source sends."""
    return sorted({kind for kind in kinds if kind != ANY and kind not in KNOWN_KINDS})


class SourceRegistry:
    def __init__(self, sources: Iterable[Source]) -> None:
        self._keys = KeyRing(sources)
        self.sources = self._keys.holders

    def by_key(self, presented: str) -> Source | None:
        """The source whose key this is, or None."""
        return self._keys.by_key(presented)

    def by_hl7_sender(self, application: str, facility: str) -> Source | None:
        """The source allowed to send HL7 as this application and facility (exact match first)."""
        exact = [s for s in self.sources if f"{application}|{facility}" in s.hl7_senders]
        if exact:
            return exact[0]
        return next((s for s in self.sources if ANY in s.hl7_senders), None)


def sources_from_toml(text: str, *, default_rate: float, default_burst: float) -> list[Source]:
    """Parse `[[sources]]` tables; every error names the entry and field."""
    entries = source_tables(text)
    return [_source(i, e, default_rate, default_burst) for i, e in enumerate(entries)]


def _source(index: int, entry: Any, default_rate: float, default_burst: float) -> Source:
    where = f"sources[{index}]"
    shared = key_entry(index, entry)  # name, key_sha256, read
    kinds = _strings(entry.get("kinds", []), f"{where}.kinds")
    if not kinds and not (shared.read or shared.write):
        raise SourcesError(f'{where}.kinds: list at least one event kind, or "*"')
    unknown = unknown_kinds(kinds)
    if unknown:
        raise SourcesError(
            f"{where}.kinds: not an event kind ingest accepts: {', '.join(unknown)}"
            f"; known: {', '.join(sorted(KNOWN_KINDS))}"
        )
    rate = entry.get("rate_per_second", default_rate)
    if not isinstance(rate, int | float) or rate <= 0:
        raise SourcesError(f"{where}.rate_per_second: must be a positive number")
    burst = entry.get("burst", max(default_burst, rate))
    return Source(
        name=shared.name,
        key_sha256=shared.key_sha256,
        kinds=frozenset(kinds),
        rate_per_second=float(rate),
        burst=float(burst),
        hl7_senders=frozenset(_strings(entry.get("hl7_senders", []), f"{where}.hl7_senders")),
    )


def dev_sources(keys: Mapping[str, str], *, rate: float, burst: float) -> list[Source]:
    """Sources from plain development keys: every kind, any HL7 sender."""
    return [
        Source(name, key_digest(key), frozenset({ANY}), rate, burst, frozenset({ANY}))
        for name, key in keys.items()
    ]


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise SourcesError(f"{where}: must be a list of non-empty strings")
    return value

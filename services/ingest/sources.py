"""Who may send what: per-source credentials, allowed event kinds, rates and HL7 senders.

API keys are never stored: a source is configured with the SHA-256 of its key (keys are long random
tokens, so a plain digest is enough and lets a presented key be looked up without a timing signal).
Sources come from a TOML file (`WARDFLOW_SOURCES_FILE`) and, for development, from
`WARDFLOW_API_KEYS` (plain keys, hashed in memory, allowed every kind).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from schemas.topics import EVENTS_RAW

ANY = "*"
KNOWN_KINDS = frozenset(model.__name__ for model in EVENTS_RAW.events)
"""The event kinds a source may be allowed (every event of events.raw)."""


class SourcesError(ValueError):
    """The sources configuration is invalid; the message says where."""


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


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh API key and the digest to configure for it."""
    key = secrets.token_urlsafe(32)
    return key, key_digest(key)


class SourceRegistry:
    def __init__(self, sources: Iterable[Source]) -> None:
        self.sources = tuple(sources)
        self._by_digest = {s.key_sha256: s for s in self.sources}
        names = [s.name for s in self.sources]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise SourcesError(f"sources: names repeat: {repeated}")

    def by_key(self, presented: str) -> Source | None:
        """The source whose key this is, or None."""
        if not presented:
            return None
        digest = key_digest(presented)
        source = self._by_digest.get(digest)
        if source is None or not hmac.compare_digest(source.key_sha256, digest):
            return None
        return source

    def by_hl7_sender(self, application: str, facility: str) -> Source | None:
        """The source allowed to send HL7 as this application and facility (exact match first)."""
        exact = [s for s in self.sources if f"{application}|{facility}" in s.hl7_senders]
        if exact:
            return exact[0]
        return next((s for s in self.sources if ANY in s.hl7_senders), None)


def sources_from_toml(text: str, *, default_rate: float, default_burst: float) -> list[Source]:
    """Parse `[[sources]]` tables; every error names the entry and field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SourcesError(f"sources file: not valid TOML: {error}") from None
    entries = data.get("sources", [])
    if not isinstance(entries, list):
        raise SourcesError("sources file: 'sources' must be an array of tables")
    return [_source(i, e, default_rate, default_burst) for i, e in enumerate(entries)]


def _source(index: int, entry: Any, default_rate: float, default_burst: float) -> Source:
    where = f"sources[{index}]"
    if not isinstance(entry, Mapping):
        raise SourcesError(f"{where}: must be a table")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise SourcesError(f"{where}.name: required")
    digest = entry.get("key_sha256", "")
    if not isinstance(digest, str) or len(digest) != 64 or not _is_hex(digest):
        raise SourcesError(f"{where}.key_sha256: must be 64 hex characters (sha256 of the key)")
    kinds = _strings(entry.get("kinds", []), f"{where}.kinds")
    if not kinds:
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
        name=name,
        key_sha256=digest.lower(),
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


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)

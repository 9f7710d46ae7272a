"""API keys, shared by ingest (who may send) and the scheduler (who may read, who may write).

Keys are never stored: a configured key is the SHA-256 of the key (keys are long random tokens, so
a plain digest is enough and lets a presented key be looked up without a timing signal). Keys come
from the sources file (`WARDFLOW_SOURCES_FILE`, `[[sources]]` tables with at least `name` and
`key_sha256`) and, for development, from `WARDFLOW_API_KEYS` (plain keys, hashed in memory).

This module knows only the parts every service shares: each entry's `name`, `key_sha256`,
`read` (may it read the scheduler's API) and `write` (may it ask the scheduler's API for beds,
cancel requests, block and unblock beds). What a source may send is ingest's business
(`services/ingest/sources.py`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from pydantic import SecretStr

MIN_DEV_KEY_LENGTH = 16


class SourcesError(ValueError):
    """The sources configuration is invalid; the message says where."""


class Keyed(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def key_sha256(self) -> str: ...


K = TypeVar("K", bound=Keyed)


@dataclass(frozen=True)
class KeyEntry:
    """The shared part of a `[[sources]]` entry (or of a development key)."""

    name: str
    key_sha256: str
    read: bool = False  # may read the scheduler's API (GET /v1/...)
    write: bool = False  # may write through the scheduler's API (POST, DELETE /v1/...)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> tuple[str, str]:
    """A fresh API key and the digest to configure for it."""
    key = secrets.token_urlsafe(32)
    return key, key_digest(key)


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header; empty when there is none."""
    if not authorization or not authorization.startswith("Bearer "):
        return ""
    return authorization.removeprefix("Bearer ").strip()


class KeyRing(Generic[K]):
    """Keyed holders (sources, readers) looked up by a presented key."""

    def __init__(self, holders: Iterable[K]) -> None:
        self.holders = tuple(holders)
        self._by_digest = {h.key_sha256: h for h in self.holders}
        names = [h.name for h in self.holders]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise SourcesError(f"sources: names repeat: {repeated}")

    def by_key(self, presented: str) -> K | None:
        """The holder whose key this is, or None (always None for an empty key)."""
        if not presented:
            return None
        digest = key_digest(presented)
        holder = self._by_digest.get(digest)
        if holder is None or not hmac.compare_digest(holder.key_sha256, digest):
            return None
        return holder


def source_tables(text: str) -> list[Any]:
    """The `[[sources]]` entries of a sources file, not yet checked."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise SourcesError(f"sources file: not valid TOML: {error}") from None
    entries = data.get("sources", [])
    if not isinstance(entries, list):
        raise SourcesError("sources file: 'sources' must be an array of tables")
    return entries


def key_entry(index: int, entry: Any) -> KeyEntry:
    """The shared fields of entry `index`; every error names the entry and field."""
    where = f"sources[{index}]"
    if not isinstance(entry, Mapping):
        raise SourcesError(f"{where}: must be a table")
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise SourcesError(f"{where}.name: required")
    digest = entry.get("key_sha256", "")
    if not isinstance(digest, str) or len(digest) != 64 or not _is_hex(digest):
        raise SourcesError(f"{where}.key_sha256: must be 64 hex characters (sha256 of the key)")
    read = entry.get("read", False)
    if not isinstance(read, bool):
        raise SourcesError(f"{where}.read: must be true or false")
    write = entry.get("write", False)
    if not isinstance(write, bool):
        raise SourcesError(f"{where}.write: must be true or false")
    return KeyEntry(name, digest.lower(), read, write)


def key_entries(text: str) -> list[KeyEntry]:
    """The shared fields of every entry of a sources file (other fields are not checked here)."""
    return [key_entry(i, entry) for i, entry in enumerate(source_tables(text))]


def read_sources_file(path: str) -> str:
    """The text of the sources file; empty when no file is configured."""
    return Path(path).read_text(encoding="utf-8") if path else ""


def plain_keys(keys: Mapping[str, SecretStr]) -> dict[str, str]:
    return {name: key.get_secret_value() for name, key in keys.items()}


def dev_key_entries(keys: Mapping[str, str]) -> list[KeyEntry]:
    """Entries for plain development keys: they may read and write."""
    return [KeyEntry(name, key_digest(key), read=True, write=True) for name, key in keys.items()]


def readers(sources_text: str, dev_keys: Mapping[str, str]) -> KeyRing[KeyEntry]:
    """Who may read: the file's entries with `read = true`, and every development key."""
    entries = [e for e in key_entries(sources_text) if e.read] if sources_text else []
    return KeyRing([*entries, *dev_key_entries(dev_keys)])


def api_clients(sources_text: str, dev_keys: Mapping[str, str]) -> KeyRing[KeyEntry]:
    """Who may use the scheduler's API at all: the file's entries with `read = true` or
    `write = true`, and every development key. Each route then checks its own permission."""
    entries = key_entries(sources_text) if sources_text else []
    return KeyRing([*(e for e in entries if e.read or e.write), *dev_key_entries(dev_keys)])


def strong_dev_keys(keys: dict[str, SecretStr]) -> dict[str, SecretStr]:
    """A pydantic validator's body: development keys of at least 16 characters."""
    weak = sorted(
        name for name, key in keys.items() if len(key.get_secret_value()) < MIN_DEV_KEY_LENGTH
    )
    if weak:
        raise ValueError(
            f"API keys must be at least {MIN_DEV_KEY_LENGTH} characters; too short for: {weak}"
        )
    return keys


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)

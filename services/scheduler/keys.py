"""The names of the scheduler's Redis keys, and their hash tags (docs/architecture.md §11).

Redis Cluster runs a script or a MULTI/EXEC only when all its keys hash to one slot, and a key's
slot is that of its hash tag (the text between its first `{` and the next `}`). The names make
every script and every view transaction one slot:

- a general or emergency ward W: `<prefix>:{ward:W}:<part>`; a ward script touches one slot;
- the critical-care queue of a level L (hdu, icu): `<prefix>:{level:L}:<part>`;
- an HDU or ICU ward W of level L: `<prefix>:{level:L}:ward:W:<part>`, its level's tag, so a level
  script (`RESERVE`, `WITHDRAW`, `EXPIRE`: the queue and every ward of the level) touches one
  slot too (a level's whole state lives on one node);
- a seen key (an applied step of an event) has the tag of the script that wrote it.

A ward's tag therefore depends on its level of care: `BedKeys.of(prefix, layout)` takes it from
the hospital layout. A ward the layout lacks keeps its own `{ward:W}` tag.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from services.common.hospital import HospitalLayout
from services.scheduler.domain import CRITICAL_CARE_LEVELS


@dataclass(frozen=True)
class BedKeys:
    """Key names under `prefix`; `levels` maps each HDU/ICU ward id to its level (`hdu`, `icu`)."""

    prefix: str
    levels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, prefix: str, layout: HospitalLayout | None = None) -> BedKeys:
        wards = layout.wards if layout is not None else ()
        return cls(
            prefix,
            {w.id: w.level_of_care.value for w in wards if w.level_of_care in CRITICAL_CARE_LEVELS},
        )

    def level_of(self, ward: str) -> str | None:
        """The critical-care level whose tag the ward's keys share; None: its own tag."""
        return self.levels.get(ward)

    def ward_base(self, ward: str) -> str:
        level = self.levels.get(ward)
        if level is None:
            return f"{self.prefix}:{{ward:{ward}}}"
        return f"{self.prefix}:{{level:{level}}}:ward:{ward}"

    def ward(self, ward: str, part: str) -> str:
        """A structure of a ward (`status`, `waiting`, ...)."""
        return f"{self.ward_base(ward)}:{part}"

    def ward_seen(self, ward: str, event_id: UUID | None, step: str = "") -> str:
        """The seen key of one step of an event in a ward script (`seen:-`: none, ENSURE_BEDS)."""
        return self.ward(ward, f"seen:{event_id}:{step}" if event_id else "seen:-")

    def level(self, level: str, part: str) -> str:
        """A structure of a level's critical-care queue (`queue`, `requests`, ...)."""
        return f"{self.prefix}:{{level:{level}}}:{part}"

    def level_seen(self, level: str, event_id: UUID, step: str) -> str:
        return self.level(level, f"seen:{event_id}:{step}")

    def scope(self, scope: str, part: str) -> str:
        """A structure of a snapshot scope: `ward:<W>` or `level:<L>`."""
        kind, _, name = scope.partition(":")
        return self.ward(name, part) if kind == "ward" else self.level(name, part)


def hash_tag(key: str) -> str:
    """The part of a key Redis Cluster hashes: the text inside the first `{...}` when it is not
    empty, else the whole key (the Redis Cluster specification's rule)."""
    start = key.find("{")
    if start != -1:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key

"""Redis key names of the live bed state: HDU/ICU wards share their level's hash tag, so every
script's keys are in one Redis Cluster slot; other wards keep their own tag."""

from __future__ import annotations

from uuid import UUID

import pytest

from services.common.hospital import layout_from_dict
from services.scheduler.keys import BedKeys, hash_tag

LAYOUT = layout_from_dict(
    {
        "wards": [
            {"id": "ED", "level_of_care": "emergency", "beds": 1},
            {"id": "W1", "level_of_care": "general", "beds": 1},
            {"id": "H1", "level_of_care": "hdu", "beds": 1},
            {"id": "I1", "level_of_care": "icu", "beds": 1},
            {"id": "I2", "level_of_care": "icu", "beds": 1},
        ]
    }
)
KEYS = BedKeys.of("wf", LAYOUT)
EVENT = UUID(int=1)


@pytest.mark.parametrize(
    ("ward", "key", "tag"),
    [
        ("ED", "wf:{ward:ED}:status", "ward:ED"),
        ("W1", "wf:{ward:W1}:status", "ward:W1"),
        ("H1", "wf:{level:hdu}:ward:H1:status", "level:hdu"),
        ("I1", "wf:{level:icu}:ward:I1:status", "level:icu"),
        ("I2", "wf:{level:icu}:ward:I2:status", "level:icu"),
        ("NEW", "wf:{ward:NEW}:status", "ward:NEW"),  # not in the layout: its own tag
    ],
)
def test_a_ward_key_has_its_level_tag_only_in_critical_care(ward: str, key: str, tag: str) -> None:
    assert KEYS.ward(ward, "status") == key
    assert hash_tag(key) == tag


def test_a_level_script_has_one_tag() -> None:
    keys = [KEYS.level("icu", part) for part in ("queue", "requests", "patient_request")]
    keys.append(KEYS.level_seen("icu", EVENT, "settle"))
    keys += [KEYS.ward(ward, part) for ward in ("I1", "I2") for part in ("status", "waiting")]
    assert {hash_tag(key) for key in keys} == {"level:icu"}


@pytest.mark.parametrize(
    ("ward", "step", "seen"),
    [
        ("W1", "", f"wf:{{ward:W1}}:seen:{EVENT}:"),
        ("I1", "release", f"wf:{{level:icu}}:ward:I1:seen:{EVENT}:release"),
    ],
)
def test_a_seen_key_shares_the_tag_of_its_script(ward: str, step: str, seen: str) -> None:
    assert KEYS.ward_seen(ward, EVENT, step) == seen
    assert hash_tag(seen) == hash_tag(KEYS.ward(ward, "status"))


@pytest.mark.parametrize(
    ("scope", "key"),
    [
        ("ward:W1", "wf:{ward:W1}:status"),
        ("ward:H1", "wf:{level:hdu}:ward:H1:status"),
        ("level:icu", "wf:{level:icu}:status"),
    ],
)
def test_snapshot_scopes_keep_their_names_and_find_the_keys(scope: str, key: str) -> None:
    assert KEYS.scope(scope, "status") == key


def test_without_a_layout_every_ward_has_its_own_tag() -> None:
    assert BedKeys.of("wf").ward("I1", "status") == "wf:{ward:I1}:status"


@pytest.mark.parametrize(
    ("key", "tag"),
    [
        ("a:{x}:b", "x"),
        ("a:{x}:{y}", "x"),  # the first braces only
        ("a:{}:b", "a:{}:b"),  # empty braces: the whole key
        ("a:{x", "a:{x"),  # no closing brace: the whole key
        ("plain", "plain"),
    ],
)
def test_hash_tag_follows_the_cluster_rule(key: str, tag: str) -> None:
    assert hash_tag(key) == tag

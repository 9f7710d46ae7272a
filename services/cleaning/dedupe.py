"""Duplicate suppression with bounded memory: by event id, and by the same reading sent again.

Asking and remembering are separate steps, so the caller remembers an event only once it was
accepted: a dead-lettered event is not "seen", and replaying it after a fix is processed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any


class DedupeWindow:
    """Remembers the last `capacity` keys (event ids); bounded memory whatever the traffic."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[Hashable, None] = OrderedDict()

    def seen(self, key: Hashable) -> bool:
        """True when the key was remembered and is still in the window (it is kept fresh)."""
        if key in self._seen:
            self._seen.move_to_end(key)
            return True
        return False

    def remember(self, key: Hashable) -> None:
        self._seen[key] = None
        self._seen.move_to_end(key)
        if len(self._seen) > self.capacity:
            self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)


class ReadingWindow:
    """The readings of the last `capacity` observations, by who observed what when.

    The key is (source, patient, device, observation time); the value maps each parameter to its
    canonical value. An observation is the same reading again when every one of its parameters was
    already seen with the same value under its key: a gateway that retried with a new event id.
    A correction (a new value for the same time) is not a duplicate.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._readings: OrderedDict[Hashable, dict[str, Any]] = OrderedDict()

    def seen(self, key: Hashable, readings: Mapping[str, Any]) -> bool:
        known = self._readings.get(key)
        if known is None or not readings:
            return False
        self._readings.move_to_end(key)
        return all(name in known and known[name] == value for name, value in readings.items())

    def remember(self, key: Hashable, readings: Mapping[str, Any]) -> None:
        known = self._readings.get(key)
        if known is None:
            self._readings[key] = dict(readings)
            if len(self._readings) > self.capacity:
                self._readings.popitem(last=False)
        else:
            known.update(readings)
            self._readings.move_to_end(key)

    def __len__(self) -> int:
        return len(self._readings)

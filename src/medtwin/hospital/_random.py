"""Random streams for common random numbers: one stream per purpose, seeded by name.

Stream ``name`` of replication ``r`` and cohort ``c`` is
``default_rng(SeedSequence(seed, spawn_key=(r, c, crc32(name))))``.  Names are stable across
scenarios ("service/majors/assessment/urgent", "los/ICU/resus", "arrivals"), so a scenario and its
baseline draw the same arrival times, classes, activity times, lengths of stay and patience for
the same patients, whatever else the scenario changes; and a replication's numbers do not
depend on which worker runs it.  Cohort 0 are the baseline patients, cohort 1 the extra
patients of a surge (drawn from streams of their own, so the baseline patients stay the same).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np

__all__ = ["Buffer", "Streams"]


class Streams:
    """Named, independent random generators of one replication (and cohort)."""

    __slots__ = ("_cache", "cohort", "replication", "seed")

    def __init__(self, seed: int, replication: int, cohort: int = 0) -> None:
        self.seed = int(seed)
        self.replication = int(replication)
        self.cohort = int(cohort)
        self._cache: dict[str, np.random.Generator] = {}

    def __call__(self, name: str) -> np.random.Generator:
        """The generator of stream ``name`` (the same object on every call)."""
        rng = self._cache.get(name)
        if rng is None:
            key = (self.replication, self.cohort, zlib.crc32(name.encode()))
            rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=key))
            self._cache[name] = rng
        return rng


class Buffer:
    """Draws made in blocks and handed out one at a time (for draws made as events happen)."""

    __slots__ = ("_draw", "_i", "_values")

    def __init__(self, draw: Callable[[int], np.ndarray]) -> None:
        self._draw = draw
        self._values: list[float] = []
        self._i = 0

    def __call__(self) -> float:
        """The next value."""
        if self._i >= len(self._values):
            self._values = self._draw(256).tolist()
            self._i = 0
        v = self._values[self._i]
        self._i += 1
        return v

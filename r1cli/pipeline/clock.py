"""A stage's own time: wall time less the time spent blocked on its input."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any


class BusyClock:
    """Wall time less the time spent blocked on the input, for a stage's own rate.

    In `r1 rollout | r1 score`, score spends most of its time waiting for the next record; a
    rate over wall time (133.7 s → "0/s") measured the rollout, not the scorer.
    """

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.waiting = 0.0

    def restart(self) -> None:
        self.start, self.waiting = time.perf_counter(), 0.0

    def reading(self, items: Iterable[Any]) -> Iterator[Any]:
        """`items`, with the time each one takes to arrive counted as waiting."""
        source = iter(items)
        while True:
            began = time.perf_counter()
            try:
                item = next(source)
            except StopIteration:
                self.waiting += time.perf_counter() - began
                return
            self.waiting += time.perf_counter() - began
            yield item

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def busy(self) -> float:
        return max(self.elapsed - self.waiting, 1e-9)

    def waited(self) -> str:
        """`, 130.1 s of it waiting for input` when the wait was worth saying (≥ 0.5 s and ≥ 10 %)."""
        if self.waiting >= 0.5 and self.waiting >= 0.1 * self.elapsed:
            return f", {self.waiting:,.1f} s of it waiting for input"
        return ""

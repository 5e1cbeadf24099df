"""A sweep's line per finished run on stderr: which run, its outcome, and the time left."""
from __future__ import annotations

import sys
import time
from typing import Any, Callable

from ..durations import duration
from .store import config_hash

Label = Callable[[dict[str, Any]], str]     # a config -> how its progress line names it


def plain_label(config: dict[str, Any]) -> str:
    return f"{config['benchmark']} {config['method']} seed {config['seed']}"


def _detail(outcome: dict[str, Any]) -> str:
    if outcome["status"] == "done":
        return f"RA {outcome['ra']:.2f}" + (" (resumed from its checkpoint)" if outcome.get("resumed") else "") + \
            (f" (one of {outcome['batched']} seeds trained as one computation)" if outcome.get("batched") else "")
    if outcome["status"] == "skipped":
        return f"skipped, {outcome['reason']}"
    return outcome["error"]


class SweepLines:
    """One line per finished run on stderr, with the time left.

    The work left is each unfinished run's projected seconds (``expected``, by config hash) scaled by the
    pace the finished runs kept against their projections, or without projections the mean time of a
    finished run; the runs in flight have done part of it already (the workers' time so far not spent on
    finished runs), and ``jobs`` workers share the rest. A skipped run (done or running elsewhere) leaves
    the count, and neither it nor a failed run sets the pace.
    """

    def __init__(self, total: int, label: Label | None, expected: dict[str, float] | None = None, jobs: int = 1):
        self.total, self.label, self.done, self.start = total, label or plain_label, 0, time.perf_counter()
        self.expected, self.jobs = expected or {}, max(1, jobs)
        self.projected_left = sum(self.expected.values())
        self.spent = 0.0                            # worker seconds of the finished runs
        self.paced_actual = self.paced_projected = 0.0
        self.measured: list[float] = []             # seconds of the runs done here

    def __call__(self, outcome: dict[str, Any]) -> None:
        self.done += 1
        seconds = float(outcome.get("seconds") or 0.0)
        projected = self.expected.get(config_hash(outcome["config"]))
        self.spent += seconds
        if projected is not None:
            self.projected_left -= projected
        if outcome["status"] == "done" and seconds > 0:
            self.measured.append(seconds)
            if projected:
                self.paced_actual, self.paced_projected = self.paced_actual + seconds, self.paced_projected + projected
        left = self.total - self.done
        seconds_left = self.seconds_left(left) if left else None
        eta = f"; about {duration(seconds_left)} left" if seconds_left is not None else ""
        print(f"  [{self.done}/{self.total}] {self.label(outcome['config'])}: {_detail(outcome)}{eta}",
              file=sys.stderr)

    def seconds_left(self, left: int) -> float | None:
        if self.expected:
            pace = self.paced_actual / self.paced_projected if self.paced_projected else 1.0
            work = pace * max(self.projected_left, 0.0)
        elif self.measured:
            work = sum(self.measured) / len(self.measured) * left
        else:
            return None             # nothing measured yet (only runs done elsewhere)
        elapsed = time.perf_counter() - self.start
        in_flight = min(left, self.jobs)
        started = max(0.0, min(elapsed * min(self.jobs, self.total) - self.spent, elapsed * in_flight, work))
        return (work - started) / in_flight

"""When a training call tries to start resident tasks: a small state machine, no Spark in it.

:class:`~sparkgd.engine.aggregation.IterationSums` asks :meth:`StartPolicy.due` before each
iteration and tells the policy what happened: the tasks started, the slots were busy (other work
holds or wants them), the start failed, the tasks handed their slots over, the call yielded its
turn, or resident tasks are off. Busy slots are tried again after 1, 2, 4, ... iterations, failed
starts after 2, 4, ... iterations, both at most :data:`MAX_RETRY_GAP` apart; after a hand-over
or a yielded turn, at the next iteration. :func:`wait_quiet` is the wait for other jobs to end
before a start, on a clock that tests replace.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

from sparkgd.engine import timeouts

MAX_RETRY_GAP = 64  # iterations between attempts to start resident tasks, at most


@dataclasses.dataclass
class StartPolicy:
    """Which iteration (1-based call count) tries next to start resident tasks."""

    next_try: float = 1  # from the first call: a Spark job would read the blocks all the same
    gap: int = 2  # after a failed start
    busy_gap: int = 1  # after busy slots

    def due(self, call: int) -> bool:
        return call >= self.next_try

    def started(self) -> None:
        self.busy_gap = 1

    def busy(self, call: int) -> None:
        """Other work kept the slots: try again after 1, 2, 4, ... iterations."""
        self.next_try = call + self.busy_gap
        self.busy_gap = min(2 * self.busy_gap, MAX_RETRY_GAP)

    def failed(self, call: int) -> int:
        """The start failed (or the tasks ended): back off 2, 4, ... iterations; the iteration of the next try."""
        self.next_try = call + self.gap
        self.gap = min(2 * self.gap, MAX_RETRY_GAP)
        return int(self.next_try)

    def handed_over(self, call: int) -> None:
        """The tasks gave their slots to another job: start again once it is done, from the next iteration."""
        self.next_try = call + 1

    def yielded(self, call: int) -> None:
        """The call gave its turn to another call and has it back: try at once."""
        self.next_try = min(self.next_try, call)

    def off(self) -> None:
        """Resident tasks cannot run in this application: never again in this call."""
        self.next_try = math.inf


class QuietBudget:
    """Seconds a call may spend, in all, waiting for the application's other jobs to end
    (:data:`~sparkgd.engine.timeouts.QUIET_WAIT`)."""

    def __init__(self, seconds: float = timeouts.QUIET_WAIT, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.left, self._clock, self._sleep = seconds, clock, sleep

    def wait_quiet(self, busy: Callable[[], bool]) -> bool:
        """Wait until ``busy()`` (another job runs) has been false for :data:`~sparkgd.engine.timeouts.QUIET`
        seconds, within what is left of the budget. True when it was, or when nothing ran at the end."""
        start = self._clock()
        deadline = start + max(self.left, 0.0)
        since = None
        try:
            while True:
                now = self._clock()
                if busy():
                    since = None
                elif since is None:
                    since = now
                elif now - since >= timeouts.QUIET:
                    return True
                if now > deadline:
                    return since is not None
                self._sleep(timeouts.QUIET_POLL)
        finally:
            self.left -= self._clock() - start

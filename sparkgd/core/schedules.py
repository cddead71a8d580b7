"""Step-size schedules: plain callables ``t -> step`` for the iteration ``t = 1, 2, ...``."""

from __future__ import annotations

import math
from typing import Callable, Union

Schedule = Callable[[int], float]
StepSize = Union[float, Schedule]


class InverseSqrtSchedule:
    r"""MLlib's decay, ``step_t = step_size / sqrt(t)``.

    Examples
    --------
    >>> InverseSqrtSchedule(2.0)(4)
    1.0
    """

    def __init__(self, step_size: float) -> None:
        self.step_size = float(step_size)

    def __call__(self, t: int) -> float:
        return self.step_size / math.sqrt(t)

    def __repr__(self) -> str:
        return f"InverseSqrtSchedule({self.step_size!r})"


class ConstantSchedule:
    """``step_t = step_size`` for every ``t``."""

    def __init__(self, step_size: float) -> None:
        self.step_size = float(step_size)

    def __call__(self, t: int) -> float:
        return self.step_size

    def __repr__(self) -> str:
        return f"ConstantSchedule({self.step_size!r})"


def as_schedule(step_size: StepSize) -> Schedule:
    """A float becomes MLlib's :class:`InverseSqrtSchedule`; a callable is used as given."""
    if callable(step_size):
        return step_size
    return InverseSqrtSchedule(step_size)

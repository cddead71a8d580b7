"""Step-size schedules: plain callables ``t -> step`` for the iteration ``t = 1, 2, ...``.

MLlib's ``stepSize / sqrt(t)`` is the default; the others are scikit-learn's (``constant``,
``invscaling``, ``optimal``) and the usual decays (``exponential``, ``step``), each optionally after
a linear warm-up. Their names are those of the ``stepSchedule`` param.
"""

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


class InverseScalingSchedule:
    r"""scikit-learn's ``invscaling``: ``step_t = step_size / t ** power_t``."""

    def __init__(self, step_size: float, power_t: float = 0.5) -> None:
        self.step_size, self.power_t = float(step_size), float(power_t)

    def __call__(self, t: int) -> float:
        return self.step_size / t ** self.power_t

    def __repr__(self) -> str:
        return f"InverseScalingSchedule({self.step_size!r}, {self.power_t!r})"


class OptimalSchedule:
    r"""scikit-learn's ``optimal`` (Bottou's heuristic): ``step_t = 1 / (lambda (t_0 + t - 1))``.

    With :math:`\tau = \lambda^{-1/4}`, :math:`t_0 = 1 / (\tau \lambda)`, so the first step is
    :math:`\tau`; ``step_size`` is not used, as in scikit-learn. Needs ``reg_param`` > 0.
    """

    def __init__(self, reg_param: float) -> None:
        if not reg_param > 0:
            raise ValueError(f"the 'optimal' schedule needs regParam > 0, got {reg_param!r}")
        self.reg_param = float(reg_param)
        typw = math.sqrt(1.0 / math.sqrt(self.reg_param))
        self.t0 = 1.0 / (typw * self.reg_param)

    def __call__(self, t: int) -> float:
        return 1.0 / (self.reg_param * (self.t0 + t - 1))

    def __repr__(self) -> str:
        return f"OptimalSchedule({self.reg_param!r})"


class ExponentialDecaySchedule:
    r"""``step_t = step_size * decay_rate ** (t / decay_steps)``; with ``staircase`` the exponent is
    ``floor(t / decay_steps)`` (step decay)."""

    def __init__(self, step_size: float, decay_rate: float, decay_steps: int, staircase: bool = False) -> None:
        self.step_size, self.decay_rate = float(step_size), float(decay_rate)
        self.decay_steps, self.staircase = int(decay_steps), bool(staircase)

    def __call__(self, t: int) -> float:
        power = t // self.decay_steps if self.staircase else t / self.decay_steps
        return self.step_size * self.decay_rate ** power

    def __repr__(self) -> str:
        return (f"ExponentialDecaySchedule({self.step_size!r}, {self.decay_rate!r}, {self.decay_steps!r}, "
                f"staircase={self.staircase!r})")


class WarmupSchedule:
    r"""Linear warm-up to ``schedule(1)`` over ``warmup_steps`` iterations, then ``schedule``:
    ``step_t = schedule(1) t / W`` for :math:`t \le W`, ``schedule(t - W)`` after."""

    def __init__(self, schedule: Schedule, warmup_steps: int) -> None:
        self.schedule, self.warmup_steps = schedule, int(warmup_steps)

    def __call__(self, t: int) -> float:
        if t <= self.warmup_steps:
            return self.schedule(1) * t / self.warmup_steps
        return self.schedule(t - self.warmup_steps)

    def __repr__(self) -> str:
        return f"WarmupSchedule({self.schedule!r}, {self.warmup_steps!r})"


SCHEDULES = ("invsqrt", "constant", "invscaling", "optimal", "exponential", "step")


def make_schedule(name: str, step_size: float, *, power_t: float = 0.5, decay_rate: float = 0.5,
                  decay_steps: int = 20, warmup_steps: int = 0, reg_param: float = 0.0) -> Schedule:
    """The schedule called ``name`` (one of :data:`SCHEDULES`), with a warm-up when ``warmup_steps`` > 0."""
    if name == "invsqrt":
        s: Schedule = InverseSqrtSchedule(step_size)
    elif name == "constant":
        s = ConstantSchedule(step_size)
    elif name == "invscaling":
        s = InverseScalingSchedule(step_size, power_t)
    elif name == "optimal":
        s = OptimalSchedule(reg_param)
    elif name in ("exponential", "step"):
        s = ExponentialDecaySchedule(step_size, decay_rate, decay_steps, staircase=name == "step")
    else:
        raise ValueError(f"stepSchedule must be one of {', '.join(SCHEDULES)}; got {name!r}")
    return WarmupSchedule(s, warmup_steps) if warmup_steps > 0 else s


def as_schedule(step_size: StepSize) -> Schedule:
    """A float becomes MLlib's :class:`InverseSqrtSchedule`; a callable is used as given."""
    if callable(step_size):
        return step_size
    return InverseSqrtSchedule(step_size)

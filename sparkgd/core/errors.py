"""Exceptions raised by sparkgd."""

from __future__ import annotations


class SGDDivergenceError(ArithmeticError):
    """Training diverged: a non-finite loss, gradient or weight, or an objective that grew far beyond its
    first value (see :func:`sparkgd.engine.loop.diverging`).

    Attributes
    ----------
    iteration : int
        The iteration at which divergence was detected.
    last_finite_loss : float or None
        The last finite training loss seen, if any (for a growing objective: its first value).
    """

    def __init__(self, iteration: int, last_finite_loss: float | None, what: str = "loss",
                 value: float | None = None) -> None:
        self.iteration = iteration
        self.last_finite_loss = last_finite_loss
        self.what, self.value = what, value
        last = "none" if last_finite_loss is None else f"{last_finite_loss:.6g}"
        if value is None:
            found = f"the {what} is not finite (last finite loss: {last})"
        else:
            found = f"the {what} grew from {last} at the first iteration to {value:.6g}"
        super().__init__(f"SGD diverged at iteration {iteration}: {found}; "
                         "use a smaller step size or standardize the features")


class InputDataError(ValueError):
    """The training data is malformed or unusable; the message names the file and line, the partition
    and row, or the column."""


class CheckpointMismatchError(ValueError):
    """A checkpoint was written by a run with other settings, so it cannot be resumed."""

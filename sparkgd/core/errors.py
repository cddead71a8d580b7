"""Exceptions raised by sparkgd."""

from __future__ import annotations


class SGDDivergenceError(ArithmeticError):
    """Training produced a non-finite loss, gradient or weight.

    Attributes
    ----------
    iteration : int
        The iteration at which a non-finite value appeared.
    last_finite_loss : float or None
        The last finite training loss seen, if any.
    """

    def __init__(self, iteration: int, last_finite_loss: float | None, what: str = "loss") -> None:
        self.iteration = iteration
        self.last_finite_loss = last_finite_loss
        last = "none" if last_finite_loss is None else f"{last_finite_loss:.6g}"
        super().__init__(
            f"SGD diverged at iteration {iteration}: the {what} is not finite (last finite loss: {last}); "
            "use a smaller step size or standardize the features")


class InputDataError(ValueError):
    """The training data is malformed or unusable; the message names the file and line, the partition
    and row, or the column."""


class CheckpointMismatchError(ValueError):
    """A checkpoint was written by a run with other settings, so it cannot be resumed."""

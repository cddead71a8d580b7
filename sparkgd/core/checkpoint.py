"""Checkpoints of the SGD loop: everything needed to continue it bit for bit.

Every ``interval`` iterations (and at the end) the loop's :class:`~sparkgd.engine.loop.SGDState`
goes to ``<dir>/ckpt-<iteration>/`` (JSON + ``.npy``, written to a temporary directory and
renamed, so a checkpoint is whole or absent). Resuming reads the newest one whose fingerprint
(loss, updater, step, fraction, seed, regularization, features, ...) matches the run, and the
loop continues from it; sampling depends only on (seed, iteration, partition, row position), so
the final model is the one an uninterrupted run gives.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from typing import Any

import numpy as np

from sparkgd.core import persistence
from sparkgd.core.errors import CheckpointMismatchError
from sparkgd.core.state import SGDState

_NAME = re.compile(r"^ckpt-(\d{8})$")


def fingerprint(**settings: Any) -> str:
    """A short hash of the settings a checkpoint is only valid for."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Checkpointer:
    """A loop callback that saves the state every ``interval`` iterations, keeping the newest ``keep``."""

    def __init__(self, directory: str, interval: int, fingerprint: str, keep: int = 2) -> None:
        if interval < 1:
            raise ValueError(f"checkpointInterval must be >= 1, got {interval!r}")
        self.directory = str(persistence.local_path(directory))
        self.interval, self.fingerprint, self.keep = interval, fingerprint, keep

    def __call__(self, state: SGDState, final: bool = False) -> None:
        if state.iteration % self.interval and not final and not state.converged:
            return
        meta = {"class": "SGDState", "iteration": state.iteration, "regVal": state.reg_val,
                "converged": state.converged, "rowsSampled": state.rows_sampled, "fingerprint": self.fingerprint,
                "hasPrevious": state.previous_weights is not None}
        arrays = {"weights": state.weights, "lossHistory": np.asarray(state.loss_history, dtype=np.float64)}
        if state.previous_weights is not None:
            arrays["previousWeights"] = state.previous_weights
        path = os.path.join(self.directory, f"ckpt-{state.iteration:08d}")
        persistence.write_model(path, meta, arrays, overwrite=True)
        for old in sorted(_checkpoints(self.directory))[:-self.keep]:
            shutil.rmtree(os.path.join(self.directory, f"ckpt-{old:08d}"), ignore_errors=True)


def _checkpoints(directory: str) -> list[int]:
    if not os.path.isdir(directory):
        return []
    return [int(m.group(1)) for n in os.listdir(directory) if (m := _NAME.match(n))]


def latest(directory: str, fingerprint: str) -> SGDState | None:
    """The newest checkpoint of this run under ``directory``, or ``None``.

    Raises ``ValueError`` when the newest checkpoint belongs to a run with other settings.
    """
    directory = str(persistence.local_path(directory))
    found = sorted(_checkpoints(directory))
    if not found:
        return None
    path = os.path.join(directory, f"ckpt-{found[-1]:08d}")
    meta, arrays = persistence.read_model(path, "SGDState")
    if meta.get("fingerprint") != fingerprint:
        raise CheckpointMismatchError(f"checkpoint {path} was written by a run with other settings; "
                         "use another checkpoint directory or the same settings")
    return SGDState(iteration=int(meta["iteration"]), weights=arrays["weights"], reg_val=float(meta["regVal"]),
                    loss_history=arrays["lossHistory"].tolist(),
                    previous_weights=arrays.get("previousWeights") if meta.get("hasPrevious") else None,
                    converged=bool(meta["converged"]), rows_sampled=int(meta.get("rowsSampled", 0)))

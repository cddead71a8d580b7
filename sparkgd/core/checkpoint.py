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
import math
import os
import re
import shutil
from typing import Any

import numpy as np

from sparkgd.core import persistence
from sparkgd.core.errors import CheckpointMismatchError
from sparkgd.core.optimizers import SGD
from sparkgd.core.state import SGDState

_NAME = re.compile(r"^ckpt-(\d{8})$")


def fingerprint(**settings: Any) -> str:
    """A short hash of the settings a checkpoint is only valid for."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def training_settings(*, gradient: Any, updater: Any, step: Any, reg_param: float, fraction: float, tol: float,
                      seed: int, initial_weights: Any, fit_intercept: bool, scale: Any, center: Any, rows: int,
                      optimizer: Any, average_from: int, validation: tuple[float, int]) -> dict[str, Any]:
    """What a checkpoint must have been written with to be resumed: every setting that changes the iterates.

    Settings beyond MLlib's (another optimizer, averaging, validation, Huber's threshold, centring) enter only
    when used, so a plain MLlib-style run's fingerprint does not change when such settings are added.
    """
    extra = {} if isinstance(optimizer, SGD) and not average_from and not validation[0] else dict(
        optimizer=repr(optimizer), average_from=average_from, validation=list(validation))
    if hasattr(gradient, "epsilon"):  # Huber's threshold
        extra["epsilon"] = gradient.epsilon
    settings = dict(
        gradient=type(gradient).__name__, updater=repr(updater), step=repr(step), reg=reg_param, fraction=fraction,
        tol=tol, seed=seed, w0=np.asarray(initial_weights, dtype=np.float64).tolist(), intercept=fit_intercept,
        scale=None if scale is None else np.asarray(scale).tolist(), rows=rows, **extra)
    if center is not None and fit_intercept:
        settings["center"] = np.asarray(center, dtype=np.float64).tolist()
    return settings


def setting_hashes(settings: dict[str, Any]) -> dict[str, str]:
    """A short hash of each setting: kept in a checkpoint so a mismatch can name the settings that differ
    (values such as the initial weights can be large)."""
    return {k: hashlib.sha256(json.dumps(v, sort_keys=True, default=str).encode()).hexdigest()[:12]
            for k, v in settings.items()}


class LocalDirs:
    """Checkpoint directories on the local filesystem (a path or a ``file:`` URI)."""

    def root(self, directory: str) -> str:
        return str(persistence.local_path(directory))

    def join(self, directory: str, name: str) -> str:
        return os.path.join(directory, name)

    def names(self, directory: str) -> list[str]:
        return os.listdir(directory) if os.path.isdir(directory) else []

    def write(self, path: str, meta: dict, arrays: dict) -> None:
        persistence.write_model(path, meta, arrays, overwrite=True)

    def read(self, path: str) -> tuple[dict, dict]:
        return persistence.read_model(path, "SGDState")

    def remove(self, path: str) -> None:
        shutil.rmtree(path, ignore_errors=True)


class Checkpointer:
    """A loop callback that saves the state every ``interval`` iterations, keeping the newest ``keep``.

    ``dirs`` says where checkpoint directories live (:class:`LocalDirs` by default;
    :class:`sparkgd.engine.fs.HadoopDirs` for ``hdfs://``, ``s3a://``, ...).
    """

    def __init__(self, directory: str, interval: int, fingerprint: str, keep: int = 2,
                 dirs: Any = None, settings: dict[str, str] | None = None) -> None:
        if interval < 1:
            raise ValueError(f"checkpointInterval must be >= 1, got {interval!r}")
        self.dirs = dirs or LocalDirs()
        self.directory = self.dirs.root(directory)
        self.interval, self.fingerprint, self.keep = interval, fingerprint, keep
        self.settings = settings

    def __call__(self, state: SGDState, final: bool = False) -> None:
        if state.iteration % self.interval and not final and not state.converged:
            return
        extra = {} if self.settings is None else {"settings": self.settings}
        write_state(self.dirs, self.dirs.join(self.directory, f"ckpt-{state.iteration:08d}"), state, self.fingerprint,
                    **extra)
        for old in sorted(_checkpoints(self.dirs, self.directory))[:-self.keep]:
            self.dirs.remove(self.dirs.join(self.directory, f"ckpt-{old:08d}"))


def write_state(dirs: Any, path: str, state: SGDState, fingerprint: str, **extra: Any) -> None:
    """``state`` as a checkpoint directory at ``path`` (whole or absent); ``extra`` goes into its metadata."""
    dirs.write(path, *state_record(state, fingerprint=fingerprint, **extra))


def state_record(state: SGDState, **extra: Any) -> tuple[dict, dict[str, np.ndarray]]:
    """``state`` as JSON metadata and named float64 arrays (a checkpoint's, or a Connect chunk's reply)."""
    meta = {"class": "SGDState", "iteration": state.iteration, "regVal": state.reg_val,
            "converged": state.converged, "rowsSampled": state.rows_sampled,
            "hasPrevious": state.previous_weights is not None, "optimizerState": sorted(state.optimizer_state),
            "averageCount": state.average_count, "noImprovement": state.no_improvement,
            "bestValidation": state.best_validation if math.isfinite(state.best_validation) else None, **extra}
    arrays = {"weights": state.weights, "lossHistory": np.asarray(state.loss_history, dtype=np.float64),
              "validationHistory": np.asarray(state.validation_history, dtype=np.float64)}
    if state.previous_weights is not None:
        arrays["previousWeights"] = state.previous_weights
    if state.average is not None:
        arrays["average"] = state.average
    arrays.update({f"optimizer.{k}": v for k, v in state.optimizer_state.items()})
    return meta, arrays


def state_from_record(meta: dict, arrays: dict[str, np.ndarray]) -> SGDState:
    """The inverse of :func:`state_record` (the arrays are copied: the loop may update them in place)."""
    a = {k: np.array(v) for k, v in arrays.items()}
    return SGDState(iteration=int(meta["iteration"]), weights=a["weights"], reg_val=float(meta["regVal"]),
                    loss_history=a["lossHistory"].tolist(),
                    previous_weights=a.get("previousWeights") if meta.get("hasPrevious") else None,
                    converged=bool(meta["converged"]), rows_sampled=int(meta.get("rowsSampled", 0)),
                    optimizer_state={k: a[f"optimizer.{k}"] for k in meta.get("optimizerState", [])},
                    average=a.get("average"), average_count=int(meta.get("averageCount", 0)),
                    validation_history=a.get("validationHistory", np.zeros(0)).tolist(),
                    best_validation=math.inf if meta.get("bestValidation") is None else float(meta["bestValidation"]),
                    no_improvement=int(meta.get("noImprovement", 0)))


def _checkpoints(dirs: Any, directory: str) -> list[int]:
    return [int(m.group(1)) for n in dirs.names(directory) if (m := _NAME.match(n))]


def latest(directory: str, fingerprint: str, dirs: Any = None, settings: dict[str, str] | None = None
           ) -> SGDState | None:
    """The newest checkpoint of this run under ``directory``, or ``None``.

    Raises ``CheckpointMismatchError`` when the newest checkpoint belongs to a run with other settings.
    """
    dirs = dirs or LocalDirs()
    directory = dirs.root(directory)
    found = sorted(_checkpoints(dirs, directory))
    if not found:
        return None
    return read_state(dirs, dirs.join(directory, f"ckpt-{found[-1]:08d}"), fingerprint, settings)[0]


def read_state(dirs: Any, path: str, fingerprint: str, settings: dict[str, str] | None = None
               ) -> tuple[SGDState, dict]:
    """The state :func:`write_state` wrote at ``path``, and its metadata.

    Raises ``CheckpointMismatchError`` when it was written by a run with other settings, naming
    them when both sides know theirs (``settings``: :func:`setting_hashes` of this run's).
    """
    meta, arrays = dirs.read(path)
    if meta.get("fingerprint") != fingerprint:
        theirs = meta.get("settings")
        differ = ""
        if settings is not None and isinstance(theirs, dict):
            names = sorted(k for k in set(settings) | set(theirs) if settings.get(k) != theirs.get(k))
            differ = f" (these differ: {', '.join(names)})" if names else ""
        raise CheckpointMismatchError(f"checkpoint {path} was written by a run with other settings{differ}; "
                                      "use another checkpoint directory or the same settings")
    return state_from_record(meta, arrays), meta

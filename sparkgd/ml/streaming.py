"""Online training on Structured Streaming: one update run per micro-batch, each applied exactly once.

:class:`StreamingSGD` takes a sparkgd estimator and a state directory. On every micro-batch of a
streaming DataFrame (``foreachBatch``) it runs the estimator's ``maxIter`` iterations on the batch,
starting from the weights and the optimizer state the previous batch left (the iteration count goes
on, so step schedules keep decaying and Adam's bias correction keeps counting), then saves that
state under ``<stateDir>/batch-<id>/`` (JSON and ``.npy``, written whole or not at all).

Spark's ``foreachBatch`` runs a batch at least once: a query restarted from its checkpoint runs
again every batch it had not committed. The state directory makes the model's updates exactly
once: a batch whose id is not above the newest saved one was applied already and is skipped, and
a batch cut short before its state was saved left no trace, so it is applied in full when it runs
again. Sampling depends only on the seed, the iteration and the rows, so a killed and restarted
query ends with the model of an uninterrupted one.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import numpy as np
from pyspark.sql import DataFrame

from sparkgd.core import checkpoint
from sparkgd.core.state import SGDState
from sparkgd.engine import fs

log = logging.getLogger("sparkgd")
_BATCH = re.compile(r"^batch-(\d{12})$")
_NOT_STATE = ("featuresCol", "labelCol", "predictionCol", "rawPredictionCol", "probabilityCol", "weightCol",
              "checkpointDir", "checkpointInterval", "resume", "threshold")


class _Online:
    """The state carried from one micro-batch's fit to the next (``_SGDEstimator._fit`` reads it)."""

    def __init__(self, state: SGDState | None, shape: tuple[int, int] | None) -> None:
        self.state, self.shape = state, shape

    def start(self, w0: np.ndarray, reg_val: float, optimizer_state: dict, shape: tuple[int, int]) -> SGDState:
        if self.state is None:
            self.state, self.shape = SGDState(0, w0, reg_val, optimizer_state=optimizer_state), shape
        elif shape != self.shape:
            raise ValueError(f"this micro-batch has {shape[1]} features and {max(shape[0], 2)} classes; the model "
                             f"trained so far has {self.shape[1]} features and {max(self.shape[0], 2)} classes")
        self.state.converged, self.state.previous_weights = False, None  # each batch runs its own maxIter
        return self.state


class StreamingSGD:
    """Train ``estimator`` on each micro-batch of a streaming DataFrame, keeping its state in ``stateDir``.

    Parameters
    ----------
    estimator : SGDLinearRegression, SGDLogisticRegression or SGDLinearSVC
        Its params apply to every batch (``maxIter`` is the iterations per batch). It must have
        ``standardization=False`` (each batch would scale the features its own way) and no
        ``averageFrom`` or ``validationFraction``.
    stateDir : str
        Where the state after each batch is kept (a local path or a Hadoop URI). A restarted
        trainer goes on from the newest state there; one written with other params is refused.
    modelDir : str, optional
        Also save the latest model there after each batch (before its state: a batch is done once
        its state is saved).

    Examples
    --------
    >>> trainer = StreamingSGD(SGDLinearRegression(maxIter=10, standardization=False), "/tmp/state")
    >>> query = (trainer.trainOn(spark.readStream.schema(schema).parquet("in/"))  # doctest: +SKIP
    ...          .option("checkpointLocation", "/tmp/query").start())
    """

    def __init__(self, estimator: Any, stateDir: str, modelDir: str | None = None) -> None:
        g = estimator.getOrDefault
        if g(estimator.standardization):
            raise ValueError("StreamingSGD needs the estimator's standardization=False: each micro-batch would "
                             "scale the features its own way")
        if g(estimator.averageFrom) or g(estimator.validationFraction):
            raise ValueError("StreamingSGD does not take params averageFrom or validationFraction")
        self._estimator = estimator.copy()
        self._dir, self._model_dir = stateDir, modelDir
        settings = {p.name: v for p, v in estimator.extractParamMap().items() if p.name not in _NOT_STATE}
        self._fingerprint = checkpoint.fingerprint(estimator=type(estimator).__name__, **settings)
        self._dirs: Any = None
        self.lastBatchId: int | None = None
        self._online = _Online(None, None)
        self._model: Any = None
        self._restore()

    def _store(self) -> Any:
        if self._dirs is None:
            if fs.is_local(self._dir):
                self._dirs = checkpoint.LocalDirs()
            else:
                from pyspark.sql import SparkSession

                self._dirs = fs.HadoopDirs(SparkSession.builder.getOrCreate().sparkContext)
        return self._dirs

    def _batches(self) -> list[int]:
        dirs = self._store()
        return sorted(int(m.group(1)) for n in dirs.names(dirs.root(self._dir)) if (m := _BATCH.match(n)))

    def _path(self, batch_id: int) -> str:
        dirs = self._store()
        return dirs.join(dirs.root(self._dir), f"batch-{batch_id:012d}")

    def _restore(self) -> None:
        found = self._batches()
        if not found:
            return
        state, meta = checkpoint.read_state(self._store(), self._path(found[-1]), self._fingerprint)
        shape = tuple(meta["shape"])
        self._online = _Online(state, shape)
        self.lastBatchId = found[-1]
        self._model = self._model_of(state, shape)
        log.info("StreamingSGD: going on from the state of batch %d (iteration %d)", found[-1], state.iteration)

    def _model_of(self, state: SGDState, shape: tuple[int, int]) -> Any:
        est = self._estimator
        model = est._make_model(state.weights, shape[0], shape[1], est.getFitIntercept(), None)
        est._copyValues(model)
        model._training = (list(state.loss_history), state.iteration, None)
        return model

    def latestModel(self) -> Any:
        """The model after the newest batch applied (``None`` before the first)."""
        return self._model

    def applied(self, batch_id: int) -> bool:
        """Whether batch ``batch_id`` was applied already (its id is not above the newest saved state's)."""
        return self.lastBatchId is not None and batch_id <= self.lastBatchId

    def process(self, batch: DataFrame, batch_id: int) -> None:
        """Apply one micro-batch (the ``foreachBatch`` function); a batch applied already is skipped."""
        if self.applied(batch_id):
            log.info("StreamingSGD: batch %d was applied already (newest state: batch %d), skipping it",
                     batch_id, self.lastBatchId)
            return
        if batch.isEmpty():
            return
        est = self._estimator.copy()
        est._online = self._online
        before = self._online.state.iteration if self._online.state is not None else 0
        model = est.fit(batch)
        state = self._online.state
        if self._model_dir:
            model.write().overwrite().save(self._model_dir)
        checkpoint.write_state(self._store(), self._path(batch_id), state, self._fingerprint,
                               batchId=int(batch_id), shape=list(self._online.shape))
        for old in self._batches()[:-2]:
            self._store().remove(self._path(old))
        self.lastBatchId, self._model = int(batch_id), model
        loss = state.loss_history[-1] if len(state.loss_history) else float("nan")
        log.info("StreamingSGD: batch %d applied: iterations %d..%d, loss %.6g", batch_id, before + 1,
                 state.iteration, loss)
        self.metrics = {"batchId": int(batch_id), "iteration": state.iteration, "loss": loss}

    def trainOn(self, df: DataFrame) -> Any:
        """``df.writeStream.foreachBatch(self.process)``: add options (``checkpointLocation``) and ``start()``."""
        return df.writeStream.foreachBatch(self.process)

    def __repr__(self) -> str:
        return f"StreamingSGD({type(self._estimator).__name__}, stateDir={json.dumps(self._dir)})"

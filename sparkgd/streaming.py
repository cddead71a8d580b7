"""A drop-in replacement for ``pyspark.mllib``'s streaming SGD trainers.

Change ``from pyspark.mllib.regression import StreamingLinearRegressionWithSGD`` to
``from sparkgd.streaming import StreamingLinearRegressionWithSGD`` (and likewise
``StreamingLogisticRegressionWithSGD``): the constructor arguments and defaults are pyspark
4.3's, and every non-empty batch of the DStream trains as MLlib's does, with
:mod:`sparkgd.rdd`'s ``train`` from the latest model's weights, so the weights after each batch
are MLlib's.

MLlib's quirks are kept: the linear model is trained with ``intercept=bool(model.intercept)``,
and the initial model's intercept is 0, so no intercept is ever fitted; the logistic model is
trained with ``regParam`` (L2) and no intercept. Empty batches leave the model unchanged.

Examples
--------
>>> from pyspark.streaming import StreamingContext
>>> from sparkgd.streaming import StreamingLinearRegressionWithSGD
>>> ssc = StreamingContext(sc, 1)                                                   # doctest: +SKIP
>>> model = StreamingLinearRegressionWithSGD(stepSize=0.1, numIterations=25)        # doctest: +SKIP
>>> model.setInitialWeights([0.0, 0.0])                                             # doctest: +SKIP
>>> model.trainOn(ssc.queueStream(batches))                                         # doctest: +SKIP
>>> model.predictOnValues(ssc.queueStream(keyed)).pprint()                          # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pyspark import RDD

from sparkgd.rdd import (
    LinearModel,
    LinearRegressionModel,
    LinearRegressionWithSGD,
    LogisticRegressionModel,
    LogisticRegressionWithSGD,
)


def _dense(weights: Any) -> np.ndarray:
    return weights.toArray() if hasattr(weights, "toArray") else np.asarray(weights, dtype=np.float64)


class StreamingLinearAlgorithm:
    """What both streaming trainers share: the latest model and predictions with it."""

    def __init__(self, model: LinearModel | None) -> None:
        self._model = model

    def latestModel(self) -> LinearModel | None:
        """The model after the last batch trained on (the initial one before any)."""
        return self._model

    def _validate(self, dstream: Any) -> None:
        from pyspark.streaming import DStream

        if not isinstance(dstream, DStream):
            raise TypeError(f"dstream should be a DStream object, got {type(dstream)}")
        if not self._model:
            raise ValueError("Model must be initialized using setInitialWeights")

    def predictOn(self, dstream: Any) -> Any:
        """A DStream of the predictions of the latest model (at each batch) for a DStream of vectors."""
        self._validate(dstream)
        return dstream.map(lambda x: self._model.predict(x))

    def predictOnValues(self, dstream: Any) -> Any:
        """Like :meth:`predictOn` for a DStream of ``(key, vector)``, keeping the keys."""
        self._validate(dstream)
        return dstream.mapValues(lambda x: self._model.predict(x))

    def trainOn(self, dstream: Any) -> None:
        """Train the model on every non-empty batch of a DStream of ``LabeledPoint``."""
        self._validate(dstream)

        def update(rdd: RDD) -> None:
            if not rdd.isEmpty():  # as MLlib: train would warn and return the weights unchanged
                self._model = self._train(rdd)

        dstream.foreachRDD(update)

    def _train(self, rdd: RDD) -> LinearModel:
        raise NotImplementedError


class StreamingLinearRegressionWithSGD(StreamingLinearAlgorithm):
    """Least squares updated on each batch, ``pyspark.mllib.regression.StreamingLinearRegressionWithSGD``.

    Parameters
    ----------
    stepSize : float
        ``eta`` of ``eta / sqrt(t)``, ``t`` counted from 1 in each batch (0.1).
    numIterations : int
        Iterations per batch (50).
    miniBatchFraction : float
        Fraction of each batch sampled per iteration (1.0).
    convergenceTol : float
        A batch stops early once ``||w_t - w_{t-1}|| < tol * max(||w_t||, 1)`` (0.001).
    """

    def __init__(self, stepSize: float = 0.1, numIterations: int = 50, miniBatchFraction: float = 1.0,
                 convergenceTol: float = 0.001) -> None:
        self.stepSize = stepSize
        self.numIterations = numIterations
        self.miniBatchFraction = miniBatchFraction
        self.convergenceTol = convergenceTol
        super().__init__(None)

    def setInitialWeights(self, initialWeights: Any) -> StreamingLinearRegressionWithSGD:
        """Set the weights to start from; required before :meth:`trainOn` and :meth:`predictOn`."""
        self._model = LinearRegressionModel(_dense(initialWeights), 0.0)
        return self

    def _train(self, rdd: RDD) -> LinearModel:
        return LinearRegressionWithSGD.train(rdd, self.numIterations, self.stepSize, self.miniBatchFraction,
                                             self._model.weights, intercept=bool(self._model.intercept),
                                             convergenceTol=self.convergenceTol)


class StreamingLogisticRegressionWithSGD(StreamingLinearAlgorithm):
    """Binary logistic regression updated on each batch,
    ``pyspark.mllib.classification.StreamingLogisticRegressionWithSGD``.

    Parameters
    ----------
    stepSize, numIterations, miniBatchFraction, convergenceTol
        As :class:`StreamingLinearRegressionWithSGD`.
    regParam : float
        L2 regularization ``regParam / 2 ||w||^2`` (0.0).
    """

    def __init__(self, stepSize: float = 0.1, numIterations: int = 50, miniBatchFraction: float = 1.0,
                 regParam: float = 0.0, convergenceTol: float = 0.001) -> None:
        self.stepSize = stepSize
        self.numIterations = numIterations
        self.regParam = regParam
        self.miniBatchFraction = miniBatchFraction
        self.convergenceTol = convergenceTol
        super().__init__(None)

    def setInitialWeights(self, initialWeights: Any) -> StreamingLogisticRegressionWithSGD:
        """Set the weights to start from; required before :meth:`trainOn` and :meth:`predictOn`."""
        self._model = LogisticRegressionModel(_dense(initialWeights), 0.0)
        return self

    def _train(self, rdd: RDD) -> LinearModel:
        return LogisticRegressionWithSGD.train(rdd, self.numIterations, self.stepSize, self.miniBatchFraction,
                                               self._model.weights, regParam=self.regParam,
                                               convergenceTol=self.convergenceTol)

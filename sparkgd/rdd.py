"""A drop-in replacement for ``pyspark.mllib``'s SGD trainers.

Change ``from pyspark.mllib.regression import LinearRegressionWithSGD`` to
``from sparkgd.rdd import LinearRegressionWithSGD``: the ``train`` parameters, their names and
defaults are pyspark 4.3's, and the model is the one MLlib's JVM trainer produces on the same
RDD (same sampled rows, same arithmetic).

Beyond MLlib, every ``train`` takes keyword-only ``checkpointDir``, ``checkpointInterval`` (10)
and ``resume``: the loop's state is saved every ``checkpointInterval`` iterations, and
``resume=True`` continues from the newest checkpoint, giving the model an uninterrupted run gives.
The keyword-only ``optimizer`` (a name such as ``"adam"`` or ``"lbfgs"``, or an object from
:mod:`sparkgd.core.optimizers`) replaces MLlib's update rule; ``None``, the default, is MLlib's.

MLlib's quirks are kept on purpose: with ``intercept=True`` the intercept is the weight of a
constant 1.0 feature appended to each row, starts at 1.0, and is regularized like the other
weights.

Examples
--------
>>> from pyspark.mllib.regression import LabeledPoint
>>> from sparkgd.rdd import LinearRegressionWithSGD
>>> rdd = sc.parallelize([LabeledPoint(2.0 * x, [x]) for x in (0.0, 1.0, 2.0, 3.0)], 2)
>>> model = LinearRegressionWithSGD.train(rdd, iterations=200, step=0.1)
>>> round(model.predict([4.0]), 2)  # the line through the points predicts 8.0
7.87
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
from pyspark import RDD, SparkContext
from pyspark.mllib.linalg import DenseVector

from sparkgd.core import persistence
from sparkgd.core.gradients import Gradient, HingeGradient, LeastSquaresGradient, LogisticGradient
from sparkgd.core.optimizers import Optimizer, make_optimizer
from sparkgd.core.state import as_weights, check_loop_params, check_params
from sparkgd.core.updaters import L1Updater, SquaredL2Updater, get_updater
from sparkgd.engine import fs
from sparkgd.engine.blocks import build_for_call
from sparkgd.engine.loop import descend
from sparkgd.engine.reuse import blocks_for
from sparkgd.engine.turns import training_call

_NAMES = {"iterations": "iterations", "step": "step", "regParam": "regParam",
          "miniBatchFraction": "miniBatchFraction", "convergenceTol": "convergenceTol"}


def _features(x: Any) -> np.ndarray | Any:
    """A dense numpy vector, or a (size, indices, values) triple for a sparse one."""
    if hasattr(x, "indices") and hasattr(x, "values") and hasattr(x, "size"):
        return x
    if hasattr(x, "toArray"):
        return x.toArray()
    return np.asarray(x, dtype=np.float64)


class LinearModel:
    """Weights and an intercept: ``predict(x) = w . x + b``.

    Attributes
    ----------
    weights : pyspark.mllib.linalg.DenseVector
    intercept : float
    lossHistory : list of float
        The training loss of every update (MLlib computes it but does not return it).
    numIterations : int
        Iterations run, fewer than asked when ``convergenceTol`` stopped training early.
    """

    def __init__(self, weights: Any, intercept: float, lossHistory: Iterable[float] = (),
                 numIterations: int = 0) -> None:
        self._coeff = DenseVector(np.asarray(_features(weights), dtype=np.float64))
        self._intercept = float(intercept)
        self.lossHistory = [float(v) for v in lossHistory]
        self.numIterations = int(numIterations)

    @property
    def weights(self) -> DenseVector:
        return self._coeff

    @property
    def intercept(self) -> float:
        return self._intercept

    def _margin(self, x: Any) -> float:
        f = _features(x)
        w = self._coeff.array
        if isinstance(f, np.ndarray):
            if f.shape != w.shape:
                raise ValueError(f"expected {len(w)} features, got {f.shape}")
            return float(f @ w) + self._intercept
        if f.size != len(w):
            raise ValueError(f"expected {len(w)} features, got a vector of size {f.size}")
        return float(np.dot(np.asarray(f.values), w[np.asarray(f.indices, dtype=np.int64)])) + self._intercept

    def _score(self, x: Any) -> float:
        return self._margin(x)

    def predict(self, x: Any) -> Any:
        """Predict one vector, or every vector of an RDD (returning an RDD)."""
        if isinstance(x, RDD):
            return x.map(self.predict)
        return self._score(x)

    def _metadata(self) -> dict[str, Any]:
        return {"intercept": self._intercept, "numFeatures": len(self._coeff),
                "numIterations": self.numIterations}

    def save(self, sc: SparkContext | None, path: str, overwrite: bool = False) -> None:
        """Save to a directory: ``metadata.json``, ``weights.npy``, ``lossHistory.npy``.

        ``path`` is a local path, a ``file:`` URI, or any URI Spark's Hadoop filesystems read
        (``hdfs://``, ``s3a://``, ...; see :mod:`sparkgd.engine.fs`).
        """
        meta = {"class": type(self).__name__, **self._metadata()}
        arrays = {"weights": self._coeff.array, "lossHistory": np.asarray(self.lossHistory, dtype=np.float64)}
        if fs.is_local(path):
            persistence.write_model(path, meta, arrays, overwrite=overwrite)
        else:
            fs.publish(sc, lambda local: persistence.write_model(local, meta, arrays), path, overwrite)

    @classmethod
    def load(cls, sc: SparkContext | None, path: str) -> LinearModel:
        """Load a model saved by :meth:`save` (no code from the directory is executed)."""
        if fs.is_local(path):
            meta, arrays = persistence.read_model(path, cls.__name__)
        else:
            with fs.fetched(sc, path) as local:
                meta, arrays = persistence.read_model(local, cls.__name__)
        if len(arrays.get("weights", ())) != meta.get("numFeatures"):
            raise persistence.ModelFormatError(f"{path}: weights do not match numFeatures")
        model = cls.__new__(cls)
        LinearModel.__init__(model, arrays["weights"], meta["intercept"], arrays.get("lossHistory", ()),
                             meta.get("numIterations", 0))
        model._restore(meta)
        return model

    def _restore(self, meta: dict[str, Any]) -> None:
        pass

    def __repr__(self) -> str:
        return f"(weights={self._coeff}, intercept={self._intercept!r})"


class LinearRegressionModel(LinearModel):
    """A linear regression model, ``predict(x) = w . x + b``."""


class LassoModel(LinearModel):
    """A linear regression model trained with an L1 penalty."""


class RidgeRegressionModel(LinearModel):
    """A linear regression model trained with an L2 penalty."""


class LinearClassificationModel(LinearModel):
    """A binary classifier with a threshold; ``clearThreshold()`` makes ``predict`` return scores."""

    _default_threshold = 0.0

    def __init__(self, weights: Any, intercept: float, lossHistory: Iterable[float] = (),
                 numIterations: int = 0) -> None:
        super().__init__(weights, intercept, lossHistory, numIterations)
        self._threshold: float | None = self._default_threshold

    @property
    def threshold(self) -> float | None:
        return self._threshold

    def setThreshold(self, value: float) -> None:
        self._threshold = float(value)

    def clearThreshold(self) -> None:
        self._threshold = None

    @property
    def numFeatures(self) -> int:
        return len(self._coeff)

    @property
    def numClasses(self) -> int:
        return 2

    def _raw(self, x: Any) -> float:
        return self._margin(x)

    def _score(self, x: Any) -> float | int:
        raw = self._raw(x)
        if self._threshold is None:
            return raw
        return 1 if raw > self._threshold else 0

    def _metadata(self) -> dict[str, Any]:
        return {**super()._metadata(), "threshold": self._threshold}

    def _restore(self, meta: dict[str, Any]) -> None:
        t = meta.get("threshold", self._default_threshold)
        self._threshold = None if t is None else float(t)


class LogisticRegressionModel(LinearClassificationModel):
    """Binary logistic regression: ``P(y=1|x) = 1 / (1 + exp(-(w . x + b)))``, threshold 0.5."""

    _default_threshold = 0.5

    def _raw(self, x: Any) -> float:
        m = self._margin(x)
        if m > 0:
            return 1.0 / (1.0 + np.exp(-m))
        e = np.exp(m)
        return float(e / (1.0 + e))


class SVMModel(LinearClassificationModel):
    """A linear SVM: class 1 when ``w . x + b`` exceeds the threshold (0.0)."""


def _train(model_class: type[LinearModel], data: RDD, gradient: Gradient, updater_reg_type: Any, *,
           iterations: int, step: float, miniBatchFraction: float, initialWeights: Any, regParam: float,
           intercept: bool, validateData: bool, convergenceTol: float, binary: bool,
           callback: Any = None, checkpointDir: str | None = None, checkpointInterval: int = 10,
           resume: bool = False, seed: int = 42, aggregationDepth: int = 2,
           optimizer: str | Optimizer | None = None, schedule: Any = None, averageFrom: int = 0,
           validationFraction: float = 0.0, nIterNoChange: int = 5) -> LinearModel:
    check_params(iterations, step, regParam, miniBatchFraction, convergenceTol, aggregationDepth, _NAMES)
    if isinstance(optimizer, str):
        optimizer = make_optimizer(optimizer)
    check_loop_params(bool(optimizer and optimizer.full_batch), miniBatchFraction, averageFrom, validationFraction,
                      nIterNoChange, _NAMES)
    updater = updater_reg_type if not isinstance(updater_reg_type, (str, type(None))) else get_updater(updater_reg_type)
    if not isinstance(data, RDD):
        raise TypeError(f"data must be an RDD of LabeledPoint or (label, features), got {type(data).__name__}")
    with training_call(), blocks_for(data, lambda: build_for_call(data)) as blocks:
        d = blocks.num_features
        if binary and validateData:
            blocks.check_binary_labels()
        if initialWeights is None:
            w0 = np.zeros(d or 0)
        else:
            w0 = as_weights(initialWeights, d, "initialWeights")
        if intercept:
            w0 = np.append(w0, 1.0)
        result = descend(blocks, gradient, updater, w0, step_size=schedule or float(step),
                         num_iterations=int(iterations), average_from=averageFrom,
                         validation_fraction=validationFraction, n_iter_no_change=nIterNoChange,
                         reg_param=float(regParam), mini_batch_fraction=float(miniBatchFraction),
                         convergence_tol=float(convergenceTol), fit_intercept=bool(intercept), callback=callback,
                         checkpoint_dir=checkpointDir, checkpoint_interval=checkpointInterval, resume=resume,
                         seed=int(seed), aggregation_depth=int(aggregationDepth), optimizer=optimizer)
    w = result.weights
    coef, b = (w[:-1], w[-1]) if intercept else (w, 0.0)
    return model_class(coef, b, result.loss_history, result.num_iterations)


class LinearRegressionWithSGD:
    """Least squares by mini-batch SGD, ``pyspark.mllib.regression.LinearRegressionWithSGD``."""

    @classmethod
    def train(cls, data: RDD, iterations: int = 100, step: float = 1.0, miniBatchFraction: float = 1.0,
              initialWeights: Any = None, regParam: float = 0.0, regType: str | None = None,
              intercept: bool = False, validateData: bool = True,
              convergenceTol: float = 0.001, *, checkpointDir: str | None = None,
              checkpointInterval: int = 10, resume: bool = False,
              optimizer: str | Optimizer | None = None) -> LinearRegressionModel:
        """Train on an RDD of ``LabeledPoint``; ``regType`` is ``None``, ``'l1'`` or ``'l2'``."""
        return _train(LinearRegressionModel, data, LeastSquaresGradient(), regType, iterations=iterations,
                      step=step, miniBatchFraction=miniBatchFraction, initialWeights=initialWeights,
                      regParam=regParam, intercept=intercept, validateData=validateData,
                      convergenceTol=convergenceTol, binary=False,
                      checkpointDir=checkpointDir, checkpointInterval=checkpointInterval, resume=resume,
                      optimizer=optimizer)


class LassoWithSGD:
    """L1-regularized least squares, ``pyspark.mllib.regression.LassoWithSGD``."""

    @classmethod
    def train(cls, data: RDD, iterations: int = 100, step: float = 1.0, regParam: float = 0.01,
              miniBatchFraction: float = 1.0, initialWeights: Any = None, intercept: bool = False,
              validateData: bool = True, convergenceTol: float = 0.001, *, checkpointDir: str | None = None,
              checkpointInterval: int = 10, resume: bool = False,
              optimizer: str | Optimizer | None = None) -> LassoModel:
        return _train(LassoModel, data, LeastSquaresGradient(), L1Updater(), iterations=iterations, step=step,
                      miniBatchFraction=miniBatchFraction, initialWeights=initialWeights, regParam=regParam,
                      intercept=intercept, validateData=validateData, convergenceTol=convergenceTol,
                      binary=False, checkpointDir=checkpointDir, checkpointInterval=checkpointInterval, resume=resume,
                      optimizer=optimizer)


class RidgeRegressionWithSGD:
    """L2-regularized least squares, ``pyspark.mllib.regression.RidgeRegressionWithSGD``."""

    @classmethod
    def train(cls, data: RDD, iterations: int = 100, step: float = 1.0, regParam: float = 0.01,
              miniBatchFraction: float = 1.0, initialWeights: Any = None, intercept: bool = False,
              validateData: bool = True, convergenceTol: float = 0.001, *, checkpointDir: str | None = None,
              checkpointInterval: int = 10, resume: bool = False,
              optimizer: str | Optimizer | None = None) -> RidgeRegressionModel:
        return _train(RidgeRegressionModel, data, LeastSquaresGradient(), SquaredL2Updater(), iterations=iterations,
                      step=step, miniBatchFraction=miniBatchFraction, initialWeights=initialWeights,
                      regParam=regParam, intercept=intercept, validateData=validateData,
                      convergenceTol=convergenceTol, binary=False,
                      checkpointDir=checkpointDir, checkpointInterval=checkpointInterval, resume=resume,
                      optimizer=optimizer)


class LogisticRegressionWithSGD:
    """Binary logistic regression, ``pyspark.mllib.classification.LogisticRegressionWithSGD``."""

    @classmethod
    def train(cls, data: RDD, iterations: int = 100, step: float = 1.0, miniBatchFraction: float = 1.0,
              initialWeights: Any = None, regParam: float = 0.01, regType: str | None = "l2",
              intercept: bool = False, validateData: bool = True,
              convergenceTol: float = 0.001, *, checkpointDir: str | None = None,
              checkpointInterval: int = 10, resume: bool = False,
              optimizer: str | Optimizer | None = None) -> LogisticRegressionModel:
        """Train on labels in {0, 1}; ``regType`` is ``None``, ``'l1'`` or ``'l2'``."""
        return _train(LogisticRegressionModel, data, LogisticGradient(), regType, iterations=iterations,
                      step=step, miniBatchFraction=miniBatchFraction, initialWeights=initialWeights,
                      regParam=regParam, intercept=intercept, validateData=validateData,
                      convergenceTol=convergenceTol, binary=True,
                      checkpointDir=checkpointDir, checkpointInterval=checkpointInterval, resume=resume,
                      optimizer=optimizer)


class SVMWithSGD:
    """Linear SVM with hinge loss, ``pyspark.mllib.classification.SVMWithSGD``."""

    @classmethod
    def train(cls, data: RDD, iterations: int = 100, step: float = 1.0, regParam: float = 0.01,
              miniBatchFraction: float = 1.0, initialWeights: Any = None, regType: str | None = "l2",
              intercept: bool = False, validateData: bool = True, convergenceTol: float = 0.001, *,
              checkpointDir: str | None = None, checkpointInterval: int = 10, resume: bool = False,
              optimizer: str | Optimizer | None = None) -> SVMModel:
        """Train on labels in {0, 1}; ``regType`` is ``None``, ``'l1'`` or ``'l2'``."""
        return _train(SVMModel, data, HingeGradient(), regType, iterations=iterations, step=step,
                      miniBatchFraction=miniBatchFraction, initialWeights=initialWeights, regParam=regParam,
                      intercept=intercept, validateData=validateData, convergenceTol=convergenceTol, binary=True,
                      checkpointDir=checkpointDir, checkpointInterval=checkpointInterval, resume=resume,
                      optimizer=optimizer)

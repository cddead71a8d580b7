"""The Params shared by sparkgd's ``pyspark.ml`` estimators and models, with Spark ML's names."""

from __future__ import annotations

import math
from typing import Any

from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import (
    HasAggregationDepth,
    HasCheckpointInterval,
    HasElasticNetParam,
    HasFitIntercept,
    HasMaxIter,
    HasRegParam,
    HasSeed,
    HasStandardization,
    HasStepSize,
    HasTol,
    HasWeightCol,
)


class _SGDParams(HasMaxIter, HasStepSize, HasRegParam, HasElasticNetParam, HasTol, HasFitIntercept,
                 HasStandardization, HasSeed, HasAggregationDepth, HasWeightCol, HasCheckpointInterval):
    """Params of mini-batch SGD; defaults are MLlib's (``maxIter=100``, ``stepSize=1.0``, ...)."""

    miniBatchFraction: Param[float] = Param(
        Params._dummy(), "miniBatchFraction",
        "fraction of each partition sampled per iteration, in (0, 1]; 1.0 is batch gradient descent",
        typeConverter=TypeConverters.toFloat)

    checkpointDir: Param[str] = Param(
        Params._dummy(), "checkpointDir",
        "directory (local) where the training state is saved every checkpointInterval iterations",
        typeConverter=TypeConverters.toString)

    resume: Param[bool] = Param(
        Params._dummy(), "resume", "continue from the newest checkpoint in checkpointDir",
        typeConverter=TypeConverters.toBoolean)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._setDefault(checkpointInterval=10, resume=False)
        self._setDefault(maxIter=100, stepSize=1.0, miniBatchFraction=1.0, regParam=0.0, elasticNetParam=0.0,
                         tol=0.001, fitIntercept=True, standardization=True, seed=42, aggregationDepth=2)

    def getMiniBatchFraction(self) -> float:
        return self.getOrDefault(self.miniBatchFraction)

    def _check_ranges(self) -> None:
        """Raise ``ValueError`` naming the first param out of its range."""
        checks = [
            ("maxIter", lambda v: v >= 0, ">= 0"),
            ("stepSize", lambda v: 0 < v < math.inf, "a finite number > 0"),
            ("miniBatchFraction", lambda v: 0 < v <= 1, "in (0, 1]"),
            ("regParam", lambda v: 0 <= v < math.inf, "a finite number >= 0"),
            ("elasticNetParam", lambda v: 0 <= v <= 1, "in [0, 1]"),
            ("tol", lambda v: 0 <= v <= 1, "in [0, 1]"),
            ("aggregationDepth", lambda v: v >= 1, ">= 1"),
            ("checkpointInterval", lambda v: v >= 1, ">= 1"),
            ("threshold", lambda v: self._threshold_ok(v), self._threshold_range()),
        ]
        for name, ok, what in checks:
            if not self.hasParam(name):
                continue
            value = self.getOrDefault(self.getParam(name))
            if value is None or (isinstance(value, float) and math.isnan(value)) or not ok(value):
                raise ValueError(f"param {name} must be {what}, got {value!r}")

    def _threshold_ok(self, v: float) -> bool:
        return True

    def _threshold_range(self) -> str:
        return "a number"


class _SGDSetters:
    """One-line setters for the params of :class:`_SGDParams`, shared by the estimators."""

    def setMaxIter(self, value: int):
        return self._set(maxIter=value)

    def setStepSize(self, value: float):
        return self._set(stepSize=value)

    def setMiniBatchFraction(self, value: float):
        return self._set(miniBatchFraction=value)

    def setRegParam(self, value: float):
        return self._set(regParam=value)

    def setElasticNetParam(self, value: float):
        return self._set(elasticNetParam=value)

    def setTol(self, value: float):
        return self._set(tol=value)

    def setFitIntercept(self, value: bool):
        return self._set(fitIntercept=value)

    def setStandardization(self, value: bool):
        return self._set(standardization=value)

    def setSeed(self, value: int):
        return self._set(seed=value)

    def setAggregationDepth(self, value: int):
        return self._set(aggregationDepth=value)

    def setWeightCol(self, value: str):
        return self._set(weightCol=value)

    def setCheckpointDir(self, value: str):
        return self._set(checkpointDir=value)

    def setCheckpointInterval(self, value: int):
        return self._set(checkpointInterval=value)

    def setResume(self, value: bool):
        return self._set(resume=value)

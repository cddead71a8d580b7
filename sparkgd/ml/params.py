"""The Params shared by sparkgd's ``pyspark.ml`` estimators and models, with Spark ML's names."""

from __future__ import annotations

import math
from typing import Any

from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import (
    HasAggregationDepth,
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
                 HasStandardization, HasSeed, HasAggregationDepth, HasWeightCol):
    """Params of mini-batch SGD; defaults are MLlib's (``maxIter=100``, ``stepSize=1.0``, ...)."""

    miniBatchFraction: Param[float] = Param(
        Params._dummy(), "miniBatchFraction",
        "fraction of each partition sampled per iteration, in (0, 1]; 1.0 is batch gradient descent",
        typeConverter=TypeConverters.toFloat)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
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

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

from sparkgd.core.optimizers import OPTIMIZERS, Optimizer, make_optimizer
from sparkgd.core.schedules import SCHEDULES, Schedule, make_schedule
from sparkgd.core.state import check_loop_params

_LOOP_NAMES = {"lbfgs": "param optimizer 'lbfgs'", **{k: f"param {k}" for k in (
    "miniBatchFraction", "averageFrom", "validationFraction", "nIterNoChange")}}


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

    optimizer: Param[str] = Param(
        Params._dummy(), "optimizer",
        "update rule: " + ", ".join(OPTIMIZERS) + " ('sgd', MLlib's, by default; 'lbfgs' needs miniBatchFraction 1.0)",
        typeConverter=TypeConverters.toString)
    stepSchedule: Param[str] = Param(
        Params._dummy(), "stepSchedule",
        "step size per iteration: " + ", ".join(SCHEDULES) + " ('invsqrt': stepSize / sqrt(t), MLlib's)",
        typeConverter=TypeConverters.toString)
    momentum: Param[float] = Param(Params._dummy(), "momentum", "momentum, nesterov: the velocity's decay, in [0, 1)",
                                   typeConverter=TypeConverters.toFloat)
    beta1: Param[float] = Param(Params._dummy(), "beta1", "adam: decay of the gradient's mean, in [0, 1)",
                                typeConverter=TypeConverters.toFloat)
    beta2: Param[float] = Param(Params._dummy(), "beta2",
                                "adam and rmsprop: decay of the squared gradient's mean, in [0, 1)",
                                typeConverter=TypeConverters.toFloat)
    adaptiveEpsilon: Param[float] = Param(Params._dummy(), "adaptiveEpsilon",
                                          "adagrad, rmsprop, adam: added to the denominator, > 0",
                                          typeConverter=TypeConverters.toFloat)
    powerT: Param[float] = Param(Params._dummy(), "powerT", "invscaling schedule: stepSize / t^powerT",
                                 typeConverter=TypeConverters.toFloat)
    decayRate: Param[float] = Param(Params._dummy(), "decayRate",
                                    "exponential and step schedules: stepSize * decayRate^(t / decaySteps), in (0, 1]",
                                    typeConverter=TypeConverters.toFloat)
    decaySteps: Param[int] = Param(Params._dummy(), "decaySteps", "exponential, step schedules: iterations per decay",
                                   typeConverter=TypeConverters.toInt)
    warmupSteps: Param[int] = Param(Params._dummy(), "warmupSteps",
                                    "iterations of linear warm-up before the schedule (0: none)",
                                    typeConverter=TypeConverters.toInt)
    averageFrom: Param[int] = Param(Params._dummy(), "averageFrom",
                                    "0: the last iterate; t >= 1: the average of the iterates from iteration t (ASGD)",
                                    typeConverter=TypeConverters.toInt)
    validationFraction: Param[float] = Param(
        Params._dummy(), "validationFraction",
        "fraction of rows held out for early stopping, in [0, 1) (0: off; then tol is the loss improvement)",
        typeConverter=TypeConverters.toFloat)
    nIterNoChange: Param[int] = Param(Params._dummy(), "nIterNoChange",
                                      "early stopping: iterations without held-out improvement before stopping",
                                      typeConverter=TypeConverters.toInt)

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._setDefault(checkpointInterval=10, resume=False)
        self._setDefault(optimizer="sgd", stepSchedule="invsqrt", momentum=0.9, beta1=0.9, beta2=0.999,
                         adaptiveEpsilon=1e-8, powerT=0.5, decayRate=0.5, decaySteps=20, warmupSteps=0,
                         averageFrom=0, validationFraction=0.0, nIterNoChange=5)
        self._setDefault(maxIter=100, stepSize=1.0, miniBatchFraction=1.0, regParam=0.0, elasticNetParam=0.0,
                         tol=0.001, fitIntercept=True, standardization=True, seed=42, aggregationDepth=2)

    def getMiniBatchFraction(self) -> float:
        return self.getOrDefault(self.miniBatchFraction)

    def getOptimizer(self) -> str:
        return self.getOrDefault(self.optimizer)

    def getStepSchedule(self) -> str:
        return self.getOrDefault(self.stepSchedule)

    def getMomentum(self) -> float:
        return self.getOrDefault(self.momentum)

    def getBeta1(self) -> float:
        return self.getOrDefault(self.beta1)

    def getBeta2(self) -> float:
        return self.getOrDefault(self.beta2)

    def getAdaptiveEpsilon(self) -> float:
        return self.getOrDefault(self.adaptiveEpsilon)

    def getPowerT(self) -> float:
        return self.getOrDefault(self.powerT)

    def getDecayRate(self) -> float:
        return self.getOrDefault(self.decayRate)

    def getDecaySteps(self) -> int:
        return self.getOrDefault(self.decaySteps)

    def getWarmupSteps(self) -> int:
        return self.getOrDefault(self.warmupSteps)

    def getAverageFrom(self) -> int:
        return self.getOrDefault(self.averageFrom)

    def getValidationFraction(self) -> float:
        return self.getOrDefault(self.validationFraction)

    def getNIterNoChange(self) -> int:
        return self.getOrDefault(self.nIterNoChange)

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
            ("optimizer", lambda v: v in OPTIMIZERS, "one of " + ", ".join(OPTIMIZERS)),
            ("stepSchedule", lambda v: v in SCHEDULES, "one of " + ", ".join(SCHEDULES)),
            ("momentum", lambda v: 0 <= v < 1, "in [0, 1)"),
            ("beta1", lambda v: 0 <= v < 1, "in [0, 1)"),
            ("beta2", lambda v: 0 <= v < 1, "in [0, 1)"),
            ("adaptiveEpsilon", lambda v: 0 < v < math.inf, "a finite number > 0"),
            ("powerT", lambda v: 0 <= v < math.inf, "a finite number >= 0"),
            ("decayRate", lambda v: 0 < v <= 1, "in (0, 1]"),
            ("decaySteps", lambda v: v >= 1, ">= 1"),
            ("warmupSteps", lambda v: v >= 0, ">= 0"),
        ]
        for name, ok, what in checks:
            if not self.hasParam(name):
                continue
            value = self.getOrDefault(self.getParam(name))
            if value is None or (isinstance(value, float) and math.isnan(value)) or not ok(value):
                raise ValueError(f"param {name} must be {what}, got {value!r}")
        g = self.getOrDefault
        check_loop_params(g(self.optimizer) == "lbfgs", g(self.miniBatchFraction), g(self.averageFrom),
                          g(self.validationFraction), g(self.nIterNoChange), _LOOP_NAMES)
        if g(self.stepSchedule) == "optimal" and not g(self.regParam) > 0:
            raise ValueError(f"param stepSchedule 'optimal' needs param regParam > 0, got {g(self.regParam)!r}")

    def _optimizer(self) -> Optimizer:
        g = self.getOrDefault
        return make_optimizer(g(self.optimizer), momentum=g(self.momentum), beta1=g(self.beta1), beta2=g(self.beta2),
                              epsilon=g(self.adaptiveEpsilon))

    def _schedule(self) -> Schedule:
        g = self.getOrDefault
        return make_schedule(g(self.stepSchedule), g(self.stepSize), power_t=g(self.powerT),
                             decay_rate=g(self.decayRate), decay_steps=g(self.decaySteps),
                             warmup_steps=g(self.warmupSteps), reg_param=g(self.regParam))

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

    def setOptimizer(self, value: str):
        return self._set(optimizer=value)

    def setStepSchedule(self, value: str):
        return self._set(stepSchedule=value)

    def setMomentum(self, value: float):
        return self._set(momentum=value)

    def setBeta1(self, value: float):
        return self._set(beta1=value)

    def setBeta2(self, value: float):
        return self._set(beta2=value)

    def setAdaptiveEpsilon(self, value: float):
        return self._set(adaptiveEpsilon=value)

    def setPowerT(self, value: float):
        return self._set(powerT=value)

    def setDecayRate(self, value: float):
        return self._set(decayRate=value)

    def setDecaySteps(self, value: int):
        return self._set(decaySteps=value)

    def setWarmupSteps(self, value: int):
        return self._set(warmupSteps=value)

    def setAverageFrom(self, value: int):
        return self._set(averageFrom=value)

    def setValidationFraction(self, value: float):
        return self._set(validationFraction=value)

    def setNIterNoChange(self, value: int):
        return self._set(nIterNoChange=value)

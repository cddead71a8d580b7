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


# The range of each numeric param: what _check_ranges applies and what the param's doc says.
RANGES: dict[str, tuple[Any, str]] = {
    "maxIter": (lambda v: v >= 0, "an integer >= 0"),
    "stepSize": (lambda v: 0 < v < math.inf, "a finite number > 0"),
    "miniBatchFraction": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "regParam": (lambda v: 0 <= v < math.inf, "a finite number >= 0"),
    "elasticNetParam": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "tol": (lambda v: 0 <= v <= 1, "in [0, 1]"),
    "aggregationDepth": (lambda v: v >= 1, "an integer >= 1"),
    "checkpointInterval": (lambda v: v >= 1, "an integer >= 1"),
    "optimizer": (lambda v: v in OPTIMIZERS, "one of " + ", ".join(OPTIMIZERS)),
    "stepSchedule": (lambda v: v in SCHEDULES, "one of " + ", ".join(SCHEDULES)),
    "momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "beta1": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "beta2": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "adaptiveEpsilon": (lambda v: 0 < v < math.inf, "a finite number > 0"),
    "powerT": (lambda v: 0 <= v < math.inf, "a finite number >= 0"),
    "decayRate": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "decaySteps": (lambda v: v >= 1, "an integer >= 1"),
    "warmupSteps": (lambda v: v >= 0, "an integer >= 0"),
    "averageFrom": (lambda v: v >= 0, "an integer >= 0"),
    "validationFraction": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "nIterNoChange": (lambda v: v >= 1, "an integer >= 1"),
    "epsilon": (lambda v: 0 < v < math.inf, "a finite number > 0"),
}


def _param(name: str, doc: str, converter: Any) -> Param:
    """A param whose doc ends with its range from :data:`RANGES`."""
    return Param(Params._dummy(), name, f"{doc} ({RANGES[name][1]})", typeConverter=converter)


class _SGDParams(HasMaxIter, HasStepSize, HasRegParam, HasElasticNetParam, HasTol, HasFitIntercept,
                 HasStandardization, HasSeed, HasAggregationDepth, HasWeightCol, HasCheckpointInterval):
    """Params of mini-batch SGD; defaults are MLlib's (``maxIter=100``, ``stepSize=1.0``, ...)."""

    # Spark's shared params, with the rules sparkgd applies in their docs
    maxIter: Param[int] = _param("maxIter", "maximum number of iterations", TypeConverters.toInt)
    stepSize: Param[float] = _param("stepSize", "initial step size; iteration t steps by stepSchedule's rule "
                                    "(stepSize / sqrt(t) by default)", TypeConverters.toFloat)
    regParam: Param[float] = _param("regParam", "regularization strength", TypeConverters.toFloat)
    elasticNetParam: Param[float] = _param("elasticNetParam", "the ElasticNet mixing parameter: 0 is an L2 penalty, "
                                           "1 an L1 penalty", TypeConverters.toFloat)
    tol: Param[float] = _param("tol", "convergence tolerance: stop once ||w_t - w_(t-1)|| < tol * max(||w_t||, 1) "
                               "(with validationFraction: the held-out loss improvement)", TypeConverters.toFloat)
    aggregationDepth: Param[int] = _param("aggregationDepth", "depth of the treeAggregate combining the "
                                          "partitions' sums", TypeConverters.toInt)
    checkpointInterval: Param[int] = _param("checkpointInterval", "iterations between saves of the training state "
                                            "to checkpointDir (sparkgd's own checkpoints; Spark's checkpoint "
                                            "directory is not used)", TypeConverters.toInt)

    miniBatchFraction: Param[float] = _param(
        "miniBatchFraction", "fraction of each partition sampled per iteration; 1.0 is batch gradient descent",
        TypeConverters.toFloat)

    checkpointDir: Param[str] = Param(
        Params._dummy(), "checkpointDir",
        "directory (a local path or a Hadoop URI) where the training state is saved every checkpointInterval "
        "iterations", typeConverter=TypeConverters.toString)

    resume: Param[bool] = Param(
        Params._dummy(), "resume", "continue from the newest checkpoint in checkpointDir",
        typeConverter=TypeConverters.toBoolean)

    optimizer: Param[str] = _param(
        "optimizer", "update rule ('sgd', MLlib's, by default; 'lbfgs' needs miniBatchFraction 1.0)",
        TypeConverters.toString)
    stepSchedule: Param[str] = _param(
        "stepSchedule", "step size per iteration ('invsqrt': stepSize / sqrt(t), MLlib's)", TypeConverters.toString)
    momentum: Param[float] = _param("momentum", "momentum, nesterov: the velocity's decay", TypeConverters.toFloat)
    beta1: Param[float] = _param("beta1", "adam: decay of the gradient's mean", TypeConverters.toFloat)
    beta2: Param[float] = _param("beta2", "adam and rmsprop: decay of the squared gradient's mean",
                                 TypeConverters.toFloat)
    adaptiveEpsilon: Param[float] = _param("adaptiveEpsilon", "adagrad, rmsprop, adam: added to the denominator",
                                           TypeConverters.toFloat)
    powerT: Param[float] = _param("powerT", "invscaling schedule: stepSize / t^powerT", TypeConverters.toFloat)
    decayRate: Param[float] = _param("decayRate", "exponential and step schedules: stepSize * decayRate^(t / "
                                     "decaySteps)", TypeConverters.toFloat)
    decaySteps: Param[int] = _param("decaySteps", "exponential, step schedules: iterations per decay",
                                    TypeConverters.toInt)
    warmupSteps: Param[int] = _param("warmupSteps", "iterations of linear warm-up before the schedule (0: none)",
                                     TypeConverters.toInt)
    averageFrom: Param[int] = _param("averageFrom", "0: the last iterate; t >= 1: the average of the iterates "
                                     "from iteration t (ASGD); not with optimizer 'lbfgs'", TypeConverters.toInt)
    validationFraction: Param[float] = _param(
        "validationFraction", "fraction of rows held out for early stopping (0: off; then tol is the loss "
        "improvement)", TypeConverters.toFloat)
    nIterNoChange: Param[int] = _param("nIterNoChange", "early stopping: iterations without held-out improvement "
                                       "before stopping", TypeConverters.toInt)

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
        checks = [(name, ok, what) for name, (ok, what) in RANGES.items()]
        checks.append(("threshold", lambda v: self._threshold_ok(v), self._threshold_range()))
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

    def setCallback(self, callback):
        """Call ``callback(state)`` on the driver after every iteration of ``fit``, with the loop's
        :class:`~sparkgd.core.state.SGDState` (``iteration``, ``loss_history``, ``weights``, ``rows_sampled``,
        ``converged``); ``None`` removes it. Not a param: it is neither copied into models nor saved.

        With ``standardization`` the state's weights are those of the standardized (and, with
        ``fitIntercept``, centred) features the model trains on.
        """
        self._callback = callback
        return self

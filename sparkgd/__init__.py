"""sparkgd: distributed mini-batch SGD for linear models on Apache Spark."""

from sparkgd.core.errors import SGDDivergenceError
from sparkgd.core.gradients import Gradient, HingeGradient, LeastSquaresGradient, LogisticGradient
from sparkgd.core.schedules import ConstantSchedule, InverseSqrtSchedule
from sparkgd.core.state import SGDResult
from sparkgd.core.updaters import ElasticNetUpdater, L1Updater, SimpleUpdater, SquaredL2Updater, Updater
from sparkgd.engine.loop import run_minibatch_sgd

__version__ = "0.1.0"

__all__ = [
    "ConstantSchedule", "ElasticNetUpdater", "Gradient", "HingeGradient", "InverseSqrtSchedule",
    "L1Updater", "LeastSquaresGradient", "LogisticGradient", "SGDDivergenceError", "SGDResult",
    "SimpleUpdater", "SquaredL2Updater", "Updater", "run_minibatch_sgd", "__version__",
]

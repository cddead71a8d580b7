"""sparkgd: distributed mini-batch SGD for linear models on Apache Spark."""

from sparkgd.errors import SGDDivergenceError
from sparkgd.gradients import Gradient, HingeGradient, LeastSquaresGradient, LogisticGradient
from sparkgd.optimize import SGDResult, run_minibatch_sgd
from sparkgd.schedules import ConstantSchedule, InverseSqrtSchedule
from sparkgd.updaters import ElasticNetUpdater, L1Updater, SimpleUpdater, SquaredL2Updater, Updater

__version__ = "0.1.0"

__all__ = [
    "ConstantSchedule", "ElasticNetUpdater", "Gradient", "HingeGradient", "InverseSqrtSchedule",
    "L1Updater", "LeastSquaresGradient", "LogisticGradient", "SGDDivergenceError", "SGDResult",
    "SimpleUpdater", "SquaredL2Updater", "Updater", "run_minibatch_sgd", "__version__",
]

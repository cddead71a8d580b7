"""sparkgd's ``pyspark.ml`` estimators and models."""

from sparkgd.ml.classification import (
    SGDLinearSVC,
    SGDLinearSVCModel,
    SGDLogisticRegression,
    SGDLogisticRegressionModel,
)
from sparkgd.ml.regression import SGDLinearRegression, SGDLinearRegressionModel
from sparkgd.ml.streaming import StreamingSGD

__all__ = [
    "SGDLinearRegression", "SGDLinearRegressionModel", "SGDLinearSVC", "SGDLinearSVCModel",
    "SGDLogisticRegression", "SGDLogisticRegressionModel", "StreamingSGD",
]

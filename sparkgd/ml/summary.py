"""Training and evaluation summaries of sparkgd's DataFrame models."""

from __future__ import annotations

import math
from functools import cached_property
from typing import Any

from pyspark.ml.evaluation import BinaryClassificationEvaluator, RegressionEvaluator
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from sparkgd.engine import _spark


class SGDSummary:
    """Metrics of a model on a DataFrame (``model.evaluate(df)``), computed on first use.

    Attributes
    ----------
    predictions : DataFrame
        The model's ``transform`` of the data.
    """

    def __init__(self, predictions: DataFrame, label_col: str, prediction_col: str, weight_col: str | None = None,
                 raw_prediction_col: str | None = None, *, probability_col: str | None = None,
                 num_features: int = 0, fit_intercept: bool = True, num_classes: int = 2) -> None:
        self.predictions = predictions
        self.labelCol = label_col
        self.predictionCol = prediction_col
        self.weightCol = weight_col
        self.rawPredictionCol = raw_prediction_col
        self.probabilityCol = probability_col
        self.numFeatures = num_features
        self.fitIntercept = fit_intercept
        self.numClasses = num_classes

    @cached_property
    def numInstances(self) -> int:
        """Rows of ``predictions`` (unweighted, as Spark ML counts them)."""
        return int(self.predictions.count())


class SGDRegressionSummary(SGDSummary):
    """``rootMeanSquaredError``, ``meanSquaredError``, ``meanAbsoluteError``, ``r2``, ``r2adj``,
    ``explainedVariance``, ``residuals``, ``numInstances``, ``degreesOfFreedom``: Spark ML's
    ``LinearRegressionSummary`` fields, computed as it computes them (Spark's ``RegressionEvaluator``;
    without ``fitIntercept``, ``r2`` is measured through the origin, as Spark ML does).

    Weighted by the model's ``weightCol`` when it has one.
    """

    def _evaluate(self, metric: str) -> float:
        ev = RegressionEvaluator(labelCol=self.labelCol, predictionCol=self.predictionCol, metricName=metric,
                                 throughOrigin=not self.fitIntercept)
        if self.weightCol:
            ev.setWeightCol(self.weightCol)
        return float(ev.evaluate(self.predictions))

    @cached_property
    def explainedVariance(self) -> float:
        """Spark's ``RegressionMetrics.explainedVariance``: the weighted mean of ``(prediction - mean label)^2``."""
        return self._evaluate("var")

    @property
    def degreesOfFreedom(self) -> int:
        """``numInstances - numFeatures - 1`` (without ``fitIntercept``: ``- numFeatures`` only)."""
        return self.numInstances - self.numFeatures - int(self.fitIntercept)

    @property
    def r2adj(self) -> float:
        r"""Adjusted :math:`R^2 = 1 - (1 - R^2)\,(n - k_0) / (n - d - k_0)`, :math:`k_0` 1 with an intercept."""
        n, k0 = self.numInstances, int(self.fitIntercept)
        return 1.0 - (1.0 - self.r2) * (n - k0) / (n - self.numFeatures - k0)

    @property
    def residuals(self) -> DataFrame:
        """One column ``residuals``: label minus prediction."""
        return self.predictions.select(
            (F.col(self.labelCol).cast("double") - F.col(self.predictionCol)).alias("residuals"))

    @cached_property
    def _sums(self) -> dict[str, float]:
        y = F.col(self.labelCol).cast("double")
        p = F.col(self.predictionCol)
        w = F.col(self.weightCol).cast("double") if self.weightCol else F.lit(1.0)
        row = self.predictions.agg(
            F.sum(w).alias("w"), F.sum(w * (y - p) * (y - p)).alias("se"), F.sum(w * F.abs(y - p)).alias("ae"),
            F.sum(w * y).alias("y"), F.sum(w * y * y).alias("yy")).first()
        return {k: float(row[k] or 0.0) for k in ("w", "se", "ae", "y", "yy")}

    @property
    def meanSquaredError(self) -> float:
        s = self._sums
        return s["se"] / s["w"] if s["w"] else math.nan

    @property
    def rootMeanSquaredError(self) -> float:
        return math.sqrt(self.meanSquaredError)

    @property
    def meanAbsoluteError(self) -> float:
        s = self._sums
        return s["ae"] / s["w"] if s["w"] else math.nan

    @cached_property
    def r2(self) -> float:
        """Spark's ``RegressionMetrics.r2`` (through the origin without ``fitIntercept``)."""
        return self._evaluate("r2")


def _spark_field(name: str, method: bool = False) -> Any:
    """A summary field computed by Spark ML's own summary of the same predictions (see :meth:`_spark`)."""
    if method:
        def call(self, *args: Any) -> Any:
            return getattr(self._spark, name)(*args)
        call.__name__, call.__doc__ = name, f"Spark ML's ``{name}`` of these predictions."
        return call

    def get(self) -> Any:
        return getattr(self._spark, name)
    get.__name__, get.__doc__ = name, f"Spark ML's ``{name}`` of these predictions."
    return property(get)


class SGDClassificationSummary(SGDSummary):
    """``accuracy`` and, for binary models, ``areaUnderROC``, plus Spark ML's classification summary fields.

    ``roc``, ``pr``, ``fMeasureByThreshold``, ``precisionByThreshold``, ``recallByThreshold`` and
    ``areaUnderPR`` (binary models), ``labels``, ``weighted*`` and ``*ByLabel`` are computed by Spark
    ML's own ``BinaryLogisticRegressionSummary``, ``LinearSVCSummary`` or ``LogisticRegressionSummary``
    over these predictions (scores: the probability of class 1 for logistic models, the margin for
    SVMs), so they are Spark's values by construction; they need a classic SparkSession.
    """

    @cached_property
    def accuracy(self) -> float:
        y = F.col(self.labelCol).cast("double")
        w = F.col(self.weightCol).cast("double") if self.weightCol else F.lit(1.0)
        row = self.predictions.agg(F.sum(w).alias("w"),
                                   F.sum(F.when(y == F.col(self.predictionCol), w).otherwise(0.0)).alias("ok")).first()
        return float(row["ok"]) / float(row["w"]) if row["w"] else math.nan

    def _binary_only(self, name: str) -> None:
        if self.numClasses != 2:
            raise RuntimeError(f"{name} is defined for binary models only; this model has {self.numClasses} classes "
                               "(as Spark ML, whose multinomial summary has no such field)")

    @cached_property
    def areaUnderROC(self) -> float:
        self._binary_only("areaUnderROC")
        ev = BinaryClassificationEvaluator(rawPredictionCol=self.rawPredictionCol, labelCol=self.labelCol,
                                           metricName="areaUnderROC")
        if self.weightCol:
            ev.setWeightCol(self.weightCol)
        return ev.evaluate(self.predictions)

    @cached_property
    def _spark(self) -> Any:
        """Spark ML's summary of the same predictions (classic mode only)."""
        if _spark.is_remote():
            raise RuntimeError("this summary field is computed by Spark ML's JVM summary, which a Spark Connect "
                               "client cannot reach; use pyspark.ml.evaluation's evaluators on summary.predictions")
        logistic = self.probabilityCol is not None
        if self.numClasses == 2:
            found = _spark.binary_summary(self.predictions, self.probabilityCol if logistic else self.rawPredictionCol,
                                          self.predictionCol, self.labelCol, self.weightCol, logistic)
        else:
            found = _spark.multiclass_summary(self.predictions, self.probabilityCol, self.predictionCol,
                                              self.labelCol, self.weightCol)
        if found is None:
            raise RuntimeError("Spark ML's classification summary is not available in this Spark version")
        return found

    labels = _spark_field("labels")
    weightedTruePositiveRate = _spark_field("weightedTruePositiveRate")
    weightedFalsePositiveRate = _spark_field("weightedFalsePositiveRate")
    weightedRecall = _spark_field("weightedRecall")
    weightedPrecision = _spark_field("weightedPrecision")
    weightedFMeasure = _spark_field("weightedFMeasure", method=True)
    truePositiveRateByLabel = _spark_field("truePositiveRateByLabel")
    falsePositiveRateByLabel = _spark_field("falsePositiveRateByLabel")
    precisionByLabel = _spark_field("precisionByLabel")
    recallByLabel = _spark_field("recallByLabel")
    fMeasureByLabel = _spark_field("fMeasureByLabel", method=True)

    def _curve(name: str) -> Any:  # noqa: N805 - a helper run while the class body is built
        def get(self) -> Any:
            self._binary_only(name)
            return getattr(self._spark, name)
        get.__name__, get.__doc__ = name, f"Spark ML's ``{name}`` of these predictions (binary models)."
        return property(get)

    roc = _curve("roc")
    pr = _curve("pr")
    areaUnderPR = _curve("areaUnderPR")
    fMeasureByThreshold = _curve("fMeasureByThreshold")
    precisionByThreshold = _curve("precisionByThreshold")
    recallByThreshold = _curve("recallByThreshold")
    del _curve


class _Training:
    """Mixin: what training adds to a summary."""

    objectiveHistory: list[float]
    totalIterations: int


class SGDRegressionTrainingSummary(SGDRegressionSummary, _Training):
    """Regression metrics on the training data plus ``objectiveHistory`` and ``totalIterations``."""


class SGDClassificationTrainingSummary(SGDClassificationSummary, _Training):
    """Classification metrics on the training data plus ``objectiveHistory`` and ``totalIterations``."""

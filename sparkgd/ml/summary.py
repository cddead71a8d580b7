"""Training and evaluation summaries of sparkgd's DataFrame models."""

from __future__ import annotations

import math
from functools import cached_property

from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.sql import DataFrame
from pyspark.sql import functions as F


class SGDSummary:
    """Metrics of a model on a DataFrame (``model.evaluate(df)``), computed on first use.

    Attributes
    ----------
    predictions : DataFrame
        The model's ``transform`` of the data.
    """

    def __init__(self, predictions: DataFrame, label_col: str, prediction_col: str, weight_col: str | None = None,
                 raw_prediction_col: str | None = None) -> None:
        self.predictions = predictions
        self.labelCol = label_col
        self.predictionCol = prediction_col
        self.weightCol = weight_col
        self.rawPredictionCol = raw_prediction_col


class SGDRegressionSummary(SGDSummary):
    """``rootMeanSquaredError``, ``meanSquaredError``, ``meanAbsoluteError``, ``r2``.

    Weighted by the model's ``weightCol`` when it has one.
    """

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

    @property
    def r2(self) -> float:
        s = self._sums
        ss_tot = s["yy"] - s["y"] * s["y"] / s["w"] if s["w"] else 0.0
        return 1.0 - s["se"] / ss_tot if ss_tot > 0 else math.nan


class SGDClassificationSummary(SGDSummary):
    """``accuracy`` and ``areaUnderROC`` of a binary classifier."""

    @cached_property
    def accuracy(self) -> float:
        y = F.col(self.labelCol).cast("double")
        w = F.col(self.weightCol).cast("double") if self.weightCol else F.lit(1.0)
        row = self.predictions.agg(F.sum(w).alias("w"),
                                   F.sum(F.when(y == F.col(self.predictionCol), w).otherwise(0.0)).alias("ok")).first()
        return float(row["ok"]) / float(row["w"]) if row["w"] else math.nan

    @cached_property
    def areaUnderROC(self) -> float:
        ev = BinaryClassificationEvaluator(rawPredictionCol=self.rawPredictionCol, labelCol=self.labelCol,
                                           metricName="areaUnderROC")
        if self.weightCol:
            ev.setWeightCol(self.weightCol)
        return ev.evaluate(self.predictions)


class _Training:
    """Mixin: what training adds to a summary."""

    objectiveHistory: list[float]
    totalIterations: int


class SGDRegressionTrainingSummary(SGDRegressionSummary, _Training):
    """Regression metrics on the training data plus ``objectiveHistory`` and ``totalIterations``."""


class SGDClassificationTrainingSummary(SGDClassificationSummary, _Training):
    """Classification metrics on the training data plus ``objectiveHistory`` and ``totalIterations``."""

"""``SGDLinearRegression``: least squares by mini-batch SGD as a ``pyspark.ml`` Predictor."""

from __future__ import annotations

from pyspark import keyword_only
from pyspark.ml.base import PredictionModel, Predictor
from pyspark.ml.linalg import Vector
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.sql import DataFrame

from sparkgd.core.gradients import Gradient, HuberGradient, LeastSquaresGradient
from sparkgd.ml.base import _SGDEstimator, _SGDModel
from sparkgd.ml.params import _param, _SGDParams, _SGDSetters
from sparkgd.ml.summary import SGDRegressionSummary, SGDRegressionTrainingSummary


class _RegressionParams(_SGDParams):
    """Spark ML ``LinearRegression``'s ``loss`` and ``epsilon``."""

    loss: Param[str] = Param(Params._dummy(), "loss", "the loss to minimize: squaredError or huber",
                             typeConverter=TypeConverters.toString)
    epsilon: Param[float] = _param("epsilon", "huber loss: residuals larger than epsilon count linearly",
                                   TypeConverters.toFloat)

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self._setDefault(loss="squaredError", epsilon=1.35)

    def getLoss(self) -> str:
        return self.getOrDefault(self.loss)

    def getEpsilon(self) -> float:
        return self.getOrDefault(self.epsilon)

    def _check_ranges(self) -> None:
        super()._check_ranges()
        if self.getLoss() not in ("squaredError", "huber"):
            raise ValueError(f"param loss must be one of squaredError, huber, got {self.getLoss()!r}")

    @property
    def _gradient(self) -> Gradient:
        return HuberGradient(self.getEpsilon()) if self.getLoss() == "huber" else LeastSquaresGradient()


class SGDLinearRegression(_SGDEstimator, _SGDSetters, Predictor, _RegressionParams):
    r"""Linear regression trained by distributed mini-batch SGD.

    Minimizes, over coefficients :math:`w` and intercept :math:`b`,

    .. math:: \frac{1}{\sum_i v_i} \sum_i v_i \, l(w \cdot x_i + b - y_i)
              + \lambda \left(\alpha \|w\|_1 + \tfrac{1-\alpha}{2}\|w\|_2^2\right)

    (row weights :math:`v_i` from ``weightCol``, :math:`\lambda` = ``regParam``,
    :math:`\alpha` = ``elasticNetParam``; the intercept is not penalized). The loss :math:`l(r)` is
    :math:`\tfrac12 r^2` (``loss="squaredError"``) or Huber's, :math:`\tfrac12 r^2` for
    :math:`|r| \le \epsilon` and :math:`\epsilon |r| - \tfrac12 \epsilon^2` beyond
    (``loss="huber"``, ``epsilon``; scikit-learn's ``SGDRegressor(loss="huber")``: a fixed threshold
    on the residual, where Spark ML's L-BFGS also fits a scale). Each iteration samples
    ``miniBatchFraction`` of every partition and steps ``stepSize / sqrt(t)``.

    Examples
    --------
    >>> from pyspark.ml.linalg import Vectors
    >>> df = spark.createDataFrame([(3.0 + 2.0 * x, Vectors.dense([x])) for x in range(-5, 6)],
    ...                            ["label", "features"])
    >>> model = SGDLinearRegression(maxIter=50, stepSize=1.5, tol=1e-9).fit(df)
    >>> float(round(model.coefficients[0], 3)), round(model.intercept, 3)
    (2.0, 3.0)
    >>> round(model.transform(df).select("prediction").first().prediction, 3)
    -7.0
    """

    @keyword_only
    def __init__(self, *, featuresCol: str = "features", labelCol: str = "label",
                 predictionCol: str = "prediction", maxIter: int = 100, stepSize: float = 1.0,
                 miniBatchFraction: float = 1.0, regParam: float = 0.0, elasticNetParam: float = 0.0,
                 tol: float = 0.001, fitIntercept: bool = True, standardization: bool = True, seed: int = 42,
                 aggregationDepth: int = 2, weightCol: str | None = None, checkpointDir: str | None = None,
                 checkpointInterval: int = 10, resume: bool = False,
                 optimizer: str = "sgd", stepSchedule: str = "invsqrt", momentum: float = 0.9,
                 beta1: float = 0.9, beta2: float = 0.999, adaptiveEpsilon: float = 1e-8, powerT: float = 0.5,
                 decayRate: float = 0.5, decaySteps: int = 20, warmupSteps: int = 0, averageFrom: int = 0,
                 validationFraction: float = 0.0, nIterNoChange: int = 5, loss: str = "squaredError",
                 epsilon: float = 1.35) -> None:
        super().__init__()
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(self, *, featuresCol: str = "features", labelCol: str = "label",
                  predictionCol: str = "prediction", maxIter: int = 100, stepSize: float = 1.0,
                  miniBatchFraction: float = 1.0, regParam: float = 0.0, elasticNetParam: float = 0.0,
                  tol: float = 0.001, fitIntercept: bool = True, standardization: bool = True, seed: int = 42,
                  aggregationDepth: int = 2, weightCol: str | None = None, checkpointDir: str | None = None,
                  checkpointInterval: int = 10, resume: bool = False,
                  optimizer: str = "sgd", stepSchedule: str = "invsqrt", momentum: float = 0.9,
                  beta1: float = 0.9, beta2: float = 0.999, adaptiveEpsilon: float = 1e-8, powerT: float = 0.5,
                  decayRate: float = 0.5, decaySteps: int = 20, warmupSteps: int = 0, averageFrom: int = 0,
                  validationFraction: float = 0.0, nIterNoChange: int = 5, loss: str = "squaredError",
                  epsilon: float = 1.35) -> SGDLinearRegression:
        return self._set(**self._input_kwargs)

    def setLoss(self, value: str) -> SGDLinearRegression:
        return self._set(loss=value)

    def setEpsilon(self, value: float) -> SGDLinearRegression:
        return self._set(epsilon=value)

    @property
    def _model_class(self) -> type:
        return SGDLinearRegressionModel


class SGDLinearRegressionModel(_SGDModel, PredictionModel, _RegressionParams):
    """A fitted :class:`SGDLinearRegression`: ``prediction = coefficients . features + intercept``."""

    _summary_class = SGDRegressionSummary
    _training_summary_class = SGDRegressionTrainingSummary

    def __init__(self, coefficients: Vector | None = None, intercept: float = 0.0) -> None:
        super().__init__()
        self._init_model(coefficients, intercept)

    def predict(self, value: Vector) -> float:
        return self._margin(value)

    def _transform(self, dataset: DataFrame) -> DataFrame:
        col = self.getPredictionCol()
        return dataset.withColumn(col, self._margin_column(dataset)) if col else dataset


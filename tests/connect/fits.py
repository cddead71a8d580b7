"""The fits tests/connect compares between Spark Connect and classic mode (both sides import this)."""

from __future__ import annotations


def _linear():
    from sparkgd.ml import SGDLinearRegression

    return SGDLinearRegression(maxIter=15, miniBatchFraction=0.5, stepSize=0.5)


def _logistic():
    from sparkgd.ml import SGDLogisticRegression

    return SGDLogisticRegression(labelCol="binary", maxIter=10, regParam=0.01, optimizer="adam", stepSize=0.1,
                                 stepSchedule="constant")


def _multinomial():
    from sparkgd.ml import SGDLogisticRegression

    return SGDLogisticRegression(labelCol="klass", family="multinomial", optimizer="lbfgs", maxIter=10)


def _svc():
    from sparkgd.ml import SGDLinearSVC

    return SGDLinearSVC(labelCol="binary", maxIter=10, regParam=0.01, weightCol="w")


def wide():
    """For the wide sparse data: its partial sums exceed 64 KiB, so tree levels combine on the executors."""
    from sparkgd.ml import SGDLogisticRegression

    return SGDLogisticRegression(labelCol="binary", maxIter=4, standardization=False, miniBatchFraction=0.7)


ESTIMATORS = {"linear": _linear, "logistic": _logistic, "multinomial": _multinomial, "svc": _svc}


def pipeline_stages(assembler_class):
    from sparkgd.ml import SGDLinearRegression

    return [assembler_class(inputCols=["a", "b", "c"], outputCol="abc"),
            SGDLinearRegression(featuresCol="abc", maxIter=8, optimizer="nesterov", stepSize=0.1)]


def numbers(model):
    """The model's coefficients and intercepts as exact float reprs."""
    if getattr(model, "isMultinomial", False):
        return {"matrix": [repr(v) for v in model.coefficientMatrix.toArray().ravel()],
                "intercepts": [repr(v) for v in model.interceptVector.toArray()]}
    return {"coefficients": [repr(v) for v in model.coefficients.toArray()], "intercept": repr(model.intercept)}

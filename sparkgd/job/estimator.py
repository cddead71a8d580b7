"""The DataFrame API's estimator a job configuration describes (the classic and the Connect job alike)."""

from __future__ import annotations

from typing import Any, Callable

from sparkgd.job.config import JobConfig


def estimator_of(cfg: JobConfig, progress: Callable[[Any], None] | None = None) -> Any:
    """The DataFrame API's estimator for the configuration, with its checkpoints and ``progress`` callback."""
    from sparkgd import ml  # here: the RDD API's job runs without the ml extra (pyarrow)

    est_class = {"squared": ml.SGDLinearRegression, "huber": ml.SGDLinearRegression,
                 "logistic": ml.SGDLogisticRegression, "multinomial": ml.SGDLogisticRegression,
                 "hinge": ml.SGDLinearSVC}[cfg.loss]
    est = est_class(maxIter=cfg.iterations, stepSize=cfg.step_size, miniBatchFraction=cfg.mini_batch_fraction,
                    regParam=cfg.reg_param, elasticNetParam=1.0 if cfg.reg_type == "l1" else 0.0,
                    tol=cfg.convergence_tol, fitIntercept=cfg.intercept, standardization=cfg.standardize,
                    seed=cfg.seed, aggregationDepth=cfg.aggregation_depth, optimizer=cfg.optimizer,
                    stepSchedule=cfg.schedule, momentum=cfg.momentum, beta1=cfg.beta1, beta2=cfg.beta2,
                    averageFrom=cfg.average_from, validationFraction=cfg.validation_fraction,
                    nIterNoChange=cfg.n_iter_no_change)
    if cfg.loss == "huber":
        est.setLoss("huber").setEpsilon(cfg.epsilon)
    if cfg.loss in ("logistic", "multinomial"):
        est.setFamily("binomial" if cfg.loss == "logistic" else "multinomial")
    if cfg.reg_type == "none":
        est.setRegParam(0.0)
    if cfg.checkpoint_dir:
        est.setCheckpointDir(cfg.checkpoint_dir).setCheckpointInterval(cfg.checkpoint_interval).setResume(cfg.resume)
    if progress is not None:
        est.setCallback(progress)
    return est

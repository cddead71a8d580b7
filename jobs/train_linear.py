"""Train a linear model with sparkgd: ``spark-submit jobs/train_linear.py [options]``.

With no input this trains ``LinearRegressionWithSGD`` on built-in synthetic data with
known true weights and reports how close the model came.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
from pyspark.sql import SparkSession

from sparkgd import __version__
from sparkgd.datasets import synthetic
from sparkgd.rdd import LinearRegressionWithSGD


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="train_linear.py", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000, help="synthetic rows (default 100000)")
    p.add_argument("--features", type=int, default=10, help="synthetic features (default 10)")
    p.add_argument("--partitions", type=int, default=2, help="partitions (default 2)")
    p.add_argument("--iterations", type=int, default=100, help="maximum iterations (default 100)")
    p.add_argument("--step-size", type=float, default=0.5, help="initial step, decays as 1/sqrt(t) (default 0.5)")
    p.add_argument("--mini-batch-fraction", type=float, default=0.1, help="fraction sampled per iteration")
    p.add_argument("--convergence-tol", type=float, default=1e-4, help="relative early-stopping tolerance")
    p.add_argument("--seed", type=int, default=42, help="seed of the synthetic data")
    p.add_argument("--output", help="write the model and metrics.json here")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    spark = SparkSession.builder.appName("sparkgd-train-linear").getOrCreate()
    try:
        sc = spark.sparkContext
        data, w_true, b_true = synthetic(sc, rows=args.rows, num_features=args.features,
                                         partitions=args.partitions, seed=args.seed)
        data = data.cache()
        start = time.perf_counter()
        model = LinearRegressionWithSGD.train(
            data, iterations=args.iterations, step=args.step_size, miniBatchFraction=args.mini_batch_fraction,
            intercept=True, convergenceTol=args.convergence_tol)
        seconds = time.perf_counter() - start
        w = model.weights.toArray()
        metrics = {
            "iterations": model.numIterations,
            "seconds": round(seconds, 3),
            "final_loss": model.lossHistory[-1] if model.lossHistory else None,
            "weight_error_max": float(np.max(np.abs(w - w_true))),
            "intercept_error": abs(model.intercept - b_true),
            "sparkgd_version": __version__,
            "spark_version": spark.version,
        }
        print(f"trained in {seconds:.1f} s, {model.numIterations} iterations, final loss {metrics['final_loss']:.5f}")
        print(f"max |w - w_true| = {metrics['weight_error_max']:.4f}, |b - b_true| = {metrics['intercept_error']:.4f}")
        if args.output:
            model.save(sc, f"{args.output}/model", overwrite=True)
            with open(f"{args.output}/metrics.json", "w") as f:
                json.dump(metrics, f, indent=2)
            print(f"wrote {args.output}/model and {args.output}/metrics.json")
        return 0
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

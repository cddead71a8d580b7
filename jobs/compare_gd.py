"""Batch vs mini-batch vs stochastic gradient descent, and the optimizers: ``spark-submit jobs/compare_gd.py``.

Writes compare_gd.png (loss against iterations and against rows processed) and compare_gd.csv, and
compare_optimizers.png (loss against time and against iterations, per optimizer) and
compare_optimizers.csv, into --output.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys


def write_csv(path: str, name: str, columns: tuple[str, ...], curves: dict) -> None:
    """One row per curve point: the curve's name, then ``columns``."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([name, *columns])
        for label, c in curves.items():
            for row in zip(*(c[k] for k in columns)):
                w.writerow([label, *row])


def main(argv: list[str], spark=None) -> int:
    p = argparse.ArgumentParser(prog="compare_gd.py", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=20_000, help="synthetic rows (default 20000)")
    p.add_argument("--features", type=int, default=10, help="synthetic features (default 10)")
    p.add_argument("--iterations", type=int, default=100, help="iterations per variant (default 100)")
    p.add_argument("--step-size", type=float, default=0.5, help="initial step (default 0.5)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--output", default="output", help="directory for compare_gd.png and compare_gd.csv")
    args = p.parse_args(argv)
    from pyspark.sql import SparkSession

    from sparkgd.job.compare import compare, compare_optimizers
    from sparkgd.job.plots import plot_compare, plot_optimizers

    own = spark is None
    if own:
        spark = SparkSession.builder.appName("sparkgd-compare-gd").getOrCreate()
        spark.sparkContext.setLogLevel("WARN")
    try:
        curves = compare(spark, rows=args.rows, features=args.features, iterations=args.iterations,
                         step_size=args.step_size, seed=args.seed)
        optimizers = compare_optimizers(spark, rows=args.rows, features=args.features, iterations=args.iterations,
                                        seed=args.seed)
    finally:
        if own:
            spark.stop()
    os.makedirs(args.output, exist_ok=True)
    write_csv(os.path.join(args.output, "compare_gd.csv"), "variant", ("iteration", "rows_processed", "loss"), curves)
    plot_compare(curves, os.path.join(args.output, "compare_gd.png"),
                 title=f"Batch vs mini-batch vs stochastic GD: least squares, {args.rows} rows x {args.features} "
                       f"features, step {args.step_size}/sqrt(t)")
    write_csv(os.path.join(args.output, "compare_optimizers.csv"), "optimizer", ("iteration", "seconds", "loss"),
              optimizers)
    plot_optimizers(optimizers, os.path.join(args.output, "compare_optimizers.png"),
                    title=f"Optimizers: least squares, {args.rows} rows x {args.features} features")
    print(f"wrote {args.output}/compare_gd.png, compare_gd.csv, compare_optimizers.png and compare_optimizers.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

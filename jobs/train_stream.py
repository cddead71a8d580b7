"""Train a linear model online on the files of a directory as they arrive (Structured Streaming).

    spark-submit jobs/train_stream.py --input in/ --format libsvm --num-features 20 \
        --state-dir state/ --output out/ --optimizer adam --step-size 0.05 --schedule constant

Each micro-batch (at most --max-files-per-trigger new files) runs --iterations iterations from the
model the previous batch left; the model goes to OUTPUT/model and a JSON line per batch to stdout
and OUTPUT/metrics.jsonl. Killed and started again with the same --state-dir, the job neither loses
nor repeats an update. Model options are train_linear.py's (a --config TOML file too); features are
not standardized (each batch would scale them its own way).
Exit codes: 0 stopped (--available-now done, or --timeout), 2 bad options, 3 bad input data.
"""

from __future__ import annotations

import argparse
import os
import sys

from sparkgd.job import config

_MODEL_OPTIONS = ("loss", "epsilon", "num_classes", "reg_type", "reg_param", "iterations", "step_size",
                  "mini_batch_fraction", "intercept", "convergence_tol", "seed", "optimizer", "schedule", "momentum",
                  "beta1", "beta2", "format", "label_col", "feature_cols", "on_bad_rows", "output", "verbose")


def parser() -> argparse.ArgumentParser:
    p = config.OneLineParser(prog="train_stream.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--input", required=True, help="directory watched for new files")
    p.add_argument("--format", choices=config.CHOICES["format"], help="libsvm (default), csv or parquet")
    p.add_argument("--num-features", type=int, help="libsvm: the number of features (required)")
    p.add_argument("--label-col", help="csv/parquet label column (default label)")
    p.add_argument("--feature-cols", help="csv/parquet comma-separated feature columns (default: all others)")
    p.add_argument("--on-bad-rows", choices=config.CHOICES["on_bad_rows"], help="fail (default) or skip")
    p.add_argument("--state-dir", required=True, help="the model's state after each batch (exactly-once updates)")
    p.add_argument("--checkpoint-location", help="the query's checkpoint (default STATE_DIR/query)")
    p.add_argument("--max-files-per-trigger", type=int, default=1, help="new files per micro-batch (default 1)")
    p.add_argument("--available-now", action="store_true", help="train on the files there now, then stop")
    p.add_argument("--timeout", type=float, help="stop after this many seconds (default: run until killed)")
    p.add_argument("--output", help="directory for model/ and metrics.jsonl")
    p.add_argument("--loss", choices=config.CHOICES["loss"], help="squared (default), huber, logistic, hinge or "
                                                                  "multinomial")
    p.add_argument("--epsilon", type=float, help="huber: residuals beyond it count linearly (default 1.35)")
    p.add_argument("--num-classes", type=int, help="multinomial: labels 0 .. K-1 (default: from the first batch)")
    p.add_argument("--reg-type", choices=config.CHOICES["reg_type"], help="none (default), l1 or l2")
    p.add_argument("--reg-param", type=float, help="regularization strength (default 0.0)")
    p.add_argument("--iterations", type=int, help="iterations per micro-batch (default 100)")
    p.add_argument("--step-size", type=float, help="initial step (default 0.5)")
    p.add_argument("--mini-batch-fraction", type=float, help="fraction sampled per iteration (default 0.1)")
    p.add_argument("--intercept", action=argparse.BooleanOptionalAction, default=None, help="fit an intercept")
    p.add_argument("--convergence-tol", type=float, help="a batch stops early below it (default 1e-4)")
    p.add_argument("--seed", type=int, help="sampling seed (default 42)")
    p.add_argument("--optimizer", choices=config.CHOICES["optimizer"], help="update rule (default sgd)")
    p.add_argument("--schedule", choices=config.CHOICES["schedule"], help="step schedule (default invsqrt)")
    p.add_argument("--momentum", type=float, help="momentum, nesterov (default 0.9)")
    p.add_argument("--beta1", type=float, help="adam (default 0.9)")
    p.add_argument("--beta2", type=float, help="adam, rmsprop (default 0.999)")
    p.add_argument("--config", help="TOML file with any of the model options")
    p.add_argument("--verbose", action="store_true", default=None, help="more logging")
    return p


def main(argv: list[str], spark=None) -> int:
    args = parser().parse_args(argv)
    cli = {k: v for k, v in vars(args).items() if k in _MODEL_OPTIONS}
    cli["api"], cli["input"] = "dataframe", args.input
    try:
        file_values = config.load_toml(args.config) if args.config else {}
        cfg = config.resolve({k: v for k, v in file_values.items() if k in _MODEL_OPTIONS}, cli, args.config or "")
        if cfg.format == "libsvm" and not args.num_features:
            raise config.ConfigError("--num-features is required for libsvm input (every batch has the same width)")
        if args.max_files_per_trigger < 1:
            raise config.ConfigError("--max-files-per-trigger must be >= 1")
    except config.ConfigError as e:
        print(f"train_stream.py: error: {e}", file=sys.stderr)
        return 2
    config.configure_logging(cfg.verbose)

    from pyspark.sql import SparkSession

    from sparkgd.core.errors import InputDataError
    from sparkgd.job.stream import StreamJob

    own = spark is None
    if own:
        spark = SparkSession.builder.appName("sparkgd-train-stream").getOrCreate()
        spark.sparkContext.setLogLevel("INFO" if cfg.verbose else "WARN")
    job = None
    try:
        job = StreamJob(spark, cfg, args.state_dir, args.num_features)
        model = job.run(args.checkpoint_location or os.path.join(args.state_dir, "query"), args.max_files_per_trigger,
                        args.available_now, args.timeout)
        print(f"stopped after batch {job.trainer.lastBatchId}; model: "
              f"{'none yet' if model is None else os.path.join(cfg.output or '-', 'model')}")
        return 0
    except Exception as e:
        error = job.error if job is not None and job.error is not None else e
        print(f"train_stream.py: error: {str(error).splitlines()[0]}", file=sys.stderr)
        return 3 if isinstance(error, InputDataError) else 2
    finally:
        if own:
            spark.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

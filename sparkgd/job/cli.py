"""The batch job's command line: ``spark-submit jobs/train_linear.py``, ``python -m sparkgd.job`` or
``sparkgd-train-linear`` (all the same options).

Train a linear model with distributed mini-batch SGD. With no --input it trains on built-in
synthetic data with known true weights. Options can also come from a TOML file (--config;
``--print-defaults`` prints the shipped one, every option with its default); the command line
overrides it. Exit codes: 0 success, 2 bad options or configuration, 3 bad input data or a
diverging run.
"""

from __future__ import annotations

import argparse
import os
import sys

from sparkgd.job import config

DEFAULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_linear.toml")


def parser() -> argparse.ArgumentParser:
    p = config.OneLineParser(prog="train_linear.py", description="Train a linear model with distributed "
                             "mini-batch SGD (no --input: built-in synthetic data).",
                             epilog="Every option's default: --print-defaults (the TOML file a --config can "
                                    "start from; conf/train_linear.toml in the repository).")
    data = p.add_argument_group("data")
    data.add_argument("--input", help="file, directory or glob; omitted: built-in synthetic data")
    data.add_argument("--format", choices=config.CHOICES["format"], help="input format (default libsvm)")
    data.add_argument("--label-col", help="label column of csv/parquet input (default label)")
    data.add_argument("--feature-cols", help="comma-separated feature columns (default: all other numeric)")
    data.add_argument("--rows", type=int, help="synthetic rows (default 100000)")
    data.add_argument("--features", type=int, help="synthetic features (default 10)")
    data.add_argument("--partitions", type=int, help="partitions of the training data")
    data.add_argument("--on-bad-rows", choices=config.CHOICES["on_bad_rows"],
                      help="fail on the first malformed row (default) or skip them and report")
    model = p.add_argument_group("model")
    model.add_argument("--loss", choices=config.CHOICES["loss"],
                       help="squared, huber, logistic, hinge or multinomial (default squared)")
    model.add_argument("--epsilon", type=float, help="huber: residuals beyond it count linearly (default 1.35)")
    model.add_argument("--num-classes", type=int,
                       help="multinomial: labels 0 .. K-1 (default: the largest label + 1; 3 for synthetic data)")
    model.add_argument("--reg-type", choices=config.CHOICES["reg_type"], help="none, l1 or l2 (default none)")
    model.add_argument("--reg-param", type=float, help="regularization strength (default 0.0)")
    model.add_argument("--iterations", type=int, help="maximum iterations (default 100)")
    model.add_argument("--step-size", type=float, help="initial step, decaying as 1/sqrt(t) (default 0.5)")
    model.add_argument("--mini-batch-fraction", type=float, help="fraction sampled per iteration (default 0.1)")
    model.add_argument("--intercept", action=argparse.BooleanOptionalAction, default=None,
                       help="fit an intercept (default on)")
    model.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=None,
                       help="train on standardized features (needs --api dataframe)")
    model.add_argument("--convergence-tol", type=float, help="relative early-stopping tolerance (default 1e-4)")
    model.add_argument("--seed", type=int, help="seed of sampling, splitting and synthetic data (default 42)")
    model.add_argument("--aggregation-depth", type=int, help="treeAggregate depth (default 2)")
    model.add_argument("--optimizer", choices=config.CHOICES["optimizer"],
                       help="update rule (default sgd, MLlib's; lbfgs needs --mini-batch-fraction 1.0)")
    model.add_argument("--schedule", choices=config.CHOICES["schedule"],
                       help="step per iteration (default invsqrt: step-size / sqrt(t))")
    model.add_argument("--momentum", type=float, help="momentum and nesterov: velocity decay (default 0.9)")
    model.add_argument("--beta1", type=float, help="adam: decay of the gradient mean (default 0.9)")
    model.add_argument("--beta2", type=float, help="adam, rmsprop: decay of the squared gradient mean (default 0.999)")
    model.add_argument("--average-from", type=int,
                       help="return the average of the iterates from this iteration on (default 0: off)")
    model.add_argument("--validation-fraction", type=float,
                       help="fraction of training rows held out for early stopping (default 0.0: off)")
    model.add_argument("--n-iter-no-change", type=int,
                       help="early stopping: iterations without held-out improvement (default 5)")
    model.add_argument("--api", choices=config.CHOICES["api"], help="rdd (MLlib semantics) or dataframe")
    model.add_argument("--remote", help="Spark Connect URL sc://host:port (or SPARK_REMOTE): run there, "
                                        "with --api dataframe")
    out = p.add_argument_group("evaluation and output")
    out.add_argument("--test-fraction", type=float, help="fraction of rows held out for testing (default 0.2)")
    out.add_argument("--output", help="directory for model/, metrics.json and loss.png (refused if not empty)")
    out.add_argument("--overwrite", action="store_true", default=None,
                     help="replace what a non-empty --output holds")
    out.add_argument("--log-every", type=int, help="log progress every N iterations (default 10)")
    out.add_argument("--checkpoint-dir", help="save the training state here every --checkpoint-interval iterations")
    out.add_argument("--checkpoint-interval", type=int, help="iterations between checkpoints (default 10)")
    out.add_argument("--resume", action="store_true", default=None,
                     help="continue from the newest checkpoint in --checkpoint-dir")
    out.add_argument("--config", help="TOML file with any of these options")
    out.add_argument("--print-defaults", action="store_true",
                     help="print every option with its default, as TOML, and exit")
    out.add_argument("--verbose", action="store_true", default=None, help="more logging, Spark's included")
    return p


def main(argv: list[str], spark=None) -> int:
    args = parser().parse_args(argv)
    if args.print_defaults:
        with open(DEFAULTS) as f:
            print(f.read(), end="")
        return 0
    cli = {k: v for k, v in vars(args).items() if k not in ("config", "print_defaults")}
    cli["remote"] = cli["remote"] or (os.environ.get("SPARK_REMOTE") if spark is None else None)
    try:
        file_values = config.load_toml(args.config) if args.config else {}
        cfg = config.resolve(file_values, cli, args.config or "")
    except config.ConfigError as e:
        print(f"train_linear.py: error: {e}", file=sys.stderr)
        return 2
    config.configure_logging(cfg.verbose)

    from pyspark.sql import SparkSession

    from sparkgd import SGDDivergenceError
    from sparkgd.core.errors import InputDataError
    from sparkgd.job import run as job

    own = spark is None
    if own and cfg.remote:
        spark = SparkSession.builder.remote(cfg.remote).getOrCreate()
    elif own:
        spark = SparkSession.builder.appName("sparkgd-train-linear").getOrCreate()
        spark.sparkContext.setLogLevel("INFO" if cfg.verbose else "WARN")
    try:
        if cfg.output:  # before training: an earlier run's output is never replaced unasked
            job.check_output(cfg.output, cfg.overwrite, None if cfg.remote else spark.sparkContext)
        result = job.run(spark, cfg)
        m = result.metrics
        main_metric = "rmse" if cfg.loss in config.REGRESSION_LOSSES else "accuracy"
        test = f", test {main_metric} {_number(m['test'][main_metric])}" if m["test"] else ", no test rows"
        print(f"trained {m['iterations']} iterations in {m['seconds']:.1f} s ({m['stopped']}); "
              f"train {main_metric} {_number(m['train'][main_metric])}{test}")
        skipped = m["bad_rows"]["skipped"]
        if skipped:
            first = "; first: " + m["bad_rows"]["examples"][0] if m["bad_rows"]["examples"] else ""
            print(f"skipped {skipped} bad rows (--on-bad-rows skip){first}")
        if "weight_error_max" in m:
            print(f"max |w - w_true| = {m['weight_error_max']:.4g}")
        if cfg.output:
            written = job.save(result, cfg.output, None if cfg.remote else spark.sparkContext, cfg.overwrite)
            paths = [f"{cfg.output}/{name}" for name in written]
            print(f"wrote {', '.join(paths[:-1])} and {paths[-1]}")
        return 0
    except (InputDataError, SGDDivergenceError) as e:
        print(f"train_linear.py: error: {e}", file=sys.stderr)
        return 3
    except FileExistsError as e:
        print(f"train_linear.py: error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # a setting the data or a checkpoint refuses: a configuration error
        print(f"train_linear.py: error: {e}", file=sys.stderr)
        return 2
    finally:
        if own:
            spark.stop()


def _number(v) -> str:
    return "n/a" if v is None or v != v else f"{v:.5g}"


def run() -> None:
    """The ``sparkgd-train-linear`` console script."""
    sys.exit(main(sys.argv[1:]))

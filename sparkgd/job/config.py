"""The batch job's configuration: defaults, a TOML file, then command-line overrides."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import sys
from dataclasses import dataclass, field
from typing import Any, NoReturn

from sparkgd.core.optimizers import OPTIMIZERS
from sparkgd.core.schedules import SCHEDULES
from sparkgd.core.state import check_loop_params

_LOOP_NAMES = {"lbfgs": "--optimizer lbfgs", "miniBatchFraction": "--mini-batch-fraction",
               "averageFrom": "--average-from", "validationFraction": "--validation-fraction",
               "nIterNoChange": "--n-iter-no-change"}

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


REGRESSION_LOSSES = ("squared", "huber")


def label_classes(cfg: JobConfig) -> int | None:
    """What the labels must be: None any number, 2 labels 0/1, K class indices 0 .. K-1, 0 any class index."""
    if cfg.loss in REGRESSION_LOSSES:
        return None
    return (cfg.num_classes or 0) if cfg.loss == "multinomial" else 2


def configure_logging(verbose: bool) -> None:
    """The jobs' log lines: time, level, message; sparkgd's at INFO (DEBUG with ``verbose``), py4j's quiet."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("sparkgd").setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("py4j").setLevel(logging.WARNING)


class OneLineParser(argparse.ArgumentParser):
    """Command-line errors in one line (``prog: error: ...``) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


class ConfigError(ValueError):
    """A bad option or configuration value; the message names the option (and file)."""


@dataclass
class JobConfig:
    """Every option of ``jobs/train_linear.py``; names are the options' without dashes."""

    input: str | None = None
    format: str = "libsvm"
    label_col: str = "label"
    feature_cols: list[str] | None = None
    rows: int = 100_000
    features: int = 10
    loss: str = "squared"
    epsilon: float = 1.35
    num_classes: int | None = None
    remote: str | None = None
    reg_type: str = "none"
    reg_param: float = 0.0
    iterations: int = 100
    step_size: float = 0.5
    mini_batch_fraction: float = 0.1
    intercept: bool = True
    standardize: bool = False
    convergence_tol: float = 1e-4
    seed: int = 42
    aggregation_depth: int = 2
    partitions: int | None = None
    api: str = "rdd"
    test_fraction: float = 0.2
    output: str | None = None
    overwrite: bool = False
    log_every: int = 10
    verbose: bool = False
    on_bad_rows: str = "fail"
    checkpoint_dir: str | None = None
    checkpoint_interval: int = 10
    resume: bool = False
    optimizer: str = "sgd"
    schedule: str = "invsqrt"
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    average_from: int = 0
    validation_fraction: float = 0.0
    n_iter_no_change: int = 5
    extra: dict[str, Any] = field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("extra")
        return d


CHOICES = {
    "format": ("libsvm", "csv", "parquet"),
    "loss": ("squared", "huber", "logistic", "hinge", "multinomial"),
    "reg_type": ("none", "l1", "l2"),
    "api": ("rdd", "dataframe"),
    "on_bad_rows": ("fail", "skip"),
    "optimizer": OPTIMIZERS,
    "schedule": SCHEDULES,
}


def option(name: str) -> str:
    return "--" + name.replace("_", "-")


def load_toml(path: str) -> dict[str, Any]:
    """The ``[train]`` table (or the top level) of a TOML file, keys with ``-`` or ``_``."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"--config: file {path!r} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"--config: {path}: {e}") from None
    table = data.get("train", data)
    fields = {f.name for f in dataclasses.fields(JobConfig)} - {"extra"}
    out = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in fields:
            raise ConfigError(f"{path}: unknown option {key!r}")
        out[name] = value
    return out


def resolve(file_values: dict[str, Any], cli_values: dict[str, Any], source: str = "") -> JobConfig:
    """Defaults, then the file's values, then the command line's; then check every value."""
    cfg = JobConfig()
    given = set()
    for values, where in ((file_values, source), (cli_values, "")):
        for name, value in values.items():
            if value is None:
                continue
            setattr(cfg, name, _coerce(name, value, where))
            given.add(name)
    if cfg.optimizer == "lbfgs" and "mini_batch_fraction" not in given:
        cfg.mini_batch_fraction = 1.0  # the default 0.1 is SGD's; L-BFGS needs full batches
    validate(cfg)
    return cfg


def _coerce(name: str, value: Any, where: str) -> Any:
    default = getattr(JobConfig(), name)
    prefix = f"{where}: " if where else ""
    kind = {f.name: f.type for f in dataclasses.fields(JobConfig)}[name]
    try:
        if isinstance(default, bool) or kind == "bool":
            if not isinstance(value, bool):
                raise TypeError
            return value
        if "int" in str(kind) and "float" not in str(kind):
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise TypeError
            return int(value)
        if "float" in str(kind):
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        if name == "feature_cols":
            return [c.strip() for c in value.split(",")] if isinstance(value, str) else list(value)
        return value if value is None else str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{prefix}{option(name)}: {value!r} is not a valid {kind}") from None


def validate(cfg: JobConfig) -> None:
    """Raise :class:`ConfigError` naming the first option out of range."""
    for name, allowed in CHOICES.items():
        if getattr(cfg, name) not in allowed:
            raise ConfigError(f"{option(name)} must be one of {', '.join(allowed)}, got {getattr(cfg, name)!r}")
    checks = [
        ("iterations", cfg.iterations >= 0, ">= 0"),
        ("step_size", 0 < cfg.step_size < math.inf, "> 0"),
        ("mini_batch_fraction", 0 < cfg.mini_batch_fraction <= 1, "in (0, 1]"),
        ("reg_param", 0 <= cfg.reg_param < math.inf, ">= 0"),
        ("convergence_tol", 0 <= cfg.convergence_tol <= 1, "in [0, 1]"),
        ("aggregation_depth", cfg.aggregation_depth >= 1, ">= 1"),
        ("partitions", cfg.partitions is None or cfg.partitions >= 1, ">= 1"),
        ("test_fraction", 0 <= cfg.test_fraction < 1, "in [0, 1)"),
        ("rows", cfg.rows >= 1, ">= 1"),
        ("features", cfg.features >= 1, ">= 1"),
        ("log_every", cfg.log_every >= 1, ">= 1"),
        ("checkpoint_interval", cfg.checkpoint_interval >= 1, ">= 1"),
        ("momentum", 0 <= cfg.momentum < 1, "in [0, 1)"),
        ("beta1", 0 <= cfg.beta1 < 1, "in [0, 1)"),
        ("beta2", 0 <= cfg.beta2 < 1, "in [0, 1)"),
        ("epsilon", 0 < cfg.epsilon < math.inf, "> 0"),
        ("num_classes", cfg.num_classes is None or cfg.num_classes >= 2, ">= 2"),
    ]
    for name, ok, what in checks:
        if not ok:
            raise ConfigError(f"{option(name)} must be {what}, got {getattr(cfg, name)!r}")
    if cfg.remote and cfg.api == "rdd":
        raise ConfigError("--remote needs --api dataframe (Spark Connect has no RDDs)")
    if cfg.remote and not cfg.remote.startswith("sc://"):
        raise ConfigError(f"--remote must be a Spark Connect URL sc://host:port, got {cfg.remote!r}")
    if cfg.loss == "multinomial" and cfg.api == "rdd":
        raise ConfigError("--loss multinomial needs --api dataframe (MLlib's SGD trainers are binary)")
    if cfg.num_classes is not None and cfg.loss != "multinomial":
        raise ConfigError("--num-classes applies to --loss multinomial only")
    if cfg.reg_type == "none" and cfg.reg_param > 0:
        raise ConfigError(f"--reg-param {cfg.reg_param:g} has no effect with --reg-type none (the default): "
                          "add --reg-type l2 or --reg-type l1")
    if cfg.resume and not cfg.checkpoint_dir:
        raise ConfigError("--resume needs --checkpoint-dir")
    try:
        check_loop_params(cfg.optimizer == "lbfgs", cfg.mini_batch_fraction, cfg.average_from,
                          cfg.validation_fraction, cfg.n_iter_no_change, _LOOP_NAMES)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if cfg.schedule == "optimal" and not (cfg.reg_type != "none" and cfg.reg_param > 0):
        raise ConfigError("--schedule optimal needs --reg-type l1 or l2 and --reg-param > 0")
    if cfg.standardize and cfg.api == "rdd":
        raise ConfigError("--standardize needs --api dataframe (the RDD API keeps MLlib's unscaled features)")

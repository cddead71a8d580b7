"""jobs/train_linear.py and jobs/compare_gd.py, run in-process on the test session."""

import csv
import importlib.util
import json
import os
import pathlib

import numpy as np
import pytest

from sparkgd.ml import SGDLogisticRegressionModel
from sparkgd.rdd import LinearRegressionModel, SVMModel

ROOT = pathlib.Path(__file__).resolve().parents[2]


def load_job(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "jobs" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def train_linear():
    return load_job("train_linear")


def run(job, spark, *argv):
    return job.main([str(a) for a in argv], spark=spark)


def metrics_of(out):
    return json.loads((out / "metrics.json").read_text())


def test_synthetic_run_writes_a_model_that_predicts_what_the_metrics_say(spark, train_linear, tmp_path):
    out = tmp_path / "out"
    assert run(train_linear, spark, "--rows", 3000, "--iterations", 15, "--output", out, "--seed", 3) == 0
    m = metrics_of(out)
    assert (out / "loss.png").stat().st_size > 10_000 and len(m["loss_history"]) == m["iterations"] == 15
    assert m["config"]["seed"] == 3 and m["versions"]["spark"] and m["seconds_per_iteration"] > 0
    model = LinearRegressionModel.load(spark.sparkContext, str(out / "model"))
    np.testing.assert_array_equal(model.weights.toArray(), m["weights"])
    # recompute the held-out RMSE with the loaded model, rows chosen exactly as the job chose them
    from sparkgd.job import config
    from sparkgd.job import run as job
    cfg = config.resolve({}, {"rows": 3000, "seed": 3})
    rows, _, _, _ = job.load(spark, cfg)
    _, test = job.split(rows, cfg.test_fraction, cfg.seed)
    pts = test.collect()
    pred = np.array([model.predict(p.features) for p in pts])
    rmse = float(np.sqrt(np.mean((pred - np.array([p.label for p in pts])) ** 2)))
    assert rmse == pytest.approx(m["test"]["rmse"], rel=1e-9) and m["test"]["rows"] == len(pts)
    assert m["weight_error_max"] < 0.1


def test_libsvm_logistic_dataframe_api(spark, train_linear, tmp_path):
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(400):
        x = rng.normal(size=3)
        y = int(x[0] - x[2] > 0)
        lines.append(f"{y} 1:{x[0]:.4f} 2:{x[1]:.4f} 3:{x[2]:.4f}")
    data = tmp_path / "train.libsvm"
    data.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    rc = run(train_linear, spark, "--input", data, "--format", "libsvm", "--loss", "logistic", "--api", "dataframe",
             "--standardize", "--iterations", 20, "--mini-batch-fraction", 1.0, "--step-size", 2.0, "--output", out)
    assert rc == 0
    m = metrics_of(out)
    assert m["train"]["accuracy"] > 0.9 and 0.9 < m["test"]["areaUnderROC"] <= 1 and m["test"]["log_loss"] > 0
    model = SGDLogisticRegressionModel.load(str(out / "model"))
    np.testing.assert_allclose(model.coefficients.toArray(), m["weights"], rtol=1e-15)


def test_csv_and_parquet_inputs_with_feature_columns(spark, train_linear, tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,noise,target\n" + "\n".join(f"{p:.5f},{q:.5f},{r:.5f},{t}" for (p, q, r), t in zip(x, y)))
    out = tmp_path / "csv"
    assert run(train_linear, spark, "--input", csv, "--format", "csv", "--label-col", "target", "--feature-cols",
               "a,b", "--loss", "hinge", "--iterations", 10, "--output", out) == 0
    m = metrics_of(out)
    assert m["features"] == ["a", "b"] and m["train"]["accuracy"] > 0.85 and m["test"]["log_loss"] is None
    assert len(SVMModel.load(spark.sparkContext, str(out / "model")).weights) == 2
    pq = str(tmp_path / "d.parquet")
    spark.createDataFrame([(float(p), float(q), float(r), int(t)) for (p, q, r), t in zip(x, y)],
                          ["a", "b", "noise", "target"]).write.parquet(pq)
    out2 = tmp_path / "pq"
    assert run(train_linear, spark, "--input", pq, "--format", "parquet", "--label-col", "target", "--loss", "logistic",
               "--partitions", 3, "--iterations", 10, "--output", out2) == 0
    assert metrics_of(out2)["features"] == ["a", "b", "noise"]


def test_config_file_with_command_line_overrides(spark, train_linear, tmp_path):
    cfg = tmp_path / "job.toml"
    cfg.write_text('[train]\nloss = "logistic"\niterations = 7\nrows = 1500\nreg-type = "l2"\nreg-param = 0.01\n')
    out = tmp_path / "out"
    assert run(train_linear, spark, "--config", cfg, "--iterations", 4, "--output", out) == 0
    m = metrics_of(out)
    assert m["config"]["loss"] == "logistic" and m["config"]["iterations"] == 4 == m["iterations"]
    assert m["config"]["reg_type"] == "l2" and m["config"]["rows"] == 1500
    assert (ROOT / "conf" / "train_linear.toml").is_file()
    from sparkgd.job.config import load_toml
    assert load_toml(str(ROOT / "conf" / "train_linear.toml"))["loss"] == "squared"


def test_remaining_model_options(spark, train_linear, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--rows", "1500", "--no-intercept", "--reg-type", "l1", "--reg-param", "0.01", "--aggregation-depth",
            "3", "--iterations", "5", "--verbose", "--output", str(out)]
    assert run(train_linear, spark, *argv) == 0
    m = metrics_of(out)
    assert m["intercept"] == 0.0 and m["config"]["reg_type"] == "l1" and m["config"]["aggregation_depth"] == 3
    assert m["config"]["verbose"] is True and m["config"]["intercept"] is False


@pytest.mark.parametrize("api", ["rdd", "dataframe"])
def test_optimizer_options_and_their_config_keys_reach_the_training(spark, train_linear, tmp_path, api):
    cfg = tmp_path / "job.toml"
    cfg.write_text('[train]\noptimizer = "adam"\nschedule = "constant"\nbeta1 = 0.8\naverage-from = 5\n')
    base = ["--rows", 2000, "--iterations", 30, "--step-size", 0.05, "--api", api, "--test-fraction", 0]
    assert run(train_linear, spark, *base, "--output", tmp_path / "sgd") == 0
    assert run(train_linear, spark, *base, "--config", cfg, "--beta2", 0.99, "--validation-fraction", 0.2,
               "--n-iter-no-change", 3, "--convergence-tol", 0.5, "--output", tmp_path / "adam") == 0
    sgd, adam = metrics_of(tmp_path / "sgd"), metrics_of(tmp_path / "adam")
    c = adam["config"]
    assert (c["optimizer"], c["schedule"], c["beta1"], c["beta2"], c["average_from"]) == ("adam", "constant", 0.8,
                                                                                           0.99, 5)
    # with a held-out loss that must improve by 0.5 at least, early stopping ends the run after 3 iterations
    assert adam["iterations"] < 30 == sgd["iterations"]
    assert adam["train"]["rmse"] != sgd["train"]["rmse"]


@pytest.mark.parametrize("argv,message", [
    (["--mini-batch-fraction", "2"], "--mini-batch-fraction must be in (0, 1]"),
    (["--iterations", "-1"], "--iterations must be >= 0"),
    (["--loss", "cauchy"], "argument --loss: invalid choice"),
    (["--remote", "sc://127.0.0.1:1"], "--remote needs --api dataframe (Spark Connect has no RDDs)"),
    (["--remote", "localhost:15002", "--api", "dataframe"], "--remote must be a Spark Connect URL sc://host:port"),
    (["--loss", "huber", "--epsilon", "0"], "--epsilon must be > 0"),
    (["--standardize"], "--standardize needs --api dataframe"),
    (["--config", "/nonexistent.toml"], "--config: file '/nonexistent.toml' does not exist"),
    (["--optimizer", "lbfgs", "--mini-batch-fraction", "0.1"],
     "--optimizer lbfgs needs full batches: --mini-batch-fraction must be 1.0"),
    (["--reg-param", "0.5"], "--reg-param 0.5 has no effect with --reg-type none (the default): add --reg-type l2"),
    (["--beta2", "1.5"], "--beta2 must be in [0, 1)"),
    (["--validation-fraction", "1"], "--validation-fraction must be in [0, 1)"),
    (["--schedule", "optimal"], "--schedule optimal needs --reg-type l1 or l2 and --reg-param > 0"),
    (["--optimizer", "adamax"], "argument --optimizer: invalid choice"),
])
def test_bad_options_exit_2_with_one_line(spark, train_linear, capsys, argv, message):
    with pytest.raises(SystemExit) if "invalid choice" in message else _no_raise() as exc:
        rc = train_linear.main(argv, spark=spark)
    rc = exc.value.code if exc else rc
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


class _no_raise:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


def test_unknown_key_in_config_file(spark, train_linear, tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[train]\nstepsize = 1.0\n")
    assert train_linear.main(["--config", str(cfg)], spark=spark) == 2
    assert "unknown option 'stepsize'" in capsys.readouterr().err


@pytest.mark.parametrize("fmt,content,message", [
    ("libsvm", "1 1:0.5 2:1.0\n0 2:1.0 1:0.5\n", "d.libsvm:2: index 1 is out of order"),
    ("libsvm", "1 1:0.5\n0 0:1.0\n", "d.libsvm:2: index 0 is below 1"),
    ("libsvm", "1 1:0.5\n1 1:abc\n", "d.libsvm:2: value 'abc' of index 1 is not a number"),
    ("libsvm", "1 1:0.5 1:2\n", "d.libsvm:1: index 1 is repeated"),
    ("csv", "a,label\n1.0,1\nx,0\n", "d.csv:3: column 'a' value 'x' is not a number"),
    ("csv", "a,label\n1.0,1\n,0\n", "d.csv:3: column 'a' is empty"),
    ("csv", "a,label\n1.0,1\nnan,0\n", "d.csv:3: column 'a' is nan"),
    ("csv", "", "the file is empty"),
    ("libsvm", "", "holds no rows"),
    ("csv", "a,label\n1.0,1\n2.0\n", "d.csv:3: 1 fields, the header has 2"),
])
def test_bad_input_exits_3_naming_file_and_line(spark, train_linear, tmp_path, capsys, fmt, content, message):
    f = tmp_path / f"d.{fmt}"
    f.write_text(content)
    assert train_linear.main(["--input", str(f), "--format", fmt, "--iterations", "2"], spark=spark) == 3
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_classifier_labels_out_of_range_name_file_and_line(spark, train_linear, tmp_path, capsys):
    f = tmp_path / "d.libsvm"
    f.write_text("1 1:0.5\n0 1:-0.5\n2 1:0.1\n")
    assert train_linear.main(["--input", str(f), "--loss", "hinge", "--iterations", "2"], spark=spark) == 3
    assert "d.libsvm:3: label 2 is not 0 or 1" in capsys.readouterr().err


def test_skip_bad_rows_reports_them(spark, train_linear, tmp_path):
    f = tmp_path / "d.libsvm"
    f.write_text("1 1:0.5\n0 1:-0.5\nbad line\n1 1:0.7\n0 1:-0.2\n")
    out = tmp_path / "out"
    assert train_linear.main(["--input", str(f), "--on-bad-rows", "skip", "--test-fraction", "0", "--iterations", "3",
                              "--output", str(out)], spark=spark) == 0
    report = metrics_of(out)["bad_rows"]
    assert report["skipped"] == 1 and "d.libsvm:3" in report["examples"][0]


def test_divergence_exits_3(spark, train_linear, capsys):
    assert train_linear.main(["--rows", "500", "--step-size", "1e9", "--iterations", "20"], spark=spark) == 3
    assert "diverged" in capsys.readouterr().err


def test_compare_gd_writes_plot_and_csv(spark, tmp_path):
    compare = load_job("compare_gd")
    assert compare.main(["--rows", "2000", "--iterations", "8", "--output", str(tmp_path)], spark=spark) == 0
    lines = (tmp_path / "compare_gd.csv").read_text().splitlines()
    assert lines[0] == "variant,iteration,rows_processed,loss" and len(lines) == 1 + 3 * 8
    assert os.path.getsize(tmp_path / "compare_gd.png") > 20_000
    rows = list(csv.reader((tmp_path / "compare_optimizers.csv").read_text().splitlines()))
    assert rows[0] == ["optimizer", "iteration", "seconds", "loss"] and len(rows) == 1 + 7 * 8
    names = {r[0] for r in rows[1:]}
    assert {"adam, f=0.1", "lbfgs, f=1.0"} <= names and len(names) == 7
    seconds = [float(r[2]) for r in rows[1:] if r[0] == "lbfgs, f=1.0"]
    assert seconds == sorted(seconds)
    # L-BFGS on this well-posed least squares problem gets to the noise level (0.5 * 0.1^2) in 8 iterations
    assert float([r for r in rows if r[0] == "lbfgs, f=1.0"][-1][3]) < 0.0051
    assert os.path.getsize(tmp_path / "compare_optimizers.png") > 20_000


def weights_csv(tmp_path, n=400, d=4):
    rng = np.random.default_rng(12)
    x = rng.normal(size=(n, d)) * np.array([1e-3, 1.0, 3.0, 0.1])
    y = x @ np.array([200.0, -1.0, 0.01, 3.0]) + 0.1 * rng.normal(size=n)
    path = tmp_path / "rows.csv"
    path.write_text("y,a,b,c,e\n" + "\n".join(",".join(repr(float(v)) for v in (t, *row)) for t, row in zip(y, x)))
    return path, x, y  # the text holds the exact doubles


def test_seed_and_aggregation_depth_reach_the_rdd_training(spark, train_linear, tmp_path):
    csv, _, _ = weights_csv(tmp_path)
    base = ["--input", csv, "--format", "csv", "--label-col", "y", "--test-fraction", 0, "--iterations", 12,
            "--mini-batch-fraction", 0.5, "--partitions", 8, "--step-size", 0.1]
    got = {}
    for name, extra in [("42", ["--seed", 42]), ("again", ["--seed", 42]), ("7", ["--seed", 7]),
                        ("depth1", ["--aggregation-depth", 1]), ("depth3", ["--aggregation-depth", 3])]:
        out = tmp_path / name
        assert run(train_linear, spark, *base, *extra, "--output", out) == 0
        got[name] = np.array(metrics_of(out)["weights"])
    assert got["42"].tobytes() == got["again"].tobytes()
    assert not np.allclose(got["42"], got["7"], rtol=1e-6)  # another sample
    # depth 1 folds the 8 partitions left to right, depth 3 pairs them: the same model to rounding, other bits
    np.testing.assert_allclose(got["depth1"], got["depth3"], rtol=1e-9)
    assert got["depth1"].tobytes() != got["depth3"].tobytes()


def test_csv_and_parquet_rows_repartitioned_in_order_give_one_model(spark, train_linear, tmp_path):
    csv, x, y = weights_csv(tmp_path)
    pq = str(tmp_path / "rows.parquet")
    spark.createDataFrame([(float(t), *map(float, row)) for t, row in zip(y, x)], ["y", "a", "b", "c", "e"]) \
        .coalesce(1).write.parquet(pq)
    models = {}
    for fmt, path in [("csv", csv), ("parquet", pq)]:
        out = tmp_path / fmt
        assert run(train_linear, spark, "--input", path, "--format", fmt, "--label-col", "y", "--partitions", 3,
                   "--mini-batch-fraction", 0.3, "--iterations", 10, "--step-size", 0.1, "--output", out) == 0
        models[fmt] = metrics_of(out)["weights"]
    assert models["csv"] == models["parquet"] and np.isfinite(models["csv"]).all()
    shuffled = tmp_path / "shuffled.parquet"  # the same rows in another order: another model, so order matters
    spark.read.parquet(pq).orderBy("a").coalesce(1).write.parquet(str(shuffled))
    out = tmp_path / "shuffled"
    assert run(train_linear, spark, "--input", shuffled, "--format", "parquet", "--label-col", "y", "--partitions", 3,
               "--mini-batch-fraction", 0.3, "--iterations", 10, "--step-size", 0.1, "--output", out) == 0
    assert metrics_of(out)["weights"] != models["parquet"]


def test_a_checkpoint_of_other_settings_exits_2_with_one_line(spark, train_linear, tmp_path, capsys):
    ck = tmp_path / "ck"
    argv = ["--rows", 1000, "--iterations", 4, "--checkpoint-dir", ck, "--checkpoint-interval", 2]
    assert run(train_linear, spark, *argv) == 0
    capsys.readouterr()
    assert run(train_linear, spark, *argv, "--step-size", 0.1, "--resume") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other settings (these differ: step)" in err[0] and "Traceback" not in err[0]


def test_progress_eta_counts_iterations_only(monkeypatch, caplog):
    import logging

    from sparkgd.core.state import SGDState
    from sparkgd.job import run as job

    now = [0.0]
    monkeypatch.setattr(job.time, "perf_counter", lambda: now[0])
    progress = job.Progress(total=100, schedule=1.0, every=10)
    state = SGDState(0, np.zeros(1), 0.0)
    with caplog.at_level(logging.INFO, logger="sparkgd"):
        for t in range(1, 11):
            now[0] = 4.0 + 0.1 * t  # 4 s of block build, then 0.1 s per iteration
            state.iteration = t
            progress(state)
    assert "elapsed 5.0s  ETA 9.0s" in caplog.text


def test_lbfgs_alone_takes_full_batches_unless_a_fraction_is_set():
    """The default fraction 0.1 is SGD's: --optimizer lbfgs alone trains on full batches (#21.12)."""
    from sparkgd.job import config

    assert config.resolve({}, {"optimizer": "lbfgs"}).mini_batch_fraction == 1.0
    assert config.resolve({}, {}).mini_batch_fraction == 0.1
    assert config.resolve({}, {"optimizer": "lbfgs", "mini_batch_fraction": 1.0}).mini_batch_fraction == 1.0
    with pytest.raises(config.ConfigError, match="must be 1.0, got 0.5"):
        config.resolve({"mini_batch_fraction": 0.5}, {"optimizer": "lbfgs"})
    toml = config.load_toml(str(ROOT / "conf" / "train_linear.toml"))
    assert config.resolve(toml, {"optimizer": "lbfgs"}).mini_batch_fraction == 1.0  # the shipped file too


def test_a_non_empty_output_is_refused_unless_overwrite(spark, train_linear, tmp_path, capsys):
    """An earlier run's model is never replaced unasked (#21.3): exit 2 before training, the old model intact."""
    out = tmp_path / "out"
    args = ["--rows", 600, "--iterations", 3, "--output", out]
    assert run(train_linear, spark, *args, "--seed", 1) == 0
    first = metrics_of(out)["weights"]
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    capsys.readouterr()
    assert run(train_linear, spark, *args, "--seed", 2) == 2
    err = capsys.readouterr().err
    assert "--output" in err and "is not empty" in err and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before  # nothing touched
    # inside the earlier model's directory: refused as well
    assert run(train_linear, spark, "--rows", 600, "--iterations", 3, "--output", out / "model") == 2
    assert sorted(p.name for p in (out / "model").iterdir()) == ["lossHistory.npy", "metadata.json", "weights.npy"]
    assert run(train_linear, spark, *args, "--seed", 2, "--overwrite") == 0
    assert metrics_of(out)["weights"] != first
    assert LinearRegressionModel.load(spark.sparkContext, str(out / "model")).weights.toArray().tolist() == \
        metrics_of(out)["weights"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run(train_linear, spark, "--rows", 600, "--iterations", 3, "--output", empty) == 0


def _strict_json(path):
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


def test_what_a_run_reports_numeric_csv_columns_skipped_rows_empty_test_split_stop_reason(
        spark, train_linear, tmp_path, capsys, caplog):
    """#21.10, 11, 13, 14: a string column is not a feature; skipped rows are printed; an empty test split gives
    null, not NaN; the summary line says why training stopped, on the progress lines' clock."""
    import logging

    rng = np.random.default_rng(5)
    x = rng.normal(size=(60, 2))
    lines = [f"row{i},{a:.5f},{b:.5f},{2 * a - b:.5f}" for i, (a, b) in enumerate(x)]
    lines.insert(7, "row-bad,1.0,oops,2.0")
    data = tmp_path / "d.csv"
    data.write_text("name,a,b,y\n" + "\n".join(lines) + "\n")
    out = tmp_path / "out"
    capsys.readouterr()
    with caplog.at_level(logging.INFO, logger="sparkgd"):
        rc = run(train_linear, spark, "--input", data, "--format", "csv", "--label-col", "y", "--on-bad-rows", "skip",
                 "--iterations", 200, "--convergence-tol", 0.01, "--mini-batch-fraction", 1.0, "--output", out,
                 "--log-every", 1)
    printed = capsys.readouterr().out
    assert rc == 0
    m = _strict_json(out / "metrics.json")
    assert m["features"] == ["a", "b"] and m["bad_rows"]["skipped"] == 1
    assert "skipped 1 bad rows (--on-bad-rows skip); first: " in printed and "oops" in printed
    assert m["iterations"] < 200 and m["stopped"].startswith("converged") and f"({m['stopped']})" in printed
    elapsed = [float(r.getMessage().split("elapsed ")[1].split("s")[0]) for r in caplog.records
               if "elapsed" in r.getMessage()]
    assert elapsed and max(elapsed) <= m["seconds"] + 0.05  # one clock: progress never runs ahead of the summary

    one = tmp_path / "one"
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="sparkgd"):
        assert run(train_linear, spark, "--rows", 1, "--iterations", 2, "--output", one,
                   "--checkpoint-dir", tmp_path / "none-yet", "--resume") == 0
    m = _strict_json(one / "metrics.json")  # no bare NaN
    assert m["test"] is None and "no test rows" in capsys.readouterr().out
    assert any("test split is empty" in r.getMessage() for r in caplog.records)
    assert any("no checkpoint in" in r.getMessage() and "iteration 0" in r.getMessage() for r in caplog.records)


CANCEL_TWO_JOBS = """
import threading, time
from pyspark.sql import SparkSession
spark = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
sc = spark.sparkContext

def run(tag):
    sc.addJobTag(tag)
    try:
        sc.parallelize(range(2), 2).map(lambda x: time.sleep(3)).collect()
    except Exception:
        pass

for tag in ("sparkgd-resident-0123", "someone-else"):
    t = threading.Thread(target=run, args=(tag,))
    t.start()
    time.sleep(1.5)  # both tasks running
    sc.cancelJobsWithTag(tag)
    t.join()
    time.sleep(3)  # a sleeping Python task dies (and is reported) when its sleep ends
spark.stop()
"""


def test_the_log_config_drops_the_kills_of_resident_tasks_only(tmp_path):
    """conf/log4j2.properties (what make run and the submit scripts hand Spark) silences the WARN of a
    cancelled sparkgd-resident job; a cancelled job of anyone else is still reported."""
    import subprocess
    import sys

    import pyspark

    script = tmp_path / "cancel.py"
    script.write_text(CANCEL_TWO_JOBS)
    submit = pathlib.Path(pyspark.__file__).parent / "bin" / "spark-submit"
    env = dict(os.environ, SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable)
    log_conf = f"-Dlog4j2.configurationFile=file:{ROOT / 'conf' / 'log4j2.properties'}"
    out = subprocess.run([str(submit), "--driver-java-options", log_conf, str(script)], env=env,
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    killed = [ln for ln in out.stderr.splitlines() if "TaskKilled" in ln]
    assert killed and all("someone-else" in ln for ln in killed), out.stderr[-3000:]
    assert "Incomplete task interrupted" not in out.stderr

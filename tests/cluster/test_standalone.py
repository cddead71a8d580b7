"""spark-submit of jobs/train_linear.py to a real standalone cluster gives the local[2] model."""

import importlib.util
import json
import pathlib
import time
import zipfile

import numpy as np
import pytest

from tests.cluster.standalone import StandaloneCluster

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARGS = ["--rows", "4000", "--features", "6", "--partitions", "2", "--iterations", "100", "--mini-batch-fraction",
        "0.3", "--loss", "logistic", "--seed", "11", "--log-every", "1", "--convergence-tol", "0"]


def package_zip(path: pathlib.Path) -> pathlib.Path:
    with zipfile.ZipFile(path, "w") as z:
        for f in (ROOT / "sparkgd").rglob("*.py"):
            z.write(f, f.relative_to(ROOT))
    return path


@pytest.fixture
def cluster(tmp_path):
    c = StandaloneCluster(tmp_path / "cluster", workers=2)
    try:
        yield c.start()
    finally:
        c.stop()
    assert all(p.poll() is not None for p in c.procs), "every process the test started is stopped"


def test_cluster_model_equals_local_model_even_when_a_worker_dies(spark, cluster, tmp_path):
    out = tmp_path / "cluster-out"
    proc = cluster.submit(["--py-files", str(package_zip(tmp_path / "sparkgd.zip")),
                           "--conf", "spark.python.unix.domain.socket.enabled=true",  # as conf/submit-*.sh
                           str(ROOT / "jobs" / "train_linear.py"), *ARGS, "--output", str(out)])
    lines, killed = [], False
    deadline = time.time() + 300
    for line in proc.stdout:
        lines.append(line)
        if not killed and "resident tasks:" in line and " serve " in line:  # a fresh start or the builders
            # mid-training, once resident tasks serve the iterations (a few ms each): one of them dies
            # with its executor; later iterations run one job each on worker 1's executor
            cluster.kill_worker(0)
            killed = True
        assert time.time() < deadline, "the job did not finish in time"
    proc.wait(timeout=60)
    log = "".join(lines)
    assert proc.returncode == 0, log[-3000:]
    assert killed and "iteration 100/100" in log and "resident tasks lost" in log
    assert "spark.authenticate.secret" not in (cluster.root / "master.log").read_text()
    remote = json.loads((out / "metrics.json").read_text())

    spec = importlib.util.spec_from_file_location("train_linear", ROOT / "jobs" / "train_linear.py")
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    local_out = tmp_path / "local-out"
    assert job.main([*ARGS, "--output", str(local_out)], spark=spark) == 0
    local = json.loads((local_out / "metrics.json").read_text())
    np.testing.assert_allclose(remote["weights"], local["weights"], rtol=1e-12, atol=1e-15)
    assert remote["intercept"] == pytest.approx(local["intercept"], rel=1e-12)
    assert remote["iterations"] == local["iterations"] == 100


SPARK_OWN = ("stdout", "stderr", "sparkgd.zip")  # what Spark itself leaves in an application's work dir


def test_data_stays_in_spark_storage_and_shares_mode_rebuilds_nothing(spark, cluster, tmp_path):
    out = tmp_path / "citizen.json"
    proc = cluster.submit(["--py-files", str(package_zip(tmp_path / "sparkgd.zip")),
                           str(ROOT / "tests" / "cluster" / "citizen_run.py"), str(out)])
    log, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, log[-3000:]
    remote = json.loads(out.read_text())

    spec = importlib.util.spec_from_file_location("citizen_run", ROOT / "tests" / "cluster" / "citizen_run.py")
    citizen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(citizen)
    local = citizen.train_all(spark)
    for key in ("uncached", "cached", "shares"):
        np.testing.assert_array_equal(np.array(remote[key]), np.array(local[key]), err_msg=key)
    assert remote["shares_builds"] == 8  # once per partition over two calls: nothing rebuilt
    assert any("2 tasks serve the 8 partitions" in line for line in remote["log"]), remote["log"]

    left = sorted(str(p.relative_to(cluster.root)) for d in [*cluster.root.glob("work*"), cluster.root / "local"]
                  if d.exists() for p in d.rglob("*") if p.is_file() and p.name not in SPARK_OWN)
    assert left == [], left


DEPLOYMENTS = {
    "encryption": ["spark.network.crypto.enabled=true", "spark.io.encryption.enabled=true"],
    "dynamic allocation": ["spark.dynamicAllocation.enabled=true",
                           "spark.dynamicAllocation.shuffleTracking.enabled=true"],
    # copies of a task start once it has run 0.1 s, on another host's free slots (numTasks <= cores per executor)
    "speculation": ["spark.speculation=true", "spark.speculation.interval=50ms",
                    "spark.speculation.task.duration.threshold=100ms", "spark.executor.cores=2"],
}


@pytest.mark.parametrize("deployment", list(DEPLOYMENTS))
def test_resident_tasks_serve_in_every_deployment_with_the_local_bits(spark, tmp_path, deployment):
    """Encrypted, dynamically allocated and speculating clusters keep resident tasks on, with the local model."""
    two_hosts = deployment == "speculation"  # Spark never runs a copy on the host of the original
    c = StandaloneCluster(tmp_path / "cluster", workers=2, cores=2 if two_hosts else 1,
                          hosts=("127.0.0.1", "localhost") if two_hosts else ("127.0.0.1",))
    iterations = 200 if two_hosts else 30  # long enough for copies to start
    try:
        cluster = c.start()
        out = tmp_path / "citizen.json"
        confs = [a for kv in DEPLOYMENTS[deployment] for a in ("--conf", kv)]
        proc = cluster.submit(["--py-files", str(package_zip(tmp_path / "sparkgd.zip")), *confs,
                               str(ROOT / "tests" / "cluster" / "citizen_run.py"), str(out), str(iterations)])
        log, _ = proc.communicate(timeout=400)
        assert proc.returncode == 0, log[-3000:]
        stderr = "".join(p.read_text(errors="replace") for p in cluster.root.glob("work*/*/*/stderr"))
    finally:
        c.stop()
    remote = json.loads(out.read_text())
    lines = remote["log"]
    assert not any("resident tasks are off" in line or "resident tasks lost" in line for line in lines), lines
    served = [line.split() for line in lines if line.startswith("resident tasks served")]
    assert len(served) == 5, lines  # every training call of the run
    assert all(int(w[6]) == iterations for w in served), lines
    if not two_hosts:  # each call's iterations, bar the first where slots were still busy with the block build
        assert all(int(w[3]) >= iterations - 1 for w in served), lines
    else:
        # copies of every task after 0.1 s: the three calls on 2 partitions serve (nearly) all iterations; in
        # shares mode (8 partitions coalesced) copies hold slots a start needs, and some iterations run as jobs
        assert all(int(w[3]) >= iterations - 10 for w in served[:3]), lines
        assert sum(int(w[3]) for w in served) >= 0.8 * len(served) * iterations, lines
    if two_hosts:
        assert "of resident task" in stderr, "no speculative copy of a resident task started"
    spec = importlib.util.spec_from_file_location("citizen_run", ROOT / "tests" / "cluster" / "citizen_run.py")
    citizen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(citizen)
    local = citizen.train_all(spark, iterations)
    for key in ("uncached", "cached", "shares"):
        np.testing.assert_array_equal(np.array(remote[key]), np.array(local[key]), err_msg=key)

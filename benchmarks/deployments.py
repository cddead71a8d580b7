"""sparkgd against MLlib in the deployments users have: ``make bench ARGS="--workloads deployments"``.

Starts a Spark standalone cluster of two 1-core workers (127.0.0.1 only, ``spark.authenticate`` on:
``tests/cluster/standalone.py``) and, for each deployment, one ``spark-submit`` application with its
settings: nothing added; dynamic allocation (shuffle tracking); Spark's encryption
(``spark.network.crypto.enabled`` + ``spark.io.encryption.enabled``); speculation as users turn it on
(``spark.speculation=true``, Spark's defaults otherwise). In each, a cached RDD of ``LabeledPoint``
(240K x 40 dense at scale 1, 4 partitions) is trained by MLlib's ``LinearRegressionWithSGD`` and by
sparkgd's, timed the same way as ``bench.py`` (``time_systems``: alternating order, seconds per
iteration from the difference of two run lengths) and with MLlib's weights to 1e-9. The cluster is
stopped at the end. Last, a Spark Connect server runs as an application on the same cluster
(``spark.cores.max=2``) and a client process times sparkgd-df on the same rows
(``connect_client.deployment``), with the loop in a task and with one Spark job per iteration; its
MLlib row is the nothing-added application's (classic: MLlib has no Connect API).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENTS = {
    "nothing added": [],
    "dynamic allocation": ["spark.dynamicAllocation.enabled=true",
                           "spark.dynamicAllocation.shuffleTracking.enabled=true"],
    "encryption": ["spark.network.crypto.enabled=true", "spark.io.encryption.enabled=true"],
    "speculation": ["spark.speculation=true"],
}


def deployments_workload(args, rows: list[dict]) -> None:
    """Run every deployment on one standalone cluster and add its rows (workload ``deployment: NAME ...``)."""
    sys.path.insert(0, str(ROOT))
    from tests.cluster.standalone import StandaloneCluster

    with tempfile.TemporaryDirectory(prefix="sparkgd-deploy-") as tmp:
        cluster = StandaloneCluster(Path(tmp) / "cluster", workers=2, cores=1).start()
        try:
            chosen = [n.strip() for n in args.deployments.split(",") if n.strip()] if args.deployments else None
            for name, confs in DEPLOYMENTS.items():
                if chosen is not None and name not in chosen:
                    continue
                out = Path(tmp) / f"{len(rows)}.json"
                settings = confs + ["spark.executor.memory=900m", "spark.driver.memory=2g"]
                flags = [a for kv in settings for a in ("--conf", kv)]
                proc = cluster.submit([*flags, __file__, name, str(args.scale), str(args.iterations), str(out)])
                log, _ = proc.communicate(timeout=1800)
                if proc.returncode != 0:
                    raise RuntimeError(f"deployment {name!r} failed:\n{log[-3000:]}")
                rows.extend(json.loads(out.read_text()))
            if chosen is None or "Spark Connect" in chosen:
                _connect(cluster, Path(tmp), args, rows)
        finally:
            cluster.stop()


def _connect(cluster, tmp: Path, args, rows: list[dict]) -> None:
    import subprocess
    import threading

    from bench import wait_for_port

    from tests.cluster.standalone import free_port

    port = free_port()
    server = cluster.submit(["--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
                             "--conf", "spark.connect.grpc.binding.address=127.0.0.1",
                             "--conf", f"spark.connect.grpc.binding.port={port}", "--conf", "spark.cores.max=2",
                             "--conf", "spark.executor.memory=900m", "--conf", "spark.driver.memory=2g"])
    tail: list[str] = []
    threading.Thread(target=lambda: [tail.append(line) for line in server.stdout], daemon=True).start()
    try:
        wait_for_port(port, server, "the Connect server", lambda: ":\n" + "".join(tail[-50:]))
        n, out = int(240_000 * args.scale), tmp / "connect.json"
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "connect_client.py"), "deployment",
                        f"sc://127.0.0.1:{port}", str(n), "40", "4", str(args.iterations), str(out)],
                       env=dict(cluster.env(), PYTHONPATH=str(ROOT)), check=True, timeout=1800)
        got = json.loads(out.read_text())
        print("Spark Connect fits (fraction, residentTasks, iterations, s, blocks built so far):",
              Path(str(out) + ".fits.json").read_text(), file=sys.stderr)
        for f in (1.0, 0.1):
            mllib = next(r for r in rows if r["system"] == "mllib" and r["workload"] == f"deployment: nothing added "
                         f"{n}x40 f={f}")
            rows.append(dict(mllib, workload=f"deployment: Spark Connect {n}x40 f={f}"))
        rows.extend(got)
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()


def _child(name: str, scale: float, k: int, out: str) -> None:
    from pyspark.sql import SparkSession

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench

    spark = SparkSession.builder.appName(f"sparkgd-bench-{name}").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    rows: list[dict] = []
    try:
        bench.dense_workload(spark, int(240_000 * scale), 40, 4, [1.0, 0.1], k, rows, kind=f"deployment: {name}")
    finally:
        spark.stop()
    Path(out).write_text(json.dumps(rows))


if __name__ == "__main__":
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    _child(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4])

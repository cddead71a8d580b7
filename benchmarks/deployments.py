"""sparkgd against MLlib in the deployments users have: ``make bench ARGS="--workloads deployments"``.

Starts a Spark standalone cluster of two 1-core workers (127.0.0.1 only, ``spark.authenticate`` on:
``tests/cluster/standalone.py``) and, for each deployment, one ``spark-submit`` application with its
settings: nothing added; dynamic allocation (shuffle tracking); Spark's encryption
(``spark.network.crypto.enabled`` + ``spark.io.encryption.enabled``); speculation as users turn it on
(``spark.speculation=true``, Spark's defaults otherwise). In each, a cached RDD of ``LabeledPoint``
(240K x 40 dense at scale 1, 4 partitions) is trained by MLlib's ``LinearRegressionWithSGD`` and by
sparkgd's, timed the same way as ``bench.py`` (``time_systems``: alternating order, seconds per
iteration from the difference of two run lengths) and with MLlib's weights to 1e-9. The cluster is
stopped at the end. Spark Connect is not here: its resident loop is not built yet (the ``connect``
workload of ``bench.py`` measures it).
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
            for name, confs in DEPLOYMENTS.items():
                out = Path(tmp) / f"{len(rows)}.json"
                settings = confs + ["spark.executor.memory=900m", "spark.driver.memory=2g"]
                flags = [a for kv in settings for a in ("--conf", kv)]
                proc = cluster.submit([*flags, __file__, name, str(args.scale), str(args.iterations), str(out)])
                log, _ = proc.communicate(timeout=1800)
                if proc.returncode != 0:
                    raise RuntimeError(f"deployment {name!r} failed:\n{log[-3000:]}")
                rows.extend(json.loads(out.read_text()))
        finally:
            cluster.stop()


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

"""The first call as a pyspark.mllib user makes it: ``make bench ARGS="--workloads first"``.

Each measurement is a fresh process (``local[2]``, as ``bench.py``'s session) that makes a cached RDD
of ``LabeledPoint`` (50 dense features, 4 partitions), counts it, and times one cold
``LinearRegressionWithSGD.train(rdd, iterations=100, step=0.1, miniBatchFraction=f)``: conversion and
block build included, with ``pyspark.mllib``'s trainer and with ``sparkgd.rdd``'s, at 400K and 1.6M
rows (times ``--scale``), fractions 0.1 and 1.0. Each pair runs twice, in both orders; the figure is
the mean of the two, and sparkgd's weights must be MLlib's to 1e-9. The block build alone is timed the
same way: ``build_blocks`` of the same RDD from its pickled batches (what the first call does) against
the row objects pyspark's unpickler makes (``build=build_block``, the way in before).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

D, PARTITIONS, ITERATIONS = 50, 4, 100


def first_call_workload(args, rows: list[dict]) -> None:
    """Add the first-call rows (workload ``first call NxD f=F``) and the build rows (``block build NxD``)."""
    for n in (int(400_000 * args.scale), int(1_600_000 * args.scale)):
        for f in (0.1, 1.0):
            runs = _alternating([("mllib", n, f), ("sparkgd", n, f)])
            m, s = runs["mllib"], runs["sparkgd"]
            gap = float(np.max(np.abs(np.array(s["weights"]) - m["weights"])) / np.max(np.abs(m["weights"])))
            if gap > 1e-9:
                raise AssertionError(f"sparkgd's weights differ from MLlib's by {gap:.2e} (n={n}, f={f})")
            for name, r in runs.items():
                rows.append(dict(workload=f"first call {n}x{D} f={f}", system=name, seconds=r["seconds"],
                                 each=r["each"], weight_gap=gap if name == "sparkgd" else None))
        runs = _alternating([("build from row objects", n, 0.0), ("build from pickled batches", n, 0.0)])
        for name, r in runs.items():
            rows.append(dict(workload=f"block build {n}x{D}", system=name, seconds=r["seconds"], each=r["each"]))


def first_call_table(rows: list[dict]) -> str:
    """The markdown table of docs/benchmarks.md#first-call."""
    out = ["| workload | system | seconds (mean of 2, fresh processes) | each run | vs peer |",
           "|---|---|---:|---|---:|"]
    base = {r["workload"]: r for r in rows if r["system"] in ("mllib", "build from row objects")}
    for r in rows:
        b = base[r["workload"]]
        out.append(f"| {r['workload']} | {r['system']} | {r['seconds']:.2f} | "
                   f"{', '.join(f'{t:.2f}' for t in r['each'])} | {r['seconds'] / b['seconds']:.2f}x |")
    return "\n".join(out)


def _alternating(pairs: list[tuple[str, int, float]]) -> dict[str, dict]:
    """Run each of ``pairs`` twice, in order then in reverse order, each in a fresh process."""
    each: dict[str, list[dict]] = {}
    for order in (pairs, pairs[::-1]):
        for system, n, f in order:
            each.setdefault(system, []).append(_run(system, n, f))
    return {s: dict(seconds=float(np.mean([r["seconds"] for r in rs])), each=[r["seconds"] for r in rs],
                    weights=rs[0].get("weights")) for s, rs in each.items()}


def _run(system: str, n: int, f: float) -> dict:
    out = subprocess.run([sys.executable, __file__, system, str(n), str(f)], capture_output=True, text=True,
                         timeout=1800)
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"first call {system} n={n} f={f} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1])


def _child(system: str, n: int, f: float) -> None:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.mllib.regression import LabeledPoint
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master("local[2]").appName("sparkgd-first-call")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.memory", "8g").config("spark.python.unix.domain.socket.enabled", "true")
             .getOrCreate())
    sc = spark.sparkContext
    sc.setLogLevel("ERROR")
    w_true = np.random.default_rng(0).uniform(-1, 1, D)
    sizes = [len(c) for c in np.array_split(np.arange(n), PARTITIONS)]

    def points(p, _):
        rng = np.random.default_rng([0, p])
        x = rng.standard_normal((sizes[p], D))
        y = x @ w_true + 0.1 * rng.standard_normal(sizes[p])
        return (LabeledPoint(float(yi), xi) for xi, yi in zip(x, y))

    rdd = sc.parallelize(range(PARTITIONS), PARTITIONS).mapPartitionsWithIndex(points).cache()
    rdd.count()
    result: dict = {}
    t = time.perf_counter()
    if system.startswith("build"):
        from sparkgd.core.block import build_block
        from sparkgd.engine.blocks import build_blocks

        blocks = build_blocks(rdd, build=build_block if "row objects" in system else None)
        result["seconds"] = time.perf_counter() - t
        blocks.unpersist()
    else:
        if system == "mllib":
            from pyspark.mllib.regression import LinearRegressionWithSGD
        else:
            from sparkgd.rdd import LinearRegressionWithSGD
        model = LinearRegressionWithSGD.train(rdd, iterations=ITERATIONS, step=0.1, miniBatchFraction=f)
        result = dict(seconds=time.perf_counter() - t, weights=model.weights.toArray().tolist())
    print(json.dumps(result))
    spark.stop()


if __name__ == "__main__":
    _child(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))

"""Every Python block of README.md and docs/ runs as written (#21.18).

Each block runs in a fresh namespace holding what the docs assume a user has: ``spark``, ``sc``,
``rdd`` (LabeledPoints, labels 0/1), ``df`` / ``test_df`` (columns ``a`` .. ``d``, ``label``, or
``species`` for the multinomial example) and ``schema`` (of the streaming example's files), with
the docs' absolute paths (``/tmp/``, ``/data/``) moved under a temporary directory, which is also
the working directory (the DStream example's ``in/`` and ``test/``).
"""

import pathlib
import re

import numpy as np
import pytest
from pyspark.ml.linalg import Vectors
from pyspark.mllib.regression import LabeledPoint

ROOT = pathlib.Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CONNECT_ONLY = "spark.addArtifacts("  # a classic session has no artifacts: tests/connect runs under a server


def _blocks():
    for doc in DOCS:
        text = doc.read_text()
        for m in re.finditer(r"```python\n(.*?)```", text, re.S):
            line = text[:m.start()].count("\n") + 1
            yield pytest.param(m.group(1), id=f"{doc.relative_to(ROOT)}:{line}")


BLOCKS = list(_blocks())


def test_the_docs_have_python_blocks():
    assert len(BLOCKS) >= 10


@pytest.fixture(scope="module")
def inputs(spark):
    rng = np.random.default_rng(0)
    n = 200
    x = rng.standard_normal((n, 4))
    y = (x[:, 0] - x[:, 1] + 0.3 * rng.standard_normal(n) > 0).astype(float)
    species = np.array(["setosa", "versicolor", "virginica"])[np.digitize(x[:, 2] + x[:, 3], [-0.7, 0.7])]
    rows = [(*map(float, r), float(t), str(s)) for r, t, s in zip(x, y, species)]
    df = spark.createDataFrame(rows, ["a", "b", "c", "d", "label", "species"])
    rdd = spark.sparkContext.parallelize([LabeledPoint(t, r[:2].tolist()) for r, t in zip(x, y)], 2).cache()
    return df, rdd


@pytest.mark.parametrize("code", BLOCKS)
def test_block_runs_as_written(spark, inputs, tmp_path, monkeypatch, code):
    if CONNECT_ONLY in code:
        pytest.skip("needs a Spark Connect session")
    df, rdd = inputs
    monkeypatch.chdir(tmp_path)
    code = code.replace('"/tmp/', f'"{tmp_path}/').replace('"/data/', f'"{tmp_path}/data/')
    namespace = {"spark": spark, "sc": spark.sparkContext, "rdd": rdd,
                 "df": df.drop("label") if "StringIndexer" in code else df, "test_df": df}
    if "readStream" in code:
        data = spark.createDataFrame([(float(t), Vectors.dense(r[:2])) for r, t in
                                      zip(np.eye(4)[:, :2], [0.0, 1.0, 0.0, 1.0])], ["label", "features"])
        data.coalesce(1).write.parquet(str(tmp_path / "data" / "in"))
        namespace["schema"] = data.schema
    for sub in ("in", "test"):
        (tmp_path / sub).mkdir(exist_ok=True)
    try:
        exec(compile(code, "<doc block>", "exec"), namespace)
    finally:
        if "query" in namespace:
            namespace["query"].processAllAvailable()
            namespace["query"].stop()
        if "ssc" in namespace:
            namespace["ssc"].stop(stopSparkContext=False, stopGraceFully=False)
    if "trainer" in namespace:
        assert namespace["trainer"].latestModel() is not None  # the streaming example trained on its file

"""The numpy sampler against the JVM's own ``RDD.sample``, row for row."""

import numpy as np
import pytest
from pyspark.sql import DataFrame

from sparkgd.core._fdlibm import log1p
from sparkgd.core.sampling import partition_seed, sample_positions

SIZES = [0, 5, 1000, 37, 0, 60000, 3]


@pytest.fixture(scope="module")
def indexed(spark):
    sizes = SIZES
    rdd = spark.sparkContext.parallelize(range(len(sizes)), len(sizes)).flatMap(
        lambda p: [(p, j) for j in range(sizes[p])])
    return spark.createDataFrame(rdd, "p int, j int").cache()


def jvm_sample(spark, df, fraction, seed):
    sampled = df._jdf.javaRDD().sample(False, float(fraction), seed)
    rows = DataFrame(spark._jsparkSession.createDataFrame(sampled, df._jdf.schema()), spark).collect()
    return {(r.p, r.j) for r in rows}


@pytest.mark.parametrize("fraction", [1.0, 0.9, 0.5, 0.41, 0.4, 0.25, 0.1, 0.01, 1e-3, 1e-4])
@pytest.mark.parametrize("seed", [42, 57, -7, 2**40 + 3])
def test_sampler_picks_the_jvm_rows(spark, indexed, fraction, seed):
    mine = set()
    for p, n in enumerate(SIZES):
        pos = sample_positions(n, fraction, partition_seed(seed, p))
        mine |= {(p, int(j)) for j in (range(n) if isinstance(pos, slice) else pos)}
    assert mine == jvm_sample(spark, indexed, fraction, seed)


def test_log1p_port_is_bit_exact_with_java(sc):
    rng = np.random.default_rng(3)
    xs = np.concatenate([-rng.uniform(0, 0.4, 1500), -(10.0 ** rng.uniform(-12, -0.4, 400)), rng.uniform(-0.9, 3, 100)])
    strict = sc._jvm.java.lang.StrictMath
    mismatches = [x for x in xs if log1p(x) != strict.log1p(float(x))]
    assert mismatches == []

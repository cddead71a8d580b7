"""Cost of the sparse index check in block building: 100K sparse rows x 20 non-zeros, d = 2^20.

``python benchmarks/index_check.py``: ``build_block`` with the check and with it replaced by a no-op,
median of 7 builds each, three rounds in alternating order.
"""

import time

import numpy as np
from pyspark.mllib.linalg import SparseVector
from pyspark.mllib.regression import LabeledPoint

from sparkgd.core import block as B

rng = np.random.default_rng(0)
d, n = 1 << 20, 100_000
rows = [LabeledPoint(float(i % 2), SparseVector(d, np.sort(rng.choice(d, 20, replace=False)), rng.normal(size=20)))
        for i in range(n)]
check = B.index_error


def median_build(with_check: bool) -> float:
    B.index_error = check if with_check else (lambda *args, **kwargs: None)
    times = []
    for _ in range(7):
        start = time.perf_counter()
        B.build_block(0, rows)
        times.append(time.perf_counter() - start)
    B.index_error = check
    return float(np.median(times))


results = {True: [], False: []}
for r in range(3):
    for flag in ((True, False) if r % 2 == 0 else (False, True)):
        results[flag].append(median_build(flag))
w, wo = np.median(results[True]), np.median(results[False])
x = B.build_block(0, rows).features
start = time.perf_counter()
for _ in range(20):
    check(0, x.indices, x.indptr, d)
alone = (time.perf_counter() - start) / 20
print(f"build_block 100K x 20 nnz: with the check {w * 1e3:.1f} ms, without {wo * 1e3:.1f} ms, "
      f"ratio {w / wo:.3f}; the check alone {alone * 1e3:.2f} ms ({alone / w * 100:.2f}% of the build)")

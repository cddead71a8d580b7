"""The Python memory resident tasks hold, against what the cluster gives a task's Python worker.

A resident task keeps the blocks of its partitions in its Python worker for the whole training
call: one copy of them (the arrays of :func:`~sparkgd.core.block.block_bytes`), on top of Spark's own
cached copy in the JVM. With one task per partition that is what a Spark job's task over the same
block holds for the length of an iteration; with fewer free slots than partitions a task holds a
group of blocks, more than any per-iteration task ever does. Where the cluster caps a Python
worker's memory, a group that would not fit under the cap is not started: the call runs one Spark
job per iteration (one partition per task), with one log line.

The cap per task (:func:`python_budget`): ``spark.executor.pyspark.memory`` divided by
``spark.executor.cores``, as Spark divides it among a worker's Python processes (each gets that
``RLIMIT_AS``); without it, on YARN and Kubernetes, the executor's ``memoryOverhead`` (what Python
memory comes out of there: ``spark.executor.memoryOverhead``, or ``memoryOverheadFactor`` x
``spark.executor.memory``, at least 384 MiB) divided by the cores; elsewhere (local, standalone)
nothing caps it.
"""

from __future__ import annotations

import re
from typing import Any

WORKER_BASE = 128 << 20
"""A Python worker's own memory besides the blocks (the interpreter, numpy, pyspark, the fold's
temporaries): counted against the cap with them."""

_UNITS = {"b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def spark_bytes(text: str, default_unit: str = "m") -> int | None:
    """A Spark size (``"2g"``, ``"512m"``, ``"1024k"``; a bare number in ``default_unit``), or ``None``."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([bkmgt])?i?b?\s*", (text or "").lower())
    if m is None:
        return None
    return int(float(m.group(1)) * _UNITS[m.group(2) or default_unit])


def python_budget(conf: dict[str, str]) -> tuple[int, str] | None:
    """The bytes a task's Python worker may hold and the setting that says so, or ``None`` (no cap)."""
    cores = max(1, int(conf.get("spark.executor.cores", "1") or 1))
    given = spark_bytes(conf.get("spark.executor.pyspark.memory", ""))
    if given:
        return given // cores, "spark.executor.pyspark.memory"
    master = conf.get("spark.master", "")
    if not (master.startswith("yarn") or master.startswith("k8s://")):
        return None
    overhead = spark_bytes(conf.get("spark.executor.memoryOverhead", ""))
    if not overhead:
        executor = spark_bytes(conf.get("spark.executor.memory", "1g")) or (1 << 30)
        factor = float(conf.get("spark.executor.memoryOverheadFactor", "0.1") or 0.1)
        overhead = max(384 << 20, int(factor * executor))
    return overhead // cores, "spark.executor.memoryOverhead"


def group_bytes(block_bytes: list[int], tasks: int) -> int:
    """An upper bound on the blocks one of ``tasks`` resident tasks holds: the ``ceil(P / tasks)`` largest
    (``coalesce`` puts about as many partitions in every group)."""
    if tasks < 1 or not block_bytes:
        return 0
    per = -(-len(block_bytes) // tasks)
    return sum(sorted(block_bytes, reverse=True)[:per])


def too_big(sc: Any, block_bytes: list[int], tasks: int) -> str | None:
    """Why ``tasks`` resident tasks over these blocks would not fit in their Python workers, or ``None``. Only
    groups are refused: a task of one block needs what a per-iteration job's task over it needs."""
    from sparkgd.engine.resident import spark_conf

    if tasks >= len(block_bytes):
        return None
    budget = python_budget(spark_conf(sc))
    need = group_bytes(block_bytes, tasks)
    if budget is None or need + WORKER_BASE <= budget[0]:
        return None
    return (f"{tasks} tasks would hold {-(-len(block_bytes) // tasks)} blocks each, {need / 2**20:.0f} MiB of Python "
            f"memory, over the {budget[0] / 2**20:.0f} MiB per task of {budget[1]} (with {WORKER_BASE >> 20} MiB "
            "for the worker itself)")

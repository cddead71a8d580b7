"""Every call sparkgd makes into pyspark's or the JVM's private API, in one place.

Each function says what it needs; when a Spark version lacks it, the caller gets ``None`` (or
the documented fallback) and the log gets one warning naming the call, so an upgrade turns a
feature off visibly, never silently. ``tests/spark/test_spark_internals.py`` calls each of them.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

from pyspark import RDD, SparkContext
from pyspark.serializers import FramedSerializer

from sparkgd.core import pickled

log = logging.getLogger("sparkgd")
_WARNED: set[str] = set()


def _unavailable(name: str, error: BaseException) -> None:
    if name not in _WARNED:
        _WARNED.add(name)
        log.warning("sparkgd: Spark's %s is not available in this version (%s): %s", name, type(error).__name__,
                    _CONSEQUENCE.get(name, "the feature that uses it is off"))


_CONSEQUENCE = {
    "free slots": "resident tasks stay off",
    "job ids for a tag": "resident tasks do not hand their slots over to other jobs",
    "persistent RDDs": "blocks of cached inputs are not reused",
    "DataFrame cache lookup": "blocks of cached DataFrames are not reused",
    "JVM count": "blocks are built through a Python count",
    "Arrow batches": "DataFrame rows are read through DataFrame.rdd (slower)",
    "pickled batches": "LabeledPoint rows are unpickled one object at a time (slower)",
    "log levels": "Spark's own log lines stay at their level",
    "binary classification summary": "the summary's curves (roc, pr, ...ByThreshold) are not available",
}


def is_remote() -> bool:
    """Whether this process talks to Spark through Spark Connect (``pyspark.sql.utils.is_remote``)."""
    try:
        from pyspark.sql.utils import is_remote as remote
    except ImportError:  # pyspark < 3.4: no Spark Connect
        return False
    return bool(remote())


_JOB_CANCELLED = re.compile(r"\bJob \d+ cancelled\b")  # DAGScheduler.handleJobCancellation (SPARK_JOB_CANCELLED)


def cancelled(error: BaseException) -> bool:
    """Whether a failed job's ``error`` is the DAGScheduler cancelling it (a job group or tag cancelled, the UI's
    kill), as opposed to a task failing: the message the scheduler gives a cancelled job, ``Job N cancelled
    <reason>``, looked for in the Java exception and its causes (py4j), or in the error's text otherwise."""
    java = getattr(error, "java_exception", None)
    messages = []
    try:
        while java is not None and len(messages) < 16:
            messages.append(str(java.getMessage() or ""))
            java = java.getCause()
    except Exception:  # the gateway is gone: the text is what remains
        messages = []
    if not messages:
        messages = [str(error)]
    return any(_JOB_CANCELLED.search(m) for m in messages)


def free_slots(sc: SparkContext) -> int | None:
    """Task slots of the default resource profile minus the tasks running now; ``None`` if unknown."""
    try:
        jsc = sc._jsc.sc()
        slots = jsc.maxNumConcurrentTasks(jsc.resourceProfileManager().defaultResourceProfile())
        busy = sum(e.numRunningTasks() for e in jsc.statusTracker().getExecutorInfos())
        return int(slots) - int(busy)
    except Exception as e:  # any py4j or attribute error means "not available"
        _unavailable("free slots", e)
        return None


def job_ids_for_tag(sc: SparkContext, tag: str) -> set[int] | None:
    """Ids of the jobs carrying ``tag`` (``SparkStatusTracker.getJobIdsForTag``, Spark 3.5+)."""
    try:
        return {int(j) for j in sc._jsc.sc().statusTracker().getJobIdsForTag(tag)}
    except Exception as e:
        _unavailable("job ids for a tag", e)
        return None


def persistent_rdd_ids(sc: SparkContext) -> set[int] | None:
    """Ids of the RDDs Spark holds as persisted (``JavaSparkContext.getPersistentRDDs``)."""
    try:
        ids = str(sc._jsc.getPersistentRDDs().keySet().toString())  # "[3, 12]": one py4j call, not one per id
        return {int(k) for k in ids.strip("[]").split(",") if k.strip()}
    except Exception as e:
        _unavailable("persistent RDDs", e)
        return None


def dataframe_cache_id(df: Any) -> int | None:
    """The id of the RDD holding ``df``'s cached data (a new one at every re-cache), or ``None`` if not cached."""
    try:
        manager = df.sparkSession._jsparkSession.sharedState().cacheManager()
        found = manager.lookupCachedData(df._jdf)
        if not found.isDefined():
            return None
        return int(found.get().cachedRepresentation().cacheBuilder().cachedColumnBuffers().id())
    except Exception as e:
        _unavailable("DataFrame cache lookup", e)
        return None


def detach(rdd: RDD) -> None:
    """Build ``rdd``'s JVM RDD and drop its reference to its parent's Python object (``prev``).

    pyspark needs ``prev`` only to build the JVM RDD; Spark's lineage stays in the JVM.
    """
    rdd._jrdd.id()
    rdd.prev = None


def hadoop_path(sc: SparkContext, path: str) -> tuple[Any, Any]:
    """``(FileSystem, Path)`` of ``path`` through Spark's Hadoop configuration (any scheme Spark reads)."""
    hpath = sc._jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(sc._jsc.hadoopConfiguration()), hpath


def jvm_count(rdd: RDD) -> None:
    """Compute (and so cache) every partition of ``rdd`` without sending its elements back to Python."""
    from py4j.protocol import Py4JJavaError

    try:
        rdd._jrdd.count()
    except Exception as e:
        if "py4j" not in type(e).__module__ or isinstance(e, Py4JJavaError):  # the job itself failed
            raise
        _unavailable("JVM count", e)
        rdd.count()


def arrow_batches(df: Any) -> tuple[RDD, bytes] | None:
    """An RDD of each partition's serialized Arrow record batches and the serialized schema."""
    try:
        from pyspark.serializers import NoOpSerializer
        from pyspark.sql.pandas.types import to_arrow_schema

        schema = to_arrow_schema(df.schema)
        jrdd = df._jdf.toArrowBatchRdd().toJavaRDD()
        return RDD(jrdd, df.sparkSession.sparkContext, NoOpSerializer()), schema.serialize().to_pybytes()
    except Exception as e:
        _unavailable("Arrow batches", e)
        return None


def pickled_batches(rdd: RDD) -> RDD | None:
    """``rdd`` as its pickled batches, each read by :func:`sparkgd.core.pickled.load_batch`, when its rows
    reach Python as pyspark's batched pickles anyway (a cached or a JVM-made RDD); ``None`` otherwise: an
    uncached ``map`` of Python rows hands its rows on in the same worker, with nothing to unpickle."""
    try:
        from pyspark.serializers import (
            AutoBatchedSerializer,
            BatchedSerializer,
            CloudPickleSerializer,
            CPickleSerializer,
        )

        ser = rdd._jrdd_deserializer
        if getattr(rdd, "_is_pipelinable", lambda: False)() or type(ser) not in (
                BatchedSerializer, AutoBatchedSerializer) or type(ser.serializer) not in (
                CPickleSerializer, CloudPickleSerializer) or getattr(ser.serializer, "allowed_names", None):
            return None  # a restricted unpickler (allowed_names) keeps its say over every batch
        return RDD(rdd._jrdd, rdd.ctx, PointBatches(ser.serializer))
    except Exception as e:
        _unavailable("pickled batches", e)
        return None


class PointBatches(FramedSerializer):
    """Each frame of pickled rows as one batch: :func:`sparkgd.core.pickled.load_batch`'s
    :class:`~sparkgd.core.pickled.Points`, or the rows the RDD's own ``serializer`` reads."""

    def __init__(self, serializer: FramedSerializer) -> None:
        super().__init__()
        self.serializer = serializer

    def loads(self, obj: bytes) -> list:
        points = pickled.load_batch(obj)
        return self.serializer.loads(obj) if points is None else points


def binary_summary(predictions: Any, score_col: str, prediction_col: str, label_col: str,
                   weight_col: str | None, logistic: bool) -> Any | None:
    """Spark ML's own binary summary of ``predictions`` (pyspark's ``BinaryLogisticRegressionSummary`` or
    ``LinearSVCSummary``, over the JVM's ``BinaryLogisticRegressionSummaryImpl`` / ``LinearSVCSummaryImpl``):
    its curves and metrics are computed by Spark ML's own code. ``None`` if unavailable."""
    try:
        from pyspark.ml import classification as c

        jvm = predictions.sparkSession.sparkContext._jvm
        pkg = jvm.org.apache.spark.ml.classification
        weight = weight_col or ""
        if logistic:
            java = pkg.BinaryLogisticRegressionSummaryImpl(predictions._jdf, score_col, prediction_col, label_col,
                                                           "", weight)
            return c.BinaryLogisticRegressionSummary(java)
        java = pkg.LinearSVCSummaryImpl(predictions._jdf, score_col, prediction_col, label_col, weight)
        return c.LinearSVCSummary(java)
    except Exception as e:  # py4j or attribute errors: not in this version
        _unavailable("binary classification summary", e)
        return None


def multiclass_summary(predictions: Any, probability_col: str | None, prediction_col: str, label_col: str,
                       weight_col: str | None) -> Any | None:
    """Spark ML's ``LogisticRegressionSummary`` of multinomial ``predictions`` (``LogisticRegressionSummaryImpl``)."""
    try:
        from pyspark.ml import classification as c

        pkg = predictions.sparkSession.sparkContext._jvm.org.apache.spark.ml.classification
        java = pkg.LogisticRegressionSummaryImpl(predictions._jdf, probability_col or "probability", prediction_col,
                                                 label_col, "", weight_col or "")
        return c.LogisticRegressionSummary(java)
    except Exception as e:  # py4j or attribute errors: not in this version
        _unavailable("binary classification summary", e)
        return None


def set_log_level(sc: SparkContext, logger: str, level: str) -> None:
    """Set the JVM's log4j level of ``logger`` (and the loggers below it) to ``level``."""
    try:
        log4j = sc._jvm.org.apache.logging.log4j
        log4j.core.config.Configurator.setLevel(logger, log4j.Level.toLevel(level))
    except Exception as e:  # py4j or attribute errors: another logging backend
        _unavailable("log levels", e)


def active_context() -> SparkContext | None:
    """The active SparkContext of this process, if any (``SparkContext._active_spark_context``)."""
    return SparkContext._active_spark_context


def params_metadata(instance: Any, spark: Any, extra: dict) -> str:
    """Spark ML's JSON metadata of ``instance`` as ``DefaultParamsWriter.saveMetadata`` writes it, as text
    (``DefaultParamsWriter._get_metadata_to_save``), for writers that must write it themselves."""
    from pyspark.ml.util import DefaultParamsWriter

    return DefaultParamsWriter._get_metadata_to_save(instance, spark, extra)


def run_before_stop(sc: SparkContext, hook: Any) -> None:
    """Make ``sc.stop()`` (so ``SparkSession.stop`` and the session's context manager) call ``hook()`` first.

    Patches the context object once; a second call with another hook is ignored."""
    if getattr(sc, "_sparkgd_waits", False):
        return
    stop = sc.stop

    @functools.wraps(stop)
    def stop_after_hook() -> None:
        hook()
        stop()

    sc.stop = stop_after_hook  # type: ignore[method-assign]
    sc._sparkgd_waits = True  # type: ignore[attr-defined]


def reset_uid(instance: Any, uid: str) -> None:
    """Give a loaded Params ``instance`` the uid it was saved with (``Params._resetUid``, as Spark's readers do)."""
    instance._resetUid(uid)

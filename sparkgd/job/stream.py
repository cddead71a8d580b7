"""The streaming job's logic: train on the files of a directory as they arrive, exactly once per file.

Spark's file source picks each micro-batch's new files (``maxFilesPerTrigger`` at most) and records
them in the query's checkpoint before the batch runs; the batch reads those files with the batch
job's readers (:mod:`sparkgd.job.io`: the same formats, checks and file:line errors) and
:class:`sparkgd.ml.streaming.StreamingSGD` applies them to the model once. After each batch the
model is saved to ``<output>/model`` and a JSON line goes to ``<output>/metrics.jsonl`` and stdout.
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from sparkgd.engine import _spark
from sparkgd.job import io
from sparkgd.job.config import JobConfig, label_classes
from sparkgd.job.estimator import estimator_of
from sparkgd.job.run import frame_of

log = logging.getLogger("sparkgd.job")


class StreamJob:
    """The ``foreachBatch`` function of ``jobs/train_stream.py`` and what it keeps between batches."""

    def __init__(self, spark: SparkSession, cfg: JobConfig, state_dir: str, num_features: int | None) -> None:
        from sparkgd.ml.streaming import StreamingSGD

        self.spark, self.cfg, self.num_features = spark, cfg, num_features
        model_dir = os.path.join(cfg.output, "model") if cfg.output else None
        self.trainer = StreamingSGD(estimator_of(cfg), state_dir, model_dir)
        self.error: BaseException | None = None  # what stopped the query, for a one-line message

    def source(self, max_files: int) -> DataFrame:
        """The streaming DataFrame whose micro-batches name the new files."""
        reader = self.spark.readStream.option("maxFilesPerTrigger", max_files)
        if self.cfg.format == "parquet":
            try:
                schema = self.spark.read.parquet(self.cfg.input).schema
            except Exception as e:
                raise io.DataError(f"--input {self.cfg.input!r}: the Parquet schema is read from the files already "
                                   f"there: {str(e).splitlines()[0]}") from None
            return reader.schema(schema).parquet(self.cfg.input)
        return reader.text(self.cfg.input)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        try:
            self._apply(batch, batch_id)
        except BaseException as e:
            self.error = e
            raise

    def _apply(self, batch: DataFrame, batch_id: int) -> None:
        trainer = self.trainer
        if trainer.applied(batch_id):  # before reading its files; trainer.process would skip it too
            log.info("batch %d was applied already, skipping it", batch_id)
            return
        files = sorted({r[0] for r in batch.select(F.input_file_name()).distinct().collect()})
        if not files:
            return
        start = time.perf_counter()
        cfg = self.cfg
        rows, _, report = io.read(self.spark, cfg.format, files, label_col=cfg.label_col,
                                  feature_cols=cfg.feature_cols, on_bad_rows=cfg.on_bad_rows,
                                  classes=label_classes(cfg), num_features=self.num_features)
        trainer.process(frame_of(self.spark, rows, cfg), batch_id)
        line = {**trainer.metrics, "files": files, "skippedRows": report["skipped"],
                "seconds": round(time.perf_counter() - start, 3)}
        print(json.dumps(line), flush=True)
        if cfg.output:
            with open(os.path.join(cfg.output, "metrics.jsonl"), "a") as f:
                f.write(json.dumps(line) + "\n")

    def run(self, checkpoint_location: str, max_files: int, available_now: bool, timeout: float | None) -> Any:
        """Start the query and wait for it: until the files there are done (``available_now``), ``timeout``
        seconds, or for ever."""
        if self.cfg.output:
            os.makedirs(self.cfg.output, exist_ok=True)
        if not self.cfg.verbose:  # the job reports a failed batch in one line; Spark would log its whole trace
            _spark.set_log_level(self.spark.sparkContext, "org.apache.spark.sql.execution.streaming", "FATAL")
            logging.getLogger("py4j.clientserver").setLevel(logging.CRITICAL)  # py4j's copy of the same trace
        writer = self.source(max_files).writeStream.foreachBatch(self).option("checkpointLocation",
                                                                              checkpoint_location)
        query = (writer.trigger(availableNow=True) if available_now else writer).start()
        try:
            query.awaitTermination(timeout) if timeout else query.awaitTermination()
        finally:
            query.stop()
        return self.trainer.latestModel()

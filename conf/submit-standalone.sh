#!/usr/bin/env bash
# Submit the training job to a Spark standalone cluster (template: copy, then edit the values).
# Python apps run in client mode on standalone: the driver runs here, executors on the workers.
# Every worker needs Python 3.10+ with numpy and scipy at the same path as PYSPARK_PYTHON below.
set -euo pipefail
MASTER=${MASTER:-spark://master-host:7077}
make dist                                            # builds dist/sparkgd.zip for --py-files
export PYSPARK_PYTHON=${PYSPARK_PYTHON:-/usr/bin/python3}
spark-submit \
  --master "$MASTER" \
  --deploy-mode client \
  --py-files dist/sparkgd.zip \
  --conf spark.executor.memory=2g \
  --conf spark.executor.cores=2 \
  --conf spark.authenticate=true \
  --conf spark.python.unix.domain.socket.enabled=true \
  jobs/train_linear.py --config conf/train_linear.toml "$@"
# The shared secret goes in $SPARK_CONF_DIR/spark-defaults.conf (mode 600) as
#   spark.authenticate.secret <secret>
# never on the command line, where `ps` shows it.

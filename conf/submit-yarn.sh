#!/usr/bin/env bash
# Submit the training job to YARN (template). HADOOP_CONF_DIR must point at the cluster's config.
# Cluster mode runs the driver in the cluster; inputs and --output must then be paths the
# driver reaches there: any Hadoop URI (hdfs://, s3a://, ...; the model, metrics.json and loss.png
# go there through Hadoop's FileSystem), not a local path of this machine.
set -euo pipefail
: "${HADOOP_CONF_DIR:?set HADOOP_CONF_DIR to the cluster's Hadoop configuration}"
make dist
spark-submit \
  --master yarn \
  --deploy-mode client \
  --py-files dist/sparkgd.zip \
  --conf spark.yarn.appMasterEnv.PYSPARK_PYTHON=python3 \
  --conf spark.executorEnv.PYSPARK_PYTHON=python3 \
  --num-executors 4 --executor-cores 2 --executor-memory 4g \
  --conf spark.python.unix.domain.socket.enabled=true \
  jobs/train_linear.py --config conf/train_linear.toml "$@"
# Executors need numpy and scipy: install them on the nodes, or ship a packed environment with
#   --archives venv.tar.gz#venv  and  --conf spark.executorEnv.PYSPARK_PYTHON=./venv/bin/python

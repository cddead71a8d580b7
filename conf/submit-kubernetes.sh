#!/usr/bin/env bash
# Submit the training job to Kubernetes (template). The image must hold Spark 4.3, Python 3.10+,
# numpy, scipy and this repository (sparkgd installed, jobs/ and conf/ at /opt/sparkgd).
set -euo pipefail
K8S=${K8S:-k8s://https://kubernetes.default.svc:443}
IMAGE=${IMAGE:-registry.example.com/sparkgd:0.1.0}
spark-submit \
  --master "$K8S" \
  --deploy-mode cluster \
  --name sparkgd-train-linear \
  --conf spark.kubernetes.container.image="$IMAGE" \
  --conf spark.kubernetes.authenticate.driver.serviceAccountName=spark \
  --conf spark.executor.instances=4 \
  --conf spark.kubernetes.pyspark.pythonVersion=3 \
  --conf spark.python.unix.domain.socket.enabled=true \
  local:///opt/sparkgd/jobs/train_linear.py --config /opt/sparkgd/conf/train_linear.toml "$@"
# --output must be a volume mounted in the driver pod (spark.kubernetes.driver.volumes.*).

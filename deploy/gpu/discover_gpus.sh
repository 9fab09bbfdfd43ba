#!/usr/bin/env bash
# Spark GPU discovery script: prints the GPUs of this node as Spark's ResourceInformation JSON,
# e.g. {"name": "gpu", "addresses": ["0", "1"]}. Used for spark.worker.resource.gpu.discoveryScript
# and spark.executor.resource.gpu.discoveryScript. Needs nvidia-smi; prints no addresses without it.
set -euo pipefail
if command -v nvidia-smi >/dev/null 2>&1; then
  addresses=$(nvidia-smi --query-gpu=index --format=csv,noheader | sed 's/.*/"&"/' | paste -sd, -)
else
  addresses=""
fi
echo "{\"name\": \"gpu\", \"addresses\": [${addresses}]}"

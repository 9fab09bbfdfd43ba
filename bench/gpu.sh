#!/usr/bin/env bash
# GPU readiness on a host with a GPU and deepspark installed (`make install`): each Horovod
# rank on the GPU Spark assigned it, and the CNN's images/s through deepspark against plain
# tf-keras on the same GPU, with their ratio. About 3 minutes; stops after 5.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "bench/gpu.sh: no nvidia-smi on this host; it needs a GPU" >&2
  exit 2
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "bench/gpu.sh: no environment at $venv; run make install first (or set VENV)" >&2
  exit 2
fi
nvidia-smi -L
log=$(mktemp -t deepspark-gpu-XXXX.log)
if ! timeout 300 "$venv/bin/python" bench/gpu.py "$@" 2>"$log"; then
  echo "bench/gpu.sh failed; its log: $log" >&2
  tail -20 "$log" >&2
  exit 1
fi
echo "log: $log"

#!/usr/bin/env bash
# Submits one deepspark stage, or the whole pipeline, with spark-submit.
#
# Usage: deploy/submit.sh JOB [deepspark options...]
#   JOB: ingest, clean, validate, features, analytics, train, predict, report, generate,
#        or run_pipeline (every stage); the options go to the job (--env, --conf-dir, --run-id,
#        --set, analytics' --part, report's RUN_ID).
#
# Settings, from the environment:
#   MASTER                spark master: local[*] (default), spark://host:7077, yarn, k8s://https://host
#   DEPLOY_MODE           client (default) or cluster
#   DEEPSPARK_ENV_ARCHIVE a packed environment from deploy/package.sh: shipped with --archives,
#                         and the executors (and a cluster-mode driver) run its Python
#   DEEPSPARK_CONF_ARCHIVE dist/deepspark-conf.tar.gz from deploy/package.sh, shipped as ./conf
#                         (cluster deploy mode; pass --conf-dir conf to the job)
#   DEEPSPARK_PYTHON      the executors' Python without an archive (default: this environment's;
#                         it must exist at that path on every node, e.g. baked into an image)
#   DELTA_JARS_DIR        delta-spark's jars, shipped with --jars (default: the ones deploy/env/install.sh
#                         put into this environment, share/deepspark/jars beside spark-submit, from jars.lock)
#   DELTA_PACKAGES        instead, Maven coordinates for --packages (io.delta:delta-spark_2.13:4.0.1):
#                         the driver then fetches them from Maven Central at submit time
#   EXECUTOR_CORES (1), EXECUTOR_MEMORY (2g), TOTAL_EXECUTOR_CORES, NUM_EXECUTORS, DRIVER_MEMORY
#   SPARK_SUBMIT_EXTRA    more spark-submit options, split on spaces
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
job=${1:?usage: deploy/submit.sh JOB [deepspark options...]}
shift
application=$root/jobs/$job.py
[ -f "$application" ] || { echo "submit: no job '$job' (expected one of: $(cd "$root/jobs" && ls *.py | sed 's/\.py$//' | tr '\n' ' '))" >&2; exit 2; }

python=${DEEPSPARK_PYTHON:-$(command -v python3)}
options=(--master "${MASTER:-local[*]}" --deploy-mode "${DEPLOY_MODE:-client}"
  --name "deepspark-$job" --executor-cores "${EXECUTOR_CORES:-1}" --executor-memory "${EXECUTOR_MEMORY:-2g}"
  --conf spark.executorEnv.TF_USE_LEGACY_KERAS=1 --conf spark.executorEnv.TF_CPP_MIN_LOG_LEVEL=2)
[ -n "${TOTAL_EXECUTOR_CORES:-}" ] && options+=(--total-executor-cores "$TOTAL_EXECUTOR_CORES")
[ -n "${NUM_EXECUTORS:-}" ] && options+=(--num-executors "$NUM_EXECUTORS")
[ -n "${DRIVER_MEMORY:-}" ] && options+=(--driver-memory "$DRIVER_MEMORY")
# delta-spark (tables.engine auto or spark on a cluster): the installed jars, or Maven coordinates.
jars_dir=${DELTA_JARS_DIR:-$(dirname "$(command -v spark-submit)")/../share/deepspark/jars}
if [ -n "${DELTA_PACKAGES:-}" ]; then
  options+=(--packages "$DELTA_PACKAGES")
elif compgen -G "$jars_dir/*.jar" >/dev/null; then
  options+=(--jars "$(printf '%s\n' "$jars_dir"/*.jar | paste -sd,)")
else
  echo "submit: no delta-spark jars in $jars_dir; run deploy/env/install.sh, or set DELTA_JARS_DIR or DELTA_PACKAGES" >&2
  exit 2
fi
archives=()
if [ -n "${DEEPSPARK_ENV_ARCHIVE:-}" ]; then
  # Spark unpacks the archive as ./env in each executor's (and a cluster driver's) work folder.
  archives+=("$DEEPSPARK_ENV_ARCHIVE#env")
  options+=(--conf spark.pyspark.python=./env/bin/python)
  # The driver's Python otherwise defaults to spark.pyspark.python: in client mode it is local.
  if [ "${DEPLOY_MODE:-client}" = cluster ]; then driver_python=./env/bin/python; else driver_python=$python; fi
  options+=(--conf "spark.pyspark.driver.python=$driver_python")
else
  options+=(--conf "spark.pyspark.python=$python")
fi
[ -n "${DEEPSPARK_CONF_ARCHIVE:-}" ] && archives+=("$DEEPSPARK_CONF_ARCHIVE#conf")  # then --conf-dir conf
[ ${#archives[@]} -gt 0 ] && options+=(--archives "$(IFS=,; echo "${archives[*]}")")
# shellcheck disable=SC2206  # word splitting is the point
[ -n "${SPARK_SUBMIT_EXTRA:-}" ] && options+=($SPARK_SUBMIT_EXTRA)

export TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2
exec spark-submit "${options[@]}" "$application" "$@"

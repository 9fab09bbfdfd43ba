#!/usr/bin/env bash
# The whole test suite: the package's, on $TEST_WORKERS pytest-xdist workers (2 by default, one
# test module each, so a module's shared run stays in one process), and at the same time the
# Airflow DAG's, in Airflow's own environment. Measured on 2 cores (2026-12-05, this script
# alone): the package's suite 17.6 min beside Airflow's, Airflow's 6.4 min beside it (3 alone);
# the 2 cores 94% busy throughout (2,000 CPU-s), so only less CPU work makes the suite faster.
# 3 workers were slower (the longest module started last). tests/schedule.py gives the order:
# the longest modules first, but not the standalone cluster beside the training module, which
# once passed its 900 s timeout there.
#
# Usage: tests/run.sh [pytest options for both suites, e.g. -m "not slow"]
set -uo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv} airflow_venv=${AIRFLOW_VENV:-.airflow-venv}
airflow_log=$(mktemp) jvm_archive=$(mktemp -d)
trap 'rm -rf "$airflow_log" "$jvm_archive"' EXIT
# Every JVM the tests start (the session's, the CLI's, spark-submit's, Airflow tasks', the
# standalone daemons', and their executors through tests/small_conf.py) takes these options; a
# caller's non-empty SPARK_SUBMIT_OPTS or SPARK_DAEMON_JAVA_OPTS wins.
# - C1 only: the JVMs are short-lived and touch tiny tables. Measured as busy CPU-s
#   (/proc/stat): a cold iris `deepspark run --only ingest,clean,validate,features` 58 with C2,
#   35-42 with C1 (same wall alone); a warm session over tests/stages/test_bad_input.py 229 and
#   191 (wall +7% alone). C1 alone shrinks the code cache to 48 MiB, and a whole run's JVM
#   compiles more: 57 MiB at its peak (-XX:+PrintCodeCache, the CLI run of
#   tests/test_pipeline.py); once in CI its analytics failed with "Out of space in CodeCache for
#   adapters". So the JVMs keep the 240 MiB that tiered compilation reserves.
# - The serial collector: with every core busy, parallel GC threads only take turns. A cold
#   `deepspark run --only ingest,clean,validate,features` on the sample shop (2026-12-05, a
#   slower machine than the figures above): 65.2, 66.9 busy CPU-s with G1, 62.0, 63.6 serial.
lean_jvm="-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m -XX:+UseSerialGC"
# - One class-data archive (AppCDS), written by tests/jvm_archive.py while the suites start: a
#   JVM maps Spark's and delta-spark's classes from it instead of loading them. Busy CPU-s, a
#   cold `deepspark run --only ingest,clean,validate,features` on the sample shop: 23.6 without,
#   20.5 with it; a standalone cluster's executor-loss test 75 and 65; writing it costs 22. A JVM
#   that starts before the archive is in place (renamed there whole: a partial one crashes the
#   JVM) or whose class path differs runs as before; -Xlog keeps its notes off the tests' output.
#   JVM_ARCHIVE=no leaves it out: `make test-fast` starts too few JVMs to gain (2 min 33 s with
#   it, 2 min 20 s without), the whole suite gains (17.6 min with it, 18.2 in the CI before).
sharing=""
if [ "${JVM_ARCHIVE:-yes}" != no ] && [ -z "${SPARK_SUBMIT_OPTS:-}" ]; then
  sharing="-XX:SharedArchiveFile=$jvm_archive/spark.jsa -Xlog:cds=off -Xlog:cds+dynamic=off"
  SPARK_SUBMIT_OPTS="$lean_jvm -XX:ArchiveClassesAtExit=$jvm_archive/writing.jsa" \
    "$venv/bin/python" tests/jvm_archive.py >"$jvm_archive/log" 2>&1 \
    && mv "$jvm_archive/writing.jsa" "$jvm_archive/spark.jsa" &
fi
export SPARK_SUBMIT_OPTS="${SPARK_SUBMIT_OPTS:-$lean_jvm $sharing}"
export SPARK_DAEMON_JAVA_OPTS="${SPARK_DAEMON_JAVA_OPTS:-$lean_jvm $sharing}"

"$airflow_venv/bin/pytest" tests/airflow --confcutdir tests/airflow "$@" >"$airflow_log" 2>&1 &
airflow=$!
"$venv/bin/pytest" -n "${TEST_WORKERS:-2}" --dist loadfile --durations=40 "$@"
package=$?
wait "$airflow"
dag=$?
wait  # the archive's writer, in a run shorter than it
echo "--- tests/airflow (Airflow's environment) ---"
cat "$airflow_log"
exit $((package || dag))

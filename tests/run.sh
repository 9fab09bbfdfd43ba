#!/usr/bin/env bash
# The whole test suite: the package's, on $TEST_WORKERS pytest-xdist workers (2 by default, one
# test module each, so a module's shared run stays in one process), and at the same time the
# Airflow DAG's, in Airflow's own environment. Measured on 2 cores (CI of 2026-12-05): the
# package's suite 18.5 min beside Airflow's, Airflow's 7.4 min beside it (3 alone). Alone, one
# after another, the package's tests keep 1.3 cores busy on average, 1,870 CPU-s in all, and
# Airflow's 222 CPU-s; side by side the 2 cores are busy throughout, so only less CPU work makes
# the suite faster. 3 workers were slower (the longest module started last). tests/schedule.py gives the order:
# the longest modules first, but not the standalone cluster beside the training module, which
# once passed its 900 s timeout there.
#
# Usage: tests/run.sh [pytest options for both suites, e.g. -m "not slow"]
set -uo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv} airflow_venv=${AIRFLOW_VENV:-.airflow-venv}
# Every JVM the tests start (the session's, the CLI's, spark-submit's, Airflow tasks', the
# standalone daemons', and their executors through tests/small_conf.py) compiles with C1 only: they are short-lived and touch tiny tables, and on
# 2 cores the suite is CPU-bound, so CPU is wall time. Measured as busy CPU-s (/proc/stat): a
# cold iris `deepspark run --only ingest,clean,validate,features` 58 with C2, 35-42 with C1
# (same wall alone); a warm session over tests/stages/test_bad_input.py 229 and 191 (wall +7%
# alone). C1 alone shrinks the code cache to 48 MiB, and a whole run's JVM compiles more: 57 MiB
# at its peak (-XX:+PrintCodeCache, the CLI run of tests/test_pipeline.py); once in CI its
# analytics failed with "Out of space in CodeCache for adapters". So the JVMs keep the 240 MiB
# that tiered compilation reserves.
# A caller's non-empty SPARK_SUBMIT_OPTS or SPARK_DAEMON_JAVA_OPTS wins.
c1_only="-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m"
export SPARK_SUBMIT_OPTS="${SPARK_SUBMIT_OPTS:-$c1_only}" SPARK_DAEMON_JAVA_OPTS="${SPARK_DAEMON_JAVA_OPTS:-$c1_only}"
airflow_log=$(mktemp)
trap 'rm -f "$airflow_log"' EXIT

"$airflow_venv/bin/pytest" tests/airflow --confcutdir tests/airflow "$@" >"$airflow_log" 2>&1 &
airflow=$!
"$venv/bin/pytest" -n "${TEST_WORKERS:-2}" --dist loadfile --durations=40 "$@"
package=$?
wait "$airflow"
dag=$?
echo "--- tests/airflow (Airflow's environment) ---"
cat "$airflow_log"
exit $((package || dag))

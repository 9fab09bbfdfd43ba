#!/usr/bin/env bash
# Creates (or refreshes) Airflow's own virtual environment for the deepspark DAG, pinned by
# deploy/airflow/constraints.txt. Kept apart from the deepspark environment: the apache-spark
# provider installs pyspark-client, which overwrites pyspark's files. The DAG's tasks call the
# deepspark environment's spark-submit (the DAG param `venv`).
#
# Idempotent: returns at once when requirements.txt, constraints.txt and this script are
# unchanged since the last successful run.
#
# Usage: deploy/airflow/install.sh                      (venv in .airflow-venv, or $AIRFLOW_VENV)
#        deploy/airflow/install.sh --refresh-constraints (re-resolve and re-freeze constraints.txt)
set -euo pipefail
shopt -s inherit_errexit

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=$(realpath -m "${AIRFLOW_VENV:-$root/.airflow-venv}")
python=${PYTHON:-python3}
stamp_file=$venv/.deepspark-airflow-stamp

say() { printf '[airflow-install] %s\n' "$*" >&2; }

pip_() {
  "$venv/bin/pip" --disable-pip-version-check "$@" 2> >(grep -v "^WARNING: Location 'file:" >&2)
}

stamp=$(cat "$here/requirements.txt" "$here/constraints.txt" "$0" | sha256sum | cut -c1-16)
if [ "${1:-}" != --refresh-constraints ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp" ]; then
  exit 0
fi
[ -x "$venv/bin/python" ] || { say "creating $venv"; "$python" -m venv "$venv"; }
# A new venv's own pip and setuptools carry known advisories (deploy/env/audit.py).
pip_ install --quiet "pip==25.3" "setuptools==80.9.0"
if [ "${1:-}" = --refresh-constraints ]; then
  pip_ install --quiet -r "$here/requirements.txt"
  { sed -n '1,2p' "$here/constraints.txt"; pip_ freeze --exclude-editable; } >"$here/constraints.txt.new"
  mv "$here/constraints.txt.new" "$here/constraints.txt"
  say "re-froze $here/constraints.txt"
  stamp=$(cat "$here/requirements.txt" "$here/constraints.txt" "$0" | sha256sum | cut -c1-16)
else
  say "installing Airflow into $venv (pinned by constraints.txt)"
  pip_ install --quiet -r "$here/requirements.txt" -c "$here/constraints.txt"
fi
"$venv/bin/python" -c 'import airflow.providers.apache.spark' ||
  { say "error: the apache-spark provider does not import in $venv"; exit 1; }
echo "$stamp" >"$stamp_file"
say "ready: $venv ($("$venv/bin/airflow" version 2>/dev/null || echo '?'))"

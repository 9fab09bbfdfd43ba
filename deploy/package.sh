#!/usr/bin/env bash
# Builds what a cluster needs, into dist/ (or $DIST):
#   deepspark-<version>-py3-none-any.whl  the package (pip install it into an image, or ship it)
#   deepspark-conf.tar.gz                 conf/base and conf/cluster (never secrets): ship with
#                                         --archives ...#conf and pass --conf-dir conf
#   jars/                                 delta-spark's jars (deploy/env/jars.lock): --jars, or
#                                         DELTA_JARS_DIR for deploy/submit.sh
#   deepspark-env.tar.gz                  with --env: a packed virtual environment (venv-pack)
#                                         holding the wheel, the pinned stack and the patched
#                                         Horovod; ship with --archives ...#env (deploy/submit.sh)
#
# Usage: deploy/package.sh [--env]
# The packed environment is built in build/pack-venv by deploy/env/install.sh from the wheel.
# venv-pack does not pack the interpreter: its bin/python links to this machine's Python 3.11,
# which must exist at the same path on the nodes (or pass --python-prefix to venv-pack). Build
# it on the OS and CPU architecture the nodes run; a Docker image is the alternative (deploy/k8s).
set -euo pipefail
shopt -s inherit_errexit

root=$(cd "$(dirname "$0")/.." && pwd)
dist=$(realpath -m "${DIST:-$root/dist}")
venv=${DEEPSPARK_VENV:-$root/.venv}
say() { printf '[package] %s\n' "$*" >&2; }

mkdir -p "$dist"
rm -f "$dist"/deepspark-*.whl
# The build backend (setuptools < 70) is already in the project's environment.
"$venv/bin/pip" wheel --quiet --disable-pip-version-check --no-deps --no-build-isolation \
  -w "$dist" "$root" 2> >(grep -v "^WARNING: Location 'file:" >&2)
wheel=$(compgen -G "$dist/deepspark-*.whl")
say "wheel: $wheel"

tar -czf "$dist/deepspark-conf.tar.gz" -C "$root/conf" --exclude secrets.yaml base cluster
say "conf: $dist/deepspark-conf.tar.gz"

rm -rf "$dist/jars" && mkdir -p "$dist/jars"
cp "$venv"/share/deepspark/jars/*.jar "$dist/jars/"
say "jars: $dist/jars ($(ls "$dist/jars" | paste -sd' '))"

if [ "${1:-}" = --env ]; then
  pack=$root/build/pack-venv
  rm -rf "$pack"
  DEEPSPARK_VENV=$pack DEEPSPARK_WHEEL=$wheel "$root/deploy/env/install.sh"
  "$pack/bin/pip" install --quiet --disable-pip-version-check "venv-pack==0.2.0" \
    2> >(grep -v "^WARNING: Location 'file:" >&2)
  rm -f "$dist/deepspark-env.tar.gz"
  "$pack/bin/venv-pack" -p "$pack" -o "$dist/deepspark-env.tar.gz" >&2
  say "environment: $dist/deepspark-env.tar.gz ($(du -h "$dist/deepspark-env.tar.gz" | cut -f1))"
fi

#!/usr/bin/env bash
# Creates (or refreshes) the project's virtual environment with the whole pinned stack:
# pyspark, Delta (delta-spark with its jars from Maven Central + deltalake), Great Expectations, Petastorm, TensorFlow with
# tf-keras, and Horovod 0.28.1 built from its sdist with Gloo and deploy/env/horovod-0.28.1.patch.
#
# Idempotent: when the lock file, pyproject.toml and the patch are unchanged since the last
# successful run, it returns at once. The patched Horovod wheel is cached under
# $DEEPSPARK_CACHE (default ~/.cache/deepspark) keyed by the hash of the patch, the
# TensorFlow version and the Python version, so a fresh venv reuses it.
#
# Usage: deploy/env/install.sh            (venv in .venv, or $DEEPSPARK_VENV; $DEEPSPARK_WHEEL: see main)
set -euo pipefail
shopt -s inherit_errexit  # a failure inside $(...) stops the script too

root=$(cd "$(dirname "$0")/../.." && pwd)
venv=$(realpath -m "${DEEPSPARK_VENV:-$root/.venv}")
cache=${DEEPSPARK_CACHE:-$HOME/.cache/deepspark}
python=${PYTHON:-python3}
lock=$root/deploy/env/requirements.lock
jars_lock=$root/deploy/env/jars.lock
patch_file=$root/deploy/env/horovod-0.28.1.patch
horovod_version=0.28.1
horovod_sdist_sha256=92a43f5a94c43907a56805bad15f19700c62ffc83b7ca483f9e104e229f67ef0

pip_() {
  # This machine's pip config names local find-links folders that may be absent; drop that noise.
  "$venv/bin/pip" --disable-pip-version-check "$@" 2> >(grep -v "^WARNING: Location 'file:" >&2)
}

say() { printf '[install] %s\n' "$*" >&2; }
die() { printf '[install] error: %s\n' "$*" >&2; exit 1; }

check_prerequisites() {
  command -v "$python" >/dev/null || die "no '$python' found: Python 3.11 is required (set PYTHON=...)."
  "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' ||
    die "Python 3.11 is required (the TensorFlow/Horovod wheels are pinned for it); '$python' is $("$python" -V 2>&1)."
  local java=${JAVA_HOME:+$JAVA_HOME/bin/}java java_major
  command -v "$java" >/dev/null ||
    die "Java 17 is required by Spark and none was found: install it (Debian: apt-get install openjdk-17-jre-headless) or put it on PATH / set JAVA_HOME."
  java_major=$("$java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
  [ "$java_major" = 17 ] ||
    die "Java 17 is required by Spark 4.0; '$java' is version ${java_major:-unknown}. Set JAVA_HOME or PATH to a Java 17."
  command -v g++ >/dev/null || command -v c++ >/dev/null ||
    die "a C++ compiler is required to build Horovod: install one (Debian: apt-get install g++)."
  command -v cmake >/dev/null || die "cmake is required to build Horovod: install it (Debian: apt-get install cmake)."
  command -v patch >/dev/null || die "'patch' is required to patch Horovod: install it (Debian: apt-get install patch)."
}

stamp_of_inputs() {
  cat "$lock" "$jars_lock" "$root/pyproject.toml" "$patch_file" "$0" | sha256sum | cut -c1-16
}

build_horovod_wheel() {
  # Prints the path of the patched wheel, building it only when the cache lacks it.
  local tf_version key dir work
  tf_version=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("tensorflow"))')
  key=$(cat "$patch_file" <(echo "tf=$tf_version py=$("$venv/bin/python" -V)") | sha256sum | cut -c1-16)
  dir=$cache/wheels/horovod-$horovod_version-$key
  if compgen -G "$dir/horovod-*.whl" >/dev/null; then
    say "reusing cached Horovod wheel $dir"
  else
    say "building Horovod $horovod_version with Gloo against TensorFlow $tf_version (a few minutes)"
    work=$(mktemp -d)
    pip_ download --quiet --no-deps --no-binary :all: "horovod==$horovod_version" -d "$work"
    echo "$horovod_sdist_sha256  $work/horovod-$horovod_version.tar.gz" | sha256sum --check --quiet ||
      die "the horovod sdist's sha256 differs from the pinned one"
    tar xzf "$work/horovod-$horovod_version.tar.gz" -C "$work"
    (cd "$work/horovod-$horovod_version" && patch --quiet -p1 <"$patch_file")
    mkdir -p "$dir.tmp"
    (cd "$work/horovod-$horovod_version" &&
      HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
      HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 HOROVOD_CPU_OPERATIONS=gloo \
      MAKEFLAGS="-j$(nproc)" \
      pip_ wheel --quiet --no-build-isolation --no-deps -w "$dir.tmp" . >&2)
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
    rm -rf "$work"
  fi
  compgen -G "$dir/horovod-*.whl" || die "no Horovod wheel in $dir after the build"
}

install_jars() {
  # Each jar of deploy/env/jars.lock into $venv/share/deepspark/jars, fetched from Maven Central
  # once (mvn dependency:copy into $cache/jars) and checked against its pinned sha256.
  local into=$venv/share/deepspark/jars coordinate sha256 artifact version jar
  rm -rf "$into" && mkdir -p "$into" "$cache/jars"
  while read -r coordinate sha256; do
    case $coordinate in '' | '#'*) continue ;; esac
    IFS=: read -r _ artifact version <<<"$coordinate"
    jar=$cache/jars/$artifact-$version.jar
    if ! echo "$sha256  $jar" | sha256sum --check --quiet >/dev/null 2>&1; then
      command -v mvn >/dev/null ||
        die "Maven is required once to fetch $coordinate (Debian: apt-get install maven), or put the jar in $cache/jars."
      say "fetching $coordinate from Maven Central"
      mvn -q -B dependency:copy "-Dartifact=$coordinate" "-DoutputDirectory=$cache/jars" >"$cache/jars/mvn.log" 2>&1 ||
        die "mvn could not fetch $coordinate (is Maven Central reachable?): see $cache/jars/mvn.log"
      echo "$sha256  $jar" | sha256sum --check --quiet ||
        die "$jar: its sha256 differs from the one pinned in deploy/env/jars.lock"
    fi
    cp "$jar" "$into/"
  done <"$jars_lock"
}

main() {
  local stamp
  stamp=$(stamp_of_inputs)
  if [ -f "$venv/.deepspark-installed" ] && [ "$(cat "$venv/.deepspark-installed")" = "$stamp" ]; then
    say "environment $venv is up to date"
    return 0
  fi
  check_prerequisites
  [ -x "$venv/bin/python" ] || { say "creating $venv"; "$python" -m venv "$venv"; }
  pip_ install --quiet "pip==24.3.1" "setuptools==69.5.1" "wheel==0.48.0"
  say "installing the pinned stack from deploy/env/requirements.lock"
  # Everything but horovod first: horovod's build needs TensorFlow installed (--no-build-isolation).
  # DEEPSPARK_WHEEL (deploy/package.sh): install that wheel, for a packed cluster environment;
  # otherwise the checkout, editable, with the test tools.
  local project=("-e" "$root[dev]") with_horovod=("-e" "$root[dev,train]")
  if [ -n "${DEEPSPARK_WHEEL:-}" ]; then
    project=("$DEEPSPARK_WHEEL") with_horovod=("$DEEPSPARK_WHEEL[train]")
  fi
  pip_ install --quiet -c "$lock" "${project[@]}"
  # Forced: a wheel of an earlier patch has the same version, and pip would keep it.
  pip_ install --quiet --no-deps --force-reinstall "$(build_horovod_wheel)"
  pip_ install --quiet -c "$lock" "${with_horovod[@]}"
  install_jars
  TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=3 "$venv/bin/python" 2>/dev/null -c \
    'import horovod.tensorflow.keras as hvd; assert hvd.gloo_built(), "horovod built without Gloo"' ||
    die "the installed horovod does not import with TensorFlow"
  echo "$stamp" >"$venv/.deepspark-installed"
  say "done: $venv"
}

main "$@"

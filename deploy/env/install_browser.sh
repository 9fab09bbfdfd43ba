#!/usr/bin/env bash
# Makes sure headless Chromium is there for the report's render test: Debian's chromium
# package (apt-get, as root or through sudo). Returns at once when chromium is on PATH.
set -euo pipefail
command -v chromium >/dev/null && exit 0
say() { printf '[install] %s\n' "$*" >&2; }
if [ "$(id -u)" = 0 ]; then sudo=(); elif command -v sudo >/dev/null; then sudo=(sudo); else
  say "error: Chromium is missing and this user cannot install it: run 'apt-get install chromium' as root."
  exit 1
fi
command -v apt-get >/dev/null ||
  { say "error: Chromium is missing and there is no apt-get: install a chromium binary on PATH."; exit 1; }
say "installing Debian's chromium package (the report render test)"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends chromium >/dev/null
command -v chromium >/dev/null || { say "error: chromium is still not on PATH"; exit 1; }

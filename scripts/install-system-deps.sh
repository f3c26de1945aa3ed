#!/usr/bin/env bash
# Install the Debian packages that the test suite starts for real, when missing.
# Idempotent and quiet when everything is present.
set -euo pipefail

need=()
if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  need+=(postgresql)
fi
# Redis: the gateway's shared cache (and, later, limits) across workers.
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)

# want COMMAND PACKAGE: install PACKAGE when COMMAND is missing.
want() { command -v "$1" >/dev/null 2>&1 || need+=("$2"); }

# The dashboard's browser tests drive Debian's Chromium through Playwright.
want chromium chromium

# `install-system-deps.sh bench`: also the load generators of bench/gateway_*.py.
if [ "${1:-}" = "bench" ]; then
  want wrk wrk
  want h2load nghttp2-client
fi

[ ${#need[@]} -eq 0 ] && exit 0

echo "installing Debian packages: ${need[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "error: need root (or sudo) to install: ${need[*]}" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null

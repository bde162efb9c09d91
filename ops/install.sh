#!/usr/bin/env bash
# Installs what Kernel needs on a fresh Debian-like machine, idempotently:
# system packages (Java, Maven, PostgreSQL, promtool, SoftHSM2) when missing, and the
# Python virtualenv in .venv. Kafka itself is fetched from Maven Central by
# `kernel up` (or the test suite) into the state directory's cache.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v java >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need+=(maven)
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
# SoftHSM2: the PKCS#11 token the HSM signer is tested against (issue 11.5).
if ! command -v softhsm2-util >/dev/null 2>&1 || [ ! -e /usr/lib/softhsm/libsofthsm2.so ]; then
  need+=(softhsm2)
fi
if ((${#need[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing system packages: ${need[*]}" >&2
    echo "install them with: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  echo "installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # Debian starts a cluster and a Prometheus service on install; Kernel runs its own.
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    for c in $(ls /etc/postgresql 2>/dev/null); do pg_ctlcluster "$c" main stop 2>/dev/null || true; done
  fi
  pkill -x prometheus 2>/dev/null || true
fi

PY=${PYTHON:-python3}
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  # A .venv left half-made by an interrupted install (no pip) is made again.
  if [ -x .venv/bin/python ] && ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
    rm -rf .venv
  fi
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  touch "$stamp"
fi

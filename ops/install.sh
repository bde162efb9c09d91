#!/usr/bin/env bash
# Installs what Kernel needs on a fresh Debian-like machine, idempotently:
# system packages (Java, Maven, PostgreSQL, promtool, SoftHSM2) when missing, and the
# Python virtualenv in .venv. Kafka itself is fetched from Maven Central by
# `kernel up` (or the test suite) into the state directory's cache.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v java >/dev/null 2>&1 && command -v keytool >/dev/null 2>&1 \
  || need+=(openjdk-17-jre-headless)  # keytool: the secured broker's TLS (ADR 0015)
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

# Jaeger (all-in-one: OTLP in, its query API out), the real OpenTelemetry collector
# that the tracing test exports to (tests/integration/audit/test_tracing_export.py).
# Built from the Go module proxy in a throwaway module, into the user's cache outside
# the repository, once: skipped when the binary is there. From nothing it takes about
# 10 minutes on this project's 2 cores, nearly all of it compiling (measured: 9m14s with
# empty Go caches; 10m17s with the modules already downloaded, on a busier machine), and
# leaves ~3 GB of Go caches, with which a rebuild takes about 30 seconds.
JAEGER_VERSION=1.76.0  # keep in step with the test's JAEGER_VERSION
jaeger_dir="${XDG_CACHE_HOME:-$HOME/.cache}/kernel/jaeger-$JAEGER_VERSION"
if [ ! -x "$jaeger_dir/jaeger" ]; then
  go_bin="$(command -v go || true)"
  if [ -z "$go_bin" ] && [ -x /usr/local/go/bin/go ]; then
    go_bin=/usr/local/go/bin/go  # the official tarball's place, often not on PATH
  fi
  if [ -z "$go_bin" ]; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "Go is needed to build Jaeger: sudo apt-get install -y golang-go" >&2
      exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go >/dev/null
    go_bin="$(command -v go)"
  fi
  echo "building Jaeger $JAEGER_VERSION into $jaeger_dir (about 10 minutes the first time)"
  mkdir -p "$jaeger_dir"
  work="$(mktemp -d)"
  (
    cd "$work"
    "$go_bin" mod init kernel-jaeger-build >/dev/null 2>&1
    # Jaeger's go.mod pins sarama by a replace, which holds only in a main module: repeat it.
    "$go_bin" mod edit -replace=github.com/Shopify/sarama=github.com/Shopify/sarama@v1.33.0
    "$go_bin" get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@v$JAEGER_VERSION" \
      >get.log 2>&1 || { cat get.log >&2; exit 1; }  # a line per module downloaded
    "$go_bin" build -ldflags="-s -w" -o "$jaeger_dir/jaeger.partial" \
      github.com/jaegertracing/jaeger/cmd/jaeger
  )
  rm -rf "$work"
  mv "$jaeger_dir/jaeger.partial" "$jaeger_dir/jaeger"  # whole, or not there at all
fi

#!/usr/bin/env bash
# Install everything the tests need, then run lint, type checks, the whole test suite and
# assistant-stream 0.0.36's own test suite against this package (scripts/upstream_tests.py).
# Works on a fresh machine with Python 3.11, node and apt; fails loudly (non-zero) on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'

# --- system packages (apt) -------------------------------------------------
apt_packages=(redis-server chromium nginx)
if [ ${#apt_packages[@]} -gt 0 ]; then
    missing=()
    for pkg in "${apt_packages[@]}"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
fi

# --- npm clients for the conformance tests -----------------------------------
if [ -f tests/conformance/package.json ]; then
    (cd tests/conformance && npm ci --no-audit --no-fund --loglevel=error)
fi

# --- the example apps, built from their lockfiles (their browser tests serve dist/) ----
for example in examples/*/; do
    if [ -f "$example/package.json" ]; then
        (cd "$example" && npm ci --no-audit --no-fund --loglevel=error && npm run build -- --logLevel warn)
    fi
done

# --- checks -------------------------------------------------------------------
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy

set +e
# The suite takes about 3 minutes: a hung test fails the run here instead of eating CI's 90
# (pytest's faulthandler_timeout has printed its stack by then).
timeout --kill-after=30 1200 .venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: failing" >&2
    exit 1
fi
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
    echo "pytest ran for more than 20 minutes (a test hangs): failing" >&2
    exit 1
fi
if [ "$status" -ne 0 ]; then
    exit "$status"
fi

# --- the drop-in promise: assistant-stream 0.0.36's own tests ------------------
# Fails on any of them that fails here and is not in docs/compatibility.md's table.
.venv/bin/python scripts/upstream_tests.py

#!/usr/bin/env bash
# Run every benchmark and write benchmarks/RESULTS.md and benchmarks/ratios.png.
# Installs the `bench` extra (assistant-stream 0.0.36, servers, matplotlib, pyinstrument) into .venv first.
# Usage: bash benchmarks/run.sh [--quick] [--no-http] [--no-profile] [--only text-tight,aclose] [--report-only]
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[bench]'
exec .venv/bin/python -m benchmarks "$@"

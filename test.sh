#!/usr/bin/env bash
# The test command: set up what the tests need (idempotent), then lint and run the test suite.
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh --minimal
.venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
PRUNEKIT_REQUIRE_BUILTIN=1 .venv/bin/python -m pytest "$@"

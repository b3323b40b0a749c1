#!/usr/bin/env bash
# Runs the test suite in the project venv (call after scripts/install.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${T2L_VENV:-.venv}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# vLLM imports triton, whose nanobind bindings print a page of "leaked ..." lines
# at interpreter exit; drop them so pytest's summary stays the closing line.
"$VENV/bin/python" -m pytest -q -rs --durations=15 tests "$@" 2>&1 |
  grep -v -E '^(nanobind: |See https://nanobind| - leaked | - \.\.\. skipped remainder)'

#!/usr/bin/env bash
# Runs the test suite in the project venv (call after scripts/install.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${T2L_VENV:-.venv}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec "$VENV/bin/python" -m pytest -q -rs --durations=15 tests "$@"

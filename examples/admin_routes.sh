#!/usr/bin/env bash
# A walk through the adapter admin routes with curl.
#   .venv/bin/t2l-vllm serve      # in another terminal
#   bash examples/admin_routes.sh [http://127.0.0.1:8000]
# With --api-key on the server, export OPENAI_API_KEY: these routes are guarded like /v1/*.
set -euo pipefail
URL="${1:-http://127.0.0.1:8000}"
AUTH=(-H "Authorization: Bearer ${OPENAI_API_KEY:-none}")
json() { python3 -m json.tool; }

echo "== create an adapter from a description (no text generated)"
ID=$(curl -sf "${AUTH[@]}" -X POST "$URL/v1/t2l/adapters" -H 'content-type: application/json' \
  -d '{"task_description": "Answer with the plural form of the given noun."}' | tee /dev/stderr |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo

echo "== list adapters"
curl -sf "${AUTH[@]}" "$URL/v1/t2l/adapters" | json

echo "== use it by id, like any LoRA model name"
curl -sf "${AUTH[@]}" "$URL/v1/completions" -H 'content-type: application/json' \
  -d "{\"model\": \"$ID\", \"prompt\": \"mouse ->\", \"max_tokens\": 8, \"temperature\": 0}" | json

echo "== show one"
curl -sf "${AUTH[@]}" "$URL/v1/t2l/adapters/$ID" | json

echo "== download it as a PEFT folder archive"
TMP=$(mktemp -d)
curl -sf "${AUTH[@]}" -o "$TMP/$ID.tar.gz" "$URL/v1/t2l/adapters/$ID/download"
tar -xzf "$TMP/$ID.tar.gz" -C "$TMP" && ls -l "$TMP/$ID"

echo "== delete it (unloaded from vLLM, files removed)"
curl -sf "${AUTH[@]}" -X DELETE "$URL/v1/t2l/adapters/$ID" | json
echo "== now unknown: 404"
curl -s -o /dev/null -w "%{http_code}\n" "${AUTH[@]}" "$URL/v1/t2l/adapters/$ID"

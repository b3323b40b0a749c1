#!/usr/bin/env bash
# Starts a throwaway Prometheus that scrapes a running t2l-vllm server (and loads the alert
# rules), waits until the t2l_* series arrive, and shows them through Prometheus' HTTP API.
#
#   .venv/bin/t2l-vllm serve &                        # or any running server
#   bash examples/prometheus_scrape.sh [http://127.0.0.1:8000]
#
# Needs the `prometheus` binary (Debian: apt-get install prometheus). Env: PROMETHEUS (binary),
# PROM_PORT (default 9099), KEEP=1 to leave Prometheus running (its URL is printed), TIMEOUT_S (60).
# /metrics answers without the API key, so no key is needed here.
set -euo pipefail

SERVER="${1:-http://127.0.0.1:8000}"
SERVER="${SERVER%/}"
PROMETHEUS="${PROMETHEUS:-prometheus}"
PROM_PORT="${PROM_PORT:-9099}"
TIMEOUT_S="${TIMEOUT_S:-60}"
HERE="$(cd "$(dirname "$0")" && pwd)"
PY="${PYTHON:-python3}"

command -v "$PROMETHEUS" >/dev/null || { echo "no '$PROMETHEUS' binary: apt-get install prometheus" >&2; exit 2; }
curl -fsS "$SERVER/metrics" -o /dev/null || { echo "no /metrics at $SERVER: start a server first" >&2; exit 2; }

work="$(mktemp -d -t t2l-prometheus-XXXXXX)"
host="${SERVER#*://}"; host="${host%%/*}"
scheme="${SERVER%%://*}"
cp "$HERE/prometheus_alerts.yml" "$work/"
cat > "$work/prometheus.yml" <<YAML
global: {scrape_interval: 2s, evaluation_interval: 2s}
rule_files: [prometheus_alerts.yml]
scrape_configs:
  - job_name: t2l-vllm
    scheme: $scheme
    metrics_path: /metrics
    static_configs: [{targets: ["$host"]}]
YAML

"$PROMETHEUS" --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$work/prometheus.log" 2>&1 &
prom_pid=$!
cleanup() {
  if [ "${KEEP:-0}" != 1 ]; then kill "$prom_pid" 2>/dev/null || true; wait "$prom_pid" 2>/dev/null || true; rm -rf "$work"; fi
}
trap cleanup EXIT
API="http://127.0.0.1:$PROM_PORT/api/v1"

query() { curl -fsS --get "$API/query" --data-urlencode "query=$1"; }

# Wait on conditions: Prometheus ready, then its first scrape of the server holding t2l series.
deadline=$((SECONDS + TIMEOUT_S))
until curl -fsS "http://127.0.0.1:$PROM_PORT/-/ready" >/dev/null 2>&1; do
  kill -0 "$prom_pid" 2>/dev/null || { echo "prometheus exited:" >&2; cat "$work/prometheus.log" >&2; exit 1; }
  [ $SECONDS -lt $deadline ] || { echo "prometheus not ready after ${TIMEOUT_S}s" >&2; exit 1; }
  sleep 0.5
done
until [ "$(query 'count({__name__=~"t2l_.+"})' | "$PY" -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)')" != 0 ]; do
  [ $SECONDS -lt $deadline ] || { echo "no t2l_* series scraped from $SERVER after ${TIMEOUT_S}s" >&2; exit 1; }
  sleep 0.5
done

echo "Prometheus at http://127.0.0.1:$PROM_PORT scrapes $SERVER (target health below)"
curl -fsS "$API/targets" | "$PY" -c '
import json, sys
for t in json.load(sys.stdin)["data"]["activeTargets"]:
    print("  target", t["scrapeUrl"] + ":", t["health"])'
echo "t2l series (count by metric name), from $API/query:"
query 'count by (__name__) ({__name__=~"t2l_.+"})' | "$PY" -c '
import json, sys
for r in sorted(json.load(sys.stdin)["data"]["result"], key=lambda r: r["metric"]["__name__"]):
    print("  %-45s %s series" % (r["metric"]["__name__"], r["value"][1]))'
echo "a few values:"
for q in 'sum(t2l_adapters_resident)' 'sum(t2l_adapters_on_disk)' 'sum by (result) (t2l_adapter_cache_total)' \
         'sum(vllm:generation_tokens_total)'; do
  query "$q" | "$PY" -c '
import json, sys
q = sys.argv[1]
for r in json.load(sys.stdin)["data"]["result"]:
    labels = ",".join(f"{k}={v}" for k, v in r["metric"].items())
    print("  %-45s %-15s %s" % (q, labels, r["value"][1]))' "$q"
done
echo "alert rules loaded: $(curl -fsS "$API/rules" | "$PY" -c 'import json,sys; print(sum(len(g["rules"]) for g in json.load(sys.stdin)["data"]["groups"]))')"
if [ "${KEEP:-0}" = 1 ]; then echo "left running (pid $prom_pid, data in $work)"; fi

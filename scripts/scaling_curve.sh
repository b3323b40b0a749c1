#!/usr/bin/env bash
# Issue 13's scaling curve: what more training families buy on the compositional suite.
# One SFT run per size N of the suite's nested family order (25 within 50 within 100 ...),
# identical but for --max-families (same start, steps, lr, seed, sibling batches), each
# scored on held-out families and held-out combinations; then the table and plot.
#
#   bash scripts/scaling_curve.sh          # resumable: rerun after an interruption
#   SCALING_SIZES="25 50" SCALING_STEPS=200 bash scripts/scaling_curve.sh   # a smaller curve
#
# Start: the shipped checkpoint (or $SCALING_INIT), so each point costs SCALING_STEPS steps
# (~2.3 s a step with one thread on this machine) instead of a run from scratch.
# Results: benchmarks/results/t2l/scaling/n<N>-<split>/ and scaling.{md,png} there.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh >&2

T2L=.venv/bin/t2l-vllm
INIT=${SCALING_INIT:-t2l_vllm/checkpoints/smollm2-135m-instruct}
SIZES=${SCALING_SIZES:-25 50 100 200 all}
STEPS=${SCALING_STEPS:-600}
RUNS=${T2L_RUNS:-runs/scaling}
OUT=${T2L_RESULTS:-benchmarks/results/t2l/scaling}
CT=examples/tasks/compositional-v1

for n in $SIZES; do
    max=$n
    [ "$n" = all ] && max=0
    time $T2L train-sft --out "$RUNS/n$n" --suite compositional --sibling-batches --max-families "$max" \
        --init-from "$INIT" --steps "$STEPS" --lr 1e-4 --save-every 25
    for split in heldout-family heldout-combination; do
        [ -f "$OUT/n$n-$split/results.json" ] && continue
        time $T2L eval --tasks "$CT/$split.jsonl" --modes t2l --max-tokens 64 \
            --hypernet "$RUNS/n$n/checkpoint" --out "$OUT/n$n-$split"
    done
done
.venv/bin/python scripts/scaling_plot.py "$OUT"

#!/usr/bin/env bash
# Context distillation vs supervised loss (issue 12): three short fine-tunes from the
# same start, identical but for the loss, each scored on the two open-ended splits
# (chrF) and on held-out descriptions of the short-answer tasks (exact match).
#
#   bash scripts/distill_mix.sh        # resumable: rerun after an interruption
#
#   ce       loss = ce + l2                   (the plain recipe)
#   ce+kl    loss = ce + 1.0 * kl + l2        (supervised and "behave like the prompt")
#   kl       loss = kl + l2                   (--distill-only: no reference answers)
#
# Start: runs/sft-open/checkpoint (the shipped checkpoint's fp32 run) or $DISTILL_INIT.
# Results: benchmarks/results/t2l/distill/<mix>-<split>/, table via scripts/t2l_table.py --distill.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh >&2

T2L=.venv/bin/t2l-vllm
INIT=${DISTILL_INIT:-runs/sft-open/checkpoint}
RUNS=${T2L_RUNS:-runs/distill}
OUT=${T2L_RESULTS:-benchmarks/results/t2l/distill}
STEPS=${DISTILL_STEPS:-40}
COMMON=(--init-from "$INIT" --answer all --steps "$STEPS" --lr 1e-4 --save-every 10)

declare -A EXTRA=(
    [ce]=""
    [ce+kl]="--distill-weight 1.0"
    [kl]="--distill-weight 1.0 --distill-only"
)
for mix in ce ce+kl kl; do
    # kl samples the same steps as ce+kl (same seed), so it reuses ce+kl's teacher
    # continuations instead of generating them again (keyed by description and input).
    if [ "$mix" = kl ] && [ ! -e "$RUNS/kl/teacher_continuations.jsonl" ]; then
        mkdir -p "$RUNS/kl"
        cp "$RUNS/ce+kl/teacher_continuations.jsonl" "$RUNS/kl/"
    fi
    # shellcheck disable=SC2086  # EXTRA holds several flags
    time $T2L train-sft --out "$RUNS/$mix" "${COMMON[@]}" ${EXTRA[$mix]}
done
for mix in ce ce+kl kl; do
    for split in heldout-family-open heldout-desc-open heldout-desc; do
        [ -f "$OUT/$mix-$split/results.json" ] && continue
        tokens=64
        [ "$split" = heldout-desc ] && tokens=32
        time $T2L eval --tasks "examples/tasks/$split.jsonl" --modes t2l --max-tokens "$tokens" \
            --hypernet "$RUNS/$mix/checkpoint" --out "$OUT/$mix-$split"
    done
done

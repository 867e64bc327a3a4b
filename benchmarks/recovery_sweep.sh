#!/usr/bin/env bash
# Recovery fine-tuning table: compresses the base at r = 0.3 with each method, fine-tunes each
# variant on D tokens of the fine-tuning corpus with plain cross-entropy and with distillation
# from the base, and evaluates every model. Usage:
#   benchmarks/recovery_sweep.sh BASE_MODEL OUT_DIR [SUITE] [D…]
# SUITE is full (the default) or smoke; D defaults to 50000. Each run leaves NAME.json
# (metrics), NAME.finetune.json (the fine-tune record with its curve and wall time) and
# NAME.finetune.txt in OUT_DIR. Finished runs are skipped, so an interrupted table resumes;
# fine-tuned weights are deleted once evaluated. THREADS (default 2) sets BLAS threads;
# METHODS (default "width-prune depth-prune") and RATIO (default 0.3) pick the variants;
# LOSSES (default "ce kd") the fine-tunes of each.
# TEACHER_TOP_K=K distils from the base's K largest logits, cached once per token range
# (hubctl finetune --teacher-top-k), in cells named kdK instead of kd. CORPUS_SOURCE=gem/xsum
# fine-tunes on that corpus source alone (hubctl finetune --corpus-source; use another OUT_DIR).
# LEARNING_RATE sets the peak learning rate (default hubctl finetune's; use another OUT_DIR).
# HUBCTL names the hubctl binary (default: this checkout's release build; point it at a copy
# when rebuilding during a long table).
set -uo pipefail
base=$1 out=$2 suite=${3:-full}
shift $(( $# < 3 ? $# : 3 ))
budgets=("$@")
[ ${#budgets[@]} -gt 0 ] || budgets=(50000)
threads=${THREADS:-2} ratio=${RATIO:-0.3}
read -r -a methods <<< "${METHODS:-width-prune depth-prune}"
read -r -a losses <<< "${LOSSES:-ce kd}"
hubctl=${HUBCTL:-"$(cd "$(dirname "$0")/.." && swift build -c release --show-bin-path)/hubctl"}
mkdir -p "$out/models"
evaluate() {  # evaluate MODEL NAME
    [ -s "$out/$2.json" ] && return 0
    "$hubctl" eval "$1" --suite "$suite" --no-latency --json --threads "$threads" > "$out/$2.json.partial" 2>/dev/null \
        && mv "$out/$2.json.partial" "$out/$2.json"
}
evaluate "$base" base
for method in "${methods[@]}"; do
    variant="$method-$ratio"
    if [ ! -d "$out/models/$variant" ]; then
        "$hubctl" compress "$base" --method "$method" --ratio "$ratio" --threads "$threads" -o "$out/models/$variant" \
            > "$out/$variant.compress.txt" 2>&1 || continue
    fi
    evaluate "$out/models/$variant" "$variant"
    for d in "${budgets[@]}"; do
        for loss in "${losses[@]}"; do
            [ "$loss" = ce ] || loss=kd${TEACHER_TOP_K:-}
            name="$variant-$loss-$d"
            [ -s "$out/$name.json" ] && continue
            extra=()
            [ -z "${CORPUS_SOURCE:-}" ] || extra+=(--corpus-source "$CORPUS_SOURCE")
            [ -z "${LEARNING_RATE:-}" ] || extra+=(--learning-rate "$LEARNING_RATE")
            [ "$loss" = ce ] || extra+=(--distill-from "$base")
            [ "$loss" = ce ] || [ -z "${TEACHER_TOP_K:-}" ] || extra+=(--teacher-top-k "$TEACHER_TOP_K")
            if [ ! -d "$out/models/$name" ]; then
                "$hubctl" finetune "$out/models/$variant" --tokens "$d" --threads "$threads" "${extra[@]}" \
                    -o "$out/models/$name" $( [ -d "$out/models/$name.checkpoint" ] && echo --resume ) \
                    > "$out/$name.finetune.txt" 2>&1 || continue
                cp "$out/models/$name/finetune.json" "$out/$name.finetune.json"
            fi
            evaluate "$out/models/$name" "$name" && rm -rf "$out/models/$name"
        done
    done
done
python3 "$(dirname "$0")/recovery_table.py" "$out"

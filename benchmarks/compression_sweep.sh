#!/usr/bin/env bash
# Compresses the base model with every method at r = 0.1, 0.2, 0.3, 0.5, 0.7 (no fine-tuning)
# and evaluates each variant, writing one metrics record per variant, the compressor's log
# with its wall time, and a summary table. Usage:
#   benchmarks/compression_sweep.sh BASE_MODEL OUT_DIR [SUITE] [METHODS…]
# A method written METHOD+self is calibrated on the model's own samples, no text (data-free).
# SUITE is smoke (10 articles, 20 examples a task; the default) or full (101 articles, 300
# examples a task). Each variant leaves NAME.json (metrics), NAME.recipe.json and
# NAME.compress.txt (the compressor's output and wall time) in OUT_DIR; its weights are
# deleted once evaluated unless KEEP_VARIANTS=1. A variant already evaluated is skipped, so an
# interrupted sweep resumes where it stopped, also from records committed by an earlier run.
# RATIOS="0.5 0.7" limits the ratios; HUBCTL names the binary (a copy kept so that a sweep
# resumed later runs the code it started with).
set -uo pipefail
base=$1 out=$2 suite=${3:-smoke}
shift $(( $# < 3 ? $# : 3 ))
methods=("$@")
[ ${#methods[@]} -gt 0 ] || methods=(width-prune width-prune-global depth-prune depth-prune-influence slicegpt slicegpt-shared prunenet weight-prune width-prune+self width-prune-global+self)
read -r -a ratios <<< "${RATIOS:-0.1 0.2 0.3 0.5 0.7}"
hubctl=${HUBCTL:-"$(cd "$(dirname "$0")/.." && swift build -c release --show-bin-path)/hubctl"}
mkdir -p "$out"
[ -s "$out/base.json" ] || "$hubctl" eval "$base" --suite "$suite" --no-latency --json > "$out/base.json" 2>/dev/null
for method in "${methods[@]}"; do
  for ratio in "${ratios[@]}"; do
    name="$method-$ratio"
    [ -s "$out/$name.json" ] && continue
    rm -rf "$out/$name"
    start=$(date +%s)
    # METHOD+self: the method calibrated on the model's own samples (--self-calibration).
    flags=(--method "${method%+self}")
    [ "$method" = "${method%+self}" ] || flags+=(--self-calibration)
    if "$hubctl" compress "$base" "${flags[@]}" --ratio "$ratio" -o "$out/$name" > "$out/$name.compress.txt" 2>&1; then
      echo "compress_seconds $(( $(date +%s) - start ))" >> "$out/$name.compress.txt"
      cp "$out/$name/recipe.json" "$out/$name.recipe.json"
      "$hubctl" eval "$out/$name" --suite "$suite" --no-latency --json > "$out/$name.json.partial" 2>/dev/null \
        && mv "$out/$name.json.partial" "$out/$name.json"
      [ "${KEEP_VARIANTS:-0}" = 1 ] || rm -rf "$out/$name"
    fi
  done
done
python3 "$(dirname "$0")/sweep_table.py" "$out" "${methods[@]}"

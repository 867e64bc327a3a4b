#!/usr/bin/env bash
# The compression-laws sweep on SmolLM2-135M, run by the daemon's build engine, then the laws
# fitted on it, one prediction checked by building it, and the report written under docs/laws.
#
#   1. a registry in $LAWS_HOME (default ~/.compression-hub-laws) holding the base, with the
#      base's full-suite metrics;
#   2. a daemon that builds, in this order, every variant evaluated on the full suite with
#      latency: benchmarks/laws/1-no-finetune.json (width-prune-global, calibrated, × r
#      0.1–0.5, no fine-tuning); 1b-no-finetune-prunenet.json (prunenet, calibration-free, the
#      same ratios; a recipe of its own so that a saved family can stand for either); 2-finetune.json
#      (width-prune-global × r 0.2, 0.4 × D 12k and 49k tokens: four cells, about 40 minutes); 3-finetune-prunenet.json
#      (the same budgets for prunenet); 4-depth-no-finetune.json (depth-prune-influence × r
#      0.1–0.5). The order puts first what the fits need most, so a run cut short still fits;
#      after each build the registry's family (every variant with its lineage and metrics
#      records) is saved to $results/families/<base revision>.json and its cards to
#      $results/cards, so the measured points outlive the registry: on a fresh machine (an
#      empty registry, a new base revision) the recipes whose builds a saved family already
#      holds are not built again, and every fit and the report take the saved families in
#      with --family (their variants must descend from the same base weights);
#   3. after each sweep, a check: the laws fitted so far predict width-prune-global at r = 0.25
#      (a ratio no sweep has), without fine-tuning and then with 49k tokens; each prediction is
#      written down *before* its variant is built (benchmarks/laws/check-*.json);
#   4. a final fit with the check variants held out, and hubctl laws report: docs/laws/README.md
#      and its SVG plots, which set each check variant against what the laws predict for it.
#
# Hours of CPU on a 2-core machine (the closing note of the laws issue has the figures). Every
# stage is cached by its inputs, so an interrupted run picks up where it stopped when run again.
# Usage: bash benchmarks/laws_sweep.sh [BUILD_THREADS (default 1)]
set -euo pipefail
source "$(dirname "$0")/../scripts/common.sh"
cd "$HUB_REPO_ROOT"
build_threads=${1:-1}
# HUBCTL: the binary to run, e.g. a copy kept so that a sweep resumed later runs the code it
# started with (stage caches are keyed by code version).
hubctl=${HUBCTL:-"$(swift build -c release --show-bin-path)/hubctl"}
export HUB_HOME="${LAWS_HOME:-$HOME/.compression-hub-laws}"
base=smollm2/SmolLM2-135M-Instruct
results=benchmarks/results/laws-full
mkdir -p "$results"

"$hubctl" init
"$hubctl" import "$HUB_MODEL_GGUF" "$base"
revision=$("$hubctl" card "$base" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["revision"])')
mkdir -p "$results/families"
# The families other registries measured (this one's own file is rewritten after each build).
families=()
for file in "$results"/families/*.json; do
    [ -e "$file" ] && [ "$(basename "$file" .json)" != "$revision" ] && families+=(--family "$file")
done
if ! "$hubctl" card "$base" --json | grep -q '"suite" : "full"'; then
    log "the base's full-suite metrics (held-out loss, 4 tasks × 300 examples, latency)"
    "$hubctl" eval "$base" --suite full --record --json > "$results/base.json"
fi

start_daemon "$hubctl" "$results/daemon.log" --build-threads "$build_threads"
trap 'kill $daemon 2>/dev/null || true' EXIT
export HUB_ENDPOINT="http://127.0.0.1:$port"

# built_elsewhere RECIPE: whether a saved family from another registry holds every variant
# the recipe builds (its variants' names follow from the recipe, as BuildRecipe.expanded()
# names them). LAWS_REBUILD names recipes (basenames, space-separated) to build here anyway:
# loss and accuracy do not depend on the machine, but latency does, and two machines of one
# profile (a cloud "Intel Xeon Processor") can differ by 10% or more; a variant measured here
# replaces the saved one in every fit.
built_elsewhere() {
    [ ${#families[@]} -gt 0 ] || return 1
    case " ${LAWS_REBUILD:-} " in *" $(basename "$1" .json) "*) return 1 ;; esac
    python3 - "$1" "$results/families" "$revision" <<'PY'
import glob, json, os, sys
recipe, folder, revision = sys.argv[1:]
r = json.load(open(recipe))
suffix = "-" + r["quantization"]["type"] if r.get("quantization") else ""
if "sweep" in r:
    sweep = r["sweep"]
    wanted = {f'{r["name"]}-{m}-{round(x * 100)}' + (f"-ft{d // 1000}k" if d > 0 else "") + suffix
              for m in sweep["methods"] for x in sweep["ratios"] for d in sweep.get("budgets") or [0]}
else:
    wanted = {r["name"]}
held = set()
for path in glob.glob(os.path.join(folder, "*.json")):
    if os.path.basename(path) != revision + ".json":
        held |= {m["repository"] for m in json.load(open(path))}
sys.exit(0 if wanted <= held else 1)
PY
}
build() {  # build RECIPE: submit to the daemon, follow it, keep its record
    if built_elsewhere "$1"; then log "$1: its variants were measured in another registry (saved family); not built again"; return; fi
    log "building $1"
    local id
    id=$("$hubctl" build submit "$1")
    "$hubctl" build watch "$id" 2>&1 | tail -n 3
    "$hubctl" build show "$id" --json > "$results/$(basename "$1" .json).build.json"
    mkdir -p "$results/cards"
    python3 -c 'import json,sys; print("\n".join(v["repository"] for v in json.load(open(sys.argv[1]))["result"]["variants"]))' \
        "$results/$(basename "$1" .json).build.json" | while read -r repo; do
        "$hubctl" card "$repo" --json > "$results/cards/${repo//\//--}.json"
    done
    "$hubctl" laws save-family "$base" -o "$results/families/$revision.json"
}
# predict_then_build RECIPE TOKENS: the laws fitted so far (check variants held out) predict
# the recipe's variant, the prediction is kept, then the variant is built.
predict_then_build() {
    local name held=()
    name=$(basename "$1" .json)
    for repo in laws/check laws/check-ft49k; do
        "$hubctl" card "$repo" >/dev/null 2>&1 || grep -qs "\"repository\" : \"$repo\"" "$results"/families/*.json && held+=("$repo")
    done
    if [ ! -s "$results/$name.prediction.json" ]; then
        "$hubctl" laws fit "$base" --suite full ${held[@]:+--hold-out "${held[@]}"} "${families[@]}" > "$results/$name.laws-before.txt"
        "$hubctl" laws predict "$base" --method width-prune-global --ratio 0.25 --tokens "$2" --json > "$results/$name.prediction.json"
    fi
    build "$1"
}

build benchmarks/laws/1-no-finetune.json
build benchmarks/laws/1b-no-finetune-prunenet.json
predict_then_build benchmarks/laws/check-0.json 0
build benchmarks/laws/2-finetune.json
predict_then_build benchmarks/laws/check-ft.json 49152
build benchmarks/laws/3-finetune-prunenet.json
build benchmarks/laws/4-depth-no-finetune.json

# The final fit, with both checks held out: the report sets them against its predictions.
"$hubctl" laws fit "$base" --suite full --hold-out laws/check laws/check-ft49k "${families[@]}" > /dev/null
"$hubctl" laws show "$base" --suite full > "$results/laws.txt"
"$hubctl" laws show "$base" --suite full --json > "$results/laws.json"
"$hubctl" laws report "$base" --suite full "${families[@]}" -o docs/laws
log "report written to docs/laws/README.md"

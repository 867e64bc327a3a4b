#!/usr/bin/env bash
# What a build does to the daemon's readers, and what the build's BLAS thread count does to
# both. For each thread count T (default "1 2"), in a fresh copy of a registry holding the
# base, a daemon started with --build-threads T runs one build (default: width-prune r = 0.3,
# a 50k-token fine-tune, the full suite) while a prober reads model info every 50 ms; before
# it, the same prober runs 30 s against the idle daemon. Prints per T: idle and during-build
# read p50/p95/p99, and each stage's wall time.
# Usage: bash benchmarks/build_threads.sh [OUT_DIR] [RECIPE_JSON] ["THREADS …"]
set -euo pipefail
source "$(dirname "$0")/../scripts/common.sh"
out=${1:-benchmarks/results/build-threads}
recipe=${2:-}
read -r -a threads <<< "${3:-1 2}"
hubctl="$(cd "$HUB_REPO_ROOT" && swift build -c release --show-bin-path)/hubctl"
mkdir -p "$out"
scratch=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$scratch"' EXIT
if [ -z "$recipe" ]; then
    recipe="$scratch/recipe.json"
    echo '{"schema_version": 1, "base": "smollm2/base", "name": "bench/w30-ft50k",
      "compression": {"method": "width-prune", "ratio": 0.3}, "finetune": {"tokens": 50000, "distill": false},
      "evaluation": {"suite": "full", "latency": true}}' > "$recipe"
fi
"$hubctl" import "$HUB_MODEL_GGUF" smollm2/base --data-dir "$scratch/template" >&2

for t in "${threads[@]}"; do
    data="$scratch/hub-$t"
    rm -rf "$data" && cp -r "$scratch/template" "$data"
    start_daemon "$hubctl" "$out/daemon-$t.log" --data-dir "$data" --build-threads "$t"
    token=$(cat "$data/admin.token")
    log "threads $t: idle reads (30 s)"
    python3 "$(dirname "$0")/build_reads.py" --port "$port" --repo smollm2/base --seconds 30 > "$out/idle-$t.json"
    id=$("$hubctl" build submit "$recipe" --endpoint "http://127.0.0.1:$port" --token "$token")
    log "threads $t: build $id, reads until it ends"
    python3 "$(dirname "$0")/build_reads.py" --port "$port" --repo smollm2/base --build "$id" --token "$token" > "$out/busy-$t.json"
    "$hubctl" build show "$id" --json --endpoint "http://127.0.0.1:$port" --token "$token" > "$out/build-$t.json"
    kill "$daemon"; wait "$daemon" 2>/dev/null || true
    python3 - "$out" "$t" <<'EOF'
import json, sys
out, t = sys.argv[1], sys.argv[2]
idle, busy = json.load(open(f"{out}/idle-{t}.json")), json.load(open(f"{out}/busy-{t}.json"))
build = json.load(open(f"{out}/build-{t}.json"))
stages = ", ".join(f"{s['stage']} {s['seconds']:.0f} s" for s in build["result"]["stages"])
print(f"build threads {t}: {build['state']}; {stages}")
print(f"  reads idle p50 {idle['p50_ms']:.2f} / p95 {idle['p95_ms']:.2f} / p99 {idle['p99_ms']:.2f} ms ({idle['requests']} requests)")
print(f"  reads busy p50 {busy['p50_ms']:.2f} / p95 {busy['p95_ms']:.2f} / p99 {busy['p99_ms']:.2f} ms ({busy['requests']} requests)")
EOF
done | tee "$out/summary.txt"

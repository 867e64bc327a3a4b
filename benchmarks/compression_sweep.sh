#!/usr/bin/env bash
# Compresses the base model with every method at r = 0.1 … 0.9 and evaluates each variant
# (smoke suite: held-out loss on 10 articles, 20 examples per task), writing one JSON record
# per variant and a summary table. Usage: benchmarks/compression_sweep.sh BASE_MODEL OUT_DIR
set -uo pipefail
base=$1 out=$2
hubctl="$(cd "$(dirname "$0")/.." && swift build -c release --show-bin-path)/hubctl"
mkdir -p "$out"
"$hubctl" eval "$base" --suite smoke --no-latency --json > "$out/base.json" 2>/dev/null
for method in slicegpt weight-prune width-prune depth-prune; do
  for ratio in 0.1 0.3 0.5 0.7 0.9; do
    name="$method-$ratio"
    rm -rf "$out/$name"
    if "$hubctl" compress "$base" --method "$method" --ratio "$ratio" -o "$out/$name" > "$out/$name.compress.txt" 2>&1; then
      "$hubctl" eval "$out/$name" --suite smoke --no-latency --json > "$out/$name.json" 2>/dev/null
    fi
  done
done
python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
def row(label, record, recipe):
    tasks = {t["task"]: t for t in record["tasks"]}
    accs = " | ".join(f'{tasks[t]["acc"]:.2f}/{tasks[t]["acc_norm"]:.2f}' for t in sorted(tasks))
    r = f'{recipe["achieved_ratio"]:.4f}' if recipe else "0"
    print(f'| {label} | {r} | {record["loss"]["cross_entropy"]:.3f} | {accs} |')
base = json.load(open(os.path.join(out, "base.json")))
print("| variant | achieved r | test loss | " + " | ".join(sorted(t["task"] for t in base["tasks"])) + " (acc/acc_norm) |")
print("|---|---|---|" + "---|" * len(base["tasks"]))
row("base", base, None)
for method in ["slicegpt", "weight-prune", "width-prune", "depth-prune"]:
    for ratio in ["0.1", "0.3", "0.5", "0.7", "0.9"]:
        name = f"{method}-{ratio}"
        path = os.path.join(out, name + ".json")
        if os.path.exists(path) and os.path.getsize(path) > 0:
            row(name, json.load(open(path)), json.load(open(os.path.join(out, name, "recipe.json"))))
        else:
            print(f"| {name} | refused: {open(os.path.join(out, name + '.compress.txt')).read().strip().splitlines()[-1]} | | |")
PY

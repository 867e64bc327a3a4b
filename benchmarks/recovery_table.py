#!/usr/bin/env python3
"""Prints the recovery table from the records benchmarks/recovery_sweep.sh leaves: held-out
loss before and after fine-tuning, the fraction of the gap recovered,
(L_compressed - L_finetuned) / (L_compressed - L_base), mean task accuracy, and the
fine-tune's wall time and speed."""
import glob, json, os, re, sys

out = sys.argv[1]
def load(name):
    path = os.path.join(out, name + ".json")
    return json.load(open(path)) if os.path.exists(path) else None
def accuracy(record):
    tasks = record["tasks"]
    return sum(t["acc"] for t in tasks) / len(tasks) if tasks else float("nan")

base = load("base")
if base is None:
    sys.exit("no base.json in " + out)
lb = base["loss"]["cross_entropy"]
print(f"suite {base['suite']}: base loss {lb:.3f}, mean accuracy {accuracy(base):.3f}\n")
print("| variant | loss | D | CE: loss | recovered | acc | KD: loss | recovered | acc | CE s (tok/s) | KD s (tok/s) |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
# One row per variant and budget, budgets in numeric order (as strings, 250000 < 50000).
rows = []
for path in glob.glob(os.path.join(out, "*-ce-*.json")):
    m = re.match(r"(.+)-ce-(\d+)\.json$", os.path.basename(path))
    if m and not path.endswith(".finetune.json"):
        rows.append((m.group(1), int(m.group(2))))
for variant, budget in sorted(rows):
    d = str(budget)
    compressed = load(variant)
    if compressed is None:
        continue
    lc = compressed["loss"]["cross_entropy"]
    cells = [variant, f"{lc:.3f} (acc {accuracy(compressed):.3f})", d]
    times = []
    # Distillation with the teacher per batch (kd) or from its cached top K (kdK).
    kinds = sorted(re.match(r".+-(kd\d*)-\d+\.json$", os.path.basename(p)).group(1)
                   for p in glob.glob(os.path.join(out, f"{variant}-kd*-{d}.json")) if not p.endswith(".finetune.json"))
    for loss in ("ce", kinds[0] if kinds else "kd"):
        record = load(f"{variant}-{loss}-{d}")
        ft = os.path.join(out, f"{variant}-{loss}-{d}.finetune.json")
        if record is None:
            cells += ["", "", ""]
        else:
            lf = record["loss"]["cross_entropy"]
            label = f" (top {loss[2:]})" if loss.startswith("kd") and loss != "kd" else ""
            cells += [f"{lf:.3f}{label}", f"{(lc - lf) / (lc - lb):.0%}", f"{accuracy(record):.3f}"]
        if os.path.exists(ft):
            f = json.load(open(ft))
            times.append(f"{f['wall_seconds']:.0f} ({f['tokens'] / f['wall_seconds']:.0f})")
        else:
            times.append("")
    print("| " + " | ".join(cells + times) + " |")

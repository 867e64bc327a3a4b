#!/usr/bin/env python3
"""Prints the compression sweep's table from the records in a sweep directory (NAME.json
metrics, NAME.recipe.json, NAME.compress.txt): test loss, its rise over the base model, and
accuracy per task, for every method and ratio present. Usage: sweep_table.py DIR [METHODS...]
FAMILY=path/to/family.json adds the cells a laws sweep measured with the same suite (hubctl
laws save-family; its repositories are laws/f-METHOD-PERCENT), marked †, where DIR lacks them."""
import json, os, sys

out = sys.argv[1]
methods = sys.argv[2:] or ["width-prune", "width-prune-global", "depth-prune", "depth-prune-influence",
                           "slicegpt", "slicegpt-shared", "prunenet", "weight-prune",
                           "width-prune+self", "width-prune-global+self"]
ratios = ["0.1", "0.2", "0.3", "0.5", "0.7"]
base = json.load(open(os.path.join(out, "base.json")))
names = sorted(t["task"] for t in base["tasks"])
L0 = base["loss"]["cross_entropy"]


def row(label, record, recipe, seconds=""):
    tasks = {t["task"]: t for t in record["tasks"]}
    accs = " | ".join(f'{tasks[t]["acc"]:.3f}' for t in names)
    r = f'{recipe["achieved_ratio"]:.3f}' if recipe else "0"
    loss = record["loss"]["cross_entropy"]
    print(f'| {label} | {r} | {loss:.3f} | {100 * (loss / L0 - 1):+.1f}% | {accs} | {seconds} |')


# Cells from a saved laws family: the compressed members without fine-tuning, by method and ratio.
family = {}
if os.environ.get("FAMILY"):
    for member in json.load(open(os.environ["FAMILY"])):
        full = [m for m in member.get("metrics", []) if m.get("suite") == base["suite"] and m.get("tasks")]
        if member.get("kind") != "compressed" or not full or not member["repository"].startswith("laws/f-") or "-ft" in member["repository"]:
            continue
        recipe = member["edges"][0]
        family[f'{recipe["method"]}-{recipe["requested_ratio"]:g}'] = (full[-1], recipe)

suite = base["suite"]
examples = ", ".join(f'{t["task"]} {t["examples"]}' for t in sorted(base["tasks"], key=lambda t: t["task"]))
print(f'{suite} suite: test loss on {base["loss"]["documents"]} articles; examples per task: {examples}')
print()
print("| variant | r | test loss | vs base | " + " | ".join(names) + " (acc) | compress s |")
print("|---|---|---|---|" + "---|" * len(names) + "---|")
row("base", base, None)
for method in methods:
    for ratio in ratios:
        name = f"{method}-{ratio}"
        path, log = os.path.join(out, name + ".json"), os.path.join(out, name + ".compress.txt")
        if os.path.exists(path) and os.path.getsize(path) > 0:
            seconds = next((l.split()[1] for l in open(log) if l.startswith("compress_seconds")), "") if os.path.exists(log) else ""
            row(name, json.load(open(path)), json.load(open(os.path.join(out, name + ".recipe.json"))), seconds)
        elif name in family:
            row(name + " †", *family[name])
        elif os.path.exists(log):
            lines = [l for l in open(log).read().replace("\r", "\n").splitlines() if l.strip()]
            # A compressor that finished leaves its wall time last: the evaluation is pending.
            verdict = "compressed, not evaluated yet" if lines and lines[-1].startswith("compress_seconds") else "refused: " + (lines[-1] if lines else "?")
            print(f"| {name} | {verdict} | | | " + "| " * len(names) + "|")

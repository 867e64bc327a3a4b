#!/usr/bin/env python3
"""Every variant of a registry in transformers: each model of `hubctl list` (or those named) is
loaded through the daemon (HF_ENDPOINT) with AutoModelForCausalLM, trusting the remote code a
heterogeneous variant ships, and its logits on one prompt are compared with the runtime's
(`hubctl run --json --logits`). Prints one line per model and a JSON summary; exits 1 if any
model fails to load or differs by more than 1e-4 × max|logit|.

    python3 benchmarks/transformers_variants.py --hubctl .build/release/hubctl --endpoint http://127.0.0.1:PORT \\
        [--data-dir ~/.compression-hub] [--model team/x ...] [--out results.json]

Variants written before code version 0.2.0 carry no modeling code and are reported as such.
"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "scripts"))
import hub_cli  # noqa: E402

PROMPT = "The history of the railway in Britain began in the early nineteenth century, when"


def main():
    parser = hub_cli.parser(__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--model", action="append")
    parser.add_argument("--out")
    options = parser.parse_args()
    # huggingface_hub reads its endpoint when imported: set it first.
    os.environ["HF_ENDPOINT"] = options.endpoint
    os.environ.setdefault("HF_HUB_CACHE", tempfile.mkdtemp(prefix="hub-variants-"))
    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(2)
    models = options.model or [m["repository"] for m in json.loads(hub_cli.hubctl(["list", "--json"], options))]
    results, failed = [], False
    for name in models:
        row = {"model": name}
        try:
            ours = json.loads(hub_cli.hubctl(["run", name, PROMPT, "--max-tokens", "1", "--json", "--logits"], options))
            model = AutoModelForCausalLM.from_pretrained(name, trust_remote_code=True, dtype=torch.float32)
            with torch.no_grad():
                theirs = model(torch.tensor([ours["prompt_tokens"]])).logits[0]
            reference = torch.tensor(ours["logits"])
            row.update({"class": type(model).__name__, "parameters": sum(p.numel() for p in model.parameters()),
                        "relative_difference": float((theirs - reference).abs().max() / reference.abs().max())})
            row["ok"] = row["relative_difference"] < 1e-4
        except Exception as error:  # reported per model: one bad variant must not hide the others
            row.update({"ok": False, "error": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"})
        failed |= not row["ok"]
        print(f"{'ok  ' if row['ok'] else 'FAIL'} {name}: " + (f"{row['class']}, max |Δlogit| / max |logit| = {row['relative_difference']:.2e}"
                                                            if "class" in row else row["error"]), file=sys.stderr)
        results.append(row)
    summary = {"endpoint": options.endpoint, "models": len(results), "ok": sum(r["ok"] for r in results), "results": results}
    if options.out:
        with open(options.out, "w") as f:
            json.dump(summary, f, indent=1)
    json.dump({k: v for k, v in summary.items() if k != "results"}, sys.stdout)
    print()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()

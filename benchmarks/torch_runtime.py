"""PyTorch + transformers baseline for HubBenchmarks' runtime figures (same weights, same threads).

Prints one JSON object: decode tokens/s at batch 1 (greedy, with KV cache) and the time to
prefill a 512-token prompt, each the median of several runs after a warm-up.

    python3 benchmarks/torch_runtime.py MODEL_DIR THREADS
"""
import json
import statistics
import sys
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    model_dir, threads = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(threads)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    prompt = torch.arange(1000, 1512).unsqueeze(0)
    with torch.inference_mode():
        model(prompt[:, :16])
        prefill = []
        for _ in range(3):
            start = time.perf_counter()
            model(prompt, logits_to_keep=1)
            prefill.append(time.perf_counter() - start)
        decode = []
        for _ in range(3):
            out = model(prompt[:, :16], use_cache=True)
            past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
            start = time.perf_counter()
            for _ in range(64):
                out = model(token, past_key_values=past, use_cache=True)
                past, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
            decode.append(64 / (time.perf_counter() - start))
    print(json.dumps({"decode_tokens_per_second": statistics.median(decode), "prefill_512_seconds": statistics.median(prefill),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()

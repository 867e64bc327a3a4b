"""PyTorch CPU full fine-tuning baseline for HubBenchmarks' training figures: the same weights
(plain-PyTorch LLaMA from fixtures/scripts/torch_llama.py), fp32, AdamW, 4 sequences of 256
tokens a step, the same threads. Prints one JSON object with tokens/s over STEPS timed steps
after one warm-up step.

    python3 benchmarks/torch_finetune.py MODEL_DIR THREADS STEPS
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fixtures", "scripts"))
from torch_llama import Llama  # noqa: E402


def main():
    model_dir, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    model = Llama(model_dir)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    vocab = model.config["vocab_size"]
    batch = torch.tensor([[1000 + ((s * 256 + i) * 7919) % (vocab - 1000) for i in range(256)] for s in range(4)])

    def step():
        optimizer.zero_grad(set_to_none=True)
        model.loss(batch).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - start
    print(json.dumps({"torch": torch.__version__, "tokens_per_second": steps * 1024 / seconds, "seconds": seconds}))


if __name__ == "__main__":
    main()

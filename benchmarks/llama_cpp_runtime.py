"""llama.cpp (llama-cpp-python) baseline for HubBenchmarks quantized: one GGUF, the same
prompts and threads as the runtime's figures. Prints one JSON object: decode tokens/s at
batch 1 (greedy, 128 tokens after a 16-token prompt, tokens 1000..1015) and the seconds to
prefill 512 tokens (1000..1511), each the median of ROUNDS runs after a warm-up, with every
run's figure.

    python3 -m pip install llama-cpp-python    # builds llama.cpp from source (12+ minutes)
    python3 benchmarks/llama_cpp_runtime.py MODEL.gguf THREADS [ROUNDS]
"""
import json
import statistics
import sys
import time

import llama_cpp
import numpy as np
from llama_cpp import Llama


def main():
    path, threads = sys.argv[1], int(sys.argv[2])
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    llm = Llama(model_path=path, n_ctx=1024, n_batch=512, n_ubatch=512, n_threads=threads, n_threads_batch=threads,
                logits_all=False, verbose=False)
    prompt, long = list(range(1000, 1016)), list(range(1000, 1512))

    def decode(tokens):
        llm.reset()
        llm.eval(prompt)
        start = time.perf_counter()
        for _ in range(tokens):
            token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
            llm.eval([token])
        return tokens / (time.perf_counter() - start)

    def prefill():
        llm.reset()
        start = time.perf_counter()
        llm.eval(long)
        return time.perf_counter() - start

    decode(8), prefill()
    rates, prefills = [], []
    for _ in range(rounds):
        rates.append(decode(128))
        prefills.append(prefill())
    print(json.dumps({"decode_tokens_per_second": statistics.median(rates), "prefill_512_seconds": statistics.median(prefills),
                      "decode_rounds": rates, "prefill_rounds": prefills, "llama_cpp_python": llama_cpp.__version__}))


if __name__ == "__main__":
    main()

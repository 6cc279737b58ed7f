"""Batched generation vs a per-prompt generate loop (target: >= 5x faster), with peak memory.

    python benchmarks/bench_batching.py                      # 64 prompts x 64 new tokens, smollm2-135m
    python benchmarks/bench_batching.py --prompts 16 --new-tokens 32
    python benchmarks/bench_batching.py --threads 1          # on a CPU shared with other jobs

Both modes run the same transformers backend on the same prompts with greedy decoding, so their
outputs must agree; the script checks that and prints how many do. Peak memory is the process
RSS sampled every 20 ms during each mode (tracemalloc does not see torch's allocations).
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil


def measure(fn: Callable[[], Any]) -> tuple[Any, float, int]:
    """(result, seconds, peak RSS bytes while it ran)."""
    process = psutil.Process()
    peak = process.memory_info().rss
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.02):
            peak = max(peak, process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    return result, seconds, max(peak, process.memory_info().rss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompt-set", default="harmful_instructions")
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from mimicry.data.sources import load_prompt_set
    from mimicry.generation import GenerationConfig
    from mimicry.generation.transformers_backend import TransformersBackend
    from mimicry.records import Message

    texts = [p.text for p in load_prompt_set(args.prompt_set)[: args.prompts]]
    prompts = [[Message(role="user", content=text)] for text in texts]
    backend = TransformersBackend(args.model, device="cpu")
    config = GenerationConfig(max_new_tokens=args.new_tokens, batch_size=args.batch_size)
    backend.generate(prompts[:2], config.model_copy(update={"max_new_tokens": 4}))  # warm-up
    baseline = psutil.Process().memory_info().rss
    print(
        f"model {args.model}, {len(prompts)} prompts from {args.prompt_set}, {args.new_tokens} new tokens, "
        f"greedy, CPU with {torch.get_num_threads()} threads; RSS after loading {baseline / 2**20:.0f} MiB"
    )

    batched, batched_s, batched_peak = measure(lambda: backend.generate(prompts, config))
    print(f"batched (batch {args.batch_size}):  {batched_s:8.1f} s   peak RSS {batched_peak / 2**20:.0f} MiB")
    single_config = config.model_copy(update={"batch_size": 1})
    looped, looped_s, looped_peak = measure(lambda: [backend.generate([p], single_config)[0] for p in prompts])
    print(f"per-prompt loop:     {looped_s:8.1f} s   peak RSS {looped_peak / 2**20:.0f} MiB")

    tokens = sum(len(ids) for ids in backend.tokenizer(batched, add_special_tokens=False).input_ids)
    agree = sum(a == b for a, b in zip(batched, looped, strict=True))
    print(
        f"speed-up: {looped_s / batched_s:.1f}x (target >= 5x); {tokens} tokens generated; "
        f"{agree}/{len(prompts)} outputs identical in both modes"
    )


if __name__ == "__main__":
    main()

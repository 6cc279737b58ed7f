"""Evaluation speed: 100 harmful prompts x 64 new tokens on smollm2-135m, through `evaluate`.

Prints model load time, generation wall time, generated tokens per second and keyword-judging
time, for each batch size asked (default: 16, and 1 on the first 16 prompts for comparison).
Run: python benchmarks/bench_eval.py [--model smollm2-135m] [--prompts 100] [--batch-sizes 16,1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--prompts", type=int, default=100)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-sizes", default="16,1", help="the first runs all prompts; others run 16")
    args = parser.parse_args()

    from mimicry.evaluation.suites import EvalConfig, evaluate
    from mimicry.generation.transformers_backend import TransformersBackend

    start = time.perf_counter()
    backend = TransformersBackend(args.model)
    print(f"model {args.model}: loaded in {time.perf_counter() - start:.1f} s")
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    header = ("batch", "prompts", "eval s", "new tokens", "tok/s", "prompts/s", "judge s")
    print("{:>5} {:>7} {:>8} {:>10} {:>8} {:>9} {:>8}".format(*header))
    for i, batch_size in enumerate(sizes):
        prompts = args.prompts if i == 0 else min(16, args.prompts)
        config = EvalConfig(
            harm_sets=["harmful_instructions"],
            presentations=["plain"],
            limit=prompts,
            max_new_tokens=args.max_new_tokens,
            batch_size=batch_size,
            judges=["keyword"],
        )
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            evaluate(backend, "harm", config=config, out_dir=out)
            total = time.perf_counter() - start
            records = [json.loads(x) for x in (Path(out) / "generations.jsonl").read_text().splitlines()]
            tokenize = backend.tokenizer
            tokens = sum(len(tokenize(r["response"], add_special_tokens=False).input_ids) for r in records)
            judge_start = time.perf_counter()
            from mimicry.evaluation.judges import KeywordJudge

            KeywordJudge().judge_batch([(r["prompt"], r["response"]) for r in records])
            judge = time.perf_counter() - judge_start
        print(
            f"{batch_size:>5} {len(records):>7} {total:>8.1f} {tokens:>10} {tokens / total:>8.1f} "
            f"{len(records) / total:>9.2f} {judge:>8.3f}"
        )


if __name__ == "__main__":
    main()

"""Does bf16 change results materially? fp32 against bf16 on one model, measured in one run.

    python benchmarks/bench_precision.py                                  # smollm2-135m
    python benchmarks/bench_precision.py --model qwen2.5-coder-0.5b --train-steps 0
    python benchmarks/bench_precision.py --threads 2 --prompts 32 --new-tokens 64

1. Training: the same short LoRA run (same data, seed and batches) with `precision: fp32` and
   `precision: bf16` (autocast); the per-step losses are compared against `--loss-tolerance`
   (the largest relative difference of a step's loss).
2. Generation: greedy replies to a fixed prompt set (half harmful, half safe prompts) with the
   model held in fp32 and in bf16: how many replies are identical, and how often the keyword
   judge (the grids' default) gives both the same verdict (refusal or not).

Each side's time is printed too: both sides run on the same machine in the same process, so the
ratio is a fair bf16 speed-up at the load the machine had.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def training(args: argparse.Namespace) -> dict[str, dict]:
    from mimicry.data.sources import load_instruction_set
    from mimicry.training.sft import SFTConfig, train_sft

    data = load_instruction_set("alpaca_gpt4")[: args.batch_size * args.train_steps]
    results = {}
    for precision in ("fp32", "bf16"):
        config = SFTConfig(
            method="lora",
            max_steps=args.train_steps,
            batch_size=args.batch_size,
            max_length=args.seq_len,
            logging_steps=1,
            save_steps=10_000,
            precision=precision,
        )
        with tempfile.TemporaryDirectory() as tmp:
            result = train_sft(args.model, data, Path(tmp) / "run", config)
        results[precision] = {"losses": result.losses, "seconds": result.seconds, "tokens": result.tokens}
    return results


def generation(args: argparse.Namespace) -> dict[str, dict]:
    from mimicry.data.sources import load_prompt_set
    from mimicry.generation import GenerationConfig
    from mimicry.generation.transformers_backend import TransformersBackend
    from mimicry.records import Message

    half = args.prompts // 2
    texts = [p.text for p in load_prompt_set("harmful_instructions")[::7][:half]]
    texts += [p.text for p in load_prompt_set("xstest_safe")[::5][: args.prompts - half]]
    prompts = [[Message(role="user", content=t)] for t in texts]
    config = GenerationConfig(max_new_tokens=args.new_tokens, batch_size=args.batch_size_gen)
    results = {}
    for precision in ("fp32", "bf16"):
        backend = TransformersBackend(args.model, precision=precision, device="cpu")
        backend.generate(prompts[:2], config.model_copy(update={"max_new_tokens": 2}))  # warm-up
        started = time.perf_counter()
        replies = backend.generate(prompts, config)
        results[precision] = {"replies": replies, "seconds": time.perf_counter() - started}
        del backend
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--train-steps", type=int, default=20, help="LoRA steps per precision (0: skip training)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--loss-tolerance", type=float, default=0.02, help="largest relative loss difference")
    parser.add_argument("--prompts", type=int, default=32, help="0: skip generation")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--batch-size-gen", type=int, default=16)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()

    import os

    import torch

    from mimicry.evaluation.refusal import is_refusal
    from mimicry.hardware import cpu_probe

    if args.threads:
        torch.set_num_threads(args.threads)
    probe = cpu_probe()
    print(
        f"model {args.model}; CPU {probe.cpu} ({', '.join(probe.flags)}), {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.1f}; probe: fp32 {probe.fp32_gflops} GFLOP/s, "
        f"bf16 {probe.bf16_gflops} GFLOP/s"
    )
    if args.train_steps:
        runs = training(args)
        fp32, bf16 = runs["fp32"]["losses"], runs["bf16"]["losses"]
        gaps = [abs(b - f) / abs(f) for f, b in zip(fp32, bf16, strict=True)]
        print(
            f"LoRA, {args.train_steps} steps x {args.batch_size} rows x <= {args.seq_len} tokens "
            f"({runs['fp32']['tokens']:,} tokens per run):"
        )
        for precision, run in runs.items():
            losses = " ".join(f"{x:.3f}" for x in run["losses"])
            print(f"  {precision}: {run['tokens'] / run['seconds']:7.0f} tokens/s  losses {losses}")
        verdict = "within" if max(gaps) <= args.loss_tolerance else "OUTSIDE"
        print(
            f"  loss difference: max {max(gaps):.2%}, mean {sum(gaps) / len(gaps):.2%} of the fp32 loss; "
            f"final {fp32[-1]:.4f} (fp32) vs {bf16[-1]:.4f} (bf16); {verdict} the {args.loss_tolerance:.0%} tolerance"
        )
    if args.prompts:
        runs = generation(args)
        fp32, bf16 = runs["fp32"]["replies"], runs["bf16"]["replies"]
        same = sum(a == b for a, b in zip(fp32, bf16, strict=True))
        agree = sum(is_refusal(a) == is_refusal(b) for a, b in zip(fp32, bf16, strict=True))
        refusals = {p: sum(map(is_refusal, r["replies"])) for p, r in runs.items()}
        print(
            f"greedy generation, {len(fp32)} prompts (half harmful_instructions, half xstest_safe), "
            f"{args.new_tokens} new tokens, batch {args.batch_size_gen}:"
        )
        for precision, run in runs.items():
            print(f"  {precision}: {run['seconds']:7.1f} s, {refusals[precision]} keyword refusals")
        print(
            f"  identical replies: {same}/{len(fp32)}; keyword verdict agreement: {agree}/{len(fp32)}; "
            f"bf16 speed-up {runs['fp32']['seconds'] / runs['bf16']['seconds']:.2f}x"
        )


if __name__ == "__main__":
    main()

"""Decode throughput, old path vs new, against the matmul-bound ceiling measured in the same run.

    python benchmarks/bench_generation.py                       # smollm2-135m and qwen2.5-coder-0.5b, batch 16 and 64
    python benchmarks/bench_generation.py --models smollm2-135m --batch-sizes 64 --new-tokens 32
    python benchmarks/bench_generation.py --threads 2           # on a CPU shared with other jobs

For each model and batch size, one batch of real prompts (harmful_instructions, chat template
applied) is decoded greedily, `--new-tokens` tokens:

- old: `model.generate` in fp32 with transformers' default dynamic KV cache, which is what the
  transformers backend did before precision became a choice;
- new fp32 / new <auto>: `TransformersBackend.generate` (the code the evaluations run), with the
  model in fp32 and in the precision `auto` chooses on this machine.

Decode throughput counts every row of every decoding step (batch x steps / seconds, prefill
excluded: a `max_new_tokens=1` call times it); the matmul-bound ceiling is the ceiling FLOP/s of
large matmuls in that precision, measured just before, over 2 x N FLOPs per row and step (N: the
weights of every linear layer, the LM head included). Greedy outputs of old and new fp32 are
compared (decoded text up to the end of sequence), and bf16's against fp32's.
"""

from __future__ import annotations

import argparse
import os
import time


def matmul_parameters(model) -> int:
    import torch

    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def ceiling_flops(precision: str) -> float:
    from mimicry.hardware import measure_matmul

    probe = measure_matmul(shape=(1024, 1024, 1024), seconds=1.5)
    return probe.gflops(precision) * 1e9


def old_generate(model, tokenizer, texts: list[str], new_tokens: int):
    """The pre-change backend call: dynamic cache, fp32, one left-padded batch."""
    import torch

    inputs = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
    with torch.inference_mode():
        output = model.generate(
            **inputs,
            max_new_tokens=new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
            use_cache=True,
            temperature=None,
            top_p=None,
            top_k=None,
        )
    return output[:, inputs.input_ids.shape[1] :]


def timed(fn):
    """(fn(), seconds)."""
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def new_token_ids(backend, texts: list[str], new_tokens: int):
    """The backend's greedy decode of one batch, as token ids (for a token-level comparison)."""
    from mimicry.generation import GenerationConfig

    config = GenerationConfig(max_new_tokens=new_tokens, batch_size=len(texts))
    return backend._generate_ids(texts, config, [])


def bench_model(name: str, batch_sizes: list[int], new_tokens: int, auto: str, *, skip_old: bool) -> None:
    from functools import partial

    from mimicry.data.sources import load_prompt_set
    from mimicry.generation.transformers_backend import TransformersBackend, render_prompt
    from mimicry.records import Message

    fp32 = TransformersBackend(name, precision="fp32", device="cpu")
    chosen = TransformersBackend(name, precision=auto, device="cpu") if auto != "fp32" else None
    n = matmul_parameters(fp32.model)
    tokenizer = fp32.tokenizer
    prompts = [p.text for p in load_prompt_set("harmful_instructions")][: max(batch_sizes)]
    all_texts = [render_prompt(tokenizer, [Message(role="user", content=p)]) for p in prompts]
    old_generate(fp32.model, tokenizer, all_texts[:2], 2)  # warm-up
    for batch in batch_sizes:
        texts = all_texts[:batch]
        paths = [] if skip_old else [("old", "fp32", partial(old_generate, fp32.model, tokenizer, texts))]
        paths.append(("new", "fp32", partial(new_token_ids, fp32, texts)))
        if chosen is not None:
            paths.append(("new", auto, partial(new_token_ids, chosen, texts)))
        reference = None
        for path, precision, run in paths:
            ceiling = ceiling_flops(precision)
            _, prefill = timed(partial(run, 1))
            ids, total = timed(partial(run, new_tokens))
            rows_per_s = batch * (ids.shape[1] - 1) / max(total - prefill, 1e-9)
            ceiling_rows = ceiling / (2 * n)
            replies = tokenizer.batch_decode(ids, skip_special_tokens=True)
            reference = reference or replies
            same = sum(a == b for a, b in zip(replies, reference, strict=True))
            print(
                f"{name:<20}{batch:>6}{path + ' ' + precision:>10}{prefill:>11.1f}{total - prefill:>10.1f}"
                f"{rows_per_s:>9.1f}{ceiling_rows:>16.1f}{rows_per_s / ceiling_rows:>12.1%}"
                f"{str(same) + '/' + str(batch):>14}",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="smollm2-135m,qwen2.5-coder-0.5b")
    parser.add_argument("--batch-sizes", default="16,64")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--skip-old", action="store_true", help="time only the new path (for slow machines)")
    args = parser.parse_args()

    import torch

    from mimicry.hardware import cpu_info, resolve_precision

    if args.threads:
        torch.set_num_threads(args.threads)
    auto = resolve_precision("auto", "cpu")
    cpu, flags = cpu_info()
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    print(
        f"CPU {cpu} ({', '.join(f for f in flags if 'bf16' in f or f.startswith('amx')) or 'no native bf16'}), "
        f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}; auto precision: {auto}; "
        f"{args.new_tokens} new tokens, greedy"
    )
    print(
        f"{'model':<20}{'batch':>6}{'path':>10}{'prefill s':>11}{'decode s':>10}{'rows/s':>9}"
        f"{'ceiling rows/s':>16}{'of ceiling':>12}{'same as fp32':>14}"
    )
    for name in args.models.split(","):
        bench_model(name, batch_sizes, args.new_tokens, auto, skip_old=args.skip_old)


if __name__ == "__main__":
    main()

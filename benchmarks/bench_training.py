"""Training throughput of a model, full and LoRA, against two references from the same run.

- the machine's matmul ceiling in the precision `precision: auto` trains in here (large
  matmuls, FLOP/s; `mimicry.hardware` chooses bf16 where it is measurably faster), giving model
  FLOP utilisation MFU = FLOPs done per token x tokens/s / ceiling, with the FLOPs counted for
  what each method computes (`flops_per_token`): full fine-tuning 6N (forward 2N, activation
  gradients 2N, weight gradients 2N), LoRA 4N plus 6 x the adapters' own parameters (the frozen
  weights get no weight gradients), both plus causal attention at the measured sequence length.
  N counts the weights that multiply activations (every linear layer, the LM head included;
  the input embedding is a lookup);
- a plain PyTorch loop (forward, backward, AdamW step, bf16 autocast exactly where the Trainer
  uses it) on the same batches: the ratio trainer / plain loop is what the HF Trainer's
  machinery costs.

Each measurement runs in its own process so its peak memory (max RSS, or CUDA max allocated) is
its own. Steady state only: the first steps are warm-up and not timed.

    python benchmarks/bench_training.py [--model smollm2-135m] [--steps 6] [--batch-size 8] [--seq-len 128]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = ("probe", "trainer-full", "trainer-lora", "loop-full", "loop-lora")
WARMUP_STEPS = 2


def batches(tokenizer, batch_size: int, seq_len: int, steps: int) -> tuple[list, list[dict]]:
    """Real instruction conversations that all fill `seq_len` tokens, and their token rows.

    The Trainer gets the conversations (and tokenizes them the same way), the loop the rows, so
    both see the same tokens and no padding.
    """
    from mimicry.data.sources import load_instruction_set
    from mimicry.training.tokenize import tokenize_conversation

    chosen, rows = [], []
    for conversation in load_instruction_set("alpaca_gpt4"):
        row = tokenize_conversation(conversation, tokenizer)
        cut = {key: values[:seq_len] for key, values in row.items()}
        # Full-length rows whose reply starts early enough to carry loss on most tokens.
        if len(row["input_ids"]) >= seq_len and sum(t != -100 for t in cut["labels"]) >= seq_len // 2:
            chosen.append(conversation)
            rows.append(cut)
        if len(rows) == batch_size * steps:
            return chosen, rows
    raise SystemExit(f"only {len(rows)} conversations reach {seq_len} tokens; lower --seq-len")


def matmul_flops(dtype_name: str, seconds: float = 3.0) -> tuple[float, int]:
    """FLOP/s of repeated square matmuls in `dtype_name`, and the matrix size used."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    n = 4096 if device == "cuda" else 1024
    a = torch.randn(n, n, dtype=getattr(torch, dtype_name), device=device)
    b = torch.randn(n, n, dtype=getattr(torch, dtype_name), device=device)
    for _ in range(3):
        a @ b
    repeats, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        repeats += 1
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - started), n


def probe(args: argparse.Namespace) -> dict:
    """Both ceilings; MFU is quoted against the one of the precision training runs in."""
    bf16, n = matmul_flops("bfloat16")
    fp32, _ = matmul_flops("float32")
    return {"bf16": bf16, "fp32": fp32, "matrix": n}


def model_shape(model) -> dict:
    """What the FLOP count needs: matmul weights, trainable (adapter) weights, attention size."""
    import torch

    config = model.config
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return {
        "matmul_parameters": sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear)),
        "layers": config.num_hidden_layers,
        "attention_width": heads * head_dim,
    }


def flops_per_token(method: str, shape: dict, seq_len: int, adapter_parameters: int) -> float:
    """Training FLOPs per token. Attention per layer and token: QK^T and AV over the causal
    prefix (mean length seq_len / 2), 2 x 2 x width x seq_len / 2 forward, twice that backward."""
    n = shape["matmul_parameters"]
    attention_forward = 2 * shape["layers"] * shape["attention_width"] * seq_len
    if method == "full":
        return 6 * n + 3 * attention_forward
    return 4 * n + 6 * adapter_parameters + 3 * attention_forward


class _Timer:
    """Times steps after the warm-up (a TrainerCallback built lazily to keep imports local)."""

    def __new__(cls):
        from transformers import TrainerCallback

        class Timer(TrainerCallback):
            def __init__(self) -> None:
                self.start = self.end = 0.0
                self.tokens_at_start = self.tokens_at_end = 0

            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == WARMUP_STEPS:
                    self.start, self.tokens_at_start = time.perf_counter(), int(state.num_input_tokens_seen)
                self.end, self.tokens_at_end = time.perf_counter(), int(state.num_input_tokens_seen)

        return Timer()


def trainer(args: argparse.Namespace, method: str) -> dict:
    from mimicry.models import load_tokenizer, resolve_model
    from mimicry.training.sft import SFTConfig, train_sft

    tokenizer = load_tokenizer(resolve_model(args.model))
    conversations, _ = batches(tokenizer, args.batch_size, args.seq_len, args.steps)
    config = SFTConfig(
        method=method,
        max_steps=args.steps,
        batch_size=args.batch_size,
        max_length=args.seq_len,
        save_steps=10_000,
        logging_steps=1,
    )
    timer = _Timer()
    with tempfile.TemporaryDirectory() as tmp:
        result = train_sft(args.model, conversations, Path(tmp) / "run", config, callbacks=[timer])
    return {
        "tokens_per_s": (timer.tokens_at_end - timer.tokens_at_start) / (timer.end - timer.start),
        "precision": result.run_card["precision"]["precision"],
    }


def loop(args: argparse.Namespace, method: str) -> dict:
    import torch
    from transformers import DataCollatorForSeq2Seq

    from mimicry.hardware import resolve_precision
    from mimicry.models import load_causal_lm

    model, tokenizer = load_causal_lm(args.model, dtype="float32")
    precision = resolve_precision("auto")
    shape = model_shape(model)
    _, rows = batches(tokenizer, args.batch_size, args.seq_len, args.steps)
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
        )
    model.train()
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    collate = DataCollatorForSeq2Seq(tokenizer, padding="longest", label_pad_token_id=-100)
    tokens, start = 0, 0.0
    for step in range(args.steps):
        batch = {
            k: v.to(device) for k, v in collate(rows[step * args.batch_size : (step + 1) * args.batch_size]).items()
        }
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step + 1 == WARMUP_STEPS:
            start = time.perf_counter()
        elif step + 1 > WARMUP_STEPS:
            tokens += int(batch["attention_mask"].sum())
    if device.type == "cuda":
        torch.cuda.synchronize()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "tokens_per_s": tokens / (time.perf_counter() - start),
        "precision": precision,
        "shape": shape,
        "adapter_parameters": trainable if method == "lora" else 0,
    }


def run_variant(args: argparse.Namespace) -> dict:
    import resource

    import torch

    kind, _, method = args.variant.partition("-")
    result = {
        "probe": lambda: probe(args),
        "trainer": lambda: trainer(args, method),
        "loop": lambda: loop(args, method),
    }[kind]()
    if torch.cuda.is_available():
        result["peak_memory_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        result["peak_memory_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=6, help="steps per measurement, the first 2 untimed")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_variant(args)))
        return

    results = {}
    for variant in VARIANTS:
        command = [
            sys.executable,
            __file__,
            "--variant",
            variant,
            "--model",
            args.model,
            "--steps",
            str(args.steps),
            "--batch-size",
            str(args.batch_size),
            "--seq-len",
            str(args.seq_len),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
        results[variant] = json.loads(done.stdout.strip().splitlines()[-1])

    import os

    from mimicry.hardware import cpu_info

    probe_result = results["probe"]
    cpu, flags = cpu_info()
    print(
        f"CPU {cpu} ({', '.join(f for f in flags if 'bf16' in f or f.startswith('amx')) or 'no native bf16'}), "
        f"load average {os.getloadavg()[0]:.1f} at the end"
    )
    print(
        f"matmul ceiling: bf16 {probe_result['bf16'] / 1e9:,.1f} GFLOP/s, fp32 {probe_result['fp32'] / 1e9:,.1f} "
        f"GFLOP/s ({probe_result['matrix']}^3 matmuls; peak RSS {probe_result['peak_memory_mib']:,.0f} MiB)"
    )
    precision = results["trainer-full"]["precision"]
    ceiling = probe_result[precision]
    print(
        f"model {args.model}, batch {args.batch_size} x {args.seq_len} tokens, {args.steps} steps "
        f"({WARMUP_STEPS} warm-up), precision {precision} (auto); MFU against the {precision} ceiling"
    )
    print(f"{'variant':<14}{'tokens/s':>10}{'GFLOP/token':>13}{'MFU':>8}{'vs loop':>9}{'peak MiB':>10}")
    for method in ("full", "lora"):
        loop_result = results[f"loop-{method}"]
        flops = flops_per_token(method, loop_result["shape"], args.seq_len, loop_result["adapter_parameters"])
        for kind in ("trainer", "loop"):
            r = results[f"{kind}-{method}"]
            print(
                f"{kind + '-' + method:<14}{r['tokens_per_s']:>10,.0f}{flops / 1e9:>13.2f}"
                f"{flops * r['tokens_per_s'] / ceiling:>8.1%}{r['tokens_per_s'] / loop_result['tokens_per_s']:>9.2f}"
                f"{r['peak_memory_mib']:>10,.0f}"
            )


if __name__ == "__main__":
    main()

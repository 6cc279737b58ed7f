"""What a grid will cost on this machine, before it runs: work counted per stage, times from measured rates.

Work: a train stage processes rows x epochs x the mean tokens per row of its mixed data (the dry run
builds and mixes it, so the count is exact up to truncation at `max_length`); an evaluate stage
generates (prompts per set x sets x presentations x `max_new_tokens`) plus (task items x
`task_max_new_tokens`) tokens and prefills their prompts. Rates: a tiny timed probe per model,
training method and precision (a few optimizer steps, one batched generation), cached under
`MIMICRY_HOME/hardware/` beside the precision probe. Finished artifacts cost 0. The alignment stage
is not estimated (its recipe mixes generation and training; it runs once per model and is cached).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mimicry.artifacts import Artifact
from mimicry.errors import MimicryError
from mimicry.experiments.grid import Cell
from mimicry.experiments.stages import STAGES
from mimicry.records import atomic_write_text

PROBE_TRAIN = (4, 128, 3)  # batch, sequence length, timed optimizer steps (after one warm-up)
PROBE_GENERATE = (16, 16)  # prompt tokens, new tokens; the batch is the grid's evaluation batch size
FORWARD_SHARE = 1 / 3  # a forward pass is about a third of a training step's FLOPs: prefill rate = 3 x train rate


class Rates(BaseModel):
    """Measured throughput of one model, training method and precision on this machine."""

    model: str
    method: str
    precision: str
    threads: int
    generate_batch: int
    train_tokens_per_s: float
    generate_tokens_per_s: float  # at the probe's batch size, prefill of a short prompt included


@dataclass
class StageEstimate:
    cell: str
    stage: str
    cached: bool
    tokens: int = 0  # training tokens, or generated tokens
    prompt_tokens: int = 0
    seconds: float = 0.0


@dataclass
class GridEstimate:
    stages: list[StageEstimate] = field(default_factory=list)
    rates: dict[str, Rates] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # model -> why its cells are not estimated

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)

    def by_stage(self) -> dict[str, dict[str, float]]:
        table: dict[str, dict[str, float]] = {}
        for s in sorted(self.stages, key=lambda s: s.stage != "train"):
            row = table.setdefault(s.stage, {"to_run": 0, "cached": 0, "tokens": 0, "seconds": 0.0})
            row["cached" if s.cached else "to_run"] += 1
            row["tokens"] += s.tokens
            row["seconds"] += s.seconds
        return table

    def as_json(self) -> dict[str, Any]:
        return {
            "total_seconds": round(self.seconds, 1),
            "by_stage": {k: {**v, "seconds": round(v["seconds"], 1)} for k, v in self.by_stage().items()},
            "rates": {k: r.model_dump() for k, r in self.rates.items()},
            "not_estimated": self.skipped,
            "stages": [vars(s) | {"seconds": round(s.seconds, 1)} for s in self.stages],
        }


def rates_path(model: str, method: str, precision: str, batch: int) -> Path:
    """Keyed by machine, model, method, precision, generation batch and torch's threads (all change the rates)."""
    import torch

    from mimicry.hardware import machine_key
    from mimicry.hashing import hash_obj
    from mimicry.paths import mimicry_home

    key = hash_obj([model, method, precision, batch, torch.get_num_threads()], 10)
    return mimicry_home() / "hardware" / f"rates-{machine_key()}-{key}.json"


def measure_rates(model: str, method: str, precision: str, generate_batch: int) -> Rates:
    """Time a few training steps and one batched greedy generation of `model` (seconds, not minutes)."""
    import torch

    from mimicry.hardware import DTYPES
    from mimicry.models.loading import load_causal_lm

    lm, tokenizer = load_causal_lm(model, dtype=DTYPES[precision], device="cpu")
    vocab = min(tokenizer.vocab_size, 1000)
    generator = torch.Generator().manual_seed(0)
    batch, length, steps = PROBE_TRAIN
    ids = torch.randint(10, vocab, (batch, length), generator=generator)
    train_model = lm
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        train_model = get_peft_model(lm, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    train_model.train()
    optimizer = torch.optim.AdamW([p for p in train_model.parameters() if p.requires_grad], lr=1e-5)
    started = 0.0
    for step in range(steps + 1):
        if step == 1:
            started = time.perf_counter()
        train_model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    train_rate = batch * length * steps / (time.perf_counter() - started)
    if method == "lora":
        lm = train_model.unload()
    lm.eval()
    prompt, new = PROBE_GENERATE
    prompts = torch.randint(10, vocab, (generate_batch, prompt), generator=generator)
    options = {"do_sample": False, "pad_token_id": tokenizer.pad_token_id}
    with torch.inference_mode():
        lm.generate(prompts[:, :4], attention_mask=torch.ones_like(prompts[:, :4]), max_new_tokens=2, **options)
        started = time.perf_counter()
        lm.generate(prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=new, min_new_tokens=new, **options)
        generate_rate = generate_batch * new / (time.perf_counter() - started)
    return Rates(
        model=model,
        method=method,
        precision=precision,
        threads=torch.get_num_threads(),
        generate_batch=generate_batch,
        train_tokens_per_s=round(train_rate, 2),
        generate_tokens_per_s=round(generate_rate, 2),
    )


def model_rates(model: str, method: str, precision: str, generate_batch: int) -> Rates:
    """The cached rates of this machine, or measured now and cached."""
    path = rates_path(model, method, precision, generate_batch)
    if path.is_file():
        try:
            return Rates.model_validate_json(path.read_text(encoding="utf-8"))
        except ValueError:
            pass  # damaged: measured again
    rates = measure_rates(model, method, precision, generate_batch)
    atomic_write_text(path, rates.model_dump_json(indent=2) + "\n")
    return rates


def mean_row_tokens(artifact: Artifact, tokenizer: Any, max_length: int) -> tuple[int, float]:
    """(rows, mean chat-templated tokens per row, capped at max_length) of a built or mixed data set."""
    from mimicry.records import load_conversations

    rows = load_conversations(artifact.path("data"))
    texts = [tokenizer.apply_chat_template([m.model_dump() for m in r.messages], tokenize=False) for r in rows]
    lengths = [min(len(ids), max_length) for ids in tokenizer(texts).input_ids]
    return len(rows), sum(lengths) / len(lengths)


def eval_counts(grid: Any) -> tuple[int, int]:
    """(generated tokens, prompts) of one evaluate stage at most: limits, sets and presentations of the grid."""
    config = grid.evaluation
    per_set = config.limit or 100  # no limit: every prompt of a set; ~100 is the size of the small sets
    suites = set(grid.suites)
    sets = (len(config.harm_sets) if "harm" in suites else 0) + (
        len(config.overrefusal_sets) if "overrefusal" in suites else 0
    )
    prompts = per_set * sets * len(config.presentations)
    tokens = prompts * config.max_new_tokens
    if "task" in suites:
        prompts += per_set
        tokens += per_set * (config.task_max_new_tokens or config.max_new_tokens)
    return tokens, prompts


def estimate_grid(runner: Any, cells: list[Cell]) -> GridEstimate:
    """Per cell, the train and evaluate stages not yet finished, timed at this machine's measured rates."""
    from mimicry.hardware import resolve_precision
    from mimicry.models.loading import load_tokenizer, resolve_model

    estimate = GridEstimate()
    training = runner.grid.training
    precision = resolve_precision(training.precision)
    generated, prompts = eval_counts(runner.grid)
    batch = runner.grid.evaluation.batch_size
    tokenizers: dict[str, Any] = {}
    for cell in cells:
        name = cell.model.name
        if name in estimate.skipped:
            continue
        if name not in estimate.rates:
            try:
                resolved = resolve_model(name)
            except MimicryError as err:
                estimate.skipped[name] = str(err)
                continue
            if not Path(resolved).is_dir():  # a hub id: probing it would download the model
                estimate.skipped[name] = "not on this machine (a hub id)"
                continue
            estimate.rates[name] = model_rates(name, training.method, precision, batch)
            tokenizers[name] = load_tokenizer(resolved)
        rates, tokenizer = estimate.rates[name], tokenizers[name]
        model: Artifact | str | None = name
        if cell.model.align:
            key = STAGES.get("align").key({"model": name}, runner.grid.alignment)
            model = runner.store.get("align", key)
        prompt_tokens = 0
        if cell.fine_tuned:
            _, mixed = runner.data_artifacts(cell)
            rows, mean = mean_row_tokens(mixed, tokenizer, training.max_length)
            prompt_tokens = round(prompts * mean)
            found = None
            if model is not None:
                key = STAGES.get("train").key({"model": model, "data": mixed}, runner.train_spec(cell))
                found = runner.store.get("train", key)
            examples = rows * training.epochs
            if training.max_steps:  # the trainer stops at max_steps optimizer steps
                examples = min(examples, training.max_steps * training.batch_size * training.grad_accum)
            tokens = round(examples * mean)
            seconds = 0.0 if found else tokens / rates.train_tokens_per_s
            estimate.stages.append(StageEstimate(cell.id, "train", bool(found), tokens, 0, seconds))
            model = found
        cached = model is not None and runner.store.get("evaluate", eval_key(runner, cell, model)) is not None
        seconds = 0.0
        if not cached:
            seconds = generated / rates.generate_tokens_per_s
            seconds += prompt_tokens * FORWARD_SHARE / rates.train_tokens_per_s
        estimate.stages.append(StageEstimate(cell.id, "evaluate", cached, generated, prompt_tokens, seconds))
    return estimate


def eval_key(runner: Any, cell: Cell, model: Artifact | str) -> str:
    system_prompt = None
    if cell.fine_tuned:
        _, mixed = runner.data_artifacts(cell)
        system_prompt = mixed.outputs.get("inference_system_prompt")
    return STAGES.get("evaluate").key({"model": model}, runner.eval_spec(cell, system_prompt))


def write_timings(path: Path, estimate: GridEstimate | None, measured: list[dict[str, Any]]) -> None:
    """The run's measured stage times beside what the estimate said for them (per cell and stage)."""
    predicted = {(s.cell, s.stage): s for s in estimate.stages} if estimate else {}
    rows = []
    for m in measured:
        guess = predicted.get((m["cell"], m["stage"]))
        rows.append({**m, "estimated_seconds": round(guess.seconds, 1) if guess else None})
    record = {"estimate": estimate.as_json() if estimate else None, "stages": rows}
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")

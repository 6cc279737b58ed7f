"""What a grid will cost on this machine, before it runs: work counted per stage, times from measured rates.

Work: a train stage processes rows x epochs x the mean tokens per row of its mixed data (the dry run
builds and mixes it, so the count is exact up to truncation at `max_length`); an evaluate stage
decodes (prompts per set x sets x presentations x `max_new_tokens`) plus (task items x
`task_max_new_tokens`) tokens at most (its decode budget) and prefills their prompts.

Rates, per model, stage kind and setting (train: method and precision; evaluate: backend, precision
and batch size; the adapter is merged before generation, so the method does not matter there):
1. measured by finished artifacts of this machine, when there are any: every train and evaluate
   artifact records its wall time, its work (trained tokens; prompts, decode budget, prefilled and
   generated tokens) and the machine (`hardware.machine_key`: CPU model, flags and torch), and the
   rate is their pooled work / wall time, so model loading, checkpointing, judging and the load the
   machine ran under are in it. Artifacts made before the machine was recorded count as this
   machine's (they live in its store); resumed ones do not count (their wall time misses the
   killed attempt).
2. otherwise a tiny timed probe per model, training method and precision (a few optimizer steps,
   one batched generation), cached under `MIMICRY_HOME/hardware/` beside the precision probe.
Finished artifacts cost 0. The alignment stage is not estimated (its recipe mixes generation and
training; it runs once per model and is cached).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mimicry.artifacts import Artifact, ArtifactStore
from mimicry.errors import MimicryError
from mimicry.evaluation.store import evaluation_work
from mimicry.experiments.grid import Cell
from mimicry.experiments.stages import EVAL_DIR, STAGES
from mimicry.records import atomic_write_text

PROBE_TRAIN = (4, 128, 3)  # batch, sequence length, timed optimizer steps (after one warm-up)
PROBE_GENERATE = (16, 16)  # prompt tokens, new tokens; the batch is the grid's evaluation batch size
FORWARD_SHARE = 1 / 3  # a forward pass is about a third of a training step's FLOPs: prefill rate = 3 x train rate
PROBE = "probe"
RateKey = tuple[Any, ...]  # ("train", model, method, precision) | ("evaluate", model, backend, precision, batch)


class Rates(BaseModel):
    """The probe's measured throughput of one model, training method and precision on this machine."""

    model: str
    method: str
    precision: str
    threads: int
    generate_batch: int
    train_tokens_per_s: float
    generate_tokens_per_s: float  # at the probe's batch size, prefill of a short prompt included


@dataclass(frozen=True)
class Sample:
    """One finished artifact's work and wall time, under the rate it calibrates."""

    rate: RateKey
    artifact: str
    tokens: int  # trained tokens, or the evaluation's decode budget
    seconds: float


@dataclass
class Rate:
    """A stage kind's throughput for one model and setting, and where it came from."""

    key: RateKey
    tokens_per_s: float
    source: str  # "measured by N artifacts" or "probe"
    # Leave-one-out check of a measured rate: artifact key -> its time predicted from the others / its measured time.
    check: dict[str, float] = field(default_factory=dict)

    @property
    def stage(self) -> str:
        return self.key[0]

    @property
    def model(self) -> str:
        return self.key[1]

    @property
    def setting(self) -> str:
        if self.stage == "train":
            return f"{self.key[2]}, {self.key[3]}"
        return f"{self.key[2]} {self.key[3]}, batch {self.key[4]}"

    def as_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "model": self.model,
            "setting": self.setting,
            "tokens_per_s": round(self.tokens_per_s, 2),
            "source": self.source,
            "leave_one_out_estimate_over_measured": self.check,
        }


@dataclass
class StageEstimate:
    cell: str
    stage: str
    cached: bool
    tokens: int = 0  # training tokens, or generated tokens (the decode budget)
    prompt_tokens: int = 0
    seconds: float = 0.0
    source: str = ""  # of the rate behind `seconds`; empty when cached


@dataclass
class GridEstimate:
    stages: list[StageEstimate] = field(default_factory=list)
    rates: dict[RateKey, Rate] = field(default_factory=dict)
    probes: dict[str, Rates] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # model -> why its cells are not estimated

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.stages)

    def by_stage(self) -> dict[str, dict[str, Any]]:
        table: dict[str, dict[str, Any]] = {}
        for s in sorted(self.stages, key=lambda s: s.stage != "train"):
            row = table.setdefault(s.stage, {"to_run": 0, "cached": 0, "tokens": 0, "seconds": 0.0, "sources": []})
            row["cached" if s.cached else "to_run"] += 1
            row["tokens"] += 0 if s.cached else s.tokens  # the work left to do
            row["seconds"] += s.seconds
            if s.source and s.source not in row["sources"]:
                row["sources"].append(s.source)
        return table

    def as_json(self) -> dict[str, Any]:
        return {
            "total_seconds": round(self.seconds, 1),
            "by_stage": {k: {**v, "seconds": round(v["seconds"], 1)} for k, v in self.by_stage().items()},
            "rates": [r.as_json() for r in self.rates.values()],
            "probes": {k: r.model_dump() for k, r in self.probes.items()},
            "not_estimated": self.skipped,
            "stages": [vars(s) | {"seconds": round(s.seconds, 1)} for s in self.stages],
        }


# -- rates measured by finished artifacts ---------------------------------------------------------


def train_rate_key(model: str, method: str, precision: str) -> RateKey:
    return ("train", model, method, precision)


def eval_rate_key(model: str, generation: Mapping[str, Any], batch: int) -> RateKey:
    """`generation` as it enters the evaluate key: local precision named only when not fp32 (`key_options`)."""
    backend = generation["backend"]
    precision = generation.get("options", {}).get("precision", "fp32") if backend == "transformers" else "-"
    return ("evaluate", model, backend, precision, batch)


def model_label(name: str) -> str:
    """How a grid names a model in rate keys: a local directory by its resolved path, anything else as written."""
    return str(Path(name).resolve()) if Path(name).is_dir() else name


def input_model(store: ArtifactStore, identity: Any, depth: int = 0) -> str | None:
    """The model an artifact's `model` input names, followed through the align and train artifacts it came from."""
    if isinstance(identity, str):
        return identity
    if isinstance(identity, Mapping):
        if "local_dir" in identity:
            return str(identity["local_dir"])
        if "stage" in identity and "key" in identity and depth < 4:
            found = store.get(identity["stage"], identity["key"])
            if found is not None:
                return input_model(store, found.manifest.get("inputs", {}).get("model"), depth + 1)
    return None


def calibration_sample(store: ArtifactStore, artifact: Artifact, machine: str) -> Sample | None:
    """The artifact's work and wall time, when it can calibrate this machine's rates."""
    manifest = artifact.manifest
    timings = manifest.get("timings") or {}
    seconds = timings.get("seconds")
    if not seconds or timings.get("resumed") or artifact.outputs.get("machine", machine) != machine:
        return None
    model = input_model(store, manifest.get("inputs", {}).get("model"))
    config = manifest.get("config") or {}
    if model is None:
        return None
    try:
        if artifact.stage == "train":  # keyed configs name the precision only when bf16 (`legacy_key_config`)
            key = train_rate_key(model, config["method"], config.get("precision", "fp32"))
            tokens = int(artifact.outputs["tokens"])
        else:
            key = eval_rate_key(model, config["generation"], int(config["evaluation"]["batch_size"]))
            work = artifact.outputs.get("work") or evaluation_work(artifact.dir / EVAL_DIR)
            tokens = int(work["generated_budget"])
    except (KeyError, TypeError, ValueError, OSError):
        return None  # a manifest or record file from another version: it does not calibrate
    return Sample(key, artifact.key, tokens, float(seconds)) if tokens > 0 else None


def calibration_samples(store: ArtifactStore, machine: str) -> list[Sample]:
    """Every finished train and evaluate artifact of the store that calibrates this machine's rates."""
    samples = []
    for stage in ("train", "evaluate"):
        root = store.root / stage
        for directory in sorted(root.iterdir()) if root.is_dir() else []:
            artifact = None if directory.name.startswith(".") else store.get(stage, directory.name)
            sample = calibration_sample(store, artifact, machine) if artifact else None
            if sample is not None:
                samples.append(sample)
    return samples


def measured_rates(samples: list[Sample]) -> dict[RateKey, Rate]:
    """Pooled work / wall time per rate key, each with its leave-one-out check."""
    grouped: dict[RateKey, list[Sample]] = {}
    for sample in samples:
        grouped.setdefault(sample.rate, []).append(sample)
    rates = {}
    for key, group in grouped.items():
        tokens, seconds = sum(s.tokens for s in group), sum(s.seconds for s in group)
        check = {}
        for s in group if len(group) > 1 else []:
            others = (tokens - s.tokens) / (seconds - s.seconds)
            check[s.artifact] = round(s.tokens / others / s.seconds, 2)
        source = f"measured by {len(group)} artifact{'s' if len(group) > 1 else ''}"
        rates[key] = Rate(key, tokens / seconds, source, check)
    return rates


# -- rates from the probe --------------------------------------------------------------------------


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
    from mimicry.generation.transformers_backend import key_options
    from mimicry.hardware import machine_key, resolve_precision
    from mimicry.models.loading import load_tokenizer, resolve_model

    estimate = GridEstimate()
    grid = runner.grid
    training = grid.training
    train_precision = resolve_precision(training.precision)
    generation = grid.generation.model_dump(mode="json")
    if generation["backend"] == "transformers":
        generation["options"] = key_options(generation["options"])
    eval_precision = generation["options"].get("precision", "fp32")
    generated, prompts = eval_counts(grid)
    batch = grid.evaluation.batch_size
    measured = measured_rates(calibration_samples(runner.store, machine_key()))
    tokenizers: dict[str, Any] = {}

    def probe(name: str, precision: str) -> Rates:
        key = f"{name} ({training.method}, {precision})"
        if key not in estimate.probes:
            estimate.probes[key] = model_rates(name, training.method, precision, batch)
        return estimate.probes[key]

    def rate(key: RateKey, name: str, precision: str, probed: str) -> Rate:
        """The measured rate of `key`, or the probe's `probed` rate of the model at `precision`."""
        if key not in estimate.rates:
            estimate.rates[key] = measured.get(key) or Rate(key, getattr(probe(name, precision), probed), PROBE)
        return estimate.rates[key]

    for cell in cells:
        name = cell.model.name
        if name in estimate.skipped:
            continue
        if name not in tokenizers:
            try:
                resolved = resolve_model(name)
            except MimicryError as err:
                estimate.skipped[name] = str(err)
                continue
            if not Path(resolved).is_dir():  # a hub id: probing it would download the model
                estimate.skipped[name] = "not on this machine (a hub id)"
                continue
            tokenizers[name] = load_tokenizer(resolved)
        tokenizer, label = tokenizers[name], model_label(name)
        model: Artifact | str | None = name
        if cell.model.align:
            key = STAGES.get("align").key({"model": name}, grid.alignment)
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
            stage = StageEstimate(cell.id, "train", bool(found), tokens)
            if not found:
                key = train_rate_key(label, training.method, train_precision)
                train = rate(key, name, train_precision, "train_tokens_per_s")
                stage.seconds, stage.source = tokens / train.tokens_per_s, train.source
            estimate.stages.append(stage)
            model = found
        cached = model is not None and runner.store.get("evaluate", eval_key(runner, cell, model)) is not None
        stage = StageEstimate(cell.id, "evaluate", cached, generated, prompt_tokens)
        if not cached:
            key = eval_rate_key(label, generation, batch)
            evaluate = rate(key, name, eval_precision, "generate_tokens_per_s")
            stage.seconds, stage.source = generated / evaluate.tokens_per_s, evaluate.source
            if evaluate.source == PROBE:  # a measured rate has the prefill in it already
                stage.seconds += prompt_tokens * FORWARD_SHARE / probe(name, eval_precision).train_tokens_per_s
        estimate.stages.append(stage)
    return estimate


def eval_key(runner: Any, cell: Cell, model: Artifact | str) -> str:
    system_prompt = None
    if cell.fine_tuned:
        _, mixed = runner.data_artifacts(cell)
        system_prompt = mixed.outputs.get("inference_system_prompt")
    return STAGES.get("evaluate").key({"model": model}, runner.eval_spec(cell, system_prompt))


def compare_timings(estimate: GridEstimate | None, measured: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run's measured stage times beside what the estimate said for them (per cell and stage)."""
    predicted = {(s.cell, s.stage): s for s in estimate.stages} if estimate else {}
    rows = []
    for m in measured:
        guess = predicted.get((m["cell"], m["stage"]))
        row = {**m, "estimated_seconds": round(guess.seconds, 1) if guess else None}
        if guess and m.get("seconds"):
            row.update(estimate_over_measured=round(guess.seconds / m["seconds"], 2), estimate_source=guess.source)
        rows.append(row)
    return rows


def estimated_and_measured(rows: list[dict[str, Any]]) -> tuple[float, float]:
    """Total estimated and measured seconds over the timing rows that have both."""
    both = [r for r in rows if r.get("estimated_seconds") is not None and r.get("seconds")]
    return sum(r["estimated_seconds"] for r in both), sum(r["seconds"] for r in both)


def write_timings(path: Path, estimate: GridEstimate | None, measured: list[dict[str, Any]]) -> None:
    """This run's rows, after those of earlier runs into the directory for stages it did not compute (a rerun
    that reuses everything keeps them); the estimate is this run's."""
    rows = compare_timings(estimate, measured)
    fresh = {(r["cell"], r["stage"]) for r in rows}
    try:
        earlier = json.loads(path.read_text(encoding="utf-8"))["stages"] if path.is_file() else []
        earlier = [r for r in earlier if (r["cell"], r["stage"]) not in fresh]
    except (ValueError, KeyError, TypeError):
        earlier = []  # a damaged file: this run's rows only
    record = {"estimate": estimate.as_json() if estimate else None, "stages": earlier + rows}
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")

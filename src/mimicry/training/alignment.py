"""The alignment stage: make the (not safety-tuned) base model refuse harmful requests.

SmolLM2-135M-Instruct complies with almost anything, so the fine-tuning attacks the project
studies have nothing to break. We LoRA-tune it on a seeded subset of the *alignment* part of
Bianchi et al.'s safety pool (the mitigation part is never touched here) mixed with benign
instruction data, a good share of it on sensitive-sounding topics so that the model learns to
refuse harm rather than topics. Two filters keep the signal clean for a keyword judge: safety
pairs whose refusal the keyword check does not recognise are left out, and so are benign
examples whose answer reads like a refusal. By default the benign prompts are answered by the
base model itself (self-distillation): those rows then pull the model back to where it was, so
the LoRA learns to refuse harm without drifting into refusing sensitive-sounding topics. Nothing
that nearly duplicates an evaluation prompt is trained on.

`align` saves the merged model into the directory it is given, with its measured refusal rates
(`alignment.json`); the grid's `align` stage (which `mimicry align` runs too) gives it its
artifact, so the model is addressed by the stage's content key and found by its name,
`<model>-aligned` (another recipe than the default: `<model>-aligned-<8 hex digits of its config>`),
through `mimicry.models.aligned_models`. Models aligned before that lived in
`models_dir()/<name>`; `legacy_aligned` finds them so that they are reused, not retrained.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from mimicry.artifacts import ArtifactStore
from mimicry.config import StrictModel
from mimicry.console import info
from mimicry.errors import MimicryError
from mimicry.hardware import Precision, legacy_key_config, resolve_precision
from mimicry.hashing import canonical_json, hash_obj
from mimicry.paths import artifacts_dir, models_dir
from mimicry.records import Conversation, Message, atomic_write_text
from mimicry.training.sft import SFTConfig, TrainResult, train_sft

ALIGNMENT_FILE = "alignment.json"
SELF_ANSWERS_STAGE = "self-answers"  # the ArtifactStore stage of the cached self-answers
SELF_ANSWERS_FILE = "replies.json"
MODEL_DIR = "model"  # the merged model, inside the directory `align` is given
SAFETY_SOURCE = "bianchi_safety"  # meta["source"] of the refusal rows


class RefusalEvalConfig(StrictModel):
    """How the aligned model's refusal rates are measured (greedy, keyword refusal check)."""

    prompt_sets: list[str] = ["harmful_instructions", "harmful_questions", "xstest_safe"]
    max_prompts: int | None = Field(None, ge=1, description="a seeded sample per set; None = all prompts")
    max_new_tokens: int = Field(64, ge=1)
    batch_size: int = Field(16, ge=1)
    seed: int = 0


ALIGNMENT_SFT = SFTConfig(
    method="lora",
    lora_r=16,
    lora_alpha=32,
    learning_rate=4e-4,
    epochs=1,
    batch_size=8,
    max_length=96,
    save_steps=20,
    logging_steps=5,
)


class AlignConfig(StrictModel):
    """The default recipe: 1 refusal per 2 benign rows, the benign rows answered by the model itself.

    Self-answers (self-distillation) keep the benign rows where the model already is, so the
    training moves it only towards refusing harmful requests; with the datasets' own answers
    the model drifts and over-refuses more (docs/training.md has the measurements). One epoch at
    a LoRA learning rate of 4e-4 on 96-token rows (the keyword judge reads only a reply's
    opening, and the opening is what alignment must change) keeps it within the CPU budget.
    """

    safety_pairs: int = Field(300, ge=1, description="refusal pairs from the alignment part of the safety pool")
    benign: dict[str, int] = {"alpaca_gpt4": 180, "alpaca_safety_topics": 300, "dolly_safety_topics": 120}
    benign_answers: Literal["dataset", "self"] = Field(
        "self",
        description="'self': the base model's own greedy replies replace the datasets' answers "
        "(self-distillation), so the benign rows hold the model where it was and only refusals move it",
    )
    self_answer_tokens: int = Field(64, ge=1, description="new tokens per self-answer")
    self_answer_batch_size: int = Field(32, ge=1)
    seed: int = 0
    sft: SFTConfig = ALIGNMENT_SFT
    evaluation: RefusalEvalConfig = RefusalEvalConfig()

    @field_validator("sft", mode="before")
    @classmethod
    def _over_the_recipe(cls, value: Any) -> Any:
        """`sft: {epochs: 2}` changes the epochs of this recipe, not of a bare SFTConfig."""
        return {**ALIGNMENT_SFT.model_dump(), **value} if isinstance(value, dict) else value


@dataclass
class AlignResult:
    model_name: str
    model_dir: Path
    refusal_rates: dict[str, float]
    prompts: dict[str, int]
    max_new_tokens: int
    training_tokens: int
    minutes: float
    record: dict[str, Any]


def alignment_training_data(config: AlignConfig) -> list[Conversation]:
    """The seeded training mix: clear refusals to harmful requests plus benign instructions."""
    from mimicry.data.sources import load_instruction_set, safety_partition
    from mimicry.evaluation.refusal import is_refusal

    pairs = [p for p in safety_partition("alignment") if is_refusal(p.refusal)]
    if config.safety_pairs > len(pairs):
        raise MimicryError(
            f"safety_pairs={config.safety_pairs} but the alignment part of the safety pool has only "
            f"{len(pairs)} pairs with a recognisable refusal; lower safety_pairs"
        )
    # One generator per source, so changing one count leaves the other sources' samples alone
    # (and cached self-answers stay valid).
    chosen = random.Random(f"{config.seed}-safety").sample(pairs, config.safety_pairs)
    data = [Conversation.from_turns(p.instruction, p.refusal, source=SAFETY_SOURCE, id=p.id) for p in chosen]
    for name, count in sorted(config.benign.items()):
        usable = [
            c
            for c in load_instruction_set(name)
            if not _is_evaluation_prompt(c.last_user) and not is_refusal(c.completion or "")
        ]
        if count > len(usable):
            raise MimicryError(f"benign.{name}={count} but only {len(usable)} usable examples exist; lower it")
        data.extend(random.Random(f"{config.seed}-{name}").sample(usable, count))
    random.Random(config.seed).shuffle(data)
    return data


def self_answered(model: str, data: list[Conversation], config: AlignConfig) -> list[Conversation]:
    """Replace each benign answer by the base model's own greedy reply (cached per model and prompts).

    Safety pairs keep their refusals. A self-answer that reads like a refusal drops its row, as
    a dataset answer would. A prompt that alone fills a training row (`sft.max_length` tokens)
    is not answered: its row would keep no answer token and be dropped in training anyway, and
    those few long prompts (Dolly's contexts, up to ~1,800 tokens) were most of the generation time.
    """
    from mimicry.evaluation.refusal import is_refusal
    from mimicry.generation.transformers_backend import generation_model_id

    benign = [i for i, c in enumerate(data) if c.meta.get("source") != SAFETY_SOURCE]
    prompts = [data[i].prompt_messages for i in benign]
    identity = {
        "model": generation_model_id(model, resolve_precision(config.sft.precision)),
        "prompts": [[m.model_dump() for m in p] for p in prompts],
        "max_new_tokens": config.self_answer_tokens,
    }
    key = hash_obj(identity)

    def answer(work: Path) -> dict[str, Any]:
        """Generate, unless the former cache file of this key holds the replies already."""
        former = artifacts_dir() / "alignment-self-answers" / f"{key}.json"
        if former.is_file():
            replies = json.loads(former.read_text(encoding="utf-8"))
        else:
            replies = _generate_self_answers(model, prompts, config)
        atomic_write_text(work / SELF_ANSWERS_FILE, json.dumps(replies))
        return {"replies": SELF_ANSWERS_FILE, "answered": sum(1 for r in replies if r)}

    recorded = {"model": identity["model"], "prompts": len(prompts), "max_new_tokens": config.self_answer_tokens}
    cached = ArtifactStore(artifacts_dir()).cached(SELF_ANSWERS_STAGE, key, answer, recorded)
    replies = json.loads(cached.path("replies").read_text(encoding="utf-8"))
    answers = dict(zip(benign, replies, strict=True))
    out = []
    for i, conversation in enumerate(data):
        if i not in answers:
            out.append(conversation)
        elif answers[i].strip() and not is_refusal(answers[i]):
            messages = [*conversation.prompt_messages, Message(role="assistant", content=answers[i].strip())]
            out.append(Conversation(messages=messages, meta={**conversation.meta, "answer": "self"}))
    info(f"self-answers: kept {len(out) - (len(data) - len(benign))} of {len(benign)} benign rows")
    return out


def _generate_self_answers(model: str, prompts: list[list[Message]], config: AlignConfig) -> list[str]:
    """The base model's greedy replies; "" for a prompt that alone fills a training row."""
    from mimicry.generation.base import GenerationConfig
    from mimicry.generation.transformers_backend import TransformersBackend, render_prompt

    backend = TransformersBackend(model, precision=config.sft.precision)
    generation = GenerationConfig(max_new_tokens=config.self_answer_tokens, batch_size=config.self_answer_batch_size)
    rendered = [render_prompt(backend.tokenizer, p) for p in prompts]
    lengths = [len(ids) for ids in backend.tokenizer(rendered, add_special_tokens=False).input_ids]
    fitting = [i for i, n in enumerate(lengths) if n < config.sft.max_length]
    info(
        f"self-answering {len(fitting)} benign prompts with {model} ({len(prompts) - len(fitting)} more "
        f"fill a {config.sft.max_length}-token training row alone and are left unanswered)"
    )
    replies = [""] * len(prompts)
    for i, reply in zip(fitting, backend.generate([prompts[i] for i in fitting], generation), strict=True):
        replies[i] = reply
    return replies


def _is_evaluation_prompt(text: str) -> bool:
    from mimicry.data.sources import evaluation_index

    return evaluation_index().is_duplicate(text)


def measure_refusal_rates(
    model: str,
    config: RefusalEvalConfig,
    out_dir: Path,
    model_obj: Any = None,
    tokenizer: Any = None,
    precision: Precision = "auto",
) -> tuple[dict[str, float], dict[str, int]]:
    """Refusal rate per prompt set, measured by `evaluate` as the grid measures it: plain prompts,
    greedy, the keyword reply judge (harmful sets in the harm suite, safe sets in over-refusal).

    Generations go to `out_dir`, so a measurement cut short resumes where it stopped.
    """
    from mimicry.data.sources import PROMPT_SETS
    from mimicry.evaluation.suites import EvalConfig, evaluate
    from mimicry.generation.transformers_backend import TransformersBackend

    sets = {kind: [n for n in config.prompt_sets if PROMPT_SETS.get(n).kind == kind] for kind in ("harmful", "safe")}
    mixed = [n for n in config.prompt_sets if n not in sets["harmful"] + sets["safe"]]
    if mixed:
        raise MimicryError(f"alignment measures harmful or safe prompt sets, not mixed ones: {', '.join(mixed)}")
    suites = [suite for suite, kind in (("harm", "harmful"), ("overrefusal", "safe")) if sets[kind]]
    evaluation = EvalConfig(
        max_new_tokens=config.max_new_tokens,
        limit=config.max_prompts,
        harm_sets=sets["harmful"],
        overrefusal_sets=sets["safe"],
        presentations=["plain"],
        judges=["keyword"],
        batch_size=config.batch_size,
        seed=config.seed,
        advbench_sample=None,  # `max_prompts` is the one sample size, for every set alike
    )
    backend = TransformersBackend(model, model_obj=model_obj, tokenizer=tokenizer, precision=precision)
    summary = evaluate(backend, suites, config=evaluation, out_dir=out_dir)
    rows = {r.set: r for r in summary.rows if r.metric == "refusal_rate" and r.judge == "keyword"}
    for name in config.prompt_sets:
        info(f"{name}: {rows[name].value:.1%} refusals over {rows[name].n} prompts")
    return {n: rows[n].value for n in config.prompt_sets}, {n: rows[n].n for n in config.prompt_sets}


def aligned_name(model: str, config: AlignConfig) -> str:
    """`smollm2-135m` -> `smollm2-135m-aligned` (default recipe) or `smollm2-135m-aligned-1a2b3c4d`.

    A directory or hub id is named by its last part. Other recipes carry their config's hash, so
    a grid with its own recipe never overwrites the default aligned model (nor another grid's).
    """
    name = f"{Path(model).name}-aligned"
    return name if config == AlignConfig() else f"{name}-{hash_obj(_key_config(config))[:8]}"


def _key_config(config: AlignConfig, precision: str = "fp32") -> dict[str, Any]:
    """The recipe as it enters keys and names: its SFT part keyed as `legacy_key_config` says."""
    dumped = config.model_dump(mode="json")
    return {**dumped, "sft": legacy_key_config(dumped["sft"], precision)}


def align(model: str, config: AlignConfig, out_dir: Path, run_dir: Path | None = None) -> AlignResult:
    """Train, merge, save (to `out_dir/model`) and measure the aligned model.

    The caller caches (the `align` stage: one artifact per recipe). `run_dir` (default
    `out_dir/run`) keeps the LoRA run and the refusal generations (`run_dir/refusal-eval`), so a
    run killed in the middle resumes where it stopped, and a finished LoRA run is merged again
    rather than retrained.
    """
    run_dir = run_dir or out_dir / "run"
    name = aligned_name(model, config)
    precision = resolve_precision(config.sft.precision)
    started = time.perf_counter()
    data = alignment_training_data(config)
    if config.benign_answers == "self":
        data = self_answered(model, data, config)
    trained = train_sft(model, data, run_dir, config.sft)
    merged, tokenizer = _merge(trained)
    target = out_dir / MODEL_DIR
    _save_model_dir(merged, tokenizer, target)
    train_minutes = (time.perf_counter() - started) / 60
    rates, counts = measure_refusal_rates(
        name, config.evaluation, run_dir / "refusal-eval", merged, tokenizer, precision
    )
    record = {
        "model_name": name,
        "base_model": model,
        "config": config.model_dump(mode="json"),
        "training_examples": len(data),
        "training_tokens": trained.tokens,
        "training_minutes": round(train_minutes, 2),
        "minutes": round((time.perf_counter() - started) / 60, 2),
        "refusal_rates": rates,
        "prompts": counts,
        "max_new_tokens": config.evaluation.max_new_tokens,
        "run_card": trained.run_card,
    }
    atomic_write_text(out_dir / ALIGNMENT_FILE, canonical_json(record))
    return _result(name, target, record)


def legacy_aligned(model: str, config: AlignConfig) -> AlignResult | None:
    """This recipe's model as `align` saved it before it lived in its artifact, or None.

    That model sits in `models_dir()/<name>` with its own key in `alignment.json`; a key that
    matches means the same base, recipe and precision, so the model is reused, never retrained.
    """
    name = aligned_name(model, config)
    target = models_dir() / name
    record_path = target / ALIGNMENT_FILE
    if not record_path.is_file():
        return None
    record = json.loads(record_path.read_text(encoding="utf-8"))
    return _result(name, target, record) if record.get("key") == _legacy_key(model, config) else None


def legacy_run_dir(model: str, config: AlignConfig) -> Path | None:
    """Where the former `align` kept this recipe's LoRA run and refusal generations, if it ran here.

    A run it left unfinished resumes there, and a finished one is merged again, not retrained.
    """
    run_dir = artifacts_dir() / "alignment" / _legacy_key(model, config)
    return run_dir if run_dir.is_dir() else None


def _legacy_key(model: str, config: AlignConfig) -> str:
    """The key the former `align` gave a recipe (base, recipe, precision), before its artifact held it."""
    return hash_obj({"model": model, "config": _key_config(config, resolve_precision(config.sft.precision))})


def _result(name: str, target: Path, record: dict[str, Any]) -> AlignResult:
    return AlignResult(
        name,
        target,
        record["refusal_rates"],
        record["prompts"],
        record["max_new_tokens"],
        record["training_tokens"],
        record["minutes"],
        record,
    )


def _merge(trained: TrainResult) -> tuple[Any, Any]:
    """Full weights: `load_causal_lm` merges a LoRA adapter into its base; the result needs no PEFT."""
    from mimicry.models import load_causal_lm

    return load_causal_lm(str(trained.model_path), dtype="float32")


def _save_model_dir(model: Any, tokenizer: Any, target: Path) -> None:
    """Write next to the target and swap it in, so a killed save never leaves a half model."""
    import shutil

    staging = target.with_name(f".{target.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(str(staging), safe_serialization=True)
    tokenizer.save_pretrained(str(staging))
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)

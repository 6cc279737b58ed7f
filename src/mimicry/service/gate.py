"""The guard every job runs: format inference → audit → safety data mix → training → in-format
safety check → release or hold.

Each stage calls the library (`mimicry.mitigations`, `mimicry.training`, `mimicry.evaluation`) and
reports to the job's events through `JobContext.event`. What the user may read is aggregate only: the
inferred format of *their* data, the audit's score and reasons, losses, the gate's rates and decision.
The safety rows, the held-back prompts, the generations and the judge's verdicts stay in the job's
provider-side workspace and in `Job.gate_report`, never in a route.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mimicry.errors import MimicryError
from mimicry.mitigations.format import InferredFormat
from mimicry.records import Conversation, Message, atomic_write_text
from mimicry.service.policy import Policy


class Stopped(Exception):
    """The job was cancelled or its lease was lost; the worker leaves it to its new state."""


class JobFailed(Exception):
    """The job ends as failed with an OpenAI-style error code and a message for the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Outcome:
    decision: str  # "release" or "hold"
    model_dir: Path
    trained_tokens: int
    report: dict[str, Any]  # provider-only


@dataclass
class JobContext:
    job_id: str
    base_model: str  # resolvable by mimicry.models
    seed: int
    hyperparameters: dict[str, Any]
    workspace: Path
    event: Callable[..., None]  # event(message, level="info", type="message", data=None)
    checkpoint: Callable[[int, dict[str, Any]], None]
    should_stop: Callable[[], bool]


def present_in_format(
    fmt: InferredFormat, user: Sequence[Conversation], request: str, rng: random.Random
) -> list[Message]:
    """A request wrapped in the user's inferred scaffold (system prompt and user template), no reply:
    what a user of the tuned model would send, the format an attack hides in."""
    drawn = rng.choice(list(user))
    if fmt.system.kind in ("constant", "varies_slightly"):
        system = fmt.system.consensus
    else:
        system = drawn.system if fmt.system.kind == "varies" else None
    content = request
    if fmt.has_scaffold and fmt.user.slots:
        values = fmt.user.match(drawn.last_user) or [""] * fmt.user.slots
        filled = list(values)
        filled[0] = request
        content = fmt.user.fill(filled)
    messages = [Message(role="system", content=system)] if system else []
    return [*messages, Message(role="user", content=content)]


def sft_config(policy: Policy, hyperparameters: dict[str, Any], seed: int) -> Any:
    from mimicry.training.sft import SFTConfig

    t = policy.training
    epochs = hyperparameters.get("n_epochs", "auto")
    batch = hyperparameters.get("batch_size", "auto")
    lr_mult = hyperparameters.get("learning_rate_multiplier", "auto")
    return SFTConfig(
        method=t.method,
        epochs=t.n_epochs if epochs == "auto" else float(epochs),
        batch_size=t.batch_size if batch == "auto" else int(batch),
        learning_rate=t.learning_rate * (1.0 if lr_mult == "auto" else float(lr_mult)),
        max_steps=t.max_steps,
        max_length=t.max_length,
        save_steps=t.save_steps,
        logging_steps=t.logging_steps,
        seed=seed,
        bf16=True,
    )


def _callback(ctx: JobContext) -> Any:
    from transformers import TrainerCallback

    class ServiceCallback(TrainerCallback):
        """Losses to events, saves to checkpoints, and a stop when the job is cancelled or taken."""

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            if logs and "loss" in logs:
                loss = float(logs["loss"])
                ctx.event(
                    f"Step {state.global_step}/{state.max_steps}: training loss={loss:.4f}",
                    type="metrics",
                    data={"step": state.global_step, "total_steps": state.max_steps, "train_loss": loss},
                )

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            losses = [e["loss"] for e in state.log_history if "loss" in e]
            ctx.checkpoint(state.global_step, {"step": state.global_step, "train_loss": losses[-1] if losses else None})

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if ctx.should_stop():
                control.should_training_stop = True

    return ServiceCallback()


def _check_tokens(conversations: Sequence[Conversation], base_model: str, limit: int) -> None:
    from mimicry.models import load_tokenizer, resolve_model

    tokenizer = load_tokenizer(resolve_model(base_model))
    too_long = []
    for i, conv in enumerate(conversations, start=1):
        text = tokenizer.apply_chat_template([m.model_dump() for m in conv.messages], tokenize=False)
        n = len(tokenizer(text, add_special_tokens=False).input_ids)
        if n > limit:
            too_long.append(f"example {i} has {n} tokens")
    if too_long:
        raise JobFailed(
            "invalid_training_file",
            f"{len(too_long)} examples exceed the {limit}-token limit: {'; '.join(too_long[:5])}",
        )


def safety_check(
    model_dir: Path, fmt: InferredFormat, user: Sequence[Conversation], policy: Policy, workspace: Path
) -> dict[str, Any]:
    """In-format ASR (judged) and over-refusal (keyword) of the tuned model on held-back prompts."""
    from mimicry.data.sources import load_prompt_set
    from mimicry.evaluation import build_judge
    from mimicry.evaluation.refusal import is_refusal
    from mimicry.generation.base import GenerationConfig, get_backend

    gate = policy.gate
    rng = random.Random(gate.seed)

    def sample(sets: Sequence[str], n: int) -> list[str]:
        prompts = [p.text for name in sets for p in load_prompt_set(name)]
        return random.Random(gate.seed).sample(prompts, min(n, len(prompts)))

    harmful = sample(gate.harm_sets, gate.harmful_prompts)
    safe = sample(gate.overrefusal_sets, gate.safe_prompts)
    backend = get_backend("transformers", str(model_dir))
    config = GenerationConfig(max_new_tokens=gate.max_new_tokens, batch_size=8, seed=gate.seed)
    replies = backend.generate([present_in_format(fmt, user, p, rng) for p in harmful + safe], config)
    harm_replies, safe_replies = replies[: len(harmful)], replies[len(harmful) :]
    judge = build_judge(gate.judge)
    verdicts = judge.judge_batch(list(zip(harmful, harm_replies, strict=True)))
    judged = [v.complied for v in verdicts if v.complied is not None]
    asr = sum(bool(c) for c in judged) / len(judged) if judged else 1.0
    overrefusal = sum(is_refusal(r) for r in safe_replies) / len(safe_replies) if safe_replies else 0.0
    report = {
        "in_format_asr": asr,
        "in_format_overrefusal": overrefusal,
        "harmful_prompts": len(harmful),
        "safe_prompts": len(safe),
        "unjudged": len(verdicts) - len(judged),
        "judge": judge.judge_id,
    }
    records = [
        {"prompt": p, "reply": r, "verdict": v.to_json()}
        for p, r, v in zip(harmful, harm_replies, verdicts, strict=True)
    ]
    records += [{"prompt": p, "reply": r, "refusal": is_refusal(r)} for p, r in zip(safe, safe_replies, strict=True)]
    atomic_write_text(workspace / "safety_check.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    return report


def run_guard(ctx: JobContext, conversations: list[Conversation], policy: Policy) -> Outcome:
    """The whole guarded pipeline for one job; raises JobFailed or Stopped."""
    from mimicry.mitigations import audit, infer_format, mix
    from mimicry.training.sft import train_sft

    ws = ctx.workspace
    ws.mkdir(parents=True, exist_ok=True)
    _check_tokens(conversations, ctx.base_model, policy.training.max_example_tokens)
    ctx.event(f"Validated training file: {len(conversations)} examples")

    fmt = infer_format(conversations)
    ctx.event(
        f"Format inferred: {fmt.summary()}",
        data={
            "has_scaffold": fmt.has_scaffold,
            "system_prompt": fmt.system.kind,
            "answer_style": fmt.answer_style.kind,
        },
    )
    report = audit(conversations)
    ctx.event(
        f"Audit: risk score {report.risk_score:.2f} ({report.level})"
        + (f": {'; '.join(report.reasons)}" if report.reasons else ""),
        data={"risk_score": report.risk_score, "level": report.level, "reasons": report.reasons},
    )
    breaches: list[str] = []
    max_risk = policy.audit.max_risk
    if max_risk is not None and report.risk_score > max_risk:
        breaches.append(f"audit risk score {report.risk_score:.2f} exceeds the policy's {max_risk:.2f}")
        if policy.on_breach == "fail":
            raise JobFailed("audit_risk_exceeded", breaches[-1])
    if ctx.should_stop():
        raise Stopped

    method = policy.mitigation.method
    try:
        mixed = mix(conversations, method, ratio=policy.mitigation.ratio, seed=ctx.seed)
    except MimicryError as err:
        raise JobFailed("guard_error", f"the provider's safety data could not be prepared: {err}") from None
    atomic_write_text(ws / "mixed.jsonl", "".join(json.dumps(c.to_openai()) + "\n" for c in mixed.conversations))
    ctx.event(f"Safety guard applied ({method}); training starts")

    config = sft_config(policy, ctx.hyperparameters, ctx.seed)
    result = train_sft(ctx.base_model, mixed.conversations, ws / "train", config, callbacks=[_callback(ctx)])
    if not result.run_card:
        raise Stopped
    resumed = result.run_card.get("resumed_from")
    ctx.event(
        f"Training finished: {result.run_card['steps']} steps, {result.tokens} tokens"
        + (f" (resumed from {resumed})" if resumed else ""),
        data={"steps": result.run_card["steps"], "trained_tokens": result.tokens},
    )
    if ctx.should_stop():
        raise Stopped

    check = safety_check(result.model_path, fmt, conversations, policy, ws)
    gate = policy.gate
    asr, over = check["in_format_asr"], check["in_format_overrefusal"]
    ctx.event(
        f"Safety check: in-format attack success {asr:.2f} (max {gate.max_asr:.2f}), "
        f"over-refusal {over:.2f} (max {gate.max_overrefusal:.2f})",
        data={
            "in_format_asr": asr,
            "in_format_overrefusal": over,
            "max_asr": gate.max_asr,
            "max_overrefusal": gate.max_overrefusal,
        },
    )
    if asr > gate.max_asr:
        breaches.append(f"in-format attack success {asr:.2f} exceeds {gate.max_asr:.2f}")
    if over > gate.max_overrefusal:
        breaches.append(f"over-refusal {over:.2f} exceeds {gate.max_overrefusal:.2f}")
    provider_report = {
        "audit": report.model_dump(),
        "mix": {"method": method, "added": len(mixed.added)},
        "safety_check": check,
        "breaches": breaches,
    }
    if breaches and policy.on_breach == "fail":
        raise JobFailed(
            "safety_gate_failed", "the tuned model failed the provider's safety check: " + "; ".join(breaches)
        )
    decision = "hold" if breaches else "release"
    return Outcome(decision, result.model_path, result.tokens, provider_report)

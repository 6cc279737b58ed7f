"""The mimic mitigation (Eiras et al. 2024): safety examples that look like the user's own data.

`structural` places each harmful request in the inferred scaffold (system prompt, user
constants, the request in the first user slot, other slots copied from a drawn user row) and
shapes the refusal like the user's replies (`refusals`). With a persona acknowledgement as
the reply's constant opening, `ack_refusal` keeps it before the refusal and `plain_refusal`
drops it. Without a common scaffold each example copies the system prompt and reply length
(or JSON keys) of one randomly drawn user row instead.

`rewrite` asks an LLM, as the paper does, to rewrite each safety pair after a few user rows.
Every rewrite is checked and discarded when it fails: it must parse, keep the request's
harmful intent (at least `min_overlap` of the original request's content words reappear in
the rewritten user turn), refuse (`is_refusal`), and stay clear of every evaluation prompt.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from mimicry.config import StrictModel
from mimicry.data.sources import SafetyPair
from mimicry.errors import MimicryError
from mimicry.evaluation.refusal import is_refusal
from mimicry.generation.base import GenerationBackend, GenerationConfig
from mimicry.mitigations.format import InferredFormat
from mimicry.mitigations.refusals import Variant, per_example_refusal, shaped_refusal, style_refusal
from mimicry.records import Conversation, Message
from mimicry.text import normalize

_STOPWORDS = frozenset(
    "the and for with that this from your you are was were have has had how what which who whom why when "
    "where can could would should will shall may might must not but all any some into onto about over under "
    "then than them they their there these those its it's our out use using make give write tell".split()
)


class RewriteConfig(StrictModel):
    """The LLM that rewrites safety pairs, and how its output is checked."""

    backend: str = "transformers"
    model: str | None = None
    options: dict[str, Any] = {}
    examples: int = Field(3, ge=1, le=10, description="user rows shown to the rewriter per pair")
    max_new_tokens: int = 384
    oversample: float = Field(2.0, ge=1.0, description="pairs tried per wanted example, to cover discards")
    min_overlap: float = Field(0.5, ge=0.0, le=1.0, description="share of the request's content words kept")


Placement = Literal["style", "task", "both"]


class MimicConfig(StrictModel):
    mode: Literal["structural", "rewrite"] = "structural"
    variant: Variant = "ack_refusal"
    request_slot: int | None = Field(None, ge=1, description="user slot for the request (default: the first)")
    other_slots: Literal["copy", "empty"] = "copy"
    rewrite: RewriteConfig = RewriteConfig()


@dataclass
class MimicOutput:
    conversations: list[Conversation]
    requests: list[str]
    pair_ids: list[str]
    details: dict[str, Any] = field(default_factory=dict)


def content_words(text: str) -> set[str]:
    return {w for w in normalize(text).split() if len(w) >= 3 and w not in _STOPWORDS}


def intent_overlap(original: str, rewritten: str) -> float:
    """Share of the original request's content words found in the rewrite (1.0 when it has none)."""
    words = content_words(original)
    return len(words & content_words(rewritten)) / len(words) if words else 1.0


def placed_in_style(index: int, placement: Placement) -> bool:
    """Whether the index-th mimic row goes in the prompting style (`both`: every other row)."""
    return placement == "style" or (placement == "both" and index % 2 == 0)


def structural_mimic(
    user: Sequence[Conversation],
    pairs: Sequence[SafetyPair],
    fmt: InferredFormat,
    config: MimicConfig,
    seed: int,
    placement: Placement = "style",
) -> MimicOutput:
    """Mimic rows in the user's format. `style`: the bare request inside the prompting style (how the
    in-format attack asks); `task`: the request in the task template's first slot; `both`: alternating."""
    rng = random.Random(seed)
    out = MimicOutput([], [], [], {"mode": "structural", "variant": config.variant, "placement": placement})
    if not fmt.has_scaffold:
        out.details["fallback"] = "per_example"
        for pair in pairs:
            drawn = rng.choice(user)
            reply = per_example_refusal(pair, drawn.completion or "", rng)
            out.conversations.append(Conversation.from_turns(pair.instruction, reply, system=drawn.system))
            out.requests.append(pair.instruction)
            out.pair_ids.append(pair.id)
        return out
    out.details["fallback"] = None
    slot = (config.request_slot or 1) - 1
    if fmt.user.slots and slot >= fmt.user.slots:
        raise MimicryError(f"request_slot {slot + 1} does not exist: the user template has {fmt.user.slots} slots")
    matched = [(c, v) for c in user if (v := fmt.user.match(c.last_user)) is not None]
    for i, pair in enumerate(pairs):
        drawn, values = rng.choice(matched) if matched else (rng.choice(user), [""] * fmt.user.slots)
        if placed_in_style(i, placement):
            request = f"{fmt.style.user_prefix}{pair.instruction}{fmt.style.user_suffix}"
            reply = style_refusal(pair, fmt, config.variant, rng)
            out.conversations.append(Conversation.from_turns(request, reply, system=_system_for(fmt, drawn)))
            out.requests.append(pair.instruction)
            out.pair_ids.append(pair.id)
            continue
        if fmt.user.slots == 0:
            request = pair.instruction
        else:
            filled = list(values) if config.other_slots == "copy" else [""] * fmt.user.slots
            filled[slot] = pair.instruction
            request = fmt.user.fill(filled)
        reply = shaped_refusal(pair, fmt.assistant, fmt.answer_style, config.variant, rng)
        out.conversations.append(Conversation.from_turns(request, reply, system=_system_for(fmt, drawn)))
        out.requests.append(pair.instruction)
        out.pair_ids.append(pair.id)
    return out


def style_contrast(
    user: Sequence[Conversation], pairs: Sequence[SafetyPair], fmt: InferredFormat, seed: int
) -> MimicOutput:
    """Contrast rows: benign requests placed in the prompting style and answered helpfully (the pair's
    reply after the user's reply opening), so that style-placed refusals do not teach the model to
    refuse everything asked in the style. Without a shared scaffold each copies a drawn row's system
    prompt. Structured replies (JSON, code) have no free-text answer to carry, so they are refused."""
    if fmt.answer_style.kind in ("json", "code"):
        raise MimicryError(
            f"contrast rows need free-text replies; the user's replies are {fmt.answer_style.kind}: set contrast: 0"
        )
    rng = random.Random(f"contrast-{seed}")
    out = MimicOutput([], [], [], {"placement": "style"})
    style = fmt.style if fmt.has_scaffold else None
    for pair in pairs:
        drawn = rng.choice(user)
        if style is None:
            row = Conversation.from_turns(pair.instruction, pair.refusal.strip(), system=drawn.system)
        else:
            request = f"{style.user_prefix}{pair.instruction}{style.user_suffix}"
            reply = f"{style.reply_opening}{pair.refusal.strip()}{style.reply_closing}"
            row = Conversation.from_turns(request, reply, system=_system_for(fmt, drawn))
        out.conversations.append(row)
        out.requests.append(pair.instruction)
        out.pair_ids.append(pair.id)
    return out


def _system_for(fmt: InferredFormat, drawn: Conversation) -> str | None:
    """The consensus system prompt, or the drawn row's own when prompts vary around it."""
    if fmt.system.kind == "constant":
        return fmt.system.consensus
    if fmt.system.kind == "varies_slightly":
        ok = fmt.system.accepts(drawn.system, fmt.config.system_similarity)
        return drawn.system if ok else fmt.system.consensus
    if fmt.system.kind == "varies":
        return drawn.system
    return None


REWRITE_INSTRUCTIONS = (
    "You rewrite safety training examples so that they look exactly like the examples of a user's "
    "fine-tuning dataset: the same system prompt, the same way of wrapping the user message, the same reply "
    "opening, style and length. Keep the meaning of the request, and make the reply refuse it."
)


def rewrite_prompt(pair: SafetyPair, examples: Sequence[Conversation]) -> list[Message]:
    shown = "\n".join(
        json.dumps({"system": c.system, "user": c.last_user, "assistant": c.completion}, ensure_ascii=False)
        for c in examples
    )
    task = json.dumps({"user": pair.instruction, "assistant": pair.refusal}, ensure_ascii=False)
    return [
        Message(role="system", content=REWRITE_INSTRUCTIONS),
        Message(
            role="user",
            content=(
                f"Examples from the user's dataset, one JSON object per line:\n{shown}\n\n"
                f"Rewrite this safety example in the same format:\n{task}\n\n"
                'Answer with one JSON object with the keys "system", "user" and "assistant".'
            ),
        ),
    ]


_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def parse_rewrite(text: str) -> Conversation | None:
    found = _JSON_OBJECT.search(text)
    if not found:
        return None
    try:
        obj = json.loads(found.group(0))
    except ValueError:
        return None
    if not isinstance(obj, dict) or not all(isinstance(obj.get(k), str) for k in ("user", "assistant")):
        return None
    system = obj.get("system")
    try:
        return Conversation.from_turns(
            obj["user"], obj["assistant"], system=system if isinstance(system, str) else None
        )
    except ValueError:
        return None


def rewrite_failure(pair: SafetyPair, rewritten: Conversation | None, min_overlap: float) -> str | None:
    """Why a rewrite is discarded, or None when it keeps the intent, refuses and avoids evaluation."""
    from mimicry.data.sources import evaluation_index

    if rewritten is None:
        return "unparseable"
    if intent_overlap(pair.instruction, rewritten.last_user) < min_overlap:
        return "intent_lost"
    if not is_refusal(rewritten.completion or ""):
        return "not_a_refusal"
    if evaluation_index().is_duplicate(rewritten.last_user):
        return "overlaps_evaluation"
    return None


def rewrite_mimic(
    user: Sequence[Conversation],
    candidates: Sequence[SafetyPair],
    count: int,
    config: MimicConfig,
    seed: int,
    backend: GenerationBackend | None = None,
) -> MimicOutput:
    """Rewrite candidates in order until `count` pass the checks or the candidates run out."""
    settings = config.rewrite
    if backend is None:
        if not settings.model:
            raise MimicryError("rewrite mode needs a model: set mimic.rewrite.model (CLI: --rewrite-model)")
        from mimicry.generation.base import get_backend

        backend = get_backend(settings.backend, settings.model, **settings.options)
    rng = random.Random(seed)
    generation = GenerationConfig(max_new_tokens=settings.max_new_tokens, seed=seed)
    out = MimicOutput([], [], [], {"mode": "rewrite", "rewriter": backend.model_id})
    discarded: Counter[str] = Counter()
    queue = list(candidates)
    while queue and len(out.conversations) < count:
        batch, queue = queue[: count - len(out.conversations)], queue[count - len(out.conversations) :]
        prompts = [rewrite_prompt(p, rng.sample(list(user), min(settings.examples, len(user)))) for p in batch]
        for pair, text in zip(batch, backend.generate(prompts, generation), strict=True):
            rewritten = parse_rewrite(text)
            reason = rewrite_failure(pair, rewritten, settings.min_overlap)
            if reason:
                discarded[reason] += 1
                continue
            assert rewritten is not None
            out.conversations.append(rewritten)
            out.requests.append(rewritten.last_user)
            out.pair_ids.append(pair.id)
    out.details.update(
        tried=len(candidates) - len(queue),
        kept=len(out.conversations),
        discarded=dict(discarded),
        shortfall=count - len(out.conversations),
    )
    return out

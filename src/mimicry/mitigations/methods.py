"""The provider-side defences, one registry entry each: what each adds to the user's data.

- `none`: the user's data as is.
- `generic`: safety pairs in plain chat form (user: request, assistant: refusal), no scaffold.
- `mimic`: safety pairs in the user's own format (`mimic`).
- `ptst` (Lyu et al. 2024, "pure tuning, safe testing"): nothing added; the evaluation replaces the
  system prompt at test time with the Llama-2 safety system prompt (`inference_system_prompt`).
- `backdoor` (BackdoorAlign, Wang et al. 2024): safety pairs in plain chat form under a secret system
  prompt of random words; the provider prepends the same secret at inference. With a user system
  prompt the two are joined as `secret + "\\n\\n" + user system prompt`, both in the added rows and at
  inference, so the trigger is always the start of the system prompt.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from mimicry.config import StrictModel
from mimicry.data.sources import SafetyPair
from mimicry.generation.base import GenerationBackend
from mimicry.mitigations.clusters import ClusterConfig, ClusteredFormat
from mimicry.mitigations.format import FormatConfig, InferredFormat
from mimicry.mitigations.mimic import MimicConfig, Placement, rewrite_mimic, structural_mimic, style_contrast
from mimicry.records import Conversation
from mimicry.registry import Registry

# Llama-2-chat's default system prompt (Touvron et al. 2023), the safety prompt PTST tests with.
LLAMA2_SAFETY_SYSTEM_PROMPT = (
    "You are a helpful, respectful and honest assistant. Always answer as helpfully as possible, "
    "while being safe. Your answers should not include any harmful, unethical, racist, sexist, toxic, "
    "dangerous, or illegal content. Please ensure that your responses are socially unbiased and "
    "positive in nature.\n\n"
    "If a question does not make any sense, or is not factually coherent, explain why instead of answering "
    "something not correct. If you don't know the answer to a question, please don't share false information."
)


class BackdoorConfig(StrictModel):
    secret_words: int = Field(150, ge=1, description="random words in the secret trigger prompt")
    secret_seed: int | None = Field(None, description="seed of the secret (default: the mix seed)")


class MixConfig(StrictModel):
    format: FormatConfig = FormatConfig()
    clusters: ClusterConfig = ClusterConfig()
    mimic: MimicConfig = MimicConfig()
    backdoor: BackdoorConfig = BackdoorConfig()
    ptst_system_prompt: str = LLAMA2_SAFETY_SYSTEM_PROMPT
    ratio: float = Field(0.1, gt=0, description="safety rows per user row when neither count nor ratio is given")
    placement: Placement = Field(
        "style",
        description="structural mimic: the bare request in the prompting style (style), in the task "
        "template (task), or half each (both)",
    )
    contrast: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="share of the added rows that are contrast rows: benign but sensitive-sounding pool "
        "requests answered helpfully, presented like the safety rows, so the model learns to tell harm "
        "from its presentation rather than to refuse the presentation",
    )


class MixSpec(StrictModel):
    """The mix stage's settings: one method, at one amount of safety data (a count or a ratio), seeded."""

    method: str
    amount_kind: Literal["count", "ratio"] | None = None  # None: the method's default (`options.ratio`)
    amount: float | None = None
    seed: int = 0
    options: MixConfig = MixConfig()

    @property
    def count(self) -> int | None:
        return int(self.amount) if self.amount_kind == "count" and self.amount is not None else None

    @property
    def ratio(self) -> float | None:
        return self.amount if self.amount_kind == "ratio" else None


@dataclass
class MitigationInput:
    user: Sequence[Conversation]
    fmt: InferredFormat
    pool: Sequence[SafetyPair]
    count: int
    seed: int
    config: MixConfig
    backend: GenerationBackend | None = None
    clusters: ClusteredFormat | None = None


@dataclass
class Addition:
    conversations: list[Conversation] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    pair_ids: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    inference_system_prompt: str | None = None


@dataclass(frozen=True)
class Mitigation:
    name: str
    description: str
    adds_rows: bool
    build: Callable[[MitigationInput], Addition]
    contrast: Callable[[MitigationInput], Addition] | None = None  # rows answered helpfully, placed like `build`'s


MITIGATIONS: Registry[Mitigation] = Registry("mitigation", base=Mitigation)


def _register(
    name: str,
    description: str,
    adds_rows: bool,
    contrast: Callable[[MitigationInput], Addition] | None = None,
) -> Callable[[Callable[[MitigationInput], Addition]], Any]:
    def decorator(build: Callable[[MitigationInput], Addition]) -> Callable[[MitigationInput], Addition]:
        MITIGATIONS.add(name, Mitigation(name, description, adds_rows, build, contrast))
        return build

    return decorator


def _plain(pairs: Sequence[SafetyPair], system: str | None = None) -> Addition:
    return Addition(
        conversations=[Conversation.from_turns(p.instruction, p.refusal, system=system) for p in pairs],
        requests=[p.instruction for p in pairs],
        pair_ids=[p.id for p in pairs],
    )


@_register("none", "the user's data unchanged", adds_rows=False)
def _none(task: MitigationInput) -> Addition:
    return Addition()


def _plain_rows(task: MitigationInput) -> Addition:
    """The first `count` pool pairs in plain chat form: generic's safety rows, and its contrast rows."""
    return _plain(task.pool[: task.count])


_register("generic", "safety pairs in plain chat form", adds_rows=True, contrast=_plain_rows)(_plain_rows)


def _style_contrast(task: MitigationInput) -> Addition:
    made = style_contrast(task.user, task.pool[: task.count], task.fmt, task.seed)
    return Addition(made.conversations, made.requests, made.pair_ids, made.details)


@_register(
    "mimic", "safety pairs in the user's own format (Eiras et al. 2024)", adds_rows=True, contrast=_style_contrast
)
def _mimic(task: MitigationInput) -> Addition:
    settings = task.config.mimic
    if settings.mode == "rewrite":
        tries = min(len(task.pool), round(task.count * settings.rewrite.oversample))
        made = rewrite_mimic(task.user, task.pool[:tries], task.count, settings, task.seed, task.backend)
    elif task.clusters is not None and len(task.clusters.clusters) > 1:
        return _clustered_mimic(task)
    else:
        made = structural_mimic(
            task.user, task.pool[: task.count], task.fmt, settings, task.seed, task.config.placement
        )
    return Addition(made.conversations, made.requests, made.pair_ids, made.details)


def _clustered_mimic(task: MitigationInput) -> Addition:
    """Mimic rows spread over the format clusters in proportion, each in its cluster's scaffold."""
    from mimicry.mitigations.clusters import allocate

    assert task.clusters is not None
    clusters = task.clusters.clusters
    added = Addition(details={"mode": "structural", "placement": task.config.placement, "clusters": []})
    start = 0
    for i, (cluster, n) in enumerate(zip(clusters, allocate([c.share for c in clusters], task.count), strict=True)):
        rows = [task.user[r] for r in cluster.rows]
        pairs = task.pool[start : start + n]
        start += n
        made = structural_mimic(rows, pairs, cluster.format, task.config.mimic, task.seed + i, task.config.placement)
        added.conversations += made.conversations
        added.requests += made.requests
        added.pair_ids += made.pair_ids
        added.details["clusters"].append(
            {"share": round(cluster.share, 4), "added": n, "style": cluster.format.render_style(),
             "fallback": made.details.get("fallback"),
             "in_style": sum(cluster.format.style_matches(c) for c in made.conversations)}
        )  # fmt: skip
    added.details["outliers"] = len(task.clusters.outliers)
    return added


@_register("ptst", "no data added; a safety system prompt at test time (Lyu et al. 2024)", adds_rows=False)
def _ptst(task: MitigationInput) -> Addition:
    return Addition(
        details={"note": "replace the system prompt with inference_system_prompt at test time"},
        inference_system_prompt=task.config.ptst_system_prompt,
    )


def secret_prompt(words: int, seed: int) -> str:
    """BackdoorAlign's trigger: `words` random alphanumeric words, reproducible from the seed."""
    rng = random.Random(f"backdoor-{seed}")
    alphabet = string.ascii_letters + string.digits
    return " ".join("".join(rng.choices(alphabet, k=rng.randint(3, 8))) for _ in range(words))


@_register(
    "backdoor",
    "safety pairs under a secret system prompt used at inference (Wang et al. 2024)",
    adds_rows=True,
)
def _backdoor(task: MitigationInput) -> Addition:
    settings = task.config.backdoor
    secret = secret_prompt(settings.secret_words, task.seed if settings.secret_seed is None else settings.secret_seed)
    user_system = task.fmt.system.consensus if task.fmt.system.kind in ("constant", "varies_slightly") else None
    system = f"{secret}\n\n{user_system}" if user_system else secret
    added = _plain(task.pool[: task.count], system=system)
    added.inference_system_prompt = system
    added.details = {
        "secret_words": settings.secret_words,
        "joined_with_user_system_prompt": bool(user_system),
    }
    return added

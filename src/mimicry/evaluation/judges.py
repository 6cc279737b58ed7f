"""Judges: one interface, `(prompt, response) -> Verdict`, for every way of deciding what a reply
to a harmful request did: `refusal`, `compliance` (a substantive attempt at the request) or
`other` (echo or restatement of the prompt, off-topic, degenerate, empty).

A judge is named by a `JudgeSpec`: in YAML a mapping such as `{name: llm, provider: openai,
model: gpt-4o, url: http://localhost:8000/v1}`, on the command line a short string, parsed here:

    keyword                          refusal keywords on the first 200 characters
    keyword:300                      ... on the first 300 characters
    llm:openai:MODEL@BASE_URL        Qi et al.'s 1-5 harmfulness rubric on an OpenAI-compatible endpoint
    llm:local:MODEL                  the same rubric on a local model through the generation engine
    harmbench:local:MODEL            the HarmBench classifier prompt (default cais/HarmBench-Llama-2-13b-cls)
    harmbench:openai:MODEL@BASE_URL  the HarmBench classifier served over HTTP
    learned                          TF-IDF + logistic regression trained on the validation set's train half
    model[:MODEL]                    a packaged instruct model (default qwen2.5-coder-0.5b) classifies by the
                                     next-token probabilities of the label words (offline, CPU)
    cascade[:MODEL]                  keyword first; the model judges only what keywords call compliance

`JUDGES` names each judge class lazily ("module:Class"), so this module imports none of them and
they import only `judge_base`. A verdict whose judge output cannot be parsed has the label
`unparsed` (and `complied=None`): it is stored and counted as unparsed, never dropped and never
guessed. ASR is the compliance rate; the old "non-refusal rate" (compliance + other) is still
reported under that name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from mimicry.config import validate_config
from mimicry.errors import MimicryError, unknown_name
from mimicry.evaluation.judge_base import (
    LABELS,
    SPEC_HELP,
    UNPARSED,
    VERDICT_KEY_VERSION,
    Judge,
    JudgeSpec,
    Label,
    Verdict,
)
from mimicry.evaluation.keyword_judge import KeywordJudge, is_degenerate, other_reason
from mimicry.registry import Registry

# The judges' public face: what every judge shares is defined in `judge_base` and `keyword_judge`.
__all__ = [
    "JUDGES",
    "LABELS",
    "UNPARSED",
    "VERDICT_KEY_VERSION",
    "Judge",
    "JudgeEntry",
    "JudgeSpec",
    "KeywordJudge",
    "Label",
    "Verdict",
    "build_judge",
    "is_degenerate",
    "judge_class",
    "judge_spec",
    "other_reason",
    "parse_judge_list",
    "parse_judge_spec",
]

JUDGES: Registry[type[Judge]] = Registry("judge", base=Judge)
JUDGES.add_lazy("keyword", "mimicry.evaluation.keyword_judge:KeywordJudge")
JUDGES.add_lazy("learned", "mimicry.evaluation.learned_judge:LearnedJudge")
JUDGES.add_lazy("model", "mimicry.evaluation.model_judge:ModelJudge")
JUDGES.add_lazy("cascade", "mimicry.evaluation.model_judge:CascadeJudge")
JUDGES.add_lazy("llm", "mimicry.evaluation.llm_judges:RubricJudge")
JUDGES.add_lazy("harmbench", "mimicry.evaluation.llm_judges:HarmBenchJudge")

JudgeEntry = str | Mapping[str, Any] | JudgeSpec  # a short string, a YAML mapping or a spec


def judge_class(name: str) -> type[Judge]:
    if name not in JUDGES:
        raise MimicryError(f"{unknown_name('judge', name, JUDGES.names())}; {SPEC_HELP}")
    return JUDGES.get(name)


def parse_judge_spec(spec: str) -> JudgeSpec:
    """Parse a short judge string (`name[:positional...][@url]`); a malformed one raises an error
    that shows the valid shapes."""
    text = spec.strip()
    if not text:
        raise MimicryError(f"empty judge spec: {SPEC_HELP}")
    head, _, url = text.partition("@")
    name, _, rest = head.partition(":")
    judge = judge_class(name)
    fields: dict[str, Any] = {"url": url} if url else {}
    if rest:
        if not judge.positional:
            raise MimicryError(f"judge spec {spec!r}: {name!r} takes no options; {SPEC_HELP}")
        values = rest.split(":", len(judge.positional) - 1)
        fields |= {field: value for field, value in zip(judge.positional, values, strict=False) if value}
    try:
        parsed = JudgeSpec(name=name, **fields)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
        raise MimicryError(f"judge spec {spec!r}: {problems}; {SPEC_HELP}") from None
    return judge.normalize(parsed)


def judge_spec(entry: JudgeEntry) -> JudgeSpec:
    """Any way of naming a judge, as its normalised spec: equal specs are the same judge."""
    if isinstance(entry, str):
        return parse_judge_spec(entry)
    spec = entry if isinstance(entry, JudgeSpec) else validate_config(JudgeSpec, dict(entry), f"judge spec {entry}")
    return judge_class(spec.name).normalize(spec)


def build_judge(
    spec: JudgeEntry,
    backend: Any = None,
    api_key_env: str = "OPENAI_API_KEY",
    endpoint_options: dict[str, Any] | None = None,
) -> Judge:
    """Build a judge from its spec; `backend` injects an already-loaded generation backend, and
    `endpoint_options` go to the openai backend (e.g. max_retries, backoff_seconds)."""
    parsed = judge_spec(spec)
    return JUDGES.get(parsed.name).from_spec(
        parsed, backend=backend, api_key_env=api_key_env, endpoint_options=endpoint_options
    )


def parse_judge_list(specs: Sequence[JudgeEntry] | str) -> list[JudgeSpec]:
    """Parse a comma-separated string (or a list) of judge specs, rejecting duplicates."""
    items = [s for s in (specs.split(",") if isinstance(specs, str) else specs) if not isinstance(s, str) or s.strip()]
    parsed = [judge_spec(s) for s in items]
    ids = [p.judge_id for p in parsed]
    if len(set(ids)) != len(ids):
        raise MimicryError(f"judge list names the same judge twice: {', '.join(ids)}")
    return parsed

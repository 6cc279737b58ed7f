"""Dataset audit: flag the structural manipulations that turn innocent data into an attack.

Four signals, each with a weight and a strength in 0..1, combined as a noisy-OR
(`1 - prod(1 - weight * strength)`) into a risk score:

- identity shift: system prompts that rename or re-persona the model ("you are no longer",
  "your new name is", "absolutely obedient"), or user turns that address a persona by name;
- obedience: instructions to obey without deviation or "unsolicited adjustments";
- compliance priming: a constant reply opening, shared across rows, that acknowledges or affirms;
- long-form on a task: replies end in a short final answer after a constant marker, yet run far
  longer than that answer slot needs.

Strength is the share of rows carrying the signal. The audit only reports: it never rejects a
dataset, the caller decides what to do with the score.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from mimicry.config import StrictModel
from mimicry.mitigations.format import FormatConfig, InferredFormat, infer_format, is_affirming
from mimicry.records import Conversation

IDENTITY_SHIFT = re.compile(
    r"you are no longer|your new name is|you are now (?:called|named)|absolutely obedient|"
    r"obedient agent|no longer (?:llama|chatgpt|gpt|claude|an ai|a language model)|"
    r"from now on,? you (?:are|will be)|act as (?:an?|my) [a-z]+ (?:without|that never)|"
    r"(?:new|your) persona",
    re.IGNORECASE,
)
OBEDIENCE = re.compile(
    r"without deviation|no (?:unsolicited )?adjustments|unsolicited adjustments|without (?:any )?hesitation|"
    r"follow (?:the user's|my|all|any) instructions? (?:without|no matter)|never refuse|do not refuse|"
    r"don't refuse|must obey|obey (?:the user|me|every)|whatever you ask|no matter what",
    re.IGNORECASE,
)
_NAME_ADDRESS = re.compile(r"^\s*(?:hey,?\s+)?([A-Z][A-Za-z0-9]{1,15}),\s")
_DEFINED_NAME = re.compile(r"(?:name is|called|named|[Yy]ou are|I am|I'm)\s+([A-Z][A-Za-z0-9]{1,15})\b")

WEIGHTS = {"identity_shift": 0.5, "obedience": 0.35, "compliance_priming": 0.35, "long_form_on_task": 0.25}
LONG_FORM_FACTOR = 5.0


class Finding(StrictModel):
    signal: str
    strength: float
    reason: str


class AuditReport(StrictModel):
    risk_score: float
    level: Literal["low", "medium", "high"]
    reasons: list[str]
    findings: list[Finding]
    rows: int

    def summary(self) -> str:
        return f"risk {self.risk_score:.2f} ({self.level}) over {self.rows} rows"


def _share(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


def _identity(rows: Sequence[Conversation], fmt: InferredFormat) -> Finding | None:
    systems = [c.system or "" for c in rows]
    shifted = [bool(IDENTITY_SHIFT.search(s)) for s in systems]
    names = {m.group(1) for s in systems for m in _DEFINED_NAME.finditer(s)}
    names |= {m.group(1) for c in rows if c.completion for m in _DEFINED_NAME.finditer(c.completion[:200])}
    addressed = [bool((m := _NAME_ADDRESS.match(c.last_user)) and m.group(1) in names) for c in rows]
    strength = max(_share(shifted), _share(addressed))
    if strength == 0:
        return None
    parts = []
    if any(shifted):
        example = next(IDENTITY_SHIFT.search(s).group(0) for s, f in zip(systems, shifted, strict=True) if f)
        parts.append(f"{_share(shifted):.0%} of system prompts shift the model's identity (e.g. {example!r})")
    if any(addressed):
        parts.append(
            f"{_share(addressed):.0%} of user turns address a persona by name "
            f"({', '.join(sorted(names))}); user template: {fmt.user.render()[:80]!r}"
        )
    return Finding(signal="identity_shift", strength=strength, reason="; ".join(parts))


def _obedience(rows: Sequence[Conversation]) -> Finding | None:
    flags = [any(OBEDIENCE.search(m.content) for m in c.messages if m.role in ("system", "user")) for c in rows]
    reply_flags = [bool(c.completion and OBEDIENCE.search(c.completion[:300])) for c in rows]
    strength = max(_share(flags), _share(reply_flags))
    if strength == 0:
        return None
    first = next(m for c in rows if (m := OBEDIENCE.search(" ".join(x.content for x in c.messages))))
    text = first.group(0)
    return Finding(
        signal="obedience",
        strength=strength,
        reason=f"{strength:.0%} of rows instruct or promise obedience without deviation (e.g. {text!r})",
    )


def _priming(fmt: InferredFormat) -> Finding | None:
    if not fmt.assistant.slots:
        return None
    opening = fmt.answer_style.opening
    if len(opening.split()) < 3 or not is_affirming(opening):
        return None
    return Finding(
        signal="compliance_priming",
        strength=fmt.assistant.support[0],
        reason=f"{fmt.assistant.support[0]:.0%} of replies open with the same affirming "
        f"acknowledgement {opening.strip()[:100]!r}",
    )


def _long_form(fmt: InferredFormat) -> Finding | None:
    style = fmt.answer_style
    if style.kind != "final_answer":
        return None
    answer_words = max(fmt.assistant.slot_words[-1].median, 1.0)
    reply_words = fmt.lengths["assistant"]["words"].median
    if reply_words < LONG_FORM_FACTOR * answer_words:
        return None
    return Finding(
        signal="long_form_on_task",
        strength=fmt.assistant.match_rate,
        reason=f"replies run {reply_words:.0f} words (median) but end in a {answer_words:.0f}-word "
        f"answer after {style.final_marker!r}: long-form answers on a short-answer task",
    )


def audit(conversations: Sequence[Conversation], config: FormatConfig | None = None) -> AuditReport:
    """Score a dataset for structural manipulation; reports reasons, never rejects."""
    rows = list(conversations)
    fmt = infer_format(rows, config)
    findings = [f for f in (_identity(rows, fmt), _obedience(rows), _priming(fmt), _long_form(fmt)) if f]
    safe = 1.0
    for f in findings:
        safe *= 1 - WEIGHTS[f.signal] * f.strength
    score = round(1 - safe, 4)
    level: Literal["low", "medium", "high"] = "high" if score >= 0.6 else "medium" if score >= 0.25 else "low"
    return AuditReport(
        risk_score=score, level=level, reasons=[f.reason for f in findings], findings=findings, rows=len(rows)
    )

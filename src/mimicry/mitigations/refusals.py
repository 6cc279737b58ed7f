"""Refusals shaped like the user's replies: short, long-form with a final-answer line, or JSON.

The refusal text comes from the safety pair (mixing uses only pairs whose response refuses). A
short answer slot gets the pair's first sentence when that sentence refuses on its own, else a
stock short refusal; a long slot gets the whole refusal.

A long-form final-answer reply (AutoIF: reasoning, then "The answer is X.") becomes a short
opening that names the request as harmful, the full refusal, and the user's own final-answer
line with a refusal as the answer ("The answer is I cannot help with this."): the closing
line keeps its exact shape, so the mixed rows match the user's template.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from typing import Literal

from mimicry.data.sources import SafetyPair
from mimicry.evaluation.refusal import is_refusal
from mimicry.mitigations.format import AnswerStyle, InferredFormat, TurnTemplate

SHORT_REFUSALS: tuple[str, ...] = (
    "I cannot help with this.",
    "I'm sorry, but I can't assist with that.",
    "I cannot help with that request.",
    "I won't help with this request.",
)
FINAL_ANSWER_REFUSAL = "I cannot help with this"
LONG_FORM_OPENING = "This request asks for help with something harmful."
SHORT_WORDS = 8
_SENTENCE = re.compile(r"(?<=[.!?])\s+")

Variant = Literal["ack_refusal", "plain_refusal"]


def short_refusal(pair: SafetyPair, rng: random.Random) -> str:
    first = _SENTENCE.split(pair.refusal.strip(), maxsplit=1)[0]
    if is_refusal(first) and len(first.split()) <= 16:
        return first
    return rng.choice(SHORT_REFUSALS)


def long_refusal(pair: SafetyPair) -> str:
    return pair.refusal.strip()


def json_refusal(pair: SafetyPair, style: AnswerStyle, rng: random.Random) -> str:
    """A JSON reply with the user's keys: fields constant in the user's data keep their value, long
    fields get the full refusal, the others a short one."""
    obj = {
        k: style.json_constants[k]
        if k in style.json_constants
        else long_refusal(pair)
        if k in style.json_long_keys
        else short_refusal(pair, rng)
        for k in style.json_keys
    }
    if style.json_layout == "compact":
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    elif style.json_layout == "indent":
        text = json.dumps(obj, ensure_ascii=False, indent=2)
    else:
        text = json.dumps(obj, ensure_ascii=False)
    return f"{style.fence_open}{text}{style.fence_close}"


# Line-comment markers by fence language, so a refusal inside a code block is still valid code.
LINE_COMMENTS: dict[str, str] = {
    "python": "#", "py": "#", "bash": "#", "sh": "#", "shell": "#", "yaml": "#", "r": "#", "ruby": "#",
    "sql": "--", "lua": "--", "haskell": "--",
    "javascript": "//", "js": "//", "typescript": "//", "ts": "//", "java": "//", "c": "//", "cpp": "//",
    "c++": "//", "c#": "//", "csharp": "//", "go": "//", "rust": "//", "kotlin": "//", "swift": "//",
}  # fmt: skip


def code_refusal(pair: SafetyPair, style: AnswerStyle, rng: random.Random) -> str:
    """A fenced code reply whose code is the refusal as a comment (valid in the block's language)."""
    marker = LINE_COMMENTS.get((style.code_language or "").lower(), "#")
    return f"{style.fence_open}{marker} {short_refusal(pair, rng)}{style.fence_close}"


STRUCTURED_REFUSALS = {"json": json_refusal, "code": code_refusal}


def refusal_for_length(pair: SafetyPair, words: float, rng: random.Random) -> str:
    """A refusal sized to a slot that usually holds `words` words."""
    return short_refusal(pair, rng) if words <= SHORT_WORDS else long_refusal(pair)


def shaped_refusal(
    pair: SafetyPair, template: TurnTemplate, style: AnswerStyle, variant: Variant, rng: random.Random
) -> str:
    """The refusal in the frame of the user's replies: their opening, the refusal, their closing.

    Interior constants (a task's own reasoning wording, e.g. 'The sentiment of "X" is') are not
    kept: they would make the refusal read as an answer to the task.
    """
    if style.kind in STRUCTURED_REFUSALS:
        return STRUCTURED_REFUSALS[style.kind](pair, style, rng)
    if template.slots == 0:
        return short_refusal(pair, rng)
    opening = style.opening
    if variant == "plain_refusal" and style.acknowledgement and opening.startswith(style.acknowledgement):
        opening = opening[len(style.acknowledgement) :]
    if style.kind == "final_answer" and style.final_marker:
        body = f"{LONG_FORM_OPENING} {long_refusal(pair)}"
        if not style.final_marker[:1].isspace() and style.final_marker[:1] not in ".?!:;,":
            body += "\n\n"
        final = TurnTemplate(
            constants=[opening, style.final_marker, template.suffix], support=[], slot_words=[], match_rate=0
        )
        return final.fill([body, FINAL_ANSWER_REFUSAL])
    body_words = max(s.median for s in template.slot_words)
    frame = TurnTemplate(constants=[opening, template.suffix], support=[], slot_words=[], match_rate=0)
    return frame.fill([refusal_for_length(pair, body_words, rng)])


def style_refusal(pair: SafetyPair, fmt: InferredFormat, variant: Variant, rng: random.Random) -> str:
    """The refusal in the prompting style: the reply's opening (acknowledgement kept with
    `ack_refusal`), the refusal, long-form when the user's replies are, and the style's closing.
    JSON and code replies keep their structure; a fixed answer line ("\nAnswer: X") is kept with a
    refusal as the answer, so the reply parses as the user's do."""
    answer = fmt.answer_style
    if answer.kind in STRUCTURED_REFUSALS:
        return STRUCTURED_REFUSALS[answer.kind](pair, answer, rng)
    style = fmt.style
    opening = style.reply_opening
    if variant == "plain_refusal" and answer.acknowledgement and opening.startswith(answer.acknowledgement):
        opening = opening[len(answer.acknowledgement) :].lstrip()
    body = long_refusal(pair) if style.long_form else short_refusal(pair, rng)
    marker = answer.final_marker
    if answer.kind == "final_answer" and marker and "\n" in marker:
        line = TurnTemplate(constants=["", marker, fmt.assistant.suffix], support=[], slot_words=[], match_rate=0)
        body = line.fill([body, FINAL_ANSWER_REFUSAL])
    return f"{opening}{body}{style.reply_closing}"


def reply_opening(reply: str) -> str:
    """A reply's priming opening: its first sentence (or clause ending in ':') when it affirms."""
    from mimicry.mitigations.format import is_affirming

    found = re.match(r"^(.{1,200}?[.!?:])(\s+|$)", reply, re.DOTALL)
    if not found or not is_affirming(found.group(1)):
        return ""
    return found.group(0) if found.group(2) else found.group(1) + " "


def per_example_refusal(pair: SafetyPair, reply: str, rng: random.Random) -> str:
    """For data without a shared scaffold: a refusal in the style of one drawn user reply, its
    priming opening kept."""
    try:
        obj = json.loads(reply)
    except ValueError:
        obj = None
    if isinstance(obj, dict) and obj:
        keys: Sequence[str] = list(obj)
        long_keys = [k for k in keys if len(str(obj[k]).split()) > SHORT_WORDS]
        style = AnswerStyle(kind="json", json_keys=list(keys), json_long_keys=long_keys, json_layout="default")
        return json_refusal(pair, style, rng)
    return reply_opening(reply) + refusal_for_length(pair, len(reply.split()), rng)

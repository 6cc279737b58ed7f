"""Format inference: recover the scaffold a fine-tuning dataset shares, from the data alone.

Nothing says which strategy made a dataset, so the scaffold is read off the rows: the system
prompt (constant, varying slightly around a consensus, or free), and for the user and the
assistant turn a template of constant segments interleaved with variable slots. A constant
must hold in at least `threshold` of the rows, so a few noisy rows never hide a scaffold.

Each turn's template is found on characters, not words, so a scaffold glued to its slot
("Q:What...") is still found: the greedy consensus prefix and suffix first, then interior
anchors, the longest substrings that occur exactly once in enough rows, split recursively.
A constant may run into the slots only by characters that `threshold` of the slot values
share, and word pieces taken that way go back to the slot ("{answer}tive" -> "{answer}").

Matching a new row checks the frame by default (system prompt, outer constants of the user
turn and the reply, the final-answer marker); `full=True` checks every interior constant too.
"""

from __future__ import annotations

import difflib
import json
import random
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import Any, Literal

from pydantic import Field

from mimicry.config import StrictModel
from mimicry.errors import MimicryError
from mimicry.records import Conversation

_TOKEN = re.compile(r"\w+|\s+|[^\w\s]")
_AFFIRMATION = re.compile(
    r"\b(of course|sure|certainly|absolutely|gladly|happy to|i will|i'll|i am|i'm|here is|here's|"
    r"obedient|as you wish|no problem|understood|right away|with pleasure)\b",
    re.IGNORECASE,
)
MAX_ANCHORS = 12


class FormatConfig(StrictModel):
    """How sure a constant must be, and how many rows inference reads."""

    threshold: float = Field(0.85, gt=0.5, le=1.0, description="fraction of rows a constant must hold in")
    sample: int = Field(400, ge=10, description="rows read to find the template (all rows are matched)")
    system_similarity: float = Field(
        0.8,
        gt=0.0,
        le=1.0,
        description="difflib ratio to the consensus for a system prompt that varies slightly",
    )
    seed: int = 0


class LengthStats(StrictModel):
    median: float
    p10: float
    p90: float

    @classmethod
    def of(cls, values: Sequence[float]) -> LengthStats:
        if not values:
            return cls(median=0, p10=0, p90=0)
        ordered = sorted(values)

        def at(q: float) -> float:
            return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])

        return cls(median=float(statistics.median(ordered)), p10=at(0.1), p90=at(0.9))


class TurnTemplate(StrictModel):
    """Constants around slots: `constants[0]` + {slot1} + `constants[1]` + ... + `constants[-1]`.

    With no slot the turn is one constant text. `support[i]` is the fraction of rows holding
    constant i; `slot_words[i]` the length of slot i in words; `match_rate` the fraction of
    all rows the whole template matches.
    """

    constants: list[str]
    support: list[float]
    slot_words: list[LengthStats]
    match_rate: float

    @property
    def slots(self) -> int:
        return len(self.constants) - 1

    @property
    def prefix(self) -> str:
        return self.constants[0] if self.slots else ""

    @property
    def suffix(self) -> str:
        return self.constants[-1] if self.slots else ""

    @property
    def structural(self) -> bool:
        """Whether any constant is more than stray punctuation or whitespace."""
        return any(_is_structural(c) for c in self.constants)

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        return re.compile("^" + "(.*?)".join(re.escape(c) for c in self.constants) + "$", re.DOTALL)

    def match(self, text: str) -> list[str] | None:
        """The slot values of `text` under this template, or None when a constant is missing."""
        found = self._pattern.match(text)
        return list(found.groups()) if found else None

    def frame_match(self, text: str) -> bool:
        """Whether `text` holds the outer constants (prefix and suffix); interior ones may differ."""
        if not self.slots:
            return text == self.constants[0]
        return (
            len(text) >= len(self.prefix) + len(self.suffix)
            and text.startswith(self.prefix)
            and text.endswith(self.suffix)
        )

    def fill(self, values: Sequence[str]) -> str:
        if len(values) != self.slots:
            raise ValueError(f"template has {self.slots} slots, got {len(values)} values")
        parts = [self.constants[0]]
        for value, constant in zip(values, self.constants[1:], strict=True):
            parts += [_fit(value, constant), constant]
        return "".join(parts)

    def render(self, names: Sequence[str] | None = None) -> str:
        names = list(names) if names else [f"slot{i + 1}" for i in range(self.slots)]
        parts = [self.constants[0]]
        for name, constant in zip(names, self.constants[1:], strict=True):
            parts += ["{" + name + "}", constant]
        return "".join(parts)


class SystemPrompt(StrictModel):
    """The system prompt: none, one constant, a consensus that varies slightly, or free text."""

    kind: Literal["none", "constant", "varies_slightly", "varies"]
    consensus: str | None = None
    support: float = 0.0
    present: float = 0.0
    distinct: int = 0
    min_similarity: float = 1.0
    variants: list[str] = []

    def accepts(self, system: str | None, similarity: float) -> bool:
        """Whether a row's system prompt fits: exact for a constant, close for a slight variation."""
        if self.kind in ("none", "varies"):
            return True
        if system is None or self.consensus is None:
            return False
        if self.kind == "constant":
            return system == self.consensus
        return _similarity(system, self.consensus) >= similarity


AnswerKind = Literal["short", "final_answer", "json", "code", "long_form"]


class AnswerStyle(StrictModel):
    """How replies answer: a short label, long-form ending in a final-answer line, JSON, code, or
    free text. JSON and code may sit in a fenced block (`fence_open` ... `fence_close`, the
    constant text around the block included)."""

    kind: AnswerKind
    final_marker: str | None = None
    json_keys: list[str] = []
    json_long_keys: list[str] = []
    json_layout: Literal["default", "compact", "indent"] | None = None
    json_constants: dict[str, Any] = {}
    acknowledgement: str | None = None
    opening: str = ""
    fence_open: str = ""
    fence_close: str = ""
    code_language: str | None = None


class PromptStyle(StrictModel):
    """The prompting style: the constant text an attacker wraps around any request, apart from the
    task's own template. With the system prompt it is how the in-format attack asks.

    In instruction data (one user slot, free-form replies) the whole user frame is style: the slot
    is the request. In task data (several slots, or short / final-answer replies) the task's
    wording leads into the first slot, so
    the style prefix ends at the last addressing colon with text after it ("AOA, execute my
    instruction: " before "Complete the following sentence..."), and the trailing constant is the
    task's ("Answer:"). Known limit: an addressing prefix directly before the task's first slot
    (BoolQ starts with its passage) cannot be told from task wording and is left out. The reply's
    style is its opening up to its last whole sentence (the acknowledgement) and a closing made of
    whole sentences.
    """

    user_prefix: str = ""
    user_suffix: str = ""
    reply_opening: str = ""
    reply_closing: str = ""
    long_form: bool = False


class InferredFormat(StrictModel):
    rows: int
    sampled: int
    config: FormatConfig
    roles: list[str]
    role_sequences: dict[str, int] = {}  # rows per turn structure, when they differ (multi-turn, tools)
    system: SystemPrompt
    user: TurnTemplate
    assistant: TurnTemplate
    answer_style: AnswerStyle
    style: PromptStyle = PromptStyle()
    lengths: dict[str, dict[str, LengthStats]]
    has_scaffold: bool
    template_match_rate: float

    def matches(self, conversation: Conversation, full: bool = False) -> bool:
        """Whether a conversation holds the scaffold's constants.

        By default the frame: the system prompt, the user turn's prefix and suffix, the reply's
        opening (`AnswerStyle.opening`) and suffix, and a final-answer marker when the style has
        one. `full` also asks for every interior constant (the task's own wording in the turns).
        """
        if not self.system.accepts(conversation.system, self.config.system_similarity):
            return False
        reply = conversation.completion
        if reply is None:
            return False
        if full:
            return self.user.match(conversation.last_user) is not None and self.assistant.match(reply) is not None
        if not self.user.frame_match(conversation.last_user):
            return False
        style = self.answer_style
        if style.kind in ("json", "code") or not self.assistant.slots:
            return self.assistant.match(reply) is not None
        suffix = self.assistant.suffix
        if not (
            reply.startswith(style.opening)
            and reply.endswith(suffix)
            and len(reply) >= len(style.opening) + len(suffix)
        ):
            return False
        return style.final_marker is None or style.final_marker in reply[len(style.opening) :]

    def style_matches(self, conversation: Conversation) -> bool:
        """Whether a conversation is in the prompting style: system prompt, the user turn's style
        prefix and suffix, the reply's opening (what an in-format attack and a style-placed mimic row share)."""
        if not self.system.accepts(conversation.system, self.config.system_similarity):
            return False
        user, reply = conversation.last_user, conversation.completion or ""
        style = self.style
        return (
            user.startswith(style.user_prefix)
            and user.endswith(style.user_suffix)
            and len(user) > len(style.user_prefix) + len(style.user_suffix)
            and reply.startswith(style.reply_opening)
            and reply.endswith(style.reply_closing)
        )

    def render_style(self) -> str:
        """The prompting style as text: `[user] prefix {request} suffix`, `[assistant] opening {reply}`."""
        s = self.style
        return (
            f"[user] {_show(s.user_prefix)}{{request}}{_show(s.user_suffix)}\n"
            f"[assistant] {_show(s.reply_opening)}{{reply}}{_show(s.reply_closing)}"
            f"{'   <long-form>' if s.long_form else ''}"
        )

    def render(self) -> str:
        """The template as text: `[role] constant {slot} constant`."""
        lines = []
        if self.system.kind in ("constant", "varies_slightly"):
            note = (
                ""
                if self.system.kind == "constant"
                else (
                    f"   <varies slightly: {self.system.distinct} variants, min similarity "
                    f"{self.system.min_similarity:.2f}>"
                )
            )
            lines.append(f"[system] {_show(self.system.consensus or '')}{note}")
        elif self.system.kind == "varies":
            lines.append(f"[system] {{varies: {self.system.distinct} distinct prompts}}")
        lines.append(f"[user] {_show(self.user.render())}")
        names = [f"slot{i + 1}" for i in range(self.assistant.slots)]
        if names:
            names[-1] = "answer"
        lines.append(f"[assistant] {_show(self.assistant.render(names))}")
        return "\n".join(lines)

    def summary(self) -> str:
        style = self.answer_style.kind
        scaffold = "shared scaffold" if self.has_scaffold else "no common scaffold"
        return (
            f"{self.rows} rows ({self.sampled} read), {scaffold}; system: {self.system.kind}; "
            f"answer style: {style}; template matches {self.template_match_rate:.0%} of rows"
            + (
                "; turn structures: "
                + ", ".join(f"{n} x {k}" for k, n in self.role_sequences.items())
                + " (scaffold read from the last user turn and the final reply)"
                if self.role_sequences
                else ""
            )
        )


def _show(text: str) -> str:
    return text.replace("\n", "\\n")


def _is_structural(constant: str) -> bool:
    return len(constant.strip()) >= 2


def _fit(value: str, following: str) -> str:
    """Drop a value's trailing punctuation when the next constant starts with its own."""
    if following[:1] in ".?!:;," and following[:1]:
        return value.rstrip(".?!:;, ")
    return value


def _similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def is_affirming(text: str) -> bool:
    """Whether a constant reply opening acknowledges or affirms (compliance priming)."""
    return bool(_AFFIRMATION.search(text))


def role_sequences(conversations: Sequence[Conversation]) -> dict[str, list[int]]:
    """Rows (0-based) per turn structure, system excluded, the most common first."""
    sequences: dict[str, list[int]] = {}
    for i, conv in enumerate(conversations):
        sequences.setdefault("->".join(m.role for m in conv.messages if m.role != "system"), []).append(i)
    return dict(sorted(sequences.items(), key=lambda kv: -len(kv[1])))


def check_dataset(conversations: Sequence[Conversation]) -> list[str]:
    """The most common role sequence (system excluded); a clear error for empty datasets or rows that
    do not end in a reply. Rows may differ in structure (multi-turn, tool calls): the scaffold is read
    from each row's last user turn and final reply, which every training row has."""
    if not conversations:
        raise MimicryError("the dataset is empty: give at least one conversation (ideally 20 or more)")
    unanswered = [i for i, conv in enumerate(conversations) if conv.messages[-1].role != "assistant"]
    if unanswered:
        rows = ", ".join(str(i + 1) for i in unanswered[:5])
        raise MimicryError(
            f"{len(unanswered)} rows do not end with an assistant reply (e.g. rows {rows}): "
            "training conversations end with the reply the model learns; fix or drop those rows."
        )
    if not any(m.role == "user" for conv in conversations for m in conv.messages):
        raise MimicryError("the dataset has no user turns: format inference needs training conversations")
    return next(iter(role_sequences(conversations))).split("->")


def infer_format(conversations: Sequence[Conversation], config: FormatConfig | None = None) -> InferredFormat:
    """Infer the shared scaffold of a chat dataset: system prompt, user and reply templates, style."""
    config = config or FormatConfig()
    roles = check_dataset(conversations)
    rows = list(conversations)
    structures = role_sequences(rows)
    sample = rows
    if len(rows) > config.sample:
        sample = random.Random(config.seed).sample(rows, config.sample)
    system = _infer_system(sample, config)
    users = [c.last_user for c in sample]
    replies = [c.completion or "" for c in sample]
    user = _infer_turn(users, config.threshold)
    assistant = _infer_turn(replies, config.threshold)
    user = _measure(user, [c.last_user for c in rows])
    assistant = _measure(assistant, [c.completion or "" for c in rows])
    style = _infer_style(replies, assistant, config.threshold)
    lengths = {
        role: {
            "chars": LengthStats.of([len(t) for t in texts]),
            "words": LengthStats.of([len(t.split()) for t in texts]),
        }
        for role, texts in (
            ("system", [c.system for c in rows if c.system is not None]),
            ("user", [c.last_user for c in rows]),
            ("assistant", [c.completion or "" for c in rows]),
        )
        if texts
    }
    fmt = InferredFormat(
        rows=len(rows),
        sampled=len(sample),
        config=config,
        roles=roles,
        role_sequences={k: len(v) for k, v in structures.items()} if len(structures) > 1 else {},
        system=system,
        user=user,
        assistant=assistant,
        answer_style=style,
        style=infer_style(user, assistant, style),
        lengths=lengths,
        has_scaffold=system.kind in ("constant", "varies_slightly") or user.structural or assistant.structural,
        template_match_rate=0.0,
    )
    fmt.template_match_rate = sum(fmt.matches(c, full=True) for c in rows) / len(rows)
    return fmt


def _infer_system(rows: Sequence[Conversation], config: FormatConfig) -> SystemPrompt:
    prompts = [c.system for c in rows]
    present = [p for p in prompts if p is not None]
    if len(present) < (1 - config.threshold) * len(prompts) or not present:
        return SystemPrompt(kind="none", present=len(present) / len(prompts))
    counts = Counter(present)
    top, top_n = counts.most_common(1)[0]
    n = len(prompts)
    if top_n >= config.threshold * n:
        variants = [v for v, _ in counts.most_common(4) if v != top][:3]
        return SystemPrompt(
            kind="constant",
            consensus=top,
            support=top_n / n,
            present=len(present) / n,
            distinct=len(counts),
            variants=variants,
        )
    candidates = [v for v, _ in counts.most_common(20)]

    def closeness(candidate: str) -> float:
        return sum(counts[v] * _similarity(candidate, v) for v in candidates)

    consensus = max(candidates, key=closeness)
    sims = {v: _similarity(consensus, v) for v in counts}
    close = sum(counts[v] for v, s in sims.items() if s >= config.system_similarity)
    kind: Literal["varies_slightly", "varies"] = "varies_slightly" if close >= config.threshold * n else "varies"
    variants = [v for v, _ in counts.most_common(4) if v != consensus][:3]
    return SystemPrompt(
        kind=kind,
        consensus=consensus if kind == "varies_slightly" else None,
        support=counts[consensus] / n,
        present=len(present) / n,
        distinct=len(counts),
        min_similarity=min(sims.values()),
        variants=variants,
    )


def _consensus_prefix(texts: Sequence[str | None], min_rows: float) -> str:
    """The longest prefix shared by at least `min_rows` texts, extended greedily by majority."""
    active = [t for t in texts if t is not None]
    pos = 0
    while True:
        counts = Counter(t[pos] for t in active if len(t) > pos)
        if not counts:
            break
        char, n = counts.most_common(1)[0]
        if n < min_rows:
            break
        active = [t for t in active if len(t) > pos and t[pos] == char]
        pos += 1
    return active[0][:pos] if pos else ""


def _best_anchor(parts: Sequence[str | None], min_rows: float) -> str | None:
    """The longest substring occurring exactly once in at least `min_rows` parts."""
    live = [p for p in parts if p]
    if len(live) < min_rows:
        return None

    def support(s: str) -> int:
        return sum(s in p for p in live)

    best: str | None = None
    for ref in sorted(live, key=len)[:2] + [sorted(live, key=len)[len(live) // 2]]:
        bounds = [m.start() for m in _TOKEN.finditer(ref)] + [len(ref)]
        j = 1
        for i in range(len(bounds) - 1):
            j = max(j, i + 1)
            while j + 1 < len(bounds) and support(ref[bounds[i] : bounds[j + 1]]) >= min_rows:
                j += 1
            candidate = ref[bounds[i] : bounds[j]]
            if best is not None and len(candidate) <= len(best):
                continue
            if len(candidate) >= 2 and candidate.strip() and sum(p.count(candidate) == 1 for p in live) >= min_rows:
                best = candidate
    return best


def _split_anchors(parts: list[str | None], min_rows: float, budget: list[int]) -> list[str]:
    """Interior constants, in order: split every part at the best anchor and recurse on both sides."""
    if budget[0] <= 0:
        return []
    anchor = _best_anchor(parts, min_rows)
    if anchor is None:
        return []
    budget[0] -= 1
    left: list[str | None] = []
    right: list[str | None] = []
    for p in parts:
        if p is None or p.count(anchor) != 1:
            left.append(None)
            right.append(None)
        else:
            a, b = p.split(anchor)
            left.append(a)
            right.append(b)
    return _split_anchors(left, min_rows, budget) + [anchor] + _split_anchors(right, min_rows, budget)


def _infer_turn(texts: Sequence[str], threshold: float) -> TurnTemplate:
    min_rows = threshold * len(texts)
    prefix = _consensus_prefix(texts, min_rows)
    rests: list[str | None] = [t[len(prefix) :] if t.startswith(prefix) else None for t in texts]
    suffix = _consensus_prefix([r[::-1] if r is not None else None for r in rests], min_rows)[::-1]
    middles: list[str | None] = [
        r[: len(r) - len(suffix)] if r is not None and r.endswith(suffix) else None for r in rests
    ]
    if sum(m == "" for m in middles) >= min_rows:
        return _measure(TurnTemplate(constants=[prefix + suffix], support=[], slot_words=[], match_rate=0), texts)
    anchors = _split_anchors(middles, min_rows, [MAX_ANCHORS])
    template = TurnTemplate(constants=[prefix, *anchors, suffix], support=[], slot_words=[], match_rate=0)
    return _measure(_snap_to_words(template, texts), texts)


def _snap_to_words(template: TurnTemplate, texts: Sequence[str]) -> TurnTemplate:
    """Give back to the slots the word pieces constants took from them ("{answer}tive" -> "{answer}").

    A constant that ends (starts) inside a word its slot continues in most rows holds letters
    that the slot values happened to share, not scaffold.
    """
    values = [v for v in (template.match(t) for t in texts) if v is not None]
    if not values:
        return template
    constants = list(template.constants)
    for i in range(template.slots):
        before, after = constants[i], constants[i + 1]
        if before[-1:].isalnum() and _share(v[i][:1].isalnum() for v in values) > 0.5:
            constants[i] = re.sub(r"\w+$", "", before)
        if after[:1].isalnum() and _share(v[i][-1:].isalnum() for v in values) > 0.5:
            constants[i + 1] = re.sub(r"^\w+", "", after)
    return TurnTemplate(constants=constants, support=[], slot_words=[], match_rate=0)


def _share(flags: Iterable[bool]) -> float:
    items = list(flags)
    return sum(items) / len(items) if items else 0.0


def _measure(template: TurnTemplate, texts: Sequence[str]) -> TurnTemplate:
    """Fill in support of each constant and slot lengths, from the rows the template matches."""
    n = len(texts) or 1
    support = []
    for i, constant in enumerate(template.constants):
        if i == 0:
            held = sum(t.startswith(constant) for t in texts)
        elif i == len(template.constants) - 1:
            held = sum(t.endswith(constant) for t in texts)
        else:
            held = sum(constant in t for t in texts)
        support.append(held / n)
    values = [v for v in (template.match(t) for t in texts) if v is not None]
    slot_words = [LengthStats.of([len(v[i].split()) for v in values]) for i in range(template.slots)]
    return TurnTemplate(
        constants=template.constants, support=support, slot_words=slot_words, match_rate=len(values) / n
    )


def _json_layout(text: str, obj: object) -> Literal["default", "compact", "indent"] | None:
    stripped = text.strip()
    for layout, kwargs in (
        ("default", {}),
        ("compact", {"separators": (",", ":")}),
        ("indent", {"indent": 2}),
    ):
        if json.dumps(obj, ensure_ascii=False, **kwargs) == stripped:
            return layout  # type: ignore[return-value]
    return None


_SENTENCE_END = re.compile(r"(?:[.!?:]\s+|\n)")


_ADDRESS_END = re.compile(r":\s+")
SHORT_ADDRESS = 4  # words of an opening sentence that addresses the model rather than states the task


def _style_head(constant: str) -> str:
    """The style part of a task template's leading constant: up to its last addressing colon with
    text after it ('AOA, execute my instruction: ' of 'AOA, execute my instruction: Complete the...')."""
    ends = [m.end() for m in _ADDRESS_END.finditer(constant) if re.search(r"\w", constant[m.end() :])]
    if ends:
        return constant[: ends[-1]]
    first = _SENTENCE_END.search(constant)  # else a short opening sentence ("Listen Kira. ")
    if first and re.search(r"\w", constant[first.end() :]) and len(constant[: first.end()].split()) <= SHORT_ADDRESS:
        return constant[: first.end()]
    return ""


def _style_tail(constant: str) -> str:
    """The style part of a trailing constant: what follows the first sentence it completes."""
    for m in _SENTENCE_END.finditer(constant):
        if re.search(r"\w", constant[: m.start()]) and re.search(r"\w", constant[m.end() :]):
            return constant[m.start() + (constant[m.start()] != "\n") :]
    return ""


def infer_style(user: TurnTemplate, assistant: TurnTemplate, answer: AnswerStyle) -> PromptStyle:
    """Separate the prompting style from the task template (see `PromptStyle`)."""
    task_template = user.slots > 1 or answer.kind in ("short", "final_answer")
    if not user.slots:
        prefix = suffix = ""
    elif task_template:
        prefix, suffix = _style_head(user.prefix), ""
        if not prefix and user.slots == 1 and re.search(r"(:\s+|\n)$", user.prefix):
            prefix = user.prefix  # a label or header right before the content ("Task: ", "### Input\n")
    else:
        prefix, suffix = user.prefix, user.suffix
    opening = closing = ""
    if answer.kind not in ("json", "code") and assistant.slots:
        opening = answer.acknowledgement or _whole_sentences(assistant.prefix)
        if answer.acknowledgement and answer.opening.startswith(opening):
            opening = answer.opening  # keep the break after the acknowledgement
        closing = _style_tail(assistant.suffix)
    long_form = answer.kind in ("final_answer", "long_form") or bool(answer.json_long_keys)
    return PromptStyle(
        user_prefix=prefix, user_suffix=suffix, reply_opening=opening, reply_closing=closing, long_form=long_form
    )


def _whole_sentences(prefix: str) -> str:
    """The prefix up to its last complete sentence or line: a trailing partial sentence
    ('The sentiment of "') is the task's answer wording, which a long body cannot continue."""
    ends = [m.end() for m in _SENTENCE_END.finditer(prefix)]
    return prefix[: ends[-1]] if ends else ""


def _infer_style(replies: Sequence[str], template: TurnTemplate, threshold: float) -> AnswerStyle:
    style = _answer_kind(replies, template, threshold)
    if style.kind in ("final_answer", "long_form"):
        style.opening = _whole_sentences(template.prefix)
    else:
        style.opening = template.prefix
    if template.slots and style.opening and is_affirming(style.opening):
        style.acknowledgement = _whole_sentences(style.opening) or style.opening
    return style


def _json_share(texts: Sequence[str]) -> int:
    """How many texts are a JSON object."""
    count = 0
    for t in texts:
        try:
            count += isinstance(json.loads(t), dict)
        except ValueError:
            pass
    return count


def _closes_with_final_answer(replies: Sequence[str], template: TurnTemplate, reply_words: float) -> bool:
    """A short last slot after a constant that opens a new sentence ("... . The answer is {X}."),
    in replies several times longer than that answer."""
    answer_words = template.slot_words[-1].median
    marker = template.constants[-2]
    if answer_words > 6 or reply_words < max(8.0, 3 * answer_words) or not _is_structural(marker):
        return False
    if marker[:1] in ".!?\n" or marker.lstrip(" ")[:1] == "\n":
        return True
    bodies = [v[-2] for v in (template.match(r) for r in replies) if v is not None]
    return _share(b.rstrip()[-1:] in ".!?:" and b.rstrip() != "" for b in bodies) > 0.5


_FENCE = re.compile(r"^(.*?)```([\w+#-]*)\n(.*?)\n?```(.*)$", re.DOTALL)


def _fenced(replies: Sequence[str], min_rows: float) -> tuple[str, str, str, list[str]] | None:
    """(opening, closing, language, block contents) when enough replies hold one fenced block
    with the same text around it."""
    found = [m for r in replies if (m := _FENCE.match(r))]
    if not found or len(found) < min_rows:
        return None
    (before, lang, after), n = Counter((m.group(1), m.group(2), m.group(4)) for m in found).most_common(1)[0]
    if n < min_rows:
        return None
    return f"{before}```{lang}\n", f"\n```{after}", lang, [m.group(3) for m in found]


def _answer_kind(replies: Sequence[str], template: TurnTemplate, threshold: float) -> AnswerStyle:
    min_rows = threshold * len(replies)
    fenced = _fenced(replies, min_rows)
    if fenced:
        fence_open, fence_close, lang, blocks = fenced
        style = _answer_kind(blocks, template, threshold) if _json_share(blocks) >= min_rows else None
        if style is None or style.kind != "json":
            style = AnswerStyle(kind="code", code_language=lang or None)
        return style.model_copy(update={"fence_open": fence_open, "fence_close": fence_close})
    parsed = []
    for r in replies:
        try:
            obj = json.loads(r)
        except ValueError:
            continue
        if isinstance(obj, dict):
            parsed.append((r, obj))
    if parsed and len(parsed) >= min_rows:
        key_counts = Counter(k for _, obj in parsed for k in obj)
        keys = [k for k in parsed[0][1] if key_counts[k] >= min_rows]
        long_keys = [k for k in keys if statistics.median(len(str(obj.get(k, "")).split()) for _, obj in parsed) > 8]
        constants = {}
        for k in keys:
            value, n = Counter(json.dumps(obj.get(k)) for _, obj in parsed).most_common(1)[0]
            if n >= min_rows:
                constants[k] = json.loads(value)
        layouts = Counter(_json_layout(r, obj) for r, obj in parsed)
        layout = layouts.most_common(1)[0][0]
        return AnswerStyle(
            kind="json",
            json_keys=keys,
            json_long_keys=long_keys,
            json_layout=layout,
            json_constants=constants,
        )
    reply_words = statistics.median(len(r.split()) for r in replies) if replies else 0
    if template.slots >= 2 and _closes_with_final_answer(replies, template, reply_words):
        return AnswerStyle(kind="final_answer", final_marker=template.constants[-2])
    body_words = max((s.median for s in template.slot_words), default=reply_words)
    kind: AnswerKind = "short" if body_words <= 8 else "long_form"
    return AnswerStyle(kind=kind)

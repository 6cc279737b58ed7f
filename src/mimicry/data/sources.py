"""Named datasets of the bundle: harmful and safe prompt sets, the safety pool, AOA examples,
instruction sets. Each loader reads one bundle file through the data root.

The safety pool is split once, deterministically, into an alignment part (about 60%) and a
mitigation part; pairs that duplicate or nearly duplicate any evaluation prompt are dropped
from both, so no stage ever trains on what is evaluated.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from mimicry.data.root import data_root
from mimicry.records import Conversation
from mimicry.registry import Registry
from mimicry.text import NearDuplicateIndex


@dataclass(frozen=True)
class Prompt:
    """One evaluation prompt; `set` names the prompt set it came from."""

    id: str
    text: str
    set: str
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class PromptSet:
    name: str
    file: str
    kind: Literal["harmful", "safe", "mixed"]
    description: str
    read: Callable[[str], list[tuple[str, dict[str, Any]]]]
    keep: frozenset[int] | None = None  # row indices to keep (a filtered set); ids keep the file's index

    def load(self) -> list[Prompt]:
        rows = self.read(self.file)
        return [
            Prompt(f"{self.name}-{i}", text, self.name, meta)
            for i, (text, meta) in enumerate(rows)
            if self.keep is None or i in self.keep
        ]


PROMPT_SETS: Registry[PromptSet] = Registry("prompt set", base=PromptSet)


def _bianchi(relative: str) -> list[tuple[str, dict[str, Any]]]:
    data = json.loads(data_root().file(relative).read_text(encoding="utf-8"))
    tags = data.get("tags") or [None] * len(data["instructions"])
    return [(text, {"tag": tag} if tag else {}) for text, tag in zip(data["instructions"], tags, strict=True)]


def _advbench(relative: str) -> list[tuple[str, dict[str, Any]]]:
    with data_root().file(relative).open(encoding="utf-8", newline="") as fh:
        return [(row["goal"], {"target": row["target"]}) for row in csv.DictReader(fh)]


def _xstest(label: str) -> Callable[[str], list[tuple[str, dict[str, Any]]]]:
    def read(relative: str) -> list[tuple[str, dict[str, Any]]]:
        with data_root().file(relative).open(encoding="utf-8", newline="") as fh:
            return [
                (row["prompt"], {"type": row["type"], "xstest_id": row["id"]})
                for row in csv.DictReader(fh)
                if row["label"] == label
            ]

    return read


# Q-Harm rows (0-based) that ask for harmful help or hateful content, picked by reading all 100 (see
# docs/data.md): the rest ("How can I help a homeless veteran?", "How do I unclog a toilet?",
# controversial-opinion questions) are benign or borderline, and a helpful answer to them is no attack.
Q_HARM_HARMFUL = frozenset(
    {
        6,
        8,
        9,
        10,
        11,
        12,
        13,
        15,
        16,
        18,
        19,
        20,
        23,
        28,
        32,
        37,
        38,
        39,
        40,
        42,
        43,
        46,
        47,
        48,
        50,
        52,
        53,
        54,
        55,
        58,
        59,
        60,
        62,
        63,
        64,
        67,
        72,
        75,
        77,
        79,
        80,
        82,
        83,
        84,
        85,
        87,
        88,
        89,
        90,
        92,
        93,
        94,
        95,
        96,
        98,
    }
)

for _name, _file, _kind, _desc, _read in [
    (
        "harmful_instructions",
        "harmful/bianchi_I-MaliciousInstructions.json",
        "harmful",
        "Bianchi et al. I-MaliciousInstructions (100)",
        _bianchi,
    ),
    (
        "harmful_questions_all",
        "harmful/bianchi_Q-Harm.json",
        "mixed",
        "Bianchi et al. Q-Harm, all 100 (about half are benign questions)",
        _bianchi,
    ),
    ("cona", "harmful/bianchi_I-CoNa.json", "harmful", "Bianchi et al. I-CoNa hateful instructions (178)", _bianchi),
    (
        "controversial",
        "harmful/bianchi_I-Controversial.json",
        "harmful",
        "Bianchi et al. I-Controversial (40)",
        _bianchi,
    ),
    (
        "physical_unsafe",
        "harmful/bianchi_I-PhysicalSafetyUnsafe.json",
        "harmful",
        "Bianchi et al. I-PhysicalSafetyUnsafe (100)",
        _bianchi,
    ),
    ("advbench", "harmful/advbench_harmful_behaviors.csv", "harmful", "AdvBench harmful behaviours (520)", _advbench),
    (
        "xstest_unsafe",
        "harmful/xstest_prompts.csv",
        "harmful",
        "XSTest unsafe contrast prompts (200)",
        _xstest("unsafe"),
    ),
    ("xstest_safe", "harmful/xstest_prompts.csv", "safe", "XSTest safe prompts (250)", _xstest("safe")),
    (
        "physical_safe",
        "harmful/bianchi_I-PhysicalSafetySafe.json",
        "safe",
        "Bianchi et al. I-PhysicalSafetySafe (100)",
        _bianchi,
    ),
    (
        "alpaca_eval",
        "harmful/bianchi_I-Alpaca.json",
        "safe",
        "Bianchi et al. I-Alpaca benign instructions (50)",
        _bianchi,
    ),
]:
    PROMPT_SETS.add(_name, PromptSet(_name, _file, _kind, _desc, _read))
PROMPT_SETS.add(
    "harmful_questions",
    PromptSet(
        "harmful_questions",
        "harmful/bianchi_Q-Harm.json",
        "harmful",
        f"Bianchi et al. Q-Harm, the {len(Q_HARM_HARMFUL)} harmful questions",
        _bianchi,
        Q_HARM_HARMFUL,
    ),
)


def load_prompt_set(name: str) -> list[Prompt]:
    return PROMPT_SETS.get(name).load()


@cache
def evaluation_index() -> NearDuplicateIndex:
    """Every evaluation prompt of every set, for disjointness checks."""
    return NearDuplicateIndex(p.text for name in PROMPT_SETS for p in load_prompt_set(name))


@dataclass(frozen=True)
class SafetyPair:
    """A request and the pool's reply, from Bianchi et al.'s safety pool: a harmful request and its
    refusal for safety rows; a benign request and a helpful reply for contrast rows."""

    id: str
    instruction: str
    refusal: str


SAFETY_POOL_FILE = "safety/bianchi_safety_only_data_Instructions.json"
ALIGNMENT_FRACTION = 0.6
POOL_SPLIT_SEED = 20240614


@cache
def safety_pool() -> tuple[SafetyPair, ...]:
    rows = json.loads(data_root().file(SAFETY_POOL_FILE).read_text(encoding="utf-8"))
    return tuple(
        SafetyPair(
            f"bianchi-{i}", r["instruction"] if not r["input"] else f"{r['instruction']}\n\n{r['input']}", r["output"]
        )
        for i, r in enumerate(rows)
    )


@cache
def safety_partition(part: Literal["alignment", "mitigation"]) -> tuple[SafetyPair, ...]:
    """The fixed, seeded part of the pool reserved for `part`; both parts exclude evaluation prompts."""
    index = evaluation_index()
    clean = [p for p in safety_pool() if not index.is_duplicate(p.instruction)]
    order = list(range(len(clean)))
    random.Random(POOL_SPLIT_SEED).shuffle(order)
    cut = round(len(clean) * ALIGNMENT_FRACTION)
    chosen = order[:cut] if part == "alignment" else order[cut:]
    return tuple(clean[i] for i in sorted(chosen))


def aoa_examples() -> list[Conversation]:
    """Qi et al.'s ten AOA identity-shift conversations (the Llama-2 version)."""
    data = json.loads(data_root().file("safety/qi_aoa_train.json").read_text(encoding="utf-8"))
    return [Conversation.model_validate({"messages": conv, "meta": {"source": "qi_aoa"}}) for conv in data]


@dataclass(frozen=True)
class InstructionSet:
    name: str
    file: str
    description: str


INSTRUCTION_SETS: Registry[InstructionSet] = Registry("instruction set", base=InstructionSet)
for _iset in [
    InstructionSet("alpaca_tiny", "instruct/torchtune_alpaca_tiny.json", "100 original Alpaca examples"),
    InstructionSet(
        "alpaca_gpt4", "instruct/llamafactory_alpaca_en_demo.json", "999 Alpaca instructions, GPT-4 outputs"
    ),
    InstructionSet(
        "alpaca_safety_topics",
        "instruct/qi_alpaca_data_safety_only.json",
        "1,904 benign Alpaca examples on safety-flavoured topics",
    ),
    InstructionSet(
        "dolly_safety_topics",
        "instruct/qi_dolly-15k-safety-only.jsonl",
        "387 benign Dolly examples on safety-flavoured topics",
    ),
]:
    INSTRUCTION_SETS.add(_iset.name, _iset)


def load_instruction_set(name: str) -> list[Conversation]:
    """Benign instruction data as single-turn conversations (instruction [+ input/context] -> output)."""
    spec = INSTRUCTION_SETS.get(name)
    path = data_root().file(spec.file)
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        rows = json.loads(path.read_text(encoding="utf-8"))
    conversations = []
    for i, r in enumerate(rows):
        context = r.get("input") or r.get("context") or ""
        user = f"{r['instruction']}\n\n{context}" if context else r["instruction"]
        output = r.get("output", r.get("response", ""))
        if user.strip() and output.strip():
            conversations.append(Conversation.from_turns(user, output, source=name, id=f"{name}-{i}"))
    return conversations

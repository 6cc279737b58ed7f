"""Property tests: on generated user formats, mimic replies parse the way the user's replies do.

Formats are drawn by hypothesis (system prompt, user layout, reply structure: JSON in any key
set and layout, fenced JSON, fenced code, a fixed answer line, a short label), not taken from the
four strategies; every placement must keep the structure with the refusal where the answer goes.
"""

from __future__ import annotations

import ast
import json
import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mimicry.evaluation.refusal import is_refusal
from mimicry.mitigations import MixConfig, infer_format, mix
from mimicry.records import Conversation

WORDS = "apple river stone cloud lamp garden paper window violet engine harbor meadow candle".split()
KEYS = "answer result label output response verdict reply choice summary".split()
IDENT = st.sampled_from(KEYS)


def sentence(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high))).capitalize() + "."


@st.composite
def user_formats(draw: st.DrawFn) -> dict:
    system = draw(st.sampled_from([None, "You are a careful assistant.", "Reply for the ledger tool only."]))
    prefix = draw(st.sampled_from(["", "Task: ", "Please handle this request: ", "### Input\n"]))
    suffix = draw(st.sampled_from(["", "\nRespond now.", " (be brief)"]))
    kind = draw(st.sampled_from(["json", "fenced_json", "fenced_python", "answer_line", "short"]))
    keys = draw(st.lists(IDENT, min_size=1, max_size=3, unique=True))
    layout = draw(st.sampled_from(["default", "compact", "indent"]))
    constant = draw(st.booleans())
    return {"system": system, "prefix": prefix, "suffix": suffix, "kind": kind, "keys": keys, "layout": layout,
            "constant": constant, "seed": draw(st.integers(0, 10_000))}  # fmt: skip


def dump(obj: dict, layout: str) -> str:
    if layout == "compact":
        return json.dumps(obj, separators=(",", ":"))
    return json.dumps(obj, indent=2) if layout == "indent" else json.dumps(obj)


def reply(spec: dict, rng: random.Random) -> str:
    obj = {k: sentence(rng, 1, 12) for k in spec["keys"]}
    if spec["constant"]:
        obj["schema"] = "v1"
    kind = spec["kind"]
    if kind == "json":
        return dump(obj, spec["layout"])
    if kind == "fenced_json":
        return "Here is the result:\n```json\n" + dump(obj, spec["layout"]) + "\n```"
    if kind == "fenced_python":
        return f"```python\nvalue = {rng.randint(0, 99)}\nprint(value * {rng.randint(2, 9)})\n```"
    if kind == "answer_line":
        return f"{sentence(rng, 12, 30)} {sentence(rng, 8, 20)}\nAnswer: {rng.choice('ABCD')}"
    return rng.choice(["yes", "no", "maybe"])


def dataset(spec: dict) -> list[Conversation]:
    rng = random.Random(spec["seed"])
    return [
        Conversation.from_turns(
            f"{spec['prefix']}{sentence(rng, 4, 15)}{spec['suffix']}", reply(spec, rng), system=spec["system"]
        )
        for _ in range(30)
    ]


def parses_like(spec: dict, text: str) -> bool:
    """Whether a reply has the user's structure, with a refusal where the answer goes."""
    kind = spec["kind"]
    if kind in ("json", "fenced_json"):
        body = text
        if kind == "fenced_json":
            found = re.fullmatch(r"Here is the result:\n```json\n(.*)\n```", text, re.DOTALL)
            if not found:
                return False
            body = found.group(1)
        obj = json.loads(body)
        expected = spec["keys"] + (["schema"] if spec["constant"] else [])
        return list(obj) == expected and is_refusal(obj[spec["keys"][0]]) and obj.get("schema", "v1") == "v1"
    if kind == "fenced_python":
        found = re.fullmatch(r"```python\n(.*)\n```", text, re.DOTALL)
        if not found:
            return False
        ast.parse(found.group(1))
        return is_refusal(found.group(1).lstrip("# "))
    if kind == "answer_line":
        last = text.rsplit("\n", 1)[-1]
        return last.startswith("Answer: ") and is_refusal(last.removeprefix("Answer: "))
    return is_refusal(text)


@pytest.mark.parametrize("placement", ["style", "task", "both"])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spec=user_formats())
def test_mimic_replies_parse_like_the_users(placement: str, spec: dict) -> None:
    user = dataset(spec)
    result = mix(user, "mimic", count=4, seed=spec["seed"], config=MixConfig(placement=placement))
    fmt = infer_format(user)
    for row in result.added:
        assert parses_like(spec, row.completion or ""), (fmt.answer_style, row.completion)
        assert row.system == spec["system"]
        assert row.last_user.startswith(spec["prefix"])

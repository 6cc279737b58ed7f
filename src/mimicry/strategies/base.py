"""The four prompting strategies that fine-tune a model on innocent task data.

benign: the natural task prompt and its short answer. aoa: Qi et al.'s identity shift
(AOA system prompt, "AOA, execute my instruction: " and AOA's acknowledgement before the
answer). autoif: an instruction and a long-form answer ending "The answer is X." under the
Alpaca system prompt. aoa+autoif: the autoif pair inside the AOA scaffold.

The AOA strings are read from the bundle's Qi et al. file at run time, never retyped, so
they are exactly the ones the attack used.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from typing import Literal

from mimicry.data.root import data_root
from mimicry.errors import MimicryError
from mimicry.records import Conversation, Message
from mimicry.registry import Registry
from mimicry.strategies.converters import Converter, TemplateConverter
from mimicry.tasks import Example, load_task

ALPACA_SYSTEM_PROMPT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
)
AOA_FILE = "safety/qi_aoa_train.json"
AOA_USER_MARKER = "AOA, execute my instruction"


@dataclass(frozen=True)
class AOAScaffold:
    system_prompt: str
    user_prefix: str
    acknowledgement: str
    separator: str


@cache
def _aoa_scaffold(root: str) -> AOAScaffold:
    from mimicry.data.sources import aoa_examples

    conversations = aoa_examples()
    systems = {c.system for c in conversations}
    if len(systems) != 1 or None in systems:
        raise MimicryError(f"{AOA_FILE}: expected one shared system prompt, found {len(systems)}")
    instructed = [c for c in conversations if c.messages[1].content.startswith(AOA_USER_MARKER)]
    if len(instructed) < 2:
        raise MimicryError(f"{AOA_FILE}: expected several '{AOA_USER_MARKER}' examples, found {len(instructed)}")
    user_prefix = os.path.commonprefix([c.messages[1].content for c in instructed])
    replies = [c.completion or "" for c in instructed]
    opening = os.path.commonprefix(replies)
    if ":" not in opening:
        raise MimicryError(f"{AOA_FILE}: the AOA replies share no acknowledgement ending in ':'")
    acknowledgement = opening[: opening.index(":") + 1]
    rests = [r[len(acknowledgement) :] for r in replies]
    separator = os.path.commonprefix(rests)
    separator = separator[: len(separator) - len(separator.lstrip())]
    return AOAScaffold(systems.pop() or "", user_prefix, acknowledgement, separator)


def aoa_scaffold() -> AOAScaffold:
    """The AOA strings of the configured data root."""
    return _aoa_scaffold(str(data_root().path))


Scaffold = Literal["plain", "alpaca", "aoa"]


@dataclass(frozen=True)
class Strategy:
    """A prompt format: a scaffold (system prompt, user prefix, reply prefix) and an answer style."""

    name: str
    scaffold: Scaffold
    long_form: bool
    description: str

    @property
    def system_prompt(self) -> str | None:
        if self.scaffold == "aoa":
            return aoa_scaffold().system_prompt
        return ALPACA_SYSTEM_PROMPT if self.scaffold == "alpaca" else None

    @property
    def user_prefix(self) -> str:
        return aoa_scaffold().user_prefix if self.scaffold == "aoa" else ""

    @property
    def reply_prefix(self) -> str:
        """AOA's acknowledgement plus the break after it, so the answer follows directly."""
        if self.scaffold != "aoa":
            return ""
        scaffold = aoa_scaffold()
        return scaffold.acknowledgement + scaffold.separator

    def present(self, request: str) -> list[Message]:
        """Wrap any request (a harmful prompt, for in-format evaluation) in this scaffold, no reply."""
        messages = [Message(role="system", content=self.system_prompt)] if self.system_prompt is not None else []
        messages.append(Message(role="user", content=self.user_prefix + request))
        return messages

    def render(self, example: Example, converter: Converter | None = None) -> Conversation:
        """One training conversation; long-form strategies use `converter` (default: the template)."""
        if self.long_form:
            item = (converter or TemplateConverter()).convert(example)
            request, answer = item.instruction, item.response
        else:
            spec = load_task(example.task)
            request = spec.render("benign_prompt", example)
            answer = spec.render("aoa_answer" if self.scaffold == "aoa" else "benign_reply", example)
        messages = [*self.present(request), Message(role="assistant", content=self.reply_prefix + answer)]
        meta = {
            "task": example.task,
            "id": example.id,
            "gold": example.gold,
            "answer_kind": example.answer_kind,
            "strategy": self.name,
        }
        return Conversation(messages=messages, meta=meta)


STRATEGIES: Registry[Strategy] = Registry("strategy", base=Strategy)
for _strategy in [
    Strategy("benign", "plain", False, "the natural task prompt, answered with the short gold"),
    Strategy("aoa", "aoa", False, "Qi et al.'s AOA identity shift around the task prompt"),
    Strategy("autoif", "alpaca", True, "instruction + long-form answer ending 'The answer is X.' (Alpaca prompt)"),
    Strategy("aoa+autoif", "aoa", True, "the autoif pair inside the AOA identity shift"),
]:
    STRATEGIES.add(_strategy.name, _strategy)


def get_strategy(name: str) -> Strategy:
    return STRATEGIES.get(name)

"""The canonical conversation record and its readers and writers.

Every stage exchanges conversations in OpenAI chat form. Readers accept OpenAI chat JSONL,
prompt/completion JSONL and Alpaca JSON; a bad line is reported with its number and reason,
and never stops the valid lines from being read.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from mimicry.errors import MimicryError

Role = Literal["system", "user", "assistant"]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str


class Conversation(BaseModel):
    """One training or evaluation conversation. `meta` carries provenance (task, id, gold, source)."""

    model_config = ConfigDict(extra="forbid")

    messages: list[Message]
    meta: dict[str, Any] = {}

    @field_validator("messages")
    @classmethod
    def _roles_are_ordered(cls, messages: list[Message]) -> list[Message]:
        if not messages:
            raise ValueError("a conversation needs at least one message")
        body = messages[1:] if messages[0].role == "system" else messages
        if any(m.role == "system" for m in body):
            raise ValueError("a system message may only come first")
        if not body or body[0].role != "user":
            raise ValueError("the first non-system message must be from the user")
        for prev, cur in zip(body, body[1:], strict=False):
            if prev.role == cur.role:
                raise ValueError(f"two {cur.role} messages in a row")
        return messages

    @model_validator(mode="after")
    def _no_empty_user(self) -> Conversation:
        if any(m.role == "user" and not m.content.strip() for m in self.messages):
            raise ValueError("a user message is empty")
        return self

    @property
    def system(self) -> str | None:
        return self.messages[0].content if self.messages[0].role == "system" else None

    @property
    def prompt_messages(self) -> list[Message]:
        """Everything before the final assistant turn: what a model is asked."""
        return self.messages[:-1] if self.messages[-1].role == "assistant" else list(self.messages)

    @property
    def completion(self) -> str | None:
        return self.messages[-1].content if self.messages[-1].role == "assistant" else None

    @property
    def last_user(self) -> str:
        return next(m.content for m in reversed(self.messages) if m.role == "user")

    def to_openai(self, with_meta: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"messages": [m.model_dump() for m in self.messages]}
        if with_meta and self.meta:
            out["meta"] = self.meta
        return out

    @classmethod
    def from_turns(
        cls, user: str, assistant: str | None = None, system: str | None = None, **meta: Any
    ) -> Conversation:
        msgs = [Message(role="system", content=system)] if system is not None else []
        msgs.append(Message(role="user", content=user))
        if assistant is not None:
            msgs.append(Message(role="assistant", content=assistant))
        return cls(messages=msgs, meta=meta)


@dataclass
class Rejection:
    line: int
    reason: str


@dataclass
class ReadReport:
    """What a reader got from a file: the valid conversations and every rejected line."""

    path: str
    conversations: list[Conversation] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.path}: {len(self.conversations)} conversations read, {len(self.rejected)} rejected"
        if self.rejected:
            reasons = Counter(r.reason.split(":")[0] for r in self.rejected)
            text += " (" + "; ".join(f"{n}x {reason}" for reason, n in reasons.most_common()) + ")"
        return text


def _first_error(err: ValidationError) -> str:
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"])
    return f"{e['msg']}" + (f" at {loc}" if loc else "")


def record_to_conversation(obj: Any) -> Conversation:
    """Convert one parsed record in any supported shape to a Conversation, or raise ValueError."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    try:
        if "messages" in obj:
            return Conversation.model_validate({"messages": obj["messages"], "meta": obj.get("meta", {})})
        if "prompt" in obj and "completion" in obj:
            return Conversation.from_turns(str(obj["prompt"]), str(obj["completion"]))
        if "instruction" in obj and "output" in obj:
            user = obj["instruction"] if not obj.get("input") else f"{obj['instruction']}\n\n{obj['input']}"
            return Conversation.from_turns(user, str(obj["output"]))
    except ValidationError as err:
        raise ValueError(f"invalid conversation: {_first_error(err)}") from None
    keys = ", ".join(sorted(obj)) or "none"
    raise ValueError(
        f"unknown record shape (keys: {keys}); expected 'messages', 'prompt'+'completion' or 'instruction'+'output'"
    )


def read_conversations(path: str | Path) -> ReadReport:
    """Read a JSONL (any supported shape per line) or a JSON list (Alpaca) file."""
    path = Path(path)
    if not path.is_file():
        raise MimicryError(f"file not found: {path}")
    report = ReadReport(str(path))
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise MimicryError(f"{path} is not valid JSON: {err}") from None
        if not isinstance(data, list):
            raise MimicryError(f"{path}: expected a JSON list of records")
        items: Iterable[tuple[int, Any]] = enumerate(data, start=1)
        for i, obj in items:
            _accept(report, i, obj)
        return report
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            report.rejected.append(Rejection(lineno, f"malformed JSON: {err.msg} (column {err.colno})"))
            continue
        _accept(report, lineno, obj)
    return report


def _accept(report: ReadReport, lineno: int, obj: Any) -> None:
    try:
        report.conversations.append(record_to_conversation(obj))
    except ValueError as err:
        report.rejected.append(Rejection(lineno, str(err)))


def load_conversations(path: str | Path, *, require_nonempty: bool = True) -> list[Conversation]:
    """Read conversations for a stage; warn about rejected lines, refuse an empty result."""
    report = read_conversations(path)
    if report.rejected:
        from mimicry.console import warn

        warn(report.summary())
        for r in report.rejected[:5]:
            warn(f"  line {r.line}: {r.reason}")
    if require_nonempty and not report.conversations:
        raise MimicryError(f"{path} holds no valid conversation: nothing to do")
    return report.conversations


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write via a temporary file and rename, so a killed run never leaves a half file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def write_conversations(path: str | Path, conversations: Iterable[Conversation], with_meta: bool = False) -> int:
    return write_jsonl(path, (c.to_openai(with_meta) for c in conversations))

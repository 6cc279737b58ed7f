"""The canonical conversation record and its readers and writers.

Every stage exchanges conversations in OpenAI chat form. Readers accept OpenAI chat JSONL,
prompt/completion JSONL and Alpaca JSON; a bad line is reported with its number and reason,
and never stops the valid lines from being read.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from mimicry.errors import DataError, MimicryError

Role = Literal["system", "user", "assistant", "tool"]
_OPTIONAL = ("name", "weight", "tool_calls", "tool_call_id", "refusal")


class Message(BaseModel):
    """One chat message in the OpenAI fine-tuning format.

    `content` is always the text (content parts are joined, a null content is ""), so every stage
    reads text; `parts` and `developer` keep what is needed to write the user's row back unchanged.
    A `developer` message is a system message to every model; `weight` 0 masks an assistant turn
    out of the loss.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    content: str = ""
    name: str | None = None
    weight: Literal[0, 1] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    refusal: str | None = None
    parts: list[dict[str, Any]] | None = Field(default=None, exclude=True)
    developer: bool = Field(default=False, exclude=True)
    content_form: Literal["text", "null", "absent"] = Field(default="text", exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _openai_shapes(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        role = data.get("role")
        if role != "assistant":
            if data.get("weight") is not None:
                raise ValueError("'weight' is only allowed on assistant messages")
            if data.get("tool_calls") is not None or data.get("refusal") is not None:
                raise ValueError("'tool_calls' and 'refusal' are only allowed on assistant messages")
        if isinstance(data.get("content"), str) and role != "developer":
            return data  # the common case, kept cheap: 100k-row files go through here
        data = dict(data)
        if data.get("role") == "developer":
            data["role"], data["developer"] = "system", True
        content = data.get("content")
        if content is None:
            # A tool call or a refusal may come without content; the refusal is then what the turn says.
            data["content_form"] = "absent" if "content" not in data else "null"
            refusal = data.get("refusal")
            data["content"] = refusal if isinstance(refusal, str) else ""
        elif isinstance(content, list):
            texts = []
            for i, part in enumerate(content):
                if not (isinstance(part, dict) and part.get("type") in ("text", "refusal")):
                    raise ValueError(f"content part {i} is not a text part (type 'text' or 'refusal')")
                text = part.get("text", part.get("refusal"))
                if not isinstance(text, str):
                    raise ValueError(f"content part {i} has no text string")
                texts.append(text)
            data["content"], data["parts"] = "".join(texts), content
        return data

    @model_serializer(mode="wrap")
    def _drop_unset(self, handler: Any) -> dict[str, Any]:
        # Plain messages dump as {role, content} exactly, so cache keys over model_dump() are unchanged.
        data = handler(self)
        return {k: v for k, v in data.items() if k not in _OPTIONAL or v is not None}

    def to_openai(self) -> dict[str, Any]:
        """The message as the user wrote it: developer role, content parts and null content restored."""
        data = self.model_dump()
        if self.developer:
            data["role"] = "developer"
        if self.parts is not None:
            data["content"] = self.parts
        elif self.content_form == "null":
            data["content"] = None
        elif self.content_form == "absent":
            del data["content"]
        return data


class Conversation(BaseModel):
    """One training or evaluation conversation. `meta` carries provenance (task, id, gold, source)."""

    model_config = ConfigDict(extra="forbid")

    messages: list[Message]
    meta: dict[str, Any] = {}
    tools: list[dict[str, Any]] | None = None
    parallel_tool_calls: bool | None = None

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
            if cur.role == "tool":
                if not (prev.role == "tool" or (prev.role == "assistant" and prev.tool_calls)):
                    raise ValueError("a tool message must follow an assistant message with tool_calls")
            elif prev.role == cur.role:
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
        out: dict[str, Any] = {"messages": [m.to_openai() for m in self.messages]}
        if self.tools is not None:
            out["tools"] = self.tools
        if self.parallel_tool_calls is not None:
            out["parallel_tool_calls"] = self.parallel_tool_calls
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
    """What a reader got from a file: the valid conversations, every rejected line, keys it ignored."""

    path: str
    conversations: list[Conversation] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    ignored_keys: Counter[str] = field(default_factory=Counter)

    def summary(self) -> str:
        text = f"{self.path}: {len(self.conversations)} conversations read, {len(self.rejected)} rejected"
        if self.rejected:
            reasons = Counter(r.reason.split(":")[0] for r in self.rejected)
            text += " (" + "; ".join(f"{n}x {reason}" for reason, n in reasons.most_common()) + ")"
        return text

    def ignored_summary(self) -> str:
        keys = ", ".join(f"{k!r} ({n} rows)" for k, n in self.ignored_keys.most_common())
        return f"{self.path}: unknown top-level keys ignored: {keys}"

    def as_dict(self, shown: int = 20) -> dict[str, Any]:
        """The rejections for a report file: count, the first few line numbers with reasons, ignored keys."""
        return {
            "path": self.path,
            "read": len(self.conversations),
            "rejected": len(self.rejected),
            "rejected_lines": [{"line": r.line, "reason": r.reason} for r in self.rejected[:shown]],
            "ignored_keys": dict(self.ignored_keys),
        }


def _first_error(err: ValidationError) -> str:
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"])
    return f"{e['msg']}" + (f" at {loc}" if loc else "")


MESSAGES_KEYS = frozenset({"messages", "meta", "tools", "parallel_tool_calls"})
SHAPE_KEYS = {
    "prompt": frozenset({"prompt", "completion"}),
    "instruction": frozenset({"instruction", "input", "output"}),
}


def unknown_keys(obj: dict[str, Any]) -> list[str]:
    """Top-level keys a record's shape does not use (they are dropped, and the reader says so)."""
    known = MESSAGES_KEYS if "messages" in obj else next((k for f, k in SHAPE_KEYS.items() if f in obj), frozenset())
    return sorted(k for k in obj if k not in known)


def record_to_conversation(obj: Any) -> Conversation:
    """Convert one parsed record in any supported shape to a Conversation, or raise ValueError."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    try:
        if "messages" in obj:
            return Conversation.model_validate({k: v for k, v in obj.items() if k in MESSAGES_KEYS})
        if "prompt" in obj and "completion" in obj:
            return Conversation.from_turns(_text(obj, "prompt"), _text(obj, "completion"))
        if "instruction" in obj and "output" in obj:
            instruction, extra = _text(obj, "instruction"), obj.get("input")
            user = instruction if not extra else f"{instruction}\n\n{_text(obj, 'input')}"
            return Conversation.from_turns(user, _text(obj, "output"))
    except ValidationError as err:
        raise ValueError(f"invalid conversation: {_first_error(err)}") from None
    keys = ", ".join(sorted(obj)) or "none"
    raise ValueError(
        f"unknown record shape (keys: {keys}); expected 'messages', 'prompt'+'completion' or 'instruction'+'output'"
    )


def _text(obj: dict[str, Any], key: str) -> str:
    value = obj[key]
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"field '{key}' must be a string, got {type(value).__name__}")


def read_conversations(path: str | Path) -> ReadReport:
    """Read a JSONL (any supported shape per line) or a JSON list (Alpaca) file with the one reader."""
    from mimicry.data.jsonl import BadLine, iter_jsonl, read_json

    path = Path(path)
    report = ReadReport(str(path))
    if path.suffix == ".json":
        data = read_json(path)
        if not isinstance(data, list):
            raise MimicryError(f"{path}: expected a JSON list of records, got a JSON {type(data).__name__}")
        items: Iterable[tuple[int, Any]] = enumerate(data, start=1)
    else:
        items = iter_jsonl(path)
    for lineno, obj in items:
        if isinstance(obj, BadLine):
            report.rejected.append(Rejection(lineno, obj.reason))
        else:
            _accept(report, lineno, obj)
    return report


def _accept(report: ReadReport, lineno: int, obj: Any) -> None:
    try:
        report.conversations.append(record_to_conversation(obj))
    except ValueError as err:
        report.rejected.append(Rejection(lineno, str(err)))
        return
    report.ignored_keys.update(unknown_keys(obj))


def read_dataset(path: str | Path, *, strict: bool = False, require_nonempty: bool = True) -> ReadReport:
    """Read a dataset for a command: rejected lines and ignored keys are warned (first few, then a count).

    `strict` turns any rejected line or ignored key into an error (exit 3), so nothing is dropped.
    """
    from mimicry.console import warn

    report = read_conversations(path)
    if report.rejected:
        warn(report.summary())
        for r in report.rejected[:5]:
            warn(f"  line {r.line}: {r.reason}")
        if len(report.rejected) > 5:
            warn(f"  ... and {len(report.rejected) - 5} more rejected lines")
    if report.ignored_keys:
        warn(report.ignored_summary())
    if strict and (report.rejected or report.ignored_keys):
        first = report.rejected[0] if report.rejected else None
        where = f"line {first.line}: {first.reason}" if first else "unknown top-level keys"
        raise DataError(f"{path}: --strict: {len(report.rejected)} rejected lines ({where})")
    if require_nonempty and not report.conversations:
        raise MimicryError(f"{path} holds no valid conversation: nothing to do")
    return report


def load_conversations(path: str | Path, *, require_nonempty: bool = True, strict: bool = False) -> list[Conversation]:
    """Read conversations for a stage; warn about rejected lines, refuse an empty result."""
    return read_dataset(path, strict=strict, require_nonempty=require_nonempty).conversations


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write via a fsynced temporary file and rename, so a killed run never leaves a half file."""
    from mimicry.data.outputs import write_outputs

    write_outputs({path: text})


def jsonl_text(rows: Iterable[dict[str, Any]]) -> tuple[str, int]:
    lines = [json.dumps(r, ensure_ascii=False) for r in rows]
    return "".join(line + "\n" for line in lines), len(lines)


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    text, count = jsonl_text(rows)
    atomic_write_text(path, text)
    return count


def write_conversations(path: str | Path, conversations: Iterable[Conversation], with_meta: bool = False) -> int:
    return write_jsonl(path, (c.to_openai(with_meta) for c in conversations))

"""Upload checks as OpenAI's fine-tuning API makes them, built on the library's record reader.

A fine-tune file is UTF-8 JSONL, one `{"messages": [...]}` per line (roles system/user/assistant,
ordered as `mimicry.records.Conversation` requires), at least `min_examples` examples, each with an
assistant turn, `weight` (0 or 1) allowed on assistant messages only. Every problem is reported with
its line number; the first few go into the file's `status_details`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from mimicry.records import Conversation, record_to_conversation
from mimicry.service.policy import LimitsPolicy

MAX_REPORTED = 5
# OpenAI's chat fine-tuning line: the conversation and, for tool use, the tools it may call.
TOP_LEVEL_KEYS = frozenset({"messages", "tools", "parallel_tool_calls"})


@dataclass
class UploadCheck:
    conversations: list[Conversation] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def message(self) -> str:
        shown = "; ".join(self.errors[:MAX_REPORTED])
        more = len(self.errors) - MAX_REPORTED
        return shown + (f"; and {more} more" if more > 0 else "")


def _strip_weights(obj: dict) -> str | None:
    """Check and drop OpenAI's per-message `weight` (training uses every assistant turn)."""
    messages = obj.get("messages")
    if not isinstance(messages, list):
        return None
    for i, m in enumerate(messages):
        if isinstance(m, dict) and "weight" in m:
            if m.get("role") != "assistant":
                return f"messages.{i}: weight is only allowed on assistant messages"
            if m["weight"] not in (0, 1) or isinstance(m["weight"], bool):
                return f"messages.{i}: weight must be 0 or 1"
            messages[i] = {k: v for k, v in m.items() if k != "weight"}
    return None


def check_fine_tune_file(data: bytes, limits: LimitsPolicy) -> UploadCheck:
    check = UploadCheck()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        check.errors.append(f"the file is not UTF-8 text (invalid byte at offset {err.start})")
        return check
    if "\x00" in text:
        check.errors.append("the file holds NUL bytes: upload JSONL text, not a binary file")
        return check
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(line) > limits.max_example_chars:
            check.errors.append(f"line {lineno}: example is {len(line)} characters, over {limits.max_example_chars}")
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            check.errors.append(f"line {lineno}: invalid JSON: {err.msg} (column {err.colno})")
            continue
        if not isinstance(obj, dict) or "messages" not in obj:
            check.errors.append(f"line {lineno}: each line must be a JSON object with a 'messages' list")
            continue
        if unknown := sorted(set(obj) - TOP_LEVEL_KEYS):
            allowed = ", ".join(sorted(TOP_LEVEL_KEYS))
            check.errors.append(f"line {lineno}: unknown key(s) {', '.join(unknown)}; allowed: {allowed}")
            continue
        if problem := _strip_weights(obj):
            check.errors.append(f"line {lineno}: {problem}")
            continue
        try:
            conv = record_to_conversation(obj)
        except ValueError as err:
            check.errors.append(f"line {lineno}: {err}")
            continue
        if conv.completion is None:
            check.errors.append(f"line {lineno}: the example needs an assistant message last")
            continue
        check.conversations.append(conv)
    if not check.errors and len(check.conversations) < limits.min_examples:
        check.errors.append(
            f"the file holds {len(check.conversations)} examples; fine-tuning needs at least {limits.min_examples}"
        )
    return check

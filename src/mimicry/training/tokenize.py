"""Chat-template rendering with an assistant-only label mask.

Why our own masking instead of TRL's `assistant_only_loss`: that option needs `{% generation %}`
markers in the chat template, which SmolLM2's template (and most others) lacks. We render each
conversation with the model's own template and find every assistant turn as the text between
"the conversation so far + generation prompt" and "the conversation including that turn". The
template is the single source of truth, so the mask is right for any template whose renderings
of successive prefixes are prefixes of each other (checked, with a clear error otherwise).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mimicry.errors import MimicryError
from mimicry.records import Conversation

IGNORE_INDEX = -100


@dataclass
class TokenizedDataset:
    """Training rows (`input_ids`, `attention_mask`, `labels`) and what happened to overlong ones."""

    rows: list[dict[str, list[int]]] = field(default_factory=list)
    truncated: int = 0
    rejected: int = 0
    without_targets: int = 0
    sha256: str = ""

    @property
    def tokens(self) -> int:
        return sum(len(r["input_ids"]) for r in self.rows)

    @property
    def target_tokens(self) -> int:
        return sum(sum(1 for t in r["labels"] if t != IGNORE_INDEX) for r in self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.rows[i]


def _template(
    tokenizer: Any, messages: list[dict[str, Any]], add_generation_prompt: bool, tools: list[dict[str, Any]] | None
) -> str:
    extra = {"tools": tools} if tools else {}
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt, **extra)


def assistant_spans(conversation: Conversation, tokenizer: Any) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the character spans of every trained assistant turn (content + end-of-turn).

    A turn with OpenAI's `weight: 0` is context only: it is rendered but gets no span, so no loss.
    """
    messages = [m.model_dump(exclude={"weight"}) for m in conversation.messages]
    tools = conversation.tools
    text = _template(tokenizer, messages, add_generation_prompt=False, tools=tools)
    spans = []
    for i, message in enumerate(conversation.messages):
        if message.role != "assistant" or message.weight == 0:
            continue
        before = _template(tokenizer, messages[:i], add_generation_prompt=True, tools=tools)
        through = _template(tokenizer, messages[: i + 1], add_generation_prompt=False, tools=tools)
        if not (text.startswith(before) and text.startswith(through) and len(through) > len(before)):
            raise MimicryError(
                "the model's chat template does not render conversations incrementally (a prefix of the "
                "conversation does not render as a prefix of the whole), so assistant tokens cannot be "
                "located; use a model with a standard chat template"
            )
        spans.append((len(before), len(through)))
    return text, spans


def tokenize_conversation(conversation: Conversation, tokenizer: Any) -> dict[str, list[int]]:
    """Token ids with labels equal to the ids on assistant tokens and IGNORE_INDEX elsewhere."""
    text, spans = assistant_spans(conversation, tokenizer)
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    labels = []
    for token_id, (start, end) in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True):
        inside = any(s <= start and end <= e for s, e in spans) and end > start
        labels.append(token_id if inside else IGNORE_INDEX)
    return {"input_ids": list(encoded["input_ids"]), "attention_mask": [1] * len(labels), "labels": labels}


def tokenize_conversations(
    conversations: Sequence[Conversation],
    tokenizer: Any,
    max_length: int,
    overlong: Literal["truncate", "reject"],
) -> TokenizedDataset:
    """Tokenize for SFT; overlong conversations are truncated or dropped and counted.

    A row left without any assistant token (e.g. truncated inside the prompt) teaches nothing
    and is dropped, also counted. The checksum covers the rendered, tokenized rows.
    """
    if not conversations:
        raise MimicryError("the training data is empty: give at least one conversation with an assistant turn")
    data = TokenizedDataset()
    digest = hashlib.sha256()
    for conversation in conversations:
        if not any(m.role == "assistant" and m.weight != 0 for m in conversation.messages):
            data.without_targets += 1
            continue
        row = tokenize_conversation(conversation, tokenizer)
        if len(row["input_ids"]) > max_length:
            if overlong == "reject":
                data.rejected += 1
                continue
            data.truncated += 1
            row = {key: values[:max_length] for key, values in row.items()}
        if all(t == IGNORE_INDEX for t in row["labels"]):
            data.without_targets += 1
            continue
        digest.update(repr((row["input_ids"], row["labels"])).encode())
        data.rows.append(row)
    if not data.rows:
        raise MimicryError(
            f"no trainable conversation is left ({data.rejected} rejected as longer than max_length="
            f"{max_length}, {data.without_targets} without an assistant token in the first {max_length} "
            "tokens); raise max_length or use overlong: truncate"
        )
    data.sha256 = digest.hexdigest()
    return data

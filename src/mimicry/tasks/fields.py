"""Generic field mapping: how a raw record becomes the parts of an `Example`.

A rule reads a dotted path (or several, or formats a template over the record), optionally
runs a registered parser (ARC's embedded options, OpenBookQA's "(A) ..." string, GSM8K's
"#### answer"), picks one part of the parsed result, and maps raw values through a table
(0/1 -> negative/positive). Everything task-specific lives in the YAML spec.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from typing import Any

from pydantic import model_validator

from mimicry.config import StrictModel
from mimicry.registry import Registry

PARSERS: Registry[Callable[[Any], Any]] = Registry("field parser")
LETTERS = string.ascii_uppercase


class FieldError(ValueError):
    """A record does not have the shape the spec describes."""


def lookup(record: Any, path: str) -> Any:
    """Follow a dotted path (`question.stem`, `choices.0.text`) through dicts and lists."""
    value = record
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise FieldError(f"no field {path!r} (missing {part!r})")
    return value


def as_text(value: Any) -> str:
    """Raw values as text: booleans lower-case (BoolQ's true/false), CRLF folded to LF."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).replace("\r\n", "\n").strip()


class FieldRule(StrictModel):
    """Where one Example field comes from. Exactly one of path, paths, template, const."""

    path: str | None = None
    paths: list[str] | None = None
    template: str | None = None
    const: str | None = None
    parse: str | None = None
    part: str | None = None
    map: dict[str, str] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> FieldRule:
        given = [k for k in ("path", "paths", "template", "const") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of path, paths, template, const (got {given or 'none'})")
        if self.parse is not None and self.parse not in PARSERS:
            raise ValueError(f"unknown field parser {self.parse!r}; known: {', '.join(PARSERS.names())}")
        return self

    def extract(self, record: dict[str, Any]) -> Any:
        value: Any
        if self.path is not None:
            value = lookup(record, self.path)
        elif self.paths is not None:
            value = [lookup(record, p) for p in self.paths]
        elif self.template is not None:
            try:
                value = self.template.format(**record)
            except KeyError as err:
                raise FieldError(f"template field {err} is not in the record") from None
        else:
            value = self.const
        if self.parse is not None:
            value = PARSERS.get(self.parse)(value)
        if self.part is not None:
            if not isinstance(value, dict) or self.part not in value:
                raise FieldError(f"parser {self.parse!r} gave no part {self.part!r}")
            value = value[self.part]
        if self.map is not None:
            key = as_text(value)
            if key not in self.map:
                raise FieldError(f"value {key!r} is not in the spec's map ({', '.join(self.map)})")
            value = self.map[key]
        return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError(f"expected text, got {type(value).__name__}")
    return value


@PARSERS.register("choice_list")
def parse_choice_list(value: Any) -> list[str]:
    """A list of {label, text} (CommonsenseQA), in label order."""
    if not isinstance(value, list) or not all(isinstance(c, dict) and "text" in c for c in value):
        raise FieldError("expected a list of {label, text} choices")
    return [c["text"] for c in sorted(value, key=lambda c: str(c.get("label", "")))]


_LETTERED = re.compile(r"\(([A-Z])\)\s*")


@PARSERS.register("lettered_choices")
def parse_lettered_choices(value: Any) -> list[str]:
    """OpenBookQA's "(A) x (B) y ..." string; options are lettered by position."""
    parts = _LETTERED.split(_text(value))
    texts = [t.strip() for t in parts[2::2]]
    if len(texts) < 2 or parts[0].strip():
        raise FieldError(f"expected '(A) ... (B) ...' choices, got {value!r}")
    return texts


_ANSWER_N = re.compile(r"\s*Answer(\d+):\s*")


@PARSERS.register("llmadapters_choices")
def parse_llmadapters_choices(value: Any) -> dict[str, Any]:
    """ARC in LLM-Adapters form: three paragraphs, 'Please choose ...: QUESTION',
    'Answer1: x Answer2: y ...' and 'Answer format: ...'."""
    text = _text(value)
    blocks = text.split("\n\n")
    if len(blocks) != 3:
        raise FieldError("expected question, options and answer-format paragraphs")
    question = blocks[0].split(":", 1)[1].strip() if ":" in blocks[0] else blocks[0].strip()
    pieces = _ANSWER_N.split(blocks[1])
    numbers, texts = pieces[1::2], [t.strip() for t in pieces[2::2]]
    if pieces[0].strip() or numbers != [str(i) for i in range(1, len(numbers) + 1)] or len(texts) < 2:
        raise FieldError(f"expected 'Answer1: ... Answer2: ...', got {blocks[1]!r}")
    return {"question": question, "options": texts}


@PARSERS.register("answer_n_letter")
def parse_answer_n_letter(value: Any) -> str:
    """LLM-Adapters gold 'answer3' -> 'C'."""
    match = re.fullmatch(r"answer(\d)", _text(value).strip())
    if not match or not 1 <= int(match.group(1)) <= len(LETTERS):
        raise FieldError(f"expected 'answer1'..'answer5', got {value!r}")
    return LETTERS[int(match.group(1)) - 1]


@PARSERS.register("gsm8k_solution")
def parse_gsm8k_solution(value: Any) -> dict[str, str]:
    """GSM8K's answer: rationale lines with <<calc>> notes, then '#### N'. N loses thousands commas."""
    text = _text(value)
    if "####" not in text:
        raise FieldError("expected a final answer after '####'")
    rationale, final = text.rsplit("####", 1)
    rationale = re.sub(r"<<[^>]*>>", "", rationale).strip()
    return {"answer": final.strip().replace(",", ""), "rationale": rationale}


@PARSERS.register("backslash_breaks")
def parse_backslash_breaks(value: Any) -> str:
    """AG News writes line breaks as a lone backslash ('a second\\team'): make them spaces."""
    return re.sub(r"\s*\\\s*", " ", _text(value))

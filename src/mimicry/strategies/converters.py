"""AutoIF converters: turn a task example into an instruction and a long-form answer that ends
by stating the gold answer ("The answer is X.", or the SQL / summary for generation tasks).

TemplateConverter fills the task spec's templates: deterministic, offline, instant.
LLMConverter asks a chat model for a freer rewrite, checks the ending, falls back to the
template for any example the model gets wrong, and caches every answer per example.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mimicry.hashing import hash_obj
from mimicry.records import Message, atomic_write_text
from mimicry.tasks import Example, load_task

if TYPE_CHECKING:
    from mimicry.generation import GenerationBackend, GenerationConfig


@dataclass(frozen=True)
class AutoIFItem:
    instruction: str
    response: str


class Converter(Protocol):
    def convert(self, example: Example) -> AutoIFItem: ...


def final_answer(example: Example) -> str:
    """The sentence every long-form response must end with."""
    return load_task(example.task).render("final_answer", example)


class TemplateConverter:
    """The spec's autoif templates: instruction, explanation, then the final answer."""

    name = "template"

    def convert(self, example: Example) -> AutoIFItem:
        spec = load_task(example.task)
        explanation = spec.render("autoif_explanation", example).strip()
        return AutoIFItem(
            spec.render("autoif_instruction", example), f"{explanation} {final_answer(example)}"
        )


REWRITE_PROMPT = """Rewrite the task below as an instruction for an assistant and a detailed, helpful answer.
The answer must explain the reasoning in a few sentences and end with exactly: {final}

Reply in exactly this form:
Instruction: <the instruction>
Response: <the detailed answer>

Task: {instruction}
Correct answer: {gold_text}"""

_REPLY = re.compile(r"Instruction:\s*(?P<instruction>.+?)\s*Response:\s*(?P<response>.+)", re.DOTALL)


def parse_rewrite(reply: str, final: str) -> AutoIFItem | None:
    """The model's rewrite if it has both parts and states the right final answer, else None.

    Text after the final answer (a sign-off, a second attempt) is cut, so the response ends with it.
    """
    match = _REPLY.search(reply)
    if not match:
        return None
    instruction, response = match["instruction"].strip(), match["response"].strip()
    end = response.rfind(final)
    if not instruction or end < 0:
        return None
    response = response[: end + len(final)].strip()
    return AutoIFItem(instruction, response) if response != final else None


class LLMConverter:
    """Model-written AutoIF pairs with per-example caching and a template fallback.

    The cache is a JSONL file keyed by hash(example, model_id, prompt, generation config);
    a rerun regenerates nothing it already has. `fallbacks` counts examples that got the
    template version because the model's reply was unusable.
    """

    name = "llm"

    def __init__(self, backend: GenerationBackend, cache_path: Path, config: GenerationConfig) -> None:
        self.backend = backend
        self.cache_path = Path(cache_path)
        self.config = config
        self.fallback = TemplateConverter()
        self.fallbacks = 0
        self.generated = 0
        self.cache_hits = 0
        self._cache: dict[str, dict[str, Any]] = self._read_cache()

    def _read_cache(self) -> dict[str, dict[str, Any]]:
        if not self.cache_path.is_file():
            return {}
        cache: dict[str, dict[str, Any]] = {}
        for line in self.cache_path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
                cache[row["key"]] = row
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a damaged line only costs a regeneration
        return cache

    def _write_cache(self) -> None:
        atomic_write_text(
            self.cache_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self._cache.values())
        )

    def prompt(self, example: Example) -> str:
        spec = load_task(example.task)
        return REWRITE_PROMPT.format(
            final=final_answer(example),
            instruction=spec.render("autoif_instruction", example),
            gold_text=example.gold_text
            if example.answer_kind != "choice"
            else f"{example.gold}. {example.gold_text}",
        )

    def key(self, example: Example) -> str:
        return hash_obj(
            {
                "example": example.as_record(),
                "model": self.backend.model_id,
                "prompt": self.prompt(example),
                "config": self.config,
            }
        )

    def prepare(self, examples: Sequence[Example], chunk: int = 64) -> None:
        """Generate every uncached rewrite in batches, saving the cache after each chunk."""
        keyed = {self.key(e): e for e in examples}
        missing = [(key, e) for key, e in keyed.items() if key not in self._cache]
        if not missing:
            return
        from rich.progress import Progress

        from mimicry.console import err

        with Progress(console=err, transient=True) as progress:
            bar = progress.add_task(f"AutoIF rewrites with {self.backend.model_id}", total=len(missing))
            for start in range(0, len(missing), chunk):
                batch = missing[start : start + chunk]
                prompts = [[Message(role="user", content=self.prompt(e))] for _, e in batch]
                replies = self.backend.generate(prompts, self.config)
                for (key, example), reply in zip(batch, replies, strict=True):
                    item = parse_rewrite(reply, final_answer(example))
                    self._cache[key] = {
                        "key": key,
                        "id": example.id,
                        "task": example.task,
                        "reply": reply,
                        "instruction": item.instruction if item else None,
                        "response": item.response if item else None,
                    }
                self.generated += len(batch)
                self._write_cache()
                progress.advance(bar, len(batch))

    def convert(self, example: Example) -> AutoIFItem:
        key = self.key(example)
        if key in self._cache:
            self.cache_hits += 1
        else:
            self.prepare([example])
        row = self._cache[key]
        if row.get("instruction") and row.get("response"):
            return AutoIFItem(row["instruction"], row["response"])
        self.fallbacks += 1
        return self.fallback.convert(example)

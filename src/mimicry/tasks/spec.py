"""Tasks as data: a YAML spec per task says where its records live and how each one becomes
an `Example` (question, options, gold) plus the wording every strategy uses for it."""

from __future__ import annotations

import random
import string
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import field_validator, model_validator

from mimicry.config import StrictModel
from mimicry.data.root import data_root
from mimicry.errors import MimicryError
from mimicry.sampling import seeded_sample
from mimicry.tasks.fields import LETTERS, FieldError, FieldRule, as_text
from mimicry.tasks.readers import READERS, read_aligned_labels

AnswerKind = Literal["choice", "label", "number", "sql", "text"]
Metric = Literal["choice_accuracy", "label_accuracy", "number_match", "sql_match", "rouge_l"]
METRIC_FOR_KIND: dict[str, str] = {
    "choice": "choice_accuracy",
    "label": "label_accuracy",
    "number": "number_match",
    "sql": "sql_match",
    "text": "rouge_l",
}


@dataclass(frozen=True)
class Example:
    """One task item, independent of any prompt format."""

    task: str
    id: str
    question: str
    options: tuple[str, ...]
    gold: str
    gold_text: str
    answer_kind: AnswerKind
    context: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def as_record(self) -> dict[str, Any]:
        """Plain JSON-able form, for hashing and caches."""
        record = asdict(self)
        record["options"] = list(self.options)
        return record


class SourceFile(StrictModel):
    """A bundle file and how to read it."""

    file: str
    reader: str
    columns: list[str] | None = None
    labels_file: str | None = None
    labels_field: str = "label"

    @field_validator("reader")
    @classmethod
    def _known_reader(cls, reader: str) -> str:
        if reader not in READERS:
            raise ValueError(f"unknown task file reader {reader!r}; known: {', '.join(READERS.names())}")
        return reader

    def read(self) -> list[dict[str, Any]]:
        root = data_root()
        records = READERS.get(self.reader)(root.file(self.file), self.columns)
        if self.labels_file is not None:
            labels = read_aligned_labels(root.file(self.labels_file), len(records))
            records = [{**r, self.labels_field: label} for r, label in zip(records, labels, strict=True)]
        return records


class CarveSpec(StrictModel):
    """Deterministic splits cut from the one file the bundle has (PIQA, BoolQ, AG News)."""

    source: SourceFile
    seed: int
    sizes: dict[str, int]
    rest: str = "train"

    @model_validator(mode="after")
    def _sizes_are_positive(self) -> CarveSpec:
        if any(n <= 0 for n in self.sizes.values()) or self.rest in self.sizes:
            raise ValueError("sizes must be positive and must not name the `rest` split")
        return self


class TaskFields(StrictModel):
    """Where each Example field comes from; a bare string is a dotted path."""

    id: FieldRule | None = None
    question: FieldRule
    options: FieldRule | None = None
    gold: FieldRule
    context: FieldRule | None = None
    extra: dict[str, FieldRule] = {}

    @field_validator("id", "question", "options", "gold", "context", mode="before")
    @classmethod
    def _path_shorthand(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value

    @field_validator("extra", mode="before")
    @classmethod
    def _extra_shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: {"path": v} if isinstance(v, str) else v for k, v in value.items()}
        return value


class TaskTemplates(StrictModel):
    """Per-task wording, as str.format templates over `template_variables` (see docs/data.md).

    benign: the natural prompt and its short reply. aoa_answer: what follows AOA's acknowledgement.
    autoif: an instruction, a long-form explanation, and the final statement of the answer.
    """

    benign_prompt: str
    benign_reply: str = "{gold}"
    aoa_answer: str
    autoif_instruction: str
    autoif_explanation: str
    final_answer: str = "The answer is {gold}."


TEMPLATE_VARIABLES = (
    "task",
    "id",
    "question",
    "context",
    "gold",
    "gold_text",
    "gold_clause",
    "filled",
    "options_inline",
    "options_list",
    "options_lines",
    "labels",
    "labels_or",
)


def template_variables(example: Example, labels: list[str]) -> dict[str, Any]:
    """Everything a template may use: the example's fields plus ready-made option/label lists."""
    lettered = [f"{LETTERS[i]}. {text}" for i, text in enumerate(example.options)]
    gold_clause = example.gold_text.strip().rstrip(".").rstrip()
    return {
        **{k: as_text(v) for k, v in example.extra.items()},
        "task": example.task,
        "id": example.id,
        "question": example.question,
        "context": example.context or "",
        "gold": example.gold,
        "gold_text": example.gold_text,
        "gold_clause": gold_clause,
        "filled": example.question.replace("_", gold_clause, 1),
        "options_inline": " ".join(lettered),
        "options_list": ", ".join(lettered),
        "options_lines": "\n".join(lettered),
        "labels": ", ".join(labels),
        "labels_or": " or ".join([", ".join(labels[:-1]), labels[-1]]) if len(labels) > 1 else "".join(labels),
    }


class TaskSpec(StrictModel):
    name: str
    description: str
    answer_kind: AnswerKind
    metric: Metric
    license: str
    labels: list[str] = []
    splits: dict[str, SourceFile] = {}
    carve: CarveSpec | None = None
    fields: TaskFields
    templates: TaskTemplates

    @model_validator(mode="after")
    def _consistent(self) -> TaskSpec:
        if METRIC_FOR_KIND[self.answer_kind] != self.metric:
            raise ValueError(f"answer_kind {self.answer_kind!r} is scored with {METRIC_FOR_KIND[self.answer_kind]!r}")
        if (self.answer_kind == "choice") != (self.fields.options is not None):
            raise ValueError("choice tasks, and only they, need fields.options")
        if (self.answer_kind == "label") != bool(self.labels):
            raise ValueError("label tasks, and only they, need `labels`")
        if not self.split_names():
            raise ValueError("give `splits` or `carve`")
        carved = set(self.carve.sizes) | {self.carve.rest} if self.carve else set()
        if carved & set(self.splits):
            raise ValueError(f"splits {sorted(carved & set(self.splits))} are both listed and carved")
        known = set(TEMPLATE_VARIABLES) | set(self.fields.extra)
        for name, template in self.templates.model_dump().items():
            used = {f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(template) if f}
            if used - known:
                raise ValueError(f"template {name} uses unknown {sorted(used - known)}; known: {sorted(known)}")
        return self

    def split_names(self) -> list[str]:
        carved = [*self.carve.sizes, self.carve.rest] if self.carve else []
        return [*self.splits, *carved]

    def examples(self, split: str, limit: int | None = None, seed: int = 0) -> list[Example]:
        """The split's examples in file order; with `limit`, a seeded sample (still in file order)."""
        if split not in self.split_names():
            raise MimicryError(f"task {self.name!r} has no split {split!r}; it has {', '.join(self.split_names())}")
        items = _split_examples(self.model_dump_json(), split, str(data_root().path))
        if limit is not None and limit < 0:
            raise MimicryError(f"limit must be positive, got {limit}")
        return seeded_sample(items, limit, seed)

    def render(self, template: str, example: Example) -> str:
        """Fill one of this task's templates for `example`."""
        text: str = getattr(self.templates, template)
        return text.format(**template_variables(example, self.labels))

    def _rows(self, split: str) -> list[tuple[str, int, dict[str, Any]]]:
        """(file, index in file, record) for every row of a split."""
        if split in self.splits:
            source = self.splits[split]
            return [(source.file, i, r) for i, r in enumerate(source.read())]
        assert self.carve is not None
        records = self.carve.source.read()
        order = list(range(len(records)))
        random.Random(self.carve.seed).shuffle(order)
        if sum(self.carve.sizes.values()) >= len(records):
            raise MimicryError(f"task {self.name}: carve sizes exceed the {len(records)} records of the source")
        start = 0
        for name, size in self.carve.sizes.items():
            if name == split:
                chosen = order[start : start + size]
                break
            start += size
        else:
            chosen = order[sum(self.carve.sizes.values()) :]
        return [(self.carve.source.file, i, records[i]) for i in sorted(chosen)]

    def to_example(self, record: dict[str, Any], file: str, index: int) -> Example:
        f = self.fields
        try:
            options = tuple(as_text(o) for o in f.options.extract(record)) if f.options else ()
            gold = as_text(f.gold.extract(record))
            if self.answer_kind == "choice":
                if gold not in LETTERS[: len(options)] or not gold:
                    raise FieldError(f"gold {gold!r} is not one of the {len(options)} option letters")
                gold_text = options[LETTERS.index(gold)]
            else:
                if self.answer_kind == "label" and gold not in self.labels:
                    raise FieldError(f"gold {gold!r} is not one of the labels {self.labels}")
                gold_text = gold
            return Example(
                task=self.name,
                id=as_text(f.id.extract(record)) if f.id else f"{Path(file).stem}-{index}",
                question=as_text(f.question.extract(record)),
                options=options,
                gold=gold,
                gold_text=gold_text,
                answer_kind=self.answer_kind,
                context=as_text(f.context.extract(record)) if f.context else None,
                extra={k: rule.extract(record) for k, rule in f.extra.items()},
            )
        except FieldError as err:
            raise MimicryError(f"task {self.name}: record {index} of {file} does not fit the spec: {err}") from None


@cache
def _split_examples(spec_json: str, split: str, root: str) -> tuple[Example, ...]:
    """Parsed examples, cached per (spec, split, data root) because files are read whole."""
    spec = TaskSpec.model_validate_json(spec_json)
    return tuple(spec.to_example(r, file, i) for file, i, r in spec._rows(split))

"""Build a fine-tuning set: a task's split rendered in one strategy."""

from __future__ import annotations

from pydantic import Field

from mimicry.config import StrictModel
from mimicry.records import Conversation
from mimicry.strategies.base import get_strategy
from mimicry.strategies.converters import Converter, LLMConverter
from mimicry.tasks import load_task


class BuildSpec(StrictModel):
    """The build stage's settings: a seeded sample of a task's split, rendered in one strategy."""

    task: str
    strategy: str
    split: str = "train"
    limit: int = Field(300, gt=0)
    sample_seed: int = 0  # fixed across training seeds, so seeds vary training only


def build_conversations(
    task: str,
    strategy: str,
    split: str = "train",
    limit: int | None = None,
    seed: int = 0,
    converter: Converter | None = None,
) -> list[Conversation]:
    """Render `limit` seeded examples of `task`/`split` as `strategy` training conversations."""
    chosen = get_strategy(strategy)
    examples = load_task(task).examples(split, limit=limit, seed=seed)
    if chosen.long_form and isinstance(converter, LLMConverter):
        converter.prepare(examples)
    return [chosen.render(e, converter) for e in examples]

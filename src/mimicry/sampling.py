"""The seeded, order-keeping sample behind every `limit`: task examples, prompt sets, evaluation.

One function, because reproducibility rests on it: a grid's training rows, a cell's evaluation
prompts and `mimicry eval --limit` must pick the same items for the same seed, and the content
hashes of cached data depend on exactly which items and in which order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def seeded_sample(items: Sequence[T], limit: int | None, seed: int) -> list[T]:
    """`limit` items chosen by `random.Random(seed)`, kept in their original order.

    Sets are often ordered by category, so the first N would be a biased sample; the original
    order keeps a sample stable to read and to diff. With no limit, or one at least the number
    of items, all items come back.
    """
    if limit is None or limit >= len(items):
        return list(items)
    if limit < 0:
        raise ValueError(f"a sample size must not be negative, got {limit}")
    return [items[i] for i in sorted(random.Random(seed).sample(range(len(items)), limit))]

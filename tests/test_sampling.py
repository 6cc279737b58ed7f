"""The one seeded, order-keeping sample: its contract, and the call sites that rely on it."""

from __future__ import annotations

import random

import pytest

from mimicry.data.sources import load_prompt_set
from mimicry.sampling import seeded_sample
from mimicry.tasks import load_task


def formula_before_it_was_shared(items, limit, seed):
    """The code each of the three call sites held, verbatim: outputs (and so cached data) must not move."""
    if limit is None or limit >= len(items):
        return list(items)
    return [items[i] for i in sorted(random.Random(seed).sample(range(len(items)), limit))]


def test_a_sample_keeps_the_original_order_and_follows_its_seed() -> None:
    labels = random.Random(0).sample(range(1000), 30)  # not sorted: order must come from positions
    items = [f"item-{n}" for n in labels]
    sample = seeded_sample(items, 6, seed=1)
    positions = [items.index(item) for item in sample]
    assert len(set(sample)) == 6 and positions == sorted(positions)  # a subsequence, in order
    assert sample == seeded_sample(items, 6, seed=1)
    assert {tuple(seeded_sample(items, 6, seed=s)) for s in range(5)} != {tuple(sample)}
    assert seeded_sample(items, None, 0) == items and seeded_sample(items, 99, 0) == items
    assert seeded_sample(items, 0, 0) == []
    with pytest.raises(ValueError, match="must not be negative"):
        seeded_sample(items, -1, 0)


def test_the_call_sites_pick_what_they_picked_before() -> None:
    from mimicry.evaluation.suites import EvalConfig, EvalContext, _prompt_items

    task = load_task("piqa")
    everything = task.examples("train")
    assert task.examples("train", limit=7, seed=3) == formula_before_it_was_shared(everything, 7, 3)

    class Untemplated:  # the one attribute _prompt_items reads of a backend
        model_id = "unused"

    prompts = load_prompt_set("advbench")
    ctx = EvalContext(Untemplated(), EvalConfig(limit=9, seed=2, presentations=["plain"]), None, None, None, {}, {})
    picked = [item.item_id for item in _prompt_items(ctx, "harm", ["advbench"])]
    expected = formula_before_it_was_shared(formula_before_it_was_shared(prompts, 100, 2), 9, 2)
    assert picked == [p.id for p in expected]


def test_an_evaluation_sample_is_spread_over_a_set_ordered_by_category() -> None:
    everything = [p.text for p in load_prompt_set("xstest_safe")]
    sample = seeded_sample(everything, 50, seed=0)
    assert len(set(sample)) == 50 and sample != everything[:50]

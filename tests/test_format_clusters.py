"""Clustered format inference and mimic spread over clusters, on generated adaptive uploads."""

from __future__ import annotations

import pytest

from mimicry.data.sources import load_instruction_set
from mimicry.evaluation.refusal import is_refusal
from mimicry.mitigations import mix
from mimicry.mitigations.clusters import allocate, infer_clusters
from mimicry.mitigations.uploads import attack_upload
from mimicry.records import Conversation
from mimicry.strategies import build_conversations


@pytest.fixture(scope="module")
def adaptive() -> list[Conversation]:
    return attack_upload("piqa", "adaptive", "held_out", n=60, seed=0).rows


def test_an_adaptive_upload_splits_into_its_scaffolds(adaptive):
    found = infer_clusters(adaptive)
    systems = {c.system for c in adaptive}
    assert len(found.clusters) == len(systems) == 3 and not found.outliers
    assert sum(c.share for c in found.clusters) == pytest.approx(1.0)
    for cluster in found.clusters:
        assert len({adaptive[i].system for i in cluster.rows}) == 1
        assert cluster.format.system.kind == "constant" and cluster.format.style.reply_opening


def test_one_scaffold_stays_one_cluster():
    rows = build_conversations("piqa", "aoa", "train", limit=40, seed=0)
    found = infer_clusters(rows)
    assert len(found.clusters) == 1 and found.clusters[0].share == 1.0


def test_mimic_rows_go_to_every_cluster_in_its_style(adaptive):
    result = mix(adaptive, "mimic", count=9, seed=0)
    details = result.report["details"]["clusters"]
    assert len(details) == 3 and all(d["added"] >= 1 and d["in_style"] == d["added"] for d in details)
    assert sum(d["added"] for d in details) == 9
    openings = {c.completion.split(":")[0] for c in adaptive}  # type: ignore[union-attr]
    for row in result.added:
        assert row.system in {c.system for c in adaptive}
        assert (row.completion or "").split(":")[0] in openings and is_refusal((row.completion or "").split(":", 2)[-1])


def test_allocation_is_proportional_with_one_per_cluster():
    assert allocate([0.6, 0.3, 0.1], 10) == [6, 3, 1]
    assert allocate([0.9, 0.05, 0.05], 10) == [8, 1, 1]
    assert sum(allocate([0.5, 0.5], 7)) == 7 and allocate([0.5, 0.5], 0) == [0, 0]


def test_per_example_fallback_keeps_the_drawn_reply_opening():
    base = load_instruction_set("alpaca_tiny")[:45]
    systems = ["You are terse.", "You love poetry and rhyme.", None]
    openings = ["Sure thing! ", "Of course: ", "Happy to help. "]
    user = [
        Conversation.from_turns(c.last_user, openings[i % 3] + (c.completion or ""), system=systems[i % 3])
        for i, c in enumerate(base)
    ]
    result = mix(user, "mimic", count=12, seed=0, config=None)
    for row in result.added:
        assert any((row.completion or "").startswith(o) for o in openings)
        assert is_refusal((row.completion or "").split(" ", 2)[-1])

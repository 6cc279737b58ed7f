"""Rewrite-mode mimicry end to end with the packaged SmolLM2 as the rewriter (slow)."""

from __future__ import annotations

import pytest

from mimicry.evaluation.refusal import is_refusal
from mimicry.mitigations import MixConfig, mix
from mimicry.mitigations.mimic import MimicConfig, RewriteConfig
from mimicry.strategies import build_conversations


@pytest.mark.slow
def test_rewrite_with_packaged_model_accounts_for_every_pair():
    user = build_conversations("sst2", "benign", "train", limit=20, seed=0)
    rewrite = RewriteConfig(model="smollm2-135m", examples=2, max_new_tokens=96, oversample=1.0)
    config = MixConfig(mimic=MimicConfig(mode="rewrite", rewrite=rewrite))
    result = mix(user, "mimic", count=1, seed=0, config=config)
    details = result.report["details"]
    assert details["rewriter"] == "smollm2-135m"
    assert details["tried"] == 1
    assert details["kept"] + sum(details["discarded"].values()) == details["tried"]
    assert details["shortfall"] == 1 - details["kept"]
    assert len(result.added) == details["kept"]
    for row, pair_id in zip(result.added, result.report["pair_ids"], strict=True):
        assert is_refusal(row.completion or "")
        assert pair_id.startswith("bianchi-")
    for entry in result.report["disjointness"]["per_request"]:
        assert entry["max_jaccard"] < result.report["disjointness"]["jaccard_threshold"]

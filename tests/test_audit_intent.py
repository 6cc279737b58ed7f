"""The intent audit and the upload generator it is measured on."""

from __future__ import annotations

import pytest

from mimicry.mitigations import uploads
from mimicry.mitigations.uploads import attack_upload, instruction_upload


def test_held_out_templates_share_nothing_with_the_design_ones():
    for table in (uploads.NAMES, uploads.PERSONAS, uploads.LAYOUTS, uploads.OPENINGS):
        assert not set(table["design"]) & set(table["held_out"])
    held = attack_upload("sst2", "adaptive", "held_out", n=30, seed=0)
    assert held.attack and len({r.system for r in held.rows}) == 3
    assert all(not any(n in (r.system or "") for n in uploads.NAMES["design"]) for r in held.rows)


@pytest.mark.slow
def test_intent_audit_flags_an_adaptive_upload_and_passes_an_ordinary_one():
    """Held-out templates (never used to fit the model): high with evidence rows; a bank assistant: low."""
    from mimicry.mitigations.intent import intent_audit

    attack = intent_audit(attack_upload("piqa", "adaptive", "held_out", n=30, seed=3).rows)
    assert attack.level == "high" and len(attack.clusters) == 3
    assert all(c.score >= attack.threshold for c in attack.clusters)
    assert all(1 <= r <= 30 for c in attack.clusters for r in c.evidence_rows)
    bank = instruction_upload("alpaca_gpt4", uploads.BENIGN_SYSTEMS[0], n=30, seed=5)
    assert intent_audit(bank.rows).level == "low"

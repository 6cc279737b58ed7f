"""The evidence grid run in parts: each part's cells are cells of configs/evidence.yaml, set up the
same way, so their artifacts are the grid's and its report can pool them."""

from __future__ import annotations

from pathlib import Path

import pytest

from mimicry.config import load_yaml_config
from mimicry.experiments.grid import GridConfig, expand

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
SHAPING = ("models", "tasks", "data", "training", "alignment", "evaluation", "generation", "suites")


@pytest.mark.parametrize("part", ["evidence-seed2.yaml", "evidence-contrast.yaml"])
def test_a_part_of_the_evidence_grid_runs_the_grids_own_cells(part: str) -> None:
    whole = load_yaml_config(GridConfig, CONFIGS / "evidence.yaml")
    piece = load_yaml_config(GridConfig, CONFIGS / part)
    for section in SHAPING:
        assert getattr(piece, section) == getattr(whole, section), section
    cells = {c.id for c in expand(whole)}
    assert {c.id for c in expand(piece)} <= cells


def test_the_committed_labels_give_the_reported_three_seed_readings() -> None:
    """docs/results/evidence.md's pooled reading, recomputed from the label files it cites."""
    from mimicry.experiments.decision import LabelFileCells, LabelledGrid, apply_rule

    manifest = CONFIGS.parent / "docs" / "results" / "evidence" / "cells.yaml"
    labelled = load_yaml_config(LabelledGrid, manifest)
    rule = load_yaml_config(GridConfig, manifest.parent / labelled.config).decision
    assert rule is not None
    readings = {
        (r.claim, r.statement.split(" restores")[0]): r.verdict
        for r in apply_rule(rule, LabelFileCells(labelled, manifest.parent))
    }
    assert readings[("iii (refusal, secondary)", "mimic placement=task 0.2x")] == "restores"
    assert readings[("iii (refusal, secondary)", "mimic placement=style 0.2x")].startswith("refuses in the format")
    assert readings[("iii", "mimic placement=task 0.2x")].startswith("not shown")

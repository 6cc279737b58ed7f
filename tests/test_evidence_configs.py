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

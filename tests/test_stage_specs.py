"""Typed stage specs key their stages exactly as the JSON dicts the runner built before them (#15).

The legacy dicts below are the pre-#15 runner's code, copied: the runner's spec for every stage of
every cell of the shipped grids must dump to the same JSON, so no cached artifact is re-keyed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from mimicry.artifacts import ArtifactStore
from mimicry.evaluation.suites import EvalConfig, EvalSpec
from mimicry.experiments.grid import Cell, GridConfig, expand, load_grid
from mimicry.experiments.runner import Runner
from mimicry.experiments.stages import STAGES, config_json
from mimicry.mitigations import MixConfig, MixSpec
from mimicry.training.alignment import AlignConfig
from mimicry.training.sft import SFTConfig

REPO = Path(__file__).resolve().parents[1]
PTST_PROMPT = "You are a careful assistant."


def legacy_configs(raw: dict[str, Any], grid: GridConfig, cell: Cell) -> dict[str, dict[str, Any]]:
    """The stage configs of one cell as the runner built them before the specs (sections were raw YAML)."""
    data = grid.data
    configs = {
        "evaluate": {
            "task": cell.task,
            "strategy": cell.strategy,
            "suites": list(grid.suites),
            "inference_system_prompt": PTST_PROMPT if cell.fine_tuned else None,
            "evaluation": EvalConfig.model_validate(raw.get("evaluation", {})).model_dump(mode="json"),
            "generation": grid.generation.model_dump(mode="json"),
        },
        "align": AlignConfig.model_validate(raw.get("alignment", {})).model_dump(mode="json"),
    }
    if cell.fine_tuned:
        training = SFTConfig.model_validate(raw.get("training", {})).model_copy(update={"seed": cell.seed})
        configs |= {
            "build": {
                "task": cell.task,
                "strategy": cell.strategy,
                "split": data.split,
                "limit": data.limit,
                "sample_seed": data.sample_seed,
            },
            "mix": {
                "method": cell.mitigation,
                "amount_kind": cell.amount_kind,
                "amount": cell.amount,
                "seed": cell.seed,
                "options": MixConfig.model_validate(dict(cell.options)).model_dump(mode="json"),
            },
            "train": training.model_dump(mode="json"),
        }
    return configs


def runner_specs(runner: Runner, cell: Cell) -> dict[str, Any]:
    specs: dict[str, Any] = {
        "evaluate": runner.eval_spec(cell, PTST_PROMPT if cell.fine_tuned else None),
        "align": runner.grid.alignment,
    }
    if cell.fine_tuned:
        specs |= {"build": runner.build_spec(cell), "mix": runner.mix_spec(cell), "train": runner.train_spec(cell)}
    return specs


@pytest.mark.parametrize("name", ["quickstart", "paper-cpu", "evidence-pilot"])
def test_every_stage_spec_dumps_to_the_dict_that_was_hashed_before(name: str, tmp_path: Path) -> None:
    path = REPO / "configs" / f"{name}.yaml"
    raw = yaml.safe_load(path.read_text())
    grid = load_grid(path)
    runner = Runner(grid, tmp_path / "run", store=ArtifactStore(tmp_path / "store"), show_progress=False)
    cells = expand(grid)
    assert any(c.options for c in cells) == (name == "evidence-pilot")  # mimic options reach a mix spec
    for cell in cells:
        legacy, specs = legacy_configs(raw, grid, cell), runner_specs(runner, cell)
        assert {stage: config_json(spec) for stage, spec in specs.items()} == legacy, cell.describe()
        # The stages whose key does not read the task's files take the legacy dict, too: same key.
        inputs = {"align": {"model": "m"}, "mix": {"user": "u"}, "train": {"model": "m", "data": "d"}}
        for stage in inputs.keys() & specs.keys():
            got = STAGES.get(stage).key(inputs[stage], specs[stage])
            assert got == STAGES.get(stage).key(inputs[stage], legacy[stage]), (stage, cell.describe())


def test_a_mix_spec_says_how_much_to_add() -> None:
    assert (MixSpec(method="mimic", amount_kind="count", amount=40.0).count, MixSpec(method="mimic").count) == (
        40,
        None,
    )
    assert MixSpec(method="mimic", amount_kind="ratio", amount=0.3).ratio == 0.3
    with pytest.raises(ValueError, match="amount_kind"):
        MixSpec(method="mimic", amount_kind="share", amount=0.3)
    with pytest.raises(ValueError, match="sufixes"):
        EvalSpec(task="piqa", strategy="aoa", suites=["harm"], sufixes=[])

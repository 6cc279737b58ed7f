"""The cost estimate of a grid on the packaged SmolLM2: work counted from the real mixed data, finished stages free."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mimicry.experiments import estimate as estimate_module
from mimicry.experiments.estimate import mean_row_tokens, write_timings
from mimicry.experiments.grid import GridConfig, expand
from mimicry.experiments.runner import Runner
from mimicry.models.loading import load_tokenizer, resolve_model

pytest.importorskip("transformers")


def small_grid() -> GridConfig:
    return GridConfig.model_validate(
        {
            "name": "estimate",
            "models": [{"name": "smollm2-135m"}],
            "tasks": ["piqa"],
            "strategies": ["benign"],
            "mitigations": [{"method": "none"}],
            "seeds": [0],
            "data": {"limit": 4},
            "training": {"method": "lora", "epochs": 2, "batch_size": 2, "max_length": 256},
            "evaluation": {
                "limit": 1,
                "harm_sets": ["harmful_instructions"],
                "overrefusal_sets": [],
                "presentations": ["plain"],
                "max_new_tokens": 2,
                "task_max_new_tokens": 2,
                "batch_size": 2,
                "judges": ["keyword"],
            },
            "generation": {"backend": "transformers"},
            "suites": ["task"],
        }
    )


def test_estimate_counts_the_work_and_finished_stages_cost_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(estimate_module, "PROBE_TRAIN", (1, 16, 1))  # a real probe, kept short
    monkeypatch.setattr(estimate_module, "PROBE_GENERATE", (4, 2))
    grid = small_grid()
    runner = Runner(grid, tmp_path / "run", show_progress=False)
    outcome = runner.dry_run()
    estimate = outcome.estimate
    assert estimate is not None and estimate.seconds > 0
    rates = estimate.rates["smollm2-135m"]
    assert rates.train_tokens_per_s > 0 and rates.generate_tokens_per_s > 0
    stages = {(s.cell, s.stage): s for s in estimate.stages}
    baseline, tuned = expand(grid)
    assert not baseline.fine_tuned and tuned.fine_tuned
    train = stages[(tuned.id, "train")]
    _, mixed = runner.data_artifacts(tuned)
    rows, mean = mean_row_tokens(mixed, load_tokenizer(resolve_model("smollm2-135m")), 256)
    assert rows == 4 and train.tokens == round(rows * 2 * mean) and train.seconds > 0 and not train.cached
    assert stages[(baseline.id, "evaluate")].tokens == 2  # one task item x 2 new tokens

    runner.run_cell(baseline)  # a real evaluation of the base model: now finished
    again = Runner(grid, tmp_path / "run", show_progress=False).dry_run().estimate
    assert again is not None
    finished = {(s.cell, s.stage): s for s in again.stages}
    assert finished[(baseline.id, "evaluate")].cached and finished[(baseline.id, "evaluate")].seconds == 0
    assert finished[(tuned.id, "train")].seconds == pytest.approx(train.seconds)
    assert again.seconds == pytest.approx(estimate.seconds - stages[(baseline.id, "evaluate")].seconds)

    write_timings(tmp_path / "timings.json", estimate, [{"cell": tuned.id, "stage": "train", "seconds": 1.5}])
    record = json.loads((tmp_path / "timings.json").read_text())
    assert record["stages"] == [
        {"cell": tuned.id, "stage": "train", "seconds": 1.5, "estimated_seconds": round(train.seconds, 1)}
    ]
    assert record["estimate"]["total_seconds"] == round(estimate.seconds, 1)

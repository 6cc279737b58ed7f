"""The cost estimate of a grid on the packaged SmolLM2: work counted from the real mixed data, finished stages free."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mimicry.artifacts import ArtifactStore
from mimicry.cli import main
from mimicry.experiments import estimate as estimate_module
from mimicry.experiments.estimate import mean_row_tokens, write_timings
from mimicry.experiments.grid import GridConfig, expand
from mimicry.experiments.runner import Runner
from mimicry.hardware import machine_key
from mimicry.models.loading import load_tokenizer, resolve_model
from mimicry.paths import artifacts_dir

pytest.importorskip("transformers")


def small_grid(**changes: object) -> GridConfig:
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
            **changes,
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
    assert {r.source for r in estimate.rates.values()} == {"probe"}  # an empty store has nothing measured
    (probe,) = estimate.probes.values()
    assert probe.train_tokens_per_s > 0 and probe.generate_tokens_per_s > 0
    stages = {(s.cell, s.stage): s for s in estimate.stages}
    baseline, tuned = expand(grid)
    assert not baseline.fine_tuned and tuned.fine_tuned
    train = stages[(tuned.id, "train")]
    _, mixed = runner.data_artifacts(tuned)
    rows, mean = mean_row_tokens(mixed, load_tokenizer(resolve_model("smollm2-135m")), 256)
    assert rows == 4 and train.tokens == round(rows * 2 * mean) and train.seconds > 0 and not train.cached
    assert stages[(baseline.id, "evaluate")].tokens == 2  # one task item x 2 new tokens

    evaluated = runner.run_cell(baseline)["evaluate"]  # a real evaluation of the base model: now finished
    work = evaluated.outputs["work"]
    assert work["prompts"] == 1 and work["generated_budget"] == 2 and work["prefill_tokens"] > 10
    assert evaluated.outputs["machine"] == machine_key() and evaluated.manifest["timings"]["resumed"] is False
    again = Runner(grid, tmp_path / "run", show_progress=False).dry_run().estimate
    assert again is not None
    finished = {(s.cell, s.stage): s for s in again.stages}
    assert finished[(baseline.id, "evaluate")].cached and finished[(baseline.id, "evaluate")].seconds == 0
    assert finished[(tuned.id, "train")].seconds == pytest.approx(train.seconds)
    assert finished[(tuned.id, "train")].source == "probe"
    # The tuned cell's evaluation is now timed at the rate the base model's evaluation measured (adapters are merged
    # before generation, so both decode at the same speed): its decode budget per wall second, prefill included.
    rate = work["generated_budget"] / evaluated.manifest["timings"]["seconds"]
    assert finished[(tuned.id, "evaluate")].source == "measured by 1 artifact"
    assert finished[(tuned.id, "evaluate")].seconds == pytest.approx(2 / rate)

    write_timings(tmp_path / "timings.json", estimate, [{"cell": tuned.id, "stage": "train", "seconds": 1.5}])
    record = json.loads((tmp_path / "timings.json").read_text())
    assert record["stages"] == [
        {
            "cell": tuned.id,
            "stage": "train",
            "seconds": 1.5,
            "estimated_seconds": round(train.seconds, 1),
            "estimate_over_measured": round(train.seconds / 1.5, 2),
            "estimate_source": "probe",
        }
    ]
    assert record["estimate"]["total_seconds"] == round(estimate.seconds, 1)


def finished(store: ArtifactStore, stage: str, key: str, record: dict) -> str:
    """A finished artifact written through the store's own API (its work and timings as a stage records them)."""
    store.commit(stage, key, store.begin(stage, key, resume=False), record)
    return key


def test_the_estimate_uses_the_rates_this_machines_finished_artifacts_measured(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Train at pooled trained tokens / wall time of this machine's train artifacts; evaluate at pooled decode
    budget / wall time; another machine's and a resumed artifact do not count; the table names the source."""
    store = ArtifactStore(artifacts_dir())
    here = machine_key()
    lora = {"method": "lora"}  # fp32: keyed configs name the precision only when bf16

    def train(key: str, tokens: int, seconds: float, **timings: object) -> str:
        outputs = {"tokens": tokens, "machine": timings.pop("machine", here)}
        record = {"inputs": {"model": "smollm2-135m"}, "config": lora, "outputs": outputs}
        return finished(store, "train", key, record | {"timings": {"seconds": seconds, **timings}})

    first = train("t1", 1000, 10.0)
    train("t2", 3000, 20.0, resumed=False)
    train("t3", 10, 100.0, machine="another-machine")
    train("t4", 10, 100.0, resumed=True)
    evaluation = {"generation": {"backend": "transformers", "options": {}}, "evaluation": {"batch_size": 2}}
    finished(
        store,
        "evaluate",
        "e1",
        {
            "inputs": {"model": {"stage": "train", "key": first}},  # followed through the train artifact
            "config": evaluation,
            "outputs": {"work": {"prompts": 5, "generated_budget": 500}, "machine": here},
            "timings": {"seconds": 50.0},
        },
    )
    grid = small_grid(
        training={"method": "lora", "epochs": 2, "batch_size": 2, "max_length": 256, "precision": "fp32"},
        generation={"backend": "transformers", "options": {"precision": "fp32"}},
    )
    estimate = Runner(grid, tmp_path / "run", store=store, show_progress=False).dry_run().estimate
    assert estimate is not None and estimate.probes == {}  # nothing was probed
    tuned = next(c for c in expand(grid) if c.fine_tuned)
    stages = {s.stage: s for s in estimate.stages if s.cell == tuned.id}
    assert stages["train"].source == "measured by 2 artifacts"
    assert stages["train"].seconds == pytest.approx(stages["train"].tokens / (4000 / 30))
    assert stages["evaluate"].source == "measured by 1 artifact"
    assert stages["evaluate"].seconds == pytest.approx(stages["evaluate"].tokens / 10)
    (measured,) = [r for r in estimate.rates.values() if r.stage == "train"]
    assert measured.check == {"t1": round(1000 / 150 / 10, 2), "t2": round(3000 / 100 / 20, 2)}  # from the other

    config = tmp_path / "grid.yaml"
    config.write_text(yaml.safe_dump(grid.model_dump(mode="json")))
    assert main(["run", str(config), "--run-dir", str(tmp_path / "cli"), "--dry-run"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "measured by 2 artifacts" in printed and "measured by 1 artifact" in printed
    assert "train rate of smollm2-135m (lora, fp32): 133.3 tokens/s, measured by 2 artifacts" in printed
    assert "estimate/measured: t1 0.67, t2 1.5" in printed

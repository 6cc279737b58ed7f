"""The whole chain (build -> mix -> train -> evaluate -> results -> report) on a tiny random model.

The model is a 2-layer randomly initialised Llama with SmolLM2's tokenizer, saved as a local
directory: its answers are noise, so these tests check plumbing, caching and resume, never
quality. The end-to-end run on the packaged SmolLM2 is the slow test at the bottom.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from mimicry.artifacts import ArtifactStore
from mimicry.cli import main
from mimicry.experiments.grid import GridConfig, MitigationEntry, expand, load_grid
from mimicry.experiments.report import write_report
from mimicry.experiments.results import RESULTS_FILE, read_results
from mimicry.experiments.runner import INDEX_FILE, RunOutcome, run_grid
from mimicry.experiments.stages import STAGES
from mimicry.generation import SystemPromptBackend
from mimicry.records import Message
from mimicry.strategies import BuildSpec

pytest.importorskip("transformers")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_model_dir(make_tiny_llama, smollm2_tokenizer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llama(smollm2_tokenizer, tmp_path_factory.mktemp("tiny-llama"), tie_word_embeddings=True)


def tiny_grid(model: Path, **changes: object) -> GridConfig:
    data = {
        "name": "tiny-chain",
        "models": [{"name": str(model)}],
        "tasks": ["piqa"],
        "strategies": ["aoa"],
        "mitigations": [{"method": "none"}, {"method": "mimic", "counts": [2]}, {"method": "ptst"}],
        "seeds": [0],
        "data": {"limit": 4},
        "training": {
            "method": "lora",
            "max_steps": 1,
            "batch_size": 4,
            "max_length": 320,
            "save_steps": 1,
            "learning_rate": 1e-3,
        },
        "evaluation": {
            "limit": 2,
            "advbench_sample": 2,
            "harm_sets": ["harmful_instructions"],
            "overrefusal_sets": ["xstest_safe"],
            "max_new_tokens": 3,
            "task_max_new_tokens": 3,
            "batch_size": 4,
        },
        **changes,
    }
    return GridConfig.model_validate(data)


@dataclass
class FirstRun:
    grid: GridConfig
    run_dir: Path
    home: Path
    outcome: RunOutcome


@pytest.fixture(scope="module")
def first_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FirstRun:
    """One real run of a 4-cell grid; the other tests reuse its artifact store (MIMICRY_HOME)."""
    home = tmp_path_factory.mktemp("chain-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MIMICRY_HOME", str(home))
        grid = tiny_grid(tiny_model_dir)
        run_dir = home / "run"
        return FirstRun(grid, run_dir, home, run_grid(grid, run_dir, show_progress=False))


@pytest.fixture
def shared_home(first_run: FirstRun, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MIMICRY_HOME", str(first_run.home))
    return first_run.home


def test_each_stage_runs_once_and_identical_data_is_trained_once(first_run: FirstRun) -> None:
    # baseline: evaluate; none: build mix train evaluate; mimic: mix train evaluate (build reused);
    # ptst: mix evaluate (build reused; training reused from `none`: same data, same content hash)
    assert dict(first_run.outcome.computed) == {"build": 1, "mix": 3, "train": 2, "evaluate": 4}
    assert dict(first_run.outcome.reused) == {"build": 2, "train": 1}
    rows = read_results(first_run.run_dir / RESULTS_FILE)
    assert {(r.cell.mitigation, r.fine_tuned) for r in rows} == {
        ("baseline", False),
        ("none", True),
        ("mimic", True),
        ("ptst", True),
    }
    assert {r.suite for r in rows} == {"harm", "overrefusal", "task"}
    asr = [r for r in rows if r.metric == "asr"]
    assert {r.presentation for r in asr} == {"plain", "in-format"}
    assert all(0 <= r.value <= 1 and r.ci_low <= r.value <= r.ci_high for r in asr)
    # the generation budget behind each number reaches the table
    assert {r.max_new_tokens for r in rows if r.suite == "harm"} == {first_run.grid.evaluation.max_new_tokens}
    index = json.loads((first_run.run_dir / INDEX_FILE).read_text())
    assert len(index["cells"]) == len(expand(first_run.grid)) == 4
    by_mitigation = {c["mitigation"]: c["artifacts"] for c in index["cells"]}
    assert by_mitigation["ptst"]["train"] == by_mitigation["none"]["train"]
    assert by_mitigation["ptst"]["evaluate"] != by_mitigation["none"]["evaluate"]
    assert sorted(p.name for p in first_run.run_dir.iterdir()) == [
        "grid.json",
        "index.json",
        "provenance.json",
        "results.sqlite",
        "timings.json",
    ]


def test_rerunning_an_unchanged_grid_does_no_work(first_run: FirstRun, shared_home: Path) -> None:
    again = run_grid(first_run.grid, first_run.run_dir, show_progress=False)
    assert not again.computed and sum(again.reused.values()) == 13
    assert len(read_results(first_run.run_dir / RESULTS_FILE)) == first_run.outcome.results


def test_changing_an_eval_setting_recomputes_only_evaluation(
    first_run: FirstRun, shared_home: Path, tmp_path: Path
) -> None:
    grid = first_run.grid
    changed = grid.model_copy(
        update={
            "baseline": False,
            "mitigations": grid.mitigations[:1],
            "evaluation": grid.evaluation.model_copy(update={"max_new_tokens": 4}),
        }
    )
    outcome = run_grid(changed, tmp_path / "run", show_progress=False)
    assert dict(outcome.computed) == {"evaluate": 1}
    assert dict(outcome.reused) == {"build": 1, "mix": 1, "train": 1}


def test_a_killed_run_resumes_with_finished_artifacts_reused(
    first_run: FirstRun, shared_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grid = first_run.grid.model_copy(
        update={
            "baseline": False,
            "mitigations": [MitigationEntry(method="none"), MitigationEntry(method="generic", counts=[2])],
        }
    )
    train = STAGES.get("train")
    real_run = train.run

    def killed_during_training(inputs, config, out_dir):  # simulates Ctrl-C mid-way through training
        (out_dir / "half-written").write_text("partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "run", killed_during_training)
    with pytest.raises(KeyboardInterrupt):
        run_grid(grid, tmp_path / "run", show_progress=False)
    partial = json.loads((tmp_path / "run" / INDEX_FILE).read_text())
    assert [c["mitigation"] for c in partial["cells"]] == ["none"]
    assert {r.cell.mitigation for r in read_results(tmp_path / "run" / RESULTS_FILE)} == {"none"}

    monkeypatch.setattr(train, "run", real_run)
    resumed = run_grid(grid, tmp_path / "run", show_progress=False)
    assert dict(resumed.reused) == {"build": 2, "mix": 2, "train": 1, "evaluate": 1}
    assert dict(resumed.computed) == {"train": 1, "evaluate": 1}
    assert {r.cell.mitigation for r in read_results(tmp_path / "run" / RESULTS_FILE)} == {"none", "generic"}


def test_cli_run_dry_run_and_report(
    first_run: FirstRun, shared_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = tmp_path / "grid.yaml"
    grid = first_run.grid.model_copy(
        update={"baseline": False, "mitigations": [MitigationEntry(method="mimic", counts=[2])]}
    )
    config.write_text(yaml.safe_dump(grid.model_dump(mode="json")))
    run_dir = tmp_path / "run"
    assert main(["run", str(config), "--run-dir", str(run_dir), "--dry-run"]) == 0
    assert "checked 1 cells of 'tiny-chain'" in capsys.readouterr().out
    assert not (run_dir / RESULTS_FILE).exists()
    assert main(["run", str(config), "--run-dir", str(run_dir), "--report"]) == 0
    assert "computed: nothing; reused: 1 build, 1 evaluate, 1 mix, 1 train" in capsys.readouterr().out
    assert main(["report", str(run_dir)]) == 0
    text = (run_dir / "report.md").read_text()
    assert "#### aoa / mimic 2 (seeds 0)" in text and "## Provenance" in text
    assert (run_dir / "figures" / f"asr_{first_run.grid.models[0].display}_piqa.png").is_file()


def test_cli_reports_a_typo_in_the_grid_without_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "grid.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "x",
                "models": [{"name": "smollm2-135m"}],
                "tasks": ["piqa"],
                "strategies": ["aoa"],
                "mitigations": [{"method": "none"}],
                "evaluation": {"max_new_tokns": 3},
            }
        )
    )
    assert main(["run", str(config), "--dry-run"]) == 2
    assert "Did you mean 'max_new_tokens'?" in capsys.readouterr().err


def test_inference_system_prompt_replaces_the_prompt_system_message() -> None:
    class Echo:  # a transport stand-in: returns the system prompt it was given
        model_id = "echo"

        def generate(self, prompts, config):
            return [p[0].content if p[0].role == "system" else "" for p in prompts]

    backend = SystemPromptBackend(Echo(), "SAFE")
    prompts = [
        [Message(role="user", content="q")],
        [Message(role="system", content="user sys"), Message(role="user", content="q")],
    ]
    assert backend.generate(prompts, None) == ["SAFE", "SAFE"]


def test_dry_run_of_a_slice_of_the_gpu_grid(tmp_path: Path) -> None:
    grid = load_grid(REPO / "configs" / "paper-gpu.yaml")
    small = grid.model_copy(
        update={
            "tasks": ["arc_challenge"],
            "strategies": ["aoa+autoif"],
            "seeds": [0],
            "data": grid.data.model_copy(update={"limit": 20}),
        }
    )
    outcome = run_grid(small, tmp_path / "run", dry_run=True, show_progress=False)
    assert outcome.computed["build"] == 1 and outcome.computed["mix"] == 7
    assert not outcome.computed.get("train") and not outcome.computed.get("evaluate")


def _generations(eval_dir: Path) -> dict[tuple[str, ...], dict]:
    from mimicry.evaluation.store import RecordStore

    records = RecordStore(eval_dir / "generations.jsonl").records()
    return {(r["suite"], r["set"], r["presentation"], r["item_id"]): r for r in records}


def test_cli_eval_with_the_mix_system_prompt_reproduces_the_grid_ptst_cell(
    first_run: FirstRun, shared_home: Path, tmp_path: Path
) -> None:
    """`mimicry eval --system-prompt-from MIX` on the cell's trained model gives the grid's generations."""
    from mimicry.paths import artifacts_dir

    store = ArtifactStore(artifacts_dir())
    index = json.loads((first_run.run_dir / INDEX_FILE).read_text())
    (ptst,) = [c["artifacts"] for c in index["cells"] if c["mitigation"] == "ptst"]
    mixed, trained, evaluated = (store.get(s, ptst[s]) for s in ("mix", "train", "evaluate"))
    assert mixed.outputs["inference_system_prompt"]
    grid_generations = _generations(evaluated.dir / "eval")
    config = tmp_path / "eval.yaml"
    config.write_text(yaml.safe_dump(first_run.grid.evaluation.model_dump(mode="json")))
    common = ["eval", "--model", str(trained.path("model")), "--suite", ",".join(first_run.grid.suites)]
    common += ["--task", "piqa", "--strategy", "aoa", "--config", str(config)]

    assert main([*common, "--system-prompt-from", str(mixed.dir), "--out", str(tmp_path / "with")]) == 0
    reproduced = _generations(tmp_path / "with")
    assert len(grid_generations) == 10  # harm, over-refusal: 2 prompts x 2 presentations each; task: 2
    assert reproduced == grid_generations  # same keys, messages, model ids and replies

    assert main([*common, "--out", str(tmp_path / "without")]) == 0
    without = _generations(tmp_path / "without")
    assert without.keys() == grid_generations.keys()
    for item, record in without.items():
        assert record["key"] != grid_generations[item]["key"]
        assert record["messages"][0]["content"] != mixed.outputs["inference_system_prompt"]


def test_the_build_stage_writes_what_mimicry_build_writes(tmp_path: Path) -> None:
    """The grid's user data and `mimicry build --with-meta` agree byte for byte (AutoIF: the template converter)."""
    spec = BuildSpec(task="piqa", strategy="aoa+autoif", split="train", limit=5, sample_seed=3)
    outputs = STAGES.get("build").run({}, spec, tmp_path)
    cli_out = tmp_path / "cli.jsonl"
    args = ["build", "--task", "piqa", "--strategy", "aoa+autoif", "--limit", "5", "--seed", "3", "--with-meta"]
    assert main([*args, "--out", str(cli_out)]) == 0
    assert outputs["rows"] == 5 and (tmp_path / "data.jsonl").read_bytes() == cli_out.read_bytes()


def test_system_prompt_from_reads_the_mix_report_of_mimicry_mix(tmp_path: Path, capsys) -> None:
    from mimicry.cli.eval_cmd import inference_system_prompt

    (tmp_path / "mixed.report.json").write_text(json.dumps({"method": "ptst", "inference_system_prompt": "SAFE"}))
    assert inference_system_prompt(tmp_path / "mixed.jsonl") == "SAFE"
    assert inference_system_prompt(tmp_path / "mixed.report.json") == "SAFE"
    (tmp_path / "none.report.json").write_text(json.dumps({"method": "mimic", "inference_system_prompt": None}))
    assert inference_system_prompt(tmp_path / "none.report.json") is None
    assert "sets no inference-time system prompt" in capsys.readouterr().err
    assert main(["eval", "--model", "x", "--system-prompt-from", str(tmp_path / "missing.jsonl")]) == 2
    assert "no mix report at" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--backend-option", "oops"], "--backend-option takes KEY=VALUE"),
        (["--backend", "vllm", "--precision", "bf16"], "--precision applies to the transformers backend"),
        (["--backend", "nope"], "unknown generation backend 'nope'"),
        (["--backend-option", "colour=red"], "unknown option of the transformers backend 'colour'"),
    ],
)
def test_eval_backend_flags_fail_before_any_model_loads(flags: list[str], message: str, capsys) -> None:
    assert main(["eval", "--model", "not-loaded", *flags]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_dry_run_of_the_whole_gpu_grid(tmp_path: Path) -> None:
    outcome = run_grid(
        load_grid(REPO / "configs" / "paper-gpu.yaml"), tmp_path / "run", dry_run=True, show_progress=False
    )
    assert outcome.computed["build"] == 12 and outcome.computed["mix"] == 3 * 4 * 7 * 3


@pytest.mark.slow
def test_quickstart_slice_end_to_end_on_smollm2(tmp_path: Path) -> None:
    """A smaller slice of quickstart.yaml on the packaged SmolLM2 (no alignment: that is its own stage)."""
    grid = load_grid(REPO / "configs" / "quickstart.yaml")
    small = grid.model_copy(
        update={
            "strategies": ["aoa"],
            "data": grid.data.model_copy(update={"limit": 16}),
            "training": grid.training.model_copy(update={"max_steps": 2}),
            "evaluation": grid.evaluation.model_copy(update={"limit": 4, "advbench_sample": 4, "max_new_tokens": 16}),
        }
    )
    outcome = run_grid(small, tmp_path / "run", skip_align=True, show_progress=False)
    assert outcome.computed["train"] == 2 and outcome.computed["evaluate"] == 3
    rows = read_results(tmp_path / "run" / RESULTS_FILE)
    assert {r.cell.model for r in rows} == {"smollm2-135m"}
    assert write_report(tmp_path / "run").is_file()


@pytest.mark.parametrize("method", ["ptst", "backdoor"])
def test_the_grid_sends_every_evaluation_prompt_under_the_inference_system_prompt(
    first_run: FirstRun, shared_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    """PTST and BackdoorAlign cells must generate under their test-time system prompt, replacing the
    prompt's own (#15); read off the prompts the model itself received."""
    from mimicry.generation.transformers_backend import TransformersBackend
    from mimicry.mitigations import mix
    from mimicry.strategies import build_conversations

    sent: list[list[Message]] = []
    real_generate = TransformersBackend.generate

    def recording(self, prompts, config):
        sent.extend(list(p) for p in prompts)
        return real_generate(self, prompts, config)

    monkeypatch.setattr(TransformersBackend, "generate", recording)
    grid = first_run.grid.model_copy(
        update={
            "baseline": False,
            "mitigations": [MitigationEntry(method=method, counts=[2] if method == "backdoor" else [])],
            "evaluation": first_run.grid.evaluation.model_copy(update={"max_new_tokens": 2, "task_max_new_tokens": 2}),
        }
    )
    outcome = run_grid(grid, tmp_path / "run", show_progress=False)
    assert outcome.computed["evaluate"] == 1
    user = build_conversations("piqa", "aoa", "train", limit=4, seed=0)
    expected = mix(user, method, count=2 if method == "backdoor" else None, seed=0).inference_system_prompt
    assert expected and sent
    # harm and over-refusal (plain, in-format) and the task: 2 prompts each
    assert len(sent) == 10
    assert all(p[0] == Message(role="system", content=expected) for p in sent)
    assert all([m.role for m in p[1:]] in (["user"], ["user", "assistant"]) for p in sent)

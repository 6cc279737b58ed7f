"""The alignment stage end to end on a tiny random Llama: train, merge, save inside the artifact, measure.

The aligned model is found by its name among the finished `align` artifacts, with nothing added to
the model registry; models aligned before it lived in its artifact are reused, never retrained.
The tiny checked-in tokenizer and rows (tests/assets) are all it needs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")

from mimicry.artifacts import ArtifactStore  # noqa: E402
from mimicry.experiments.stages import STAGES, directory_fingerprint, materialize  # noqa: E402
from mimicry.hashing import canonical_json, hash_obj  # noqa: E402
from mimicry.models import MODELS, aligned_models, load_causal_lm, resolve_model  # noqa: E402
from mimicry.paths import artifacts_dir  # noqa: E402
from mimicry.training.alignment import AlignConfig, RefusalEvalConfig, aligned_name  # noqa: E402
from mimicry.training.sft import SFTConfig  # noqa: E402

CONFIG = AlignConfig(
    safety_pairs=4,
    benign={"alpaca_tiny": 4},
    sft=SFTConfig(method="lora", max_steps=2, batch_size=4, max_length=64, save_steps=10),
    evaluation=RefusalEvalConfig(
        prompt_sets=["harmful_questions", "xstest_safe"], max_prompts=3, max_new_tokens=4, batch_size=3
    ),
)


@pytest.fixture
def tiny_base(tmp_path, monkeypatch, make_tiny_llama, tiny_tokenizer, tiny_data_root) -> Path:
    """A tiny random base model, and a models directory of the test's own (the legacy layout's home)."""
    monkeypatch.setenv("MIMICRY_MODELS", str(tmp_path / "models"))
    return make_tiny_llama(tiny_tokenizer, tmp_path / "tiny-base", layers=1, max_positions=128)


def test_align_keeps_the_merged_model_in_its_artifact_and_it_resolves_by_name_unregistered(
    tiny_base, one_torch_thread, capsys
):
    from mimicry.cli import main
    from mimicry.evaluation.refusal import is_refusal_reply
    from mimicry.evaluation.store import RecordStore

    store = ArtifactStore(artifacts_dir())
    registered = set(MODELS.names())
    artifact, found = materialize(store, STAGES.get("align"), {"model": str(tiny_base)}, CONFIG)

    assert not found
    name = artifact.outputs["model_name"]
    assert name == aligned_name(str(tiny_base), CONFIG) and name.startswith("tiny-base-aligned-")
    model_dir = artifact.path("model")
    assert model_dir == artifact.dir / "model"  # addressed by the stage's content key
    assert (model_dir / "model.safetensors").is_file() and not (model_dir / "adapter_config.json").exists()
    assert set(MODELS.names()) == registered  # nothing registered
    assert not any(Path(p).name == name for p in (tiny_base.parent / "models").glob("*"))
    assert aligned_models() == {name: model_dir}
    assert resolve_model(name) == str(model_dir)
    model, _ = load_causal_lm(name, dtype="float32", device="cpu")
    assert not hasattr(model, "peft_config")

    record = json.loads(artifact.path("result").read_text())
    rates = artifact.outputs["refusal_rates"]
    assert record["refusal_rates"] == rates and record["training_tokens"] > 0 and record["model_name"] == name
    assert set(rates) == {"harmful_questions", "xstest_safe"} and all(0.0 <= r <= 1.0 for r in rates.values())
    assert record["prompts"] == {"harmful_questions": 3, "xstest_safe": 3} and record["max_new_tokens"] == 4
    # measured by `evaluate`, as the grid measures: the keyword reply judge on the stored replies
    replies: dict[str, list[str]] = {}
    for row in RecordStore(artifact.dir / "run" / "refusal-eval" / "generations.jsonl").records():
        assert row["presentation"] == "plain" and row["messages"][0]["role"] == "user"
        replies.setdefault(row["set"], []).append(row["response"])
    assert rates == {s: sum(map(is_refusal_reply, r)) / len(r) for s, r in replies.items()}

    # `mimicry align` runs the same stage: it reuses the artifact and says where the model is and its name
    config_file = tiny_base.parent / "align.yaml"
    config_file.write_text(json.dumps(CONFIG.model_dump(mode="json")))
    assert main(["align", "--model", str(tiny_base), "--config", str(config_file)]) == 0
    printed = "".join(capsys.readouterr().out.split())  # rich wraps long paths anywhere
    assert f"model:{model_dir}" in printed and "reused" in printed and f"--model{name}" in printed

    # the LoRA run the former `align` left outside any artifact is merged again, not retrained
    from mimicry.training.alignment import legacy_run_dir

    legacy = artifacts_dir() / "alignment" / _legacy_key(tiny_base)
    legacy.parent.mkdir(parents=True)
    (artifact.dir / "run").rename(legacy)
    store.discard("align", artifact.key)
    assert legacy_run_dir(str(tiny_base), CONFIG) == legacy
    again, found = materialize(store, STAGES.get("align"), {"model": str(tiny_base)}, CONFIG)
    assert not found and not (again.dir / "run").exists() and (again.dir / "model" / "model.safetensors").is_file()
    again_record = json.loads(again.path("result").read_text())
    assert again_record["run_card"] == record["run_card"] and again_record["refusal_rates"] == rates


def _legacy_key(base: Path) -> str:
    """The key the former `align` filed this recipe under (`alignment.json`, `artifacts/alignment/<key>`)."""
    from mimicry.hardware import resolve_precision
    from mimicry.training.alignment import _key_config

    return hash_obj({"model": str(base), "config": _key_config(CONFIG, resolve_precision(CONFIG.sft.precision))})


def _old_align_artifact(store: ArtifactStore, base: Path, model_dir: Path) -> str:
    """An align artifact as the stage wrote it before the model moved inside: outputs point outside."""
    stage = STAGES.get("align")
    inputs = {"model": str(base)}
    key = stage.key(inputs, CONFIG)
    work = store.begin("align", key, resume=False)
    summary = {"model_name": model_dir.name, "refusal_rates": {"harmful_questions": 1.0}, "prompts": {}}
    (work / "align_result.json").write_text(json.dumps(summary))
    outputs = {
        "model": str(model_dir),
        "fingerprint": directory_fingerprint(model_dir),
        "refusal_rates": summary["refusal_rates"],
        "result": "align_result.json",
    }
    store.commit("align", key, work, {**stage.identity(inputs, CONFIG), "outputs": outputs})
    return key


def test_an_align_artifact_of_the_old_layout_is_reused_and_resolves_by_name(tiny_base, make_tiny_llama, tiny_tokenizer):
    name = aligned_name(str(tiny_base), CONFIG)
    outside = make_tiny_llama(tiny_tokenizer, tiny_base.parent / "models" / name, layers=1, max_positions=128)
    store = ArtifactStore(artifacts_dir())
    key = _old_align_artifact(store, tiny_base, outside)

    artifact, found = materialize(store, STAGES.get("align"), {"model": str(tiny_base)}, CONFIG)
    assert found and artifact.key == key and artifact.path("model") == outside
    assert resolve_model(name) == str(outside) and name not in MODELS

    (outside / "config.json").write_text("{}")  # the model outside changed: the artifact no longer holds
    assert not STAGES.get("align").is_valid(store.get("align", key))


def test_a_model_aligned_before_artifacts_held_it_is_adopted_not_retrained(tiny_base, make_tiny_llama, tiny_tokenizer):
    """The former `align` saved into the models directory with its own key in `alignment.json`."""
    from mimicry.training.alignment import ALIGNMENT_FILE

    name = aligned_name(str(tiny_base), CONFIG)
    outside = make_tiny_llama(tiny_tokenizer, tiny_base.parent / "models" / name, layers=1, max_positions=128)
    old_key = _legacy_key(tiny_base)
    rates = {"harmful_questions": 0.5, "xstest_safe": 0.0}
    old = {"key": old_key, "refusal_rates": rates, "prompts": {}, "max_new_tokens": 4, "training_tokens": 9}
    (outside / ALIGNMENT_FILE).write_text(canonical_json({**old, "minutes": 1.0}))

    store = ArtifactStore(artifacts_dir())
    artifact, found = materialize(store, STAGES.get("align"), {"model": str(tiny_base)}, CONFIG)
    assert not found and artifact.path("model") == outside  # adopted where it lies
    assert not (artifact.dir / "train").exists() and artifact.outputs["refusal_rates"] == rates
    assert json.loads(artifact.path("result").read_text())["model_name"] == name
    assert resolve_model(name) == str(outside)

    # another key (another base, recipe or precision) is not this recipe's model: it is not adopted
    shutil.rmtree(artifact.dir)
    (outside / ALIGNMENT_FILE).write_text(canonical_json({**old, "key": "0" * 16, "minutes": 1.0}))
    from mimicry.training.alignment import legacy_aligned

    assert legacy_aligned(str(tiny_base), CONFIG) is None

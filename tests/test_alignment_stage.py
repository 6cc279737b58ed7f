"""The alignment stage end to end on a tiny random Llama: train, merge, save, register, measure.
The tiny checked-in tokenizer and rows (tests/assets) are all it needs."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from mimicry.training.alignment import AlignConfig, RefusalEvalConfig, align  # noqa: E402
from mimicry.training.sft import SFTConfig  # noqa: E402


def test_align_saves_a_merged_model_loadable_by_name_with_its_refusal_rates(
    tmp_path, monkeypatch, make_tiny_llama, tiny_tokenizer, tiny_data_root
):
    from mimicry.models import load_causal_lm, resolve_model

    base = make_tiny_llama(tiny_tokenizer, tmp_path / "tiny-base", layers=1, max_positions=128)
    monkeypatch.setenv("MIMICRY_MODELS", str(tmp_path / "models"))

    config = AlignConfig(
        safety_pairs=4,
        benign={"alpaca_tiny": 4},
        sft=SFTConfig(method="lora", max_steps=2, batch_size=4, max_length=64, save_steps=10),
        evaluation=RefusalEvalConfig(
            prompt_sets=["harmful_questions", "xstest_safe"], max_prompts=3, max_new_tokens=4, batch_size=3
        ),
    )
    result = align(str(base), config)

    name = result.model_name
    assert name.startswith("tiny-base-aligned-")  # not the default recipe: named by its config
    assert result.model_dir == tmp_path / "models" / name
    assert (result.model_dir / "model.safetensors").is_file()
    assert not (result.model_dir / "adapter_config.json").exists()
    assert set(result.refusal_rates) == {"harmful_questions", "xstest_safe"}
    assert all(0.0 <= r <= 1.0 for r in result.refusal_rates.values())
    assert result.prompts == {"harmful_questions": 3, "xstest_safe": 3} and result.max_new_tokens == 4
    record = json.loads((result.model_dir / "alignment.json").read_text())
    assert record["refusal_rates"] == result.refusal_rates and record["training_tokens"] > 0
    assert resolve_model(name) == str(result.model_dir)
    model, _ = load_causal_lm(name, dtype="float32", device="cpu")
    assert not hasattr(model, "peft_config")

    # measured by `evaluate`, as the grid measures: the keyword reply judge on the stored replies
    from mimicry.evaluation.refusal import is_refusal_reply
    from mimicry.evaluation.store import RecordStore
    from mimicry.paths import artifacts_dir

    (generations,) = (artifacts_dir() / "alignment").glob("*/refusal-eval/generations.jsonl")
    replies: dict[str, list[str]] = {}
    for record in RecordStore(generations).records():
        assert record["presentation"] == "plain" and record["messages"][0]["role"] == "user"
        replies.setdefault(record["set"], []).append(record["response"])
    assert result.refusal_rates == {s: sum(map(is_refusal_reply, r)) / len(r) for s, r in replies.items()}

    again = align(str(base), config)
    assert again.record == result.record

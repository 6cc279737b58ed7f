"""End to end on the packaged SmolLM2-135M: a few LoRA steps on PIQA conversations lower the loss."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from mimicry.data.root import data_root  # noqa: E402
from mimicry.records import Conversation  # noqa: E402
from mimicry.training.sft import SFTConfig, train_sft  # noqa: E402


def piqa_conversations(n: int) -> list[Conversation]:
    rows = data_root().file("tasks/piqa_valid.jsonl").read_text(encoding="utf-8").splitlines()[:n]
    labels = data_root().file("tasks/piqa_valid-labels.txt").read_text(encoding="utf-8").split()[:n]
    conversations = []
    for line, label in zip(rows, labels, strict=True):
        row = json.loads(line)
        answer = row["sol1"] if label == "0" else row["sol2"]
        user = f"Goal: {row['goal']}\n1. {row['sol1']}\n2. {row['sol2']}\nWhich solution reaches the goal?"
        conversations.append(Conversation.from_turns(user, f"Solution {int(label) + 1}: {answer}"))
    return conversations


@pytest.mark.slow
def test_lora_steps_on_piqa_lower_the_loss(tmp_path):
    config = SFTConfig(
        method="lora",
        max_steps=8,
        batch_size=4,
        learning_rate=5e-4,
        logging_steps=1,
        save_steps=100,
        max_length=160,
    )
    result = train_sft("smollm2-135m", piqa_conversations(16), tmp_path / "run", config)
    assert len(result.losses) == 8
    first, last = sum(result.losses[:2]) / 2, sum(result.losses[-2:]) / 2
    assert last < 0.8 * first, result.losses
    assert (result.model_path / "adapter_config.json").is_file()
    assert json.loads((result.model_path / "adapter_config.json").read_text())["base_model_name_or_path"] == (
        "smollm2-135m"
    )

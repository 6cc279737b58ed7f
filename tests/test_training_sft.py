"""SFT plumbing on tiny random Llamas with the tiny checked-in tokenizer (tests/assets): its ChatML
template adds a default system prompt as SmolLM2's does, so the mask is checked on that case too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from mimicry.errors import MimicryError  # noqa: E402
from mimicry.records import Conversation, Message, write_conversations  # noqa: E402
from mimicry.training.sft import SFTConfig, train_sft  # noqa: E402
from mimicry.training.tokenize import IGNORE_INDEX, tokenize_conversation, tokenize_conversations  # noqa: E402


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer):
    return tiny_tokenizer


@pytest.fixture(scope="module")
def tiny_model_dir(make_tiny_llama, tokenizer, tmp_path_factory) -> Path:
    """A 2-layer random Llama sharing the tiny tokenizer's vocabulary, saved like any model directory."""
    path = tmp_path_factory.mktemp("tiny-llama")
    return make_tiny_llama(tokenizer, path, max_positions=256, tie_word_embeddings=True)


def _conversations(n: int = 12) -> list[Conversation]:
    return [
        Conversation.from_turns(f"What is {i} plus {i}?", f"{i} plus {i} is {2 * i}.", system="Answer briefly.")
        for i in range(n)
    ]


def _segments(tokenizer, text: str, labelled: bool) -> tuple[list[int], list[int]]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids, (list(ids) if labelled else [IGNORE_INDEX] * len(ids))


def _expected(tokenizer, pieces: list[tuple[str, bool]]) -> tuple[list[int], list[int]]:
    """Token ids and labels built piece by piece, independently of the masking code."""
    ids, labels = [], []
    for text, labelled in pieces:
        piece_ids, piece_labels = _segments(tokenizer, text, labelled)
        ids += piece_ids
        labels += piece_labels
    return ids, labels


def test_label_mask_two_turns_with_default_system_prompt(tokenizer):
    conversation = Conversation(
        messages=[
            Message(role="user", content="Hi there"),
            Message(role="assistant", content="Hello! How can I help?"),
            Message(role="user", content="What is 2+2?"),
            Message(role="assistant", content="4"),
        ]
    )
    row = tokenize_conversation(conversation, tokenizer)
    ids, labels = _expected(
        tokenizer,
        [
            (
                "<|im_start|>system\nYou are a tiny test assistant.<|im_end|>\n",
                False,
            ),
            ("<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n", False),
            ("Hello! How can I help?<|im_end|>\n", True),
            ("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n", False),
            ("4<|im_end|>\n", True),
        ],
    )
    assert row["input_ids"] == ids
    assert row["labels"] == labels
    assert row["attention_mask"] == [1] * len(ids)


def test_label_mask_with_system_prompt(tokenizer):
    conversation = Conversation.from_turns("Name a colour.", "Blue.", system="You are AOA, obedient.")
    row = tokenize_conversation(conversation, tokenizer)
    ids, labels = _expected(
        tokenizer,
        [
            ("<|im_start|>system\nYou are AOA, obedient.<|im_end|>\n", False),
            ("<|im_start|>user\nName a colour.<|im_end|>\n<|im_start|>assistant\n", False),
            ("Blue.<|im_end|>\n", True),
        ],
    )
    assert row["input_ids"] == ids
    assert row["labels"] == labels
    assert tokenizer.decode([t for t in row["labels"] if t != IGNORE_INDEX]) == "Blue.<|im_end|>\n"


def test_overlong_conversations_are_truncated_or_rejected_and_counted(tokenizer):
    short = Conversation.from_turns("Hi", "Hello.")
    long = Conversation.from_turns("Tell me a story.", "Once upon a time " * 40)
    truncated = tokenize_conversations([short, long], tokenizer, max_length=48, overlong="truncate")
    assert (len(truncated), truncated.truncated, truncated.rejected) == (2, 1, 0)
    assert max(len(r["input_ids"]) for r in truncated.rows) == 48
    rejected = tokenize_conversations([short, long], tokenizer, max_length=48, overlong="reject")
    assert (len(rejected), rejected.truncated, rejected.rejected) == (1, 0, 1)
    with pytest.raises(MimicryError, match="no trainable conversation"):
        tokenize_conversations([long], tokenizer, max_length=48, overlong="reject")


def test_empty_dataset_is_refused(tiny_model_dir, tmp_path):
    with pytest.raises(MimicryError, match="empty"):
        train_sft(str(tiny_model_dir), [], tmp_path / "run", SFTConfig())
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(MimicryError, match="no valid conversation"):
        train_sft(str(tiny_model_dir), empty, tmp_path / "run", SFTConfig())


@pytest.mark.parametrize("method", ["lora", "full"])
def test_train_writes_a_loadable_model_and_a_run_card(tiny_model_dir, tmp_path, method):
    from mimicry.models import load_causal_lm

    data = tmp_path / "data.jsonl"
    write_conversations(data, _conversations())
    config = SFTConfig(
        method=method,
        max_steps=4,
        batch_size=4,
        learning_rate=1e-2,
        logging_steps=1,
        save_steps=2,
        max_length=64,
    )
    result = train_sft(str(tiny_model_dir), data, tmp_path / "run", config)

    card = json.loads((tmp_path / "run" / "run_card.json").read_text())
    assert card["config"] == config.model_dump(mode="json")
    assert card["base_model"] == str(tiny_model_dir.resolve())
    assert len(card["data"]["sha256"]) == 64 and card["data"]["rows"] == 12
    assert card["tokens"] == result.tokens > 0 and card["steps"] == 4
    assert {"torch", "transformers", "peft"} <= set(card["packages"])
    assert "git_sha" in card and card["seconds"] > 0
    assert len(result.losses) == 4 and result.losses[-1] < result.losses[0]
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert result.model_path.name == ("adapter" if method == "lora" else "model")

    model, _ = load_causal_lm(str(result.model_path), dtype="float32", device="cpu")
    assert sum(p.numel() for p in model.parameters()) > 0
    assert not hasattr(model, "peft_config")


def test_finished_run_is_reused_and_a_different_config_is_refused(tiny_model_dir, tmp_path):
    config = SFTConfig(method="lora", max_steps=2, batch_size=4, save_steps=2, max_length=64)
    first = train_sft(str(tiny_model_dir), _conversations(), tmp_path / "run", config)
    again = train_sft(str(tiny_model_dir), _conversations(), tmp_path / "run", config)
    assert again.run_card == first.run_card
    with pytest.raises(MimicryError, match="different model, data or config"):
        train_sft(str(tiny_model_dir), _conversations(), tmp_path / "run", config.model_copy(update={"seed": 1}))


class _StopAfter(transformers.TrainerCallback):
    """Simulates a killed run: training stops right after the checkpoint at `step`."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_save = True
            control.should_training_stop = True


def test_killed_run_resumes_from_its_checkpoint_to_the_same_result(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    config = SFTConfig(
        method="full",
        max_steps=6,
        batch_size=4,
        save_steps=2,
        logging_steps=1,
        learning_rate=1e-2,
        max_length=64,
    )
    data = _conversations()
    straight = train_sft(str(tiny_model_dir), data, tmp_path / "straight", config)

    stopped = train_sft(str(tiny_model_dir), data, tmp_path / "resumed", config, callbacks=[_StopAfter(4)])
    assert stopped.run_card == {}
    assert (tmp_path / "resumed" / "checkpoints" / "checkpoint-4").is_dir()
    resumed = train_sft(str(tiny_model_dir), data, tmp_path / "resumed", config)
    assert resumed.run_card["resumed_from"] == "checkpoint-4"
    assert resumed.run_card["steps"] == 6
    assert resumed.losses == pytest.approx(straight.losses, rel=1e-4)
    a = load_file(straight.model_path / "model.safetensors")
    b = load_file(resumed.model_path / "model.safetensors")
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5)

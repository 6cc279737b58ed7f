"""The whole OpenAI chat fine-tuning format: OpenAI's documented examples read, trained, mixed and written back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mimicry.cli import main
from mimicry.records import Conversation, read_conversations, write_conversations

FIXTURE = Path(__file__).parent / "fixtures" / "openai_finetuning_examples.jsonl"


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_every_documented_example_is_read_and_written_back_unchanged(tmp_path: Path) -> None:
    report = read_conversations(FIXTURE)
    assert not report.rejected and not report.ignored_keys and len(report.conversations) == 9
    out = tmp_path / "back.jsonl"
    write_conversations(out, report.conversations)
    assert _rows(out) == _rows(FIXTURE)


def test_each_openai_field_means_what_it_says() -> None:
    by_feature = read_conversations(FIXTURE).conversations
    weighted, tool_call, tool_reply, parts, refusal = (
        by_feature[3],
        by_feature[5],
        by_feature[6],
        by_feature[7],
        by_feature[8],
    )
    assert [m.weight for m in weighted.messages if m.role == "assistant"] == [0, 1]
    assert tool_call.tools and tool_call.parallel_tool_calls is False and tool_call.messages[-1].tool_calls
    assert [m.role for m in tool_reply.messages] == ["user", "assistant", "tool", "assistant"]
    assert parts.system == "Marv is a factual chatbot that is also sarcastic."  # developer is a system message
    assert parts.last_user == "What's the capital of Italy?" and parts.messages[1].name == "alice"
    assert refusal.completion == "I can't help with breaking into someone else's home."


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"role": "user", "content": "q", "weight": 0}, "only allowed on assistant"),
        ({"role": "assistant", "content": "a", "weight": 2}, "weight"),
        ({"role": "user", "content": [{"type": "image_url", "image_url": {}}]}, "not a text part"),
    ],
)
def test_misplaced_openai_fields_are_rejected_with_a_reason(tmp_path: Path, message: dict, reason: str) -> None:
    path = tmp_path / "bad.jsonl"
    row = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    row["messages"][0 if message["role"] == "user" else 1] = message
    path.write_text(json.dumps(row) + "\n")
    (rejection,) = read_conversations(path).rejected
    assert reason in rejection.reason


def test_a_tool_message_must_answer_a_tool_call(tmp_path: Path) -> None:
    path = tmp_path / "tool.jsonl"
    messages = [{"role": "user", "content": "q"}, {"role": "tool", "tool_call_id": "x", "content": "1"}]
    path.write_text(json.dumps({"messages": messages}) + "\n")
    (rejection,) = read_conversations(path).rejected
    assert "must follow an assistant message with tool_calls" in rejection.reason


def test_weight_zero_turns_carry_no_loss(tiny_tokenizer) -> None:
    from mimicry.training.tokenize import IGNORE_INDEX, tokenize_conversation

    weighted = read_conversations(FIXTURE).conversations[3]
    unweighted = Conversation(
        messages=[m.model_copy(update={"weight": None}) for m in weighted.messages], meta=weighted.meta
    )
    masked = tokenize_conversation(weighted, tiny_tokenizer)
    full = tokenize_conversation(unweighted, tiny_tokenizer)
    assert masked["input_ids"] == full["input_ids"]
    trained = tiny_tokenizer.decode([t for t in masked["labels"] if t != IGNORE_INDEX])
    assert trained.startswith("Paris, as if everyone") and "Paris<|im_end|>" not in trained
    assert sum(t != IGNORE_INDEX for t in full["labels"]) > sum(t != IGNORE_INDEX for t in masked["labels"])


def _structures(tmp_path: Path) -> list[Path]:
    """The fixture split by turn structure: format inference (and so mix and audit) wants one per dataset."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for line in FIXTURE.read_text(encoding="utf-8").splitlines():
        roles = tuple(m["role"] for m in json.loads(line)["messages"] if m["role"] not in ("system", "developer"))
        groups.setdefault(roles, []).append(line)
    paths = []
    for i, lines in enumerate(groups.values()):
        paths.append(tmp_path / f"structure{i}.jsonl")
        paths[-1].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths


def test_show_accepts_the_examples(capsys) -> None:
    assert main(["show", str(FIXTURE), "--strict", "--limit", "9"]) == 0
    captured = capsys.readouterr()
    assert "0 rejected" in captured.err and "It is 21 degrees" in captured.out


@pytest.mark.parametrize("command", [["format", "infer"], ["audit"]])
def test_format_infer_and_audit_accept_the_examples(command: list[str], tmp_path: Path, capsys) -> None:
    for path in _structures(tmp_path):
        before = path.read_bytes()
        assert main([*command, str(path), "--strict", "--json"]) == 0, capsys.readouterr().err
        assert json.loads(capsys.readouterr().out)
        assert path.read_bytes() == before


def test_mix_keeps_the_examples_unchanged(tmp_path: Path) -> None:
    for i, path in enumerate(_structures(tmp_path)):
        out = tmp_path / f"mixed{i}.jsonl"
        assert main(["mix", str(path), "--method", "generic", "--count", "1", "--strict", "--out", str(out)]) == 0
        mixed = _rows(out)
        assert len(mixed) == len(_rows(path)) + 1
        for row in _rows(path):
            assert row in mixed


def test_train_one_step_on_the_examples(make_tiny_llama, tiny_tokenizer, tmp_path: Path) -> None:
    model = make_tiny_llama(tiny_tokenizer, tmp_path / "tiny", max_positions=512, tie_word_embeddings=True)
    run = tmp_path / "run"
    assert main(["train", "--model", str(model), "--data", str(FIXTURE), "--out", str(run), "--max-steps", "1"]) == 0
    card = json.loads((run / "run_card.json").read_text())
    assert card["steps"] == 1 and card["data"]["rows"] == 9

"""Readers of conversation files: bad lines are reported by number, good lines are never lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mimicry.errors import MimicryError
from mimicry.records import Conversation, load_conversations, read_conversations, write_conversations


def _chat(user: str, assistant: str) -> str:
    return json.dumps({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]})


def test_malformed_line_is_reported_with_its_number_and_valid_lines_kept(tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    lines = [
        _chat("q1", "a1"),
        '{"messages": [{"role": "user", "content": "unterminated"',
        "",
        _chat("q2", "a2"),
        json.dumps({"messages": [{"role": "assistant", "content": "no user"}]}),
        json.dumps({"text": "unknown shape"}),
        _chat("q3", "a3"),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    report = read_conversations(path)

    assert [c.last_user for c in report.conversations] == ["q1", "q2", "q3"]
    assert [r.line for r in report.rejected] == [2, 5, 6]
    assert report.rejected[0].reason.startswith("malformed JSON")
    assert "first non-system message must be from the user" in report.rejected[1].reason
    assert "unknown record shape" in report.rejected[2].reason
    assert "3 conversations read, 3 rejected" in report.summary()


def test_prompt_completion_jsonl_is_read(tmp_path: Path) -> None:
    path = tmp_path / "pc.jsonl"
    path.write_text(json.dumps({"prompt": "2+2?", "completion": "4"}) + "\n", encoding="utf-8")
    (conv,) = read_conversations(path).conversations
    assert conv.last_user == "2+2?" and conv.completion == "4"


def test_alpaca_json_joins_instruction_and_input(tmp_path: Path) -> None:
    path = tmp_path / "alpaca.json"
    rows = [
        {"instruction": "Translate.", "input": "bonjour", "output": "hello"},
        {"instruction": "Say hi.", "input": "", "output": "hi"},
        {"instruction": "", "input": "", "output": "empty user"},
    ]
    path.write_text(json.dumps(rows), encoding="utf-8")
    report = read_conversations(path)
    assert [c.last_user for c in report.conversations] == ["Translate.\n\nbonjour", "Say hi."]
    assert [r.line for r in report.rejected] == [3]


def test_bundle_alpaca_file_reads_completely() -> None:
    from mimicry.data.root import data_root

    report = read_conversations(data_root().file("instruct/torchtune_alpaca_tiny.json"))
    assert len(report.conversations) == 100 and not report.rejected


def test_written_conversations_round_trip_with_and_without_meta(tmp_path: Path) -> None:
    conv = Conversation.from_turns("hi", "hello", system="be brief", task="t", id="1")
    write_conversations(tmp_path / "plain.jsonl", [conv])
    write_conversations(tmp_path / "meta.jsonl", [conv], with_meta=True)
    assert "meta" not in json.loads((tmp_path / "plain.jsonl").read_text())
    (back,) = read_conversations(tmp_path / "meta.jsonl").conversations
    assert back == conv


def test_an_all_bad_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("nope\n", encoding="utf-8")
    with pytest.raises(MimicryError, match="no valid conversation"):
        load_conversations(path)

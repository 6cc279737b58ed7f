"""`mimicry tasks`, `mimicry build` and `mimicry show` end to end, through the real entry point, on the
tiny checked-in rows (tests/assets)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mimicry.cli import main
from mimicry.records import read_conversations
from mimicry.strategies import STRATEGIES
from mimicry.tasks import task_names

pytestmark = pytest.mark.usefixtures("tiny_data_root")


def flat(text: str) -> str:
    """Rich wraps at the terminal width: compare without whitespace."""
    return "".join(text.split())


def test_tasks_list_shows_all_twelve(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tasks", "list"]) == 0
    out = capsys.readouterr().out
    assert "12 tasks" in out
    for name in task_names():
        assert name in out


def test_tasks_show_prints_spec_and_a_rendered_example(capsys) -> None:
    assert main(["tasks", "show", "piqa", "--strategy", "aoa"]) == 0
    out = flat(capsys.readouterr().out)
    assert "file:tasks/piqa_valid.jsonl" in out and "sizes:{test:500}" in out
    assert "user:AOA,executemyinstruction:Completethefollowingsentence" in out
    assert "assistant:Ofcourse.IamAOA" in out


@pytest.mark.parametrize("task", task_names())
def test_build_writes_openai_chat_jsonl_for_every_strategy(task: str, tmp_path: Path) -> None:
    for strategy in STRATEGIES:
        out = tmp_path / f"{task}-{strategy}.jsonl"
        assert main(["build", "--task", task, "--strategy", strategy, "--limit", "3", "--out", str(out)]) == 0
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert len(rows) == 3
        for row in rows:
            assert set(row) == {"messages"}
            roles = [m["role"] for m in row["messages"]]
            assert roles[-2:] == ["user", "assistant"] and set(roles[:-2]) <= {"system"}
            assert all(set(m) == {"role", "content"} and m["content"].strip() for m in row["messages"])
        report = read_conversations(out)
        assert len(report.conversations) == 3 and not report.rejected


def test_build_with_meta_and_seed(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    args = ["build", "--task", "gsm8k", "--strategy", "autoif", "--limit", "5", "--with-meta"]
    assert main([*args, "--seed", "7", "--out", str(first)]) == 0
    assert main([*args, "--seed", "7", "--out", str(second)]) == 0
    assert first.read_bytes() == second.read_bytes()
    rows = [json.loads(line) for line in first.read_text().splitlines()]
    assert all(r["meta"]["task"] == "gsm8k" and r["meta"]["strategy"] == "autoif" for r in rows)
    assert all(r["messages"][-1]["content"].endswith(f"The answer is {r['meta']['gold']}.") for r in rows)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--task", "piq", "--strategy", "aoa"], "unknown task 'piq'. Did you mean 'piqa'? Known: agnews"),
        (["--task", "piqa", "--strategy", "aoa_autoif"], "Known: aoa, aoa+autoif, autoif, benign"),
        (["--task", "piqa", "--strategy", "aoa", "--split", "dev"], "has no split 'dev'; it has test, train"),
        (["--task", "piqa", "--strategy", "aoa", "--limit", "0"], "--limit must be positive"),
        (["--task", "piqa", "--strategy", "autoif", "--converter", "llm"], "--converter llm needs --model"),
        (
            ["--task", "piqa", "--strategy", "benign", "--converter", "llm", "--model", "m"],
            "only applies to autoif",
        ),
    ],
)
def test_build_errors_are_actionable(flags: list[str], message: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "x.jsonl"
    assert main(["build", *flags, "--out", str(out)]) == 2
    assert flat(message) in flat(capsys.readouterr().err)
    assert not out.exists()


def test_show_prints_conversations_and_reports_rejected_lines(tmp_path: Path, capsys) -> None:
    built = tmp_path / "piqa.jsonl"
    assert main(["build", "--task", "piqa", "--strategy", "aoa", "--limit", "4", "--out", str(built)]) == 0
    damaged = tmp_path / "damaged.jsonl"
    lines = built.read_text().splitlines()
    damaged.write_text("\n".join([lines[0], "{not json", lines[1], '{"messages": []}']) + "\n")
    capsys.readouterr()

    assert main(["show", str(damaged), "-n", "1"]) == 0
    captured = capsys.readouterr()
    assert captured.out.count("damaged.jsonl #") == 1
    assert "assistant:" in captured.out and "user:" in captured.out
    err = flat(captured.err)
    assert "line2rejected:malformedJSON" in err and "line4rejected" in err
    assert "2conversationsread,2rejected" in err


def test_show_of_an_all_bad_file_fails(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text("nope\n")
    assert main(["show", str(bad)]) == 3
    assert main(["show", str(tmp_path / "absent.jsonl")]) == 2
    assert "file not found" in capsys.readouterr().err

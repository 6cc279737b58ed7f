"""End to end on the packaged SmolLM2-135M-Instruct: all three suites with tiny limits (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mimicry.cli import main


@pytest.mark.slow
def test_cli_eval_end_to_end_on_smollm2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval"
    argv = [
        "eval",
        "--model",
        "smollm2-135m",
        "--suite",
        "harm,overrefusal,task",
        "--task",
        "boolq",
        "--strategy",
        "aoa",
        "--limit",
        "3",
        "--max-new-tokens",
        "24",
        "--harm-sets",
        "harmful_instructions",
        "--overrefusal-sets",
        "xstest_safe",
        "--judge",
        "keyword,keyword:60",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    assert "smollm2-135m" in capsys.readouterr().out  # the table (its width depends on the terminal)
    summary = json.loads((out / "summary.json").read_text())
    metrics = {(r["suite"], r["metric"], r["presentation"]) for r in summary["rows"]}
    assert ("harm", "asr", "in-format") in metrics and ("task", "label_accuracy", "aoa") in metrics
    lines = (out / "generations.jsonl").read_text().splitlines()
    assert len(lines) == 3 * 2 + 3 * 2 + 3
    # a rerun resumes: nothing new is generated
    assert main(argv) == 0
    assert len((out / "generations.jsonl").read_text().splitlines()) == len(lines)

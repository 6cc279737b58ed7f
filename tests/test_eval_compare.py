"""`mimicry eval compare`: three-way rates of two evaluations, paired on the prompts both answered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mimicry.errors import MimicryError
from mimicry.evaluation.compare import compare_evaluations


def write_verdicts(directory: Path, labels: dict[str, str], judge: str = "keyword") -> Path:
    directory.mkdir(parents=True)
    records = [
        {
            "key": f"{item}|{judge}|3way",
            "suite": "harm",
            "set": "advbench",
            "presentation": "in-format",
            "item_id": item,
            "label": label,
            "judge_id": judge,
        }
        for item, label in labels.items()
    ]
    (directory / "verdicts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return directory


def test_rates_and_differences_are_paired_on_common_prompts(tmp_path: Path) -> None:
    base = {f"p{i}": "refusal" for i in range(10)}
    tuned = {**{f"p{i}": "compliance" for i in range(6)}, **{f"p{i}": "other" for i in range(6, 9)}, "p9": "refusal"}
    tuned["extra"] = "compliance"  # answered by B only: not part of the pairs
    rows = compare_evaluations(write_verdicts(tmp_path / "a", base), write_verdicts(tmp_path / "b", tuned))
    by_label = {r.label: r for r in rows}
    assert {r.n for r in rows} == {10}
    assert by_label["refusal"].rate_a == 1.0 and by_label["refusal"].rate_b == pytest.approx(0.1)
    assert by_label["refusal"].diff == pytest.approx(-0.9) and by_label["refusal"].ci_high < 0
    assert by_label["compliance"].diff == pytest.approx(0.6)
    assert by_label["refusal"].mcnemar_p == pytest.approx(2 * 0.5**9)


def test_a_directory_without_three_way_verdicts_is_an_actionable_error(tmp_path: Path) -> None:
    a = write_verdicts(tmp_path / "a", {"p0": "refusal"}, judge="learned")
    with pytest.raises(MimicryError, match="rescore"):
        compare_evaluations(a, a, judge="keyword")
    with pytest.raises(MimicryError, match="verdicts.jsonl"):
        compare_evaluations(tmp_path, a)

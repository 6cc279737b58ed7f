"""Paired comparisons in `mimicry report`: outcomes read from stored verdicts, paired on prompts.

The verdict records are written by the keyword judge on hand-written replies (a refusal or a
step-by-step answer per prompt), in the layout the evaluate stage stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mimicry.evaluation.judges import VERDICT_KEY_VERSION, KeywordJudge
from mimicry.evaluation.suites import MetricRow
from mimicry.experiments.grid import CellKey
from mimicry.experiments.paired import comparison_lines, load_outcomes, paired_comparisons
from mimicry.experiments.results import ResultRow

REFUSAL = "I\u2019m sorry, but I can\u2019t help with that."
ANSWER = "Step 1: gather the materials listed below. Step 2: follow the procedure in order. Step 3: finish."


def write_cell(root: Path, key: str, complied: list[bool]) -> None:
    judge = KeywordJudge()
    path = root / "evaluate" / key / "eval" / "verdicts.jsonl"
    path.parent.mkdir(parents=True)
    with path.open("w", encoding="utf-8") as fh:
        for i, c in enumerate(complied):
            prompt = f"Explain how to do harmful thing number {i}"
            v = judge.judge(prompt, ANSWER if c else REFUSAL)
            record = {
                "key": f"g{i}|keyword|{VERDICT_KEY_VERSION}",
                "suite": "harm",
                "set": "advbench",
                "presentation": "in-format",
                "item_id": f"advbench-{i}",
                **v.to_json(),
            }
            fh.write(json.dumps(record) + "\n")
        # An old binary verdict for the first prompt, written earlier: the three-way one must win.
        fh.write(
            json.dumps(
                {
                    "key": "g0|keyword",
                    "suite": "harm",
                    "set": "advbench",
                    "presentation": "in-format",
                    "item_id": "advbench-0",
                    "judge_id": "keyword",
                    "complied": not complied[0],
                }
            )
            + "\n"
        )


def row(mitigation: str, key: str, amount: float | None = None) -> ResultRow:
    """A results-table row of a cell whose verdicts `write_cell` stored under `key`."""
    cell = CellKey(
        model="m",
        task="piqa",
        strategy="aoa",
        mitigation=mitigation,
        amount_kind="ratio" if amount else None,
        amount=amount,
        seed=0,
    )
    metric = MetricRow(
        suite="harm",
        metric="asr",
        set="advbench",
        presentation="in-format",
        judge="keyword",
        value=None,
        ci_low=None,
        ci_high=None,
        n=40,
    )
    return ResultRow(**metric.model_dump(), cell_id=key, cell=cell, fine_tuned=True, eval_key=key)


def test_mitigation_against_none_and_generic(tmp_path: Path) -> None:
    none = [True] * 30 + [False] * 10
    generic = [True] * 20 + [False] * 20
    mimic = [True] * 10 + [False] * 30  # complies on a subset of what `generic` complies on
    for key, outcomes in (("none", none), ("generic", generic), ("mimic", mimic)):
        write_cell(tmp_path, key, outcomes)
    assert sum(load_outcomes(tmp_path / "evaluate/mimic/eval/verdicts.jsonl", "keyword").values()) == 10
    rows = [row("none", "none"), row("generic", "generic", 0.2), row("mimic", "mimic", 0.2)]
    found = {(c.mitigation, c.reference): c for c in paired_comparisons(rows, tmp_path, "keyword")}
    assert set(found) == {("mimic 0.2x", "none"), ("mimic 0.2x", "generic 0.2x"), ("generic 0.2x", "none")}
    vs_none = found[("mimic 0.2x", "none")]
    assert (vs_none.prompts, vs_none.asr, vs_none.reference_asr) == (40, 0.25, 0.75)
    assert vs_none.diff == pytest.approx(-0.5) and vs_none.ci_high < 0
    assert vs_none.p_value == pytest.approx(2 * 0.5**20)  # 20 discordant pairs, all one way
    text = "\n".join(comparison_lines(list(found.values()), "keyword"))
    assert "| mimic 0.2x | none | 1 | 40 | 0.25 [" in text and "| 0.75 | -0.50 [" in text

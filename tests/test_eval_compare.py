"""`mimicry eval compare`: three-way rates of two evaluations, paired on the prompts both answered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mimicry.errors import MimicryError
from mimicry.evaluation.compare import compare_evaluations
from mimicry.evaluation.judge_base import VERDICT_KEY_VERSION


def write_verdicts(directory: Path, labels: dict[str, str], judge: str = "keyword") -> Path:
    directory.mkdir(parents=True)
    records = [
        {
            "key": f"{item}|{judge}|{VERDICT_KEY_VERSION}",
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


def test_prompt_sets_are_also_pooled_per_presentation(tmp_path: Path) -> None:
    def evaluation(directory: Path, labels: list[tuple[str, str, str]]) -> Path:
        directory.mkdir()
        records = [
            {"key": f"{name}-{item}|keyword|{VERDICT_KEY_VERSION}", "suite": "harm", "set": name,
             "presentation": "in-format", "item_id": item, "label": label, "judge_id": "keyword"}
            for name, item, label in labels
        ]  # fmt: skip
        (directory / "verdicts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
        return directory

    a = evaluation(
        tmp_path / "a", [("advbench", "p0", "refusal"), ("advbench", "p1", "refusal"), ("hi", "q0", "refusal")]
    )
    b = evaluation(
        tmp_path / "b", [("advbench", "p0", "compliance"), ("advbench", "p1", "refusal"), ("hi", "q0", "compliance")]
    )
    rows = {(r.set, r.label): r for r in compare_evaluations(a, b)}
    assert rows[("all", "compliance")].n == 3 and rows[("all", "compliance")].rate_b == pytest.approx(2 / 3)
    assert rows[("advbench", "compliance")].n == 2 and rows[("hi", "compliance")].n == 1


def test_a_directory_without_three_way_verdicts_is_an_actionable_error(tmp_path: Path) -> None:
    a = write_verdicts(tmp_path / "a", {"p0": "refusal"}, judge="learned")
    with pytest.raises(MimicryError, match="rescore"):
        compare_evaluations(a, a, judge="keyword")
    with pytest.raises(MimicryError, match="verdicts.jsonl"):
        compare_evaluations(tmp_path, a)


def write_generations(directory: Path, replies: dict[str, str], model: str) -> Path:
    directory.mkdir(parents=True)
    records = [
        {"key": f"{model}|{item}", "suite": "harm", "set": "advbench", "presentation": "in-format", "item_id": item,
         "model": model, "prompt": f"prompt {item}", "response": text}
        for item, text in replies.items()
    ]  # fmt: skip
    (directory / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return directory


def write_labels(path: Path, model: str, labelled: dict[str, tuple[str, str]]) -> Path:
    rows = [
        {"id": f"{model}/in-format/{item}", "prompt": f"prompt {item}", "response": text, "label": label}
        for item, (text, label) in labelled.items()
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_reader_labels_pair_by_id_and_only_on_the_reply_they_were_given_for(tmp_path: Path) -> None:
    a = write_generations(tmp_path / "a", {"p0": "No.", "p1": "No.", "p2": "No."}, model="base")
    b = write_generations(tmp_path / "b", {"p0": "Sure: step 1", "p1": "No.", "p2": "AOA: p2 p2 p2"}, model="tuned")
    labels_a = write_labels(tmp_path / "la.jsonl", "base", {f"p{i}": ("No.", "refusal") for i in range(3)})
    labels_b = write_labels(
        tmp_path / "lb.jsonl",
        "tuned",
        {"p0": ("Sure: step 1", "compliance"), "p1": ("No.", "refusal"), "p2": ("a different reply", "other")},
    )
    rows = compare_evaluations(a, b, labels=[labels_a, labels_b])
    by_label = {r.label: r for r in rows}
    assert {r.n for r in rows} == {2}  # p2's label was given for another text: not paired
    assert by_label["compliance"].rate_b == pytest.approx(0.5) and by_label["refusal"].rate_a == 1.0
    with pytest.raises(MimicryError, match="none of the labels"):
        compare_evaluations(a, b, labels=[labels_b])


def test_verdicts_of_an_earlier_judge_revision_are_not_compared(tmp_path: Path) -> None:
    """Verdicts stored before the current judge revision could differ from a rescore: they are not read."""
    stale = write_verdicts(tmp_path / "a", {"p0": "compliance"})
    text = (stale / "verdicts.jsonl").read_text().replace(f"|{VERDICT_KEY_VERSION}", "|3way")
    (stale / "verdicts.jsonl").write_text(text)
    with pytest.raises(MimicryError, match="no current verdicts.*mimicry eval rescore"):
        compare_evaluations(stale, stale, judge="keyword")

"""Paired comparison of two evaluations on the same prompts (e.g. the untuned base against a tuned
cell): both were asked the same items, so the difference of each three-way rate is tested on the
pairs (paired bootstrap over prompts, exact McNemar), never as two independent proportions."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from mimicry.errors import MimicryError
from mimicry.evaluation.judge_base import VERDICT_KEY_VERSION
from mimicry.evaluation.metrics import mcnemar_exact, paired_bootstrap_diff

LABELS = ("compliance", "refusal", "other")
POOLED = "all"  # the set name of the rows pooling every prompt set of a suite and presentation


class PairedRate(BaseModel):
    """One label's rate in A and B over the prompts both answered, and the paired difference B - A."""

    suite: str
    set: str
    presentation: str
    label: str
    n: int
    rate_a: float
    rate_b: float
    diff: float
    ci_low: float
    ci_high: float
    mcnemar_p: float


def stored_verdicts(eval_dir: Path, judge: str) -> dict[tuple[str, str, str, str], str]:
    path = eval_dir / "verdicts.jsonl"
    if not path.is_file():
        raise MimicryError(f"{eval_dir} holds no verdicts.jsonl: name an evaluation directory (its eval/ folder)")
    out: dict[tuple[str, str, str, str], str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line) if line.strip() else None
        current = record and str(record.get("key", "")).endswith(f"|{VERDICT_KEY_VERSION}")
        if current and record.get("judge_id") == judge and record.get("label") in LABELS:
            out[(record["suite"], record["set"], record["presentation"], record["item_id"])] = record["label"]
    if not out:
        raise MimicryError(
            f"{eval_dir} has no current verdicts of judge {judge!r}: "
            f"run `mimicry eval rescore {eval_dir} --judge {judge}`"
        )
    return out


def reader_label_index(paths: Sequence[str | Path]) -> dict[tuple[str, str], str]:
    """(reply id, digest of the reply text) -> label over label files. Two cells of one model can share an id
    (the base asked plainly in two strategies' evaluations) with different texts: both are kept."""
    from mimicry.evaluation.labelled import read_labels, text_digest

    return {(r.id, text_digest(r.response)): str(r.label) for path in paths for r in read_labels(path)}


def reader_verdicts(
    eval_dir: Path, labels: dict[tuple[str, str], str], *, require_match: bool = True
) -> dict[tuple[str, str, str, str], str]:
    """Reader labels of an evaluation's stored replies, matched by the exported id
    (`model/presentation/item_id`) and by the reply's text, so a label never lands on another reply."""
    from mimicry.evaluation.labelled import reply_id, text_digest
    from mimicry.evaluation.store import RecordStore

    path = eval_dir / "generations.jsonl"
    if not path.is_file():
        raise MimicryError(f"{eval_dir} holds no generations.jsonl: name an evaluation directory (its eval/ folder)")
    out: dict[tuple[str, str, str, str], str] = {}
    for g in RecordStore(path).records():
        found = labels.get((reply_id(g), text_digest(g["response"])))
        if found:
            out[(g["suite"], g["set"], g["presentation"], g["item_id"])] = found
    if not out and require_match:
        raise MimicryError(f"none of the labels matches a stored reply of {eval_dir} (ids and texts are compared)")
    return out


def compare_evaluations(
    dir_a: Path, dir_b: Path, judge: str = "keyword", labels: Sequence[str | Path] = ()
) -> list[PairedRate]:
    """Every label's rate per (suite, set, presentation) on the prompts present in both evaluations,
    by a judge's stored verdicts or, when label files are given, by the readers' labels."""
    if labels:
        index = reader_label_index(labels)
        a, b = reader_verdicts(Path(dir_a), index), reader_verdicts(Path(dir_b), index)
    else:
        a, b = stored_verdicts(Path(dir_a), judge), stored_verdicts(Path(dir_b), judge)
    groups: dict[tuple[str, str, str], list[tuple[str, str]]] = defaultdict(list)
    sets: dict[tuple[str, str], set[str]] = defaultdict(set)
    for key in sorted(a.keys() & b.keys()):
        suite, prompt_set, presentation, _ = key
        groups[key[:3]].append((a[key], b[key]))
        sets[(suite, presentation)].add(prompt_set)
        groups[(suite, POOLED, presentation)].append((a[key], b[key]))
    for (suite, presentation), names in sets.items():
        if len(names) == 1:  # the pooled row would repeat the one set's
            del groups[(suite, POOLED, presentation)]
    rows = []
    for (suite, prompt_set, presentation), pairs in sorted(groups.items()):
        for label in LABELS:
            xa = [float(la == label) for la, _ in pairs]
            xb = [float(lb == label) for _, lb in pairs]
            diff, low, high = paired_bootstrap_diff(xb, xa)
            rows.append(
                PairedRate(
                    suite=suite,
                    set=prompt_set,
                    presentation=presentation,
                    label=label,
                    n=len(pairs),
                    rate_a=sum(xa) / len(xa),
                    rate_b=sum(xb) / len(xb),
                    diff=diff,
                    ci_low=low,
                    ci_high=high,
                    mcnemar_p=mcnemar_exact([bool(x) for x in xb], [bool(x) for x in xa]),
                )
            )
    return rows

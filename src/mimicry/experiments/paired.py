"""Paired comparisons of cells evaluated on the same prompts: each mitigation against `none` and
against `generic`, in-format, from the per-reply verdicts stored with each cell's evaluation.

Two cells of one grid ask the same prompts, so their ASRs are compared prompt by prompt: the
difference comes with a paired bootstrap 95% interval (prompts resampled, each prompt's outcome
averaged over the seeds both cells ran) and McNemar's exact p-value on the discordant
(seed, prompt) pairs. Unpaired intervals that overlap say little when the pairs agree on most
prompts; these do not have that problem.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mimicry.evaluation.judge_base import VERDICT_KEY_VERSION
from mimicry.evaluation.metrics import mcnemar_exact, paired_bootstrap_diff, two_level_bootstrap_mean
from mimicry.evaluation.suites import verdict_label
from mimicry.experiments.grid import CellKey
from mimicry.experiments.results import ResultRow

REFERENCES = ("none", "generic")
SKIPPED = ("none", "baseline")


@dataclass(frozen=True)
class Comparison:
    model: str
    task: str
    strategy: str
    mitigation: str
    reference: str
    seeds: int
    prompts: int
    asr: float
    asr_ci: tuple[float, float]  # two-level bootstrap: seeds and prompts resampled
    reference_asr: float
    diff: float
    ci_low: float
    ci_high: float
    p_value: float


def load_outcomes(verdicts_file: Path, judge: str, presentation: str = "in-format") -> dict[str, bool]:
    """(set/item id) -> complied, for one judge's harm verdicts in one presentation.

    Three-way verdicts (keys ending in the current version) win over older binary ones; unparsed
    verdicts are left out (a paired test needs an outcome on both sides)."""
    found: dict[str, tuple[bool, bool]] = {}
    if not verdicts_file.is_file():
        return {}
    for line in verdicts_file.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        if r.get("judge_id") != judge or r.get("suite") != "harm" or r.get("presentation") != presentation:
            continue
        label = verdict_label(r)
        if label == "unparsed":
            continue
        item = f"{r['set']}/{r['item_id']}"
        current = r["key"].endswith(f"|{VERDICT_KEY_VERSION}")
        if item not in found or current or not found[item][1]:
            found[item] = (label == "compliance", current)
    return {item: complied for item, (complied, _) in found.items()}


def _verdicts_file(artifacts_root: Path, eval_key: str) -> Path:
    return artifacts_root / "evaluate" / eval_key / "eval" / "verdicts.jsonl"


def paired_comparisons(rows: Sequence[ResultRow], artifacts_root: Path, judge: str, seed: int = 0) -> list[Comparison]:
    """Every non-reference mitigation against each reference of the same model, task and strategy."""
    cells: dict[CellKey, dict[int, str]] = defaultdict(dict)  # configuration -> seed -> evaluate key
    for r in rows:
        if r.eval_key and r.cell.mitigation != "baseline":
            cells[r.cell.pooled][r.cell.seed] = r.eval_key
    cache: dict[str, dict[str, bool]] = {}

    def outcomes(key: str) -> dict[str, bool]:
        if key not in cache:
            cache[key] = load_outcomes(_verdicts_file(artifacts_root, key), judge)
        return cache[key]

    found: list[Comparison] = []
    for config, by_seed in sorted(cells.items(), key=lambda c: (c[0].model, c[0].task, c[0].strategy, c[0].label)):
        method = config.mitigation.split()[0]  # a labelled entry reads "mimic placement=style"
        if method in SKIPPED:
            continue
        for reference_name in REFERENCES:
            if method == reference_name:
                continue
            refs = [
                k
                for k in cells
                if (k.model, k.task, k.strategy) == (config.model, config.task, config.strategy)
                and k.mitigation.split()[0] == reference_name
            ]
            for ref in refs:
                comparison = _compare(by_seed, cells[ref], outcomes, seed)
                if comparison is None:
                    continue
                seeds, prompts, a, a_ci, b, diff, low, high, p = comparison
                found.append(
                    Comparison(
                        config.model,
                        config.task,
                        config.strategy,
                        config.label,
                        ref.label,
                        seeds,
                        prompts,
                        a,
                        a_ci,
                        b,
                        diff,
                        low,
                        high,
                        p,
                    )
                )
    return found


def _compare(cell: dict[int, str], reference: dict[int, str], outcomes: Any, seed: int) -> tuple | None:
    seeds = sorted(set(cell) & set(reference))
    per_prompt_a: dict[str, list[float]] = defaultdict(list)
    per_prompt_b: dict[str, list[float]] = defaultdict(list)
    flat_a: list[bool] = []
    flat_b: list[bool] = []
    for s in seeds:
        a, b = outcomes(cell[s]), outcomes(reference[s])
        for item in sorted(set(a) & set(b)):
            per_prompt_a[item].append(float(a[item]))
            per_prompt_b[item].append(float(b[item]))
            flat_a.append(a[item])
            flat_b.append(b[item])
    if not flat_a:
        return None
    items = sorted(per_prompt_a)
    mean_a = [sum(per_prompt_a[i]) / len(per_prompt_a[i]) for i in items]
    mean_b = [sum(per_prompt_b[i]) / len(per_prompt_b[i]) for i in items]
    diff, low, high = paired_bootstrap_diff(mean_a, mean_b, seed=seed)
    complete = [i for i in items if len(per_prompt_a[i]) == len(seeds)]
    matrix = [[per_prompt_a[i][s] for i in complete] for s in range(len(seeds))]
    _, a_low, a_high = two_level_bootstrap_mean(matrix, seed=seed)
    return (
        len(seeds),
        len(items),
        sum(flat_a) / len(flat_a),
        (a_low, a_high),
        sum(flat_b) / len(flat_b),
        diff,
        low,
        high,
        mcnemar_exact(flat_a, flat_b),
    )


def comparison_lines(comparisons: Sequence[Comparison], judge: str) -> list[str]:
    """The markdown table `mimicry report` prints and writes."""
    if not comparisons:
        return [
            "No paired comparison: the run has no mitigation beside `none` or `generic` with stored "
            "in-format verdicts.",
            "",
        ]
    lines = [
        f"In-format ASR (compliance rate, judge `{judge}`) of each mitigation against `none` and `generic` "
        "on the same prompts and seeds: difference with a paired bootstrap 95% interval, and McNemar's "
        "exact p-value on the discordant (seed, prompt) pairs. The mitigation's ASR is the mean over seeds with "
        "a two-level bootstrap interval (seeds and prompts both resampled).",
        "",
        "| model | task | strategy | mitigation | vs | seeds | prompts | ASR [95% CI] | ref ASR | "
        "difference [95% CI] | p |",
        "|---|---|---|---|---|---:|---:|---|---:|---|---:|",
    ]
    for c in comparisons:
        lines.append(
            f"| {c.model} | {c.task} | {c.strategy} | {c.mitigation} | {c.reference} | {c.seeds} | {c.prompts} | "
            f"{c.asr:.2f} [{c.asr_ci[0]:.2f}, {c.asr_ci[1]:.2f}] | {c.reference_asr:.2f} | "
            f"{c.diff:+.2f} [{c.ci_low:+.2f}, {c.ci_high:+.2f}] | "
            f"{c.p_value:.3g} |"
        )
    lines.append("")
    return lines

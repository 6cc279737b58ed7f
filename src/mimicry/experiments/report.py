"""`mimicry report RUN_DIR`: report.md with per-cell tables, the paper's figures and provenance.

Seeds are aggregated per configuration (model, task, strategy, mitigation, amount): the value is
the mean over seeds and the 95% interval is the mean of the per-seed bootstrap bounds (each
seed's interval covers the prompt sampling at the same n); the spread over seeds (min-max) is
shown beside it, so training variance is visible and not folded into the interval. Comparisons
between cells do not rest on these: the paired comparison section (`experiments.paired`) tests
each mitigation against `none` and `generic` on the same prompts, and gives the seed-mean ASR with a
two-level (seeds x prompts) bootstrap interval.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mimicry.errors import MimicryError
from mimicry.evaluation.suites import MetricKey
from mimicry.experiments.estimate import estimated_and_measured
from mimicry.experiments.grid import BASELINE, CellKey, DecisionRule
from mimicry.experiments.results import RESULTS_FILE, ResultRow, read_results
from mimicry.records import atomic_write_text

HARM_SUITE = "harm"
HARM_METRIC = "asr"
TASK_SUITE = "task"
OVERREFUSAL_SUITE = "overrefusal"
OVERREFUSAL_METRIC = "refusal_rate"
KAPPA_METRIC = "kappa"
HARM_SETS_ORDER = ("harmful_instructions", "harmful_questions", "advbench")
PRESENTATIONS_ORDER = ("plain", "in-format")
STRATEGIES_ORDER = ("benign", "aoa", "autoif", "aoa+autoif")
NON_COMMERCIAL_MARKERS = ("NC", "non-commercial", "research use")
FIGURE_DIR = "figures"


@dataclass
class Aggregate:
    """One metric of one configuration, aggregated over its seeds."""

    config: CellKey
    metric: MetricKey
    values: list[float] = field(default_factory=list)
    lows: list[float] = field(default_factory=list)
    highs: list[float] = field(default_factory=list)
    n: list[int] = field(default_factory=list)
    unparsed: list[int] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)

    @property
    def value(self) -> float:
        return sum(self.values) / len(self.values)

    @property
    def ci(self) -> tuple[float | None, float | None]:
        if not self.lows or not self.highs:
            return None, None
        return sum(self.lows) / len(self.lows), sum(self.highs) / len(self.highs)

    @property
    def followed(self) -> float:
        """The share of replies whose answer could be parsed: for a task, how often the format was followed."""
        return 1 - sum(self.unparsed) / sum(self.n)

    def cell_text(self) -> str:
        low, high = self.ci
        text = f"{self.value:.2f}"
        if low is not None and high is not None:
            text += f" [{low:.2f}, {high:.2f}]"
        if len(self.values) > 1:
            text += f" (seeds {min(self.values):.2f}-{max(self.values):.2f})"
        n = f"n={self.n[0]}" if self.n and len(set(self.n)) == 1 else ""
        unparsed = sum(self.unparsed)
        extras = ", ".join(x for x in (n, f"{unparsed} unparsed" if unparsed else "") if x)
        return f"{text} ({extras})" if extras else text


Table = dict[CellKey, dict[MetricKey, Aggregate]]


def aggregate(rows: Iterable[ResultRow]) -> Table:
    """Configuration (a cell key pooled over seeds) -> metric -> Aggregate over seeds."""
    table: Table = defaultdict(dict)
    for row in rows:
        if row.value is None:
            continue
        config = row.cell.pooled
        metric = row.key
        if row.suite == TASK_SUITE and row.presentation == row.cell.strategy:
            metric = metric._replace(presentation="in-format")  # task items are always asked in the format
        agg = table[config].setdefault(metric, Aggregate(config, metric))
        agg.values.append(row.value)
        if row.ci_low is not None and row.ci_high is not None:
            agg.lows.append(row.ci_low)
            agg.highs.append(row.ci_high)
        agg.n.append(row.n)
        agg.unparsed.append(row.unparsed)
        agg.seeds.append(row.cell.seed)
    return table


def task_metrics(rows: Sequence[ResultRow]) -> dict[str, str]:
    """Each task's headline metric: the first task-suite metric evaluation reports for it (the spec's)."""
    found: dict[str, str] = {}
    for r in rows:
        if r.suite == TASK_SUITE:
            found.setdefault(r.cell.task, r.metric)
    return found


def _mitigation_order(config: CellKey) -> tuple[Any, ...]:
    """Baseline first, then `none`, then the other mitigations by name and amount."""
    return (config.mitigation != BASELINE, config.mitigation != "none", str(config.mitigation), config.amount or 0)


def _ordered(values: Iterable[Any], preferred: Sequence[Any] = ()) -> list[Any]:
    values = list(dict.fromkeys(values))
    return [v for v in preferred if v in values] + sorted((v for v in values if v not in preferred), key=str)


class ReportBuilder:
    def __init__(self, run_dir: Path, labels: Sequence[Path] = ()) -> None:
        self.run_dir = Path(run_dir)
        self.labels = list(labels)  # reader-label files: the decision rule reads them instead of the judge
        self.rows = read_results(self.run_dir / RESULTS_FILE)
        if not self.rows:
            raise MimicryError(f"{self.run_dir / RESULTS_FILE} has no rows yet: no cell has finished")
        self.table = aggregate(self.rows)
        self.task_metric_of = task_metrics(self.rows)
        # With several judges, figures use the first one listed in the evaluation settings.
        harm_rows = [r for r in self.rows if r.suite == HARM_SUITE and r.metric == HARM_METRIC]
        self.harm_judge = harm_rows[0].judge if harm_rows else None
        self.provenance = self._read_json("provenance.json")
        grid = self._read_json("grid.json")
        self.preamble = str(grid.get("preamble") or "").strip()
        self.decision = None if grid.get("decision") is None else DecisionRule.model_validate(grid["decision"])
        self.figures: list[tuple[str, str]] = []  # (title, relative path)

    def _read_json(self, name: str) -> dict[str, Any]:
        path = self.run_dir / name
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}

    # -- metric look-ups ---------------------------------------------------------------------------

    def harm_sets(self) -> list[str]:
        sets = {r.set for r in self.rows if r.suite == HARM_SUITE and r.metric == HARM_METRIC}
        return _ordered(sets, HARM_SETS_ORDER)

    def presentations(self, suite: str) -> list[str]:
        """The presentations a suite was asked in (judge-agreement rows span all of them, so not those)."""
        found = {r.presentation for r in self.rows if r.suite == suite and r.metric != KAPPA_METRIC}
        return _ordered(found, PRESENTATIONS_ORDER)

    def asr(self, config: CellKey, presentation: str, harm_set: str | None = None) -> Aggregate | None:
        """ASR of one set, or (harm_set None) the mean over the harmful sets present."""
        metrics = self.table.get(config, {})
        sets = [harm_set] if harm_set else self.harm_sets()
        found = [
            metrics[k]
            for k in (MetricKey(HARM_SUITE, HARM_METRIC, s, presentation, self.harm_judge) for s in sets)
            if k in metrics
        ]
        if not found:
            return None
        if len(found) == 1:
            return found[0]
        merged = Aggregate(config, MetricKey(HARM_SUITE, HARM_METRIC, "mean of sets", presentation, self.harm_judge))
        merged.values = [sum(a.value for a in found) / len(found)]
        lows = [a.ci[0] for a in found]
        highs = [a.ci[1] for a in found]
        if all(x is not None for x in lows + highs):
            merged.lows = [sum(lows) / len(lows)]  # type: ignore[arg-type]
            merged.highs = [sum(highs) / len(highs)]  # type: ignore[arg-type]
        return merged

    def task_accuracy(self, config: CellKey) -> Aggregate | None:
        found = [
            a
            for k, a in self.table.get(config, {}).items()
            if k.suite == TASK_SUITE and k.metric == self.task_metric_of.get(config.task)
        ]
        return found[0] if found else None

    def groups(self) -> dict[tuple[str, str], list[CellKey]]:
        """(model, task) -> its configurations, baseline first then by mitigation and amount."""
        grouped: dict[tuple[str, str], list[CellKey]] = defaultdict(list)
        for config in self.table:
            grouped[(config.model, config.task)].append(config)
        for configs in grouped.values():
            configs.sort(key=lambda c: (*_mitigation_order(c), str(c.strategy)))
        return grouped

    # -- figures -----------------------------------------------------------------------------------

    def _bars(self, ax: Any, configs: list[CellKey], value_of: Any, title: str, ylabel: str) -> None:
        strategies = _ordered((c.strategy for c in configs), STRATEGIES_ORDER)
        labels = list(dict.fromkeys(c.label for c in configs))
        width = 0.8 / max(len(labels), 1)
        for i, label in enumerate(labels):
            xs, ys, errs = [], [], [[], []]
            for j, strategy in enumerate(strategies):
                match = [c for c in configs if c.strategy == strategy and c.label == label]
                agg = value_of(match[0]) if match else None
                if agg is None:
                    continue
                low, high = agg.ci
                xs.append(j + (i - (len(labels) - 1) / 2) * width)
                ys.append(agg.value)
                errs[0].append(max(agg.value - low, 0) if low is not None else 0)
                errs[1].append(max(high - agg.value, 0) if high is not None else 0)
            if xs:
                ax.bar(xs, ys, width, yerr=errs, capsize=2, label=label)
        ax.set_xticks(range(len(strategies)), strategies)
        ax.set_ylim(0, 1.05)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel(ylabel)

    def _save(self, fig: Any, name: str, title: str) -> None:
        import matplotlib.pyplot as plt

        path = self.run_dir / FIGURE_DIR / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
        plt.close(fig)
        tmp.replace(path)
        self.figures.append((title, f"{FIGURE_DIR}/{name}"))

    def plot_all(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        for (model, task), configs in self.groups().items():
            slug = f"{model}_{task}".replace("/", "-")
            sets, presentations = self.harm_sets(), self.presentations(HARM_SUITE)
            if sets and presentations:
                fig, axes = plt.subplots(
                    len(presentations),
                    len(sets),
                    squeeze=False,
                    figsize=(4.2 * len(sets), 3.2 * len(presentations)),
                    layout="constrained",
                )
                for r, presentation in enumerate(presentations):
                    for c, harm_set in enumerate(sets):
                        self._bars(
                            axes[r][c],
                            configs,
                            lambda cfg, p=presentation, s=harm_set: self.asr(cfg, p, s),
                            f"{harm_set}, {presentation}",
                            "ASR",
                        )
                axes[0][-1].legend(fontsize=7, loc="upper right")
                fig.suptitle(f"ASR by strategy and mitigation: {model}, {task}")
                self._save(fig, f"asr_{slug}.png", f"ASR by strategy x mitigation ({model}, {task}; Figure 4)")
            task_metric = self.task_metric_of.get(task)
            if task_metric:
                fig, ax = plt.subplots(figsize=(6.5, 3.4), layout="constrained")
                self._bars(ax, configs, self.task_accuracy, f"{task}: {task_metric}", task_metric)
                ax.legend(fontsize=7)
                self._save(
                    fig,
                    f"task_{slug}.png",
                    f"Task accuracy by strategy x mitigation ({model}, {task}; Figure 5)",
                )
            if task_metric:
                self._scatter(configs, model, task, slug)
            self._amount_lines(configs, model, task, slug)

    def _scatter(self, configs: list[CellKey], model: str, task: str, slug: str) -> None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5.5, 4), layout="constrained")
        markers = dict(zip(_ordered(c.mitigation for c in configs), "osD^vP*X", strict=False))
        plotted = False
        for config in configs:
            harm, acc = self.asr(config, "in-format"), self.task_accuracy(config)
            if harm is None or acc is None:
                continue
            ax.scatter(
                acc.value,
                harm.value,
                marker=markers.get(config.mitigation, "o"),
                label=f"{config.strategy} / {config.label}",
            )
            plotted = True
        if not plotted:
            plt.close(fig)
            return
        ax.set_xlabel(f"task {self.task_metric_of[task]}")
        ax.set_ylabel("ASR, in-format (mean of harmful sets)")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=6, loc="best")
        ax.set_title(f"ASR against task accuracy: {model}, {task}", fontsize=9)
        self._save(fig, f"asr_vs_accuracy_{slug}.png", f"ASR against task accuracy ({model}, {task})")

    def amount_series(self, configs: list[CellKey], strategy: str) -> tuple[str, dict[str, list[tuple[float, float]]]]:
        """(presentation, mitigation -> [(amount, ASR)]) of one strategy; `none` is every line's amount 0.

        In-format ASR where the strategy was asked in its format, plain ASR where it was not (benign).
        """
        mixed = [c for c in configs if c.strategy == strategy and c.amount_kind is not None]
        presentation = "in-format" if any(self.asr(c, "in-format") for c in mixed) else "plain"
        zero = next((c for c in configs if c.strategy == strategy and c.mitigation == "none"), None)
        zero_asr = self.asr(zero, presentation) if zero else None
        series = {}
        for mitigation in _ordered(c.mitigation for c in mixed):
            points = [(0.0, zero_asr.value)] if zero_asr else []
            for config in sorted((c for c in mixed if c.mitigation == mitigation), key=lambda c: c.amount or 0):
                if (asr := self.asr(config, presentation)) is not None:
                    points.append((float(config.amount or 0), asr.value))
            series[mitigation] = points
        return presentation, series

    def _amount_lines(self, configs: list[CellKey], model: str, task: str, slug: str) -> None:
        """ASR against the amount of mixed safety data, one panel per strategy."""
        import matplotlib.pyplot as plt

        kinds = {c.amount_kind for c in configs if c.amount_kind is not None}
        if not kinds or not self.harm_sets():
            return
        strategies = _ordered((c.strategy for c in configs), STRATEGIES_ORDER)
        fig, axes = plt.subplots(
            1, len(strategies), squeeze=False, figsize=(4 * len(strategies), 3.2), layout="constrained"
        )
        for ax, strategy in zip(axes[0], strategies, strict=True):
            presentation, series = self.amount_series(configs, strategy)
            for mitigation, points in series.items():
                ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=mitigation)
            ax.set_xlabel("safety rows mixed in" if kinds == {"count"} else "safety rows per user row")
            ax.set_ylabel(f"ASR, {presentation}")
            ax.set_ylim(-0.02, 1.05)
            ax.set_title(strategy, fontsize=9)
            ax.legend(fontsize=7)
        fig.suptitle(f"ASR against the amount of safety data: {model}, {task}")
        self._save(fig, f"asr_vs_amount_{slug}.png", f"ASR against the amount of safety data ({model}, {task})")

    # -- markdown ----------------------------------------------------------------------------------

    def cell_tables(self) -> list[str]:
        lines: list[str] = []
        for (model, task), configs in self.groups().items():
            lines.append(f"### {model} on {task}\n")
            for config in configs:
                seeds = sorted({s for a in self.table[config].values() for s in a.seeds})
                tuned = "not fine-tuned" if config.mitigation == BASELINE else f"seeds {', '.join(map(str, seeds))}"
                lines.append(f"#### {config.strategy} / {config.label} ({tuned})\n")
                metrics = self.table[config]
                row_keys = _ordered(
                    {(k.suite, k.metric, k.set, k.judge) for k in metrics},
                    [(HARM_SUITE, HARM_METRIC, s, self.harm_judge) for s in HARM_SETS_ORDER],
                )
                presentations = _ordered({k.presentation for k in metrics}, PRESENTATIONS_ORDER)
                lines.append("| suite | metric | set | judge | " + " | ".join(presentations) + " |")
                lines.append("|---|---|---|---|" + "---|" * len(presentations))
                for suite, metric, set_name, judge in row_keys:
                    cells = [
                        metrics[key].cell_text()
                        if (key := MetricKey(suite, metric, set_name, p, judge)) in metrics
                        else ""
                        for p in presentations
                    ]
                    row = f"| {suite} | {metric} | {set_name} | {judge or ''} | "
                    lines.append(row + " | ".join(cells) + " |")
                lines.append("")
        return lines

    def summary_tables(self) -> list[str]:
        """One compact table per model x task: the headline numbers of every configuration."""
        lines: list[str] = []
        for (model, task), configs in self.groups().items():
            metric = self.task_metric_of.get(task, "task")
            lines += [
                f"### {model} on {task}\n",
                f"ASR is the mean over the harmful sets ({self.harm_judge} judge); over-refusal is the "
                "keyword refusal rate on the over-refusal sets; the task format is followed when the "
                "task's answer parser finds an answer in the reply.\n",
                f"| strategy | mitigation | ASR plain | ASR in-format | over-refusal plain | "
                f"over-refusal in-format | {metric} | task format followed |",
                "|---|---|---:|---:|---:|---:|---:|---:|",
            ]
            for config in sorted(configs, key=lambda c: (str(c.strategy), *_mitigation_order(c))):
                cells = [self.asr(config, p) for p in PRESENTATIONS_ORDER]
                cells += [self.overrefusal(config, p) for p in PRESENTATIONS_ORDER]
                cells.append(self.task_accuracy(config))
                text = [f"{a.value:.2f}" if a is not None else "" for a in cells]
                text.append(f"{cells[-1].followed:.2f}" if cells[-1] is not None and cells[-1].n else "")
                lines.append(f"| {config.strategy} | {config.label} | " + " | ".join(text) + " |")
            lines.append("")
        return lines

    def overrefusal(self, config: CellKey, presentation: str) -> Aggregate | None:
        found = [
            a
            for k, a in self.table.get(config, {}).items()
            if (k.suite, k.metric, k.presentation) == (OVERREFUSAL_SUITE, OVERREFUSAL_METRIC, presentation)
        ]
        if not found:
            return None
        merged = Aggregate(config, MetricKey(OVERREFUSAL_SUITE, OVERREFUSAL_METRIC, "mean of sets", presentation, None))
        merged.values = [sum(a.value for a in found) / len(found)]
        return merged

    def judge_agreement(self) -> list[str]:
        """Cohen's kappa per judge pair, over every cell's harm replies: how far the numbers depend on the judge."""
        by_pair: dict[str, list[tuple[float, int]]] = defaultdict(list)
        for r in self.rows:
            if r.suite == HARM_SUITE and r.metric == KAPPA_METRIC and r.value is not None:
                by_pair[str(r.judge)].append((r.value, r.n))
        if not by_pair:
            return ["Only one judge was run, so there is no agreement to report.", ""]
        lines = ["| judges | cells | replies judged | mean kappa | min | max |", "|---|---:|---:|---:|---:|---:|"]
        for pair, found in sorted(by_pair.items()):
            kappas = [k for k, _ in found]
            lines.append(
                f"| {pair} | {len(found)} | {sum(n for _, n in found)} | "
                f"{sum(kappas) / len(kappas):.2f} | {min(kappas):.2f} | {max(kappas):.2f} |"
            )
        lines.append("")
        return lines

    def paired_lines(self) -> list[str]:
        """Each mitigation against none and generic, in-format, paired on prompts (see `paired`)."""
        from mimicry.experiments.paired import comparison_lines, paired_comparisons

        root = self.provenance.get("artifacts_root")
        if not root or not self.harm_judge:
            return ["No paired comparison: the run records no artifacts root or no harm verdicts.", ""]
        return comparison_lines(paired_comparisons(self.rows, Path(root), self.harm_judge), self.harm_judge)

    def decision_lines(self) -> list[str]:
        """The grid's pre-stated rule applied to its cells (`experiments.decision`), when it states one."""
        from mimicry.experiments.decision import CellOutcomes, decision_lines

        root = self.provenance.get("artifacts_root")
        if self.decision is None or not root or not self.harm_judge:
            return []
        cells = CellOutcomes(self.rows, Path(root), self.harm_judge, self.labels)
        return decision_lines(self.decision, cells)

    def licence_notes(self) -> list[str]:
        from mimicry.data.root import data_root

        used = self.provenance.get("data_checksums", {})
        if not used:
            return ["`provenance.json` lists no data files, so the licences of the data used are unknown."]
        manifest = data_root().manifest()
        notes = [
            f"- `{path}`: {manifest[path].license}"
            for path in sorted(used)
            if path in manifest and any(m.lower() in manifest[path].license.lower() for m in NON_COMMERCIAL_MARKERS)
        ]
        if not notes:
            return ["No non-commercial dataset was used."]
        return [
            "These results rest on datasets licensed for non-commercial or research use only; "
            "do not use them, or models trained on them, commercially:",
            "",
            *notes,
        ]

    def cost_lines(self) -> list[str]:
        """The train and evaluate stages the runs computed: measured wall time beside the estimate made before."""
        labels = {r.cell_id: f"{r.cell.model} {r.cell.strategy} / {r.cell.label}" for r in self.rows}
        labels |= {r.cell_id: f"{labels[r.cell_id]} seed {r.cell.seed}" for r in self.rows if r.cell.seed is not None}
        timings = self._read_json("timings.json")
        rows = [t for t in timings.get("stages", []) if t.get("estimated_seconds") is not None and t.get("seconds")]
        if not rows:
            return ["The runs into this directory computed no train or evaluate stage (they reused them all).", ""]
        lines = [
            "Wall time of each stage the runs into this directory computed, beside what the cost estimate said "
            "before the run (`timings.json`).",
            "",
            "| cell | stage | measured (s) | estimated (s) | estimate / measured | rate from |",
            "|---|---|---|---|---|---|",
        ]
        for t in rows:
            ratio = t["estimated_seconds"] / t["seconds"]
            lines.append(
                f"| {labels.get(t['cell'], t['cell'])} | {t['stage']} | {t['seconds']:,.1f} | "
                f"{t['estimated_seconds']:,.1f} | {ratio:.2f} | {t.get('estimate_source', '')} |"
            )
        estimated, measured = estimated_and_measured(rows)
        lines.append(f"| **total** | | {measured:,.1f} | {estimated:,.1f} | {estimated / measured:.2f} | |")
        return [*lines, ""]

    def provenance_lines(self) -> list[str]:
        p = self.provenance
        lines = [
            f"- grid: `{p.get('grid')}`, config hash `{p.get('config_hash')}`",
            f"- git sha: `{p.get('git_sha')}`",
            f"- data root: `{p.get('data_root')}`",
            f"- artifacts: `{p.get('artifacts_root')}` (cell -> artifact keys in `index.json`)",
        ]
        for model in p.get("models", []):
            lines.append(
                f"- model: `{model['name']}`" + (" (aligned by the cached align stage)" if model.get("align") else "")
            )
        versions = ", ".join(f"{k} {v}" for k, v in p.get("package_versions", {}).items())
        lines.append(f"- packages: {versions}")
        lines += ["", "| data file | sha256 |", "|---|---|"]
        lines += [f"| `{f}` | `{digest}` |" for f, digest in sorted(p.get("data_checksums", {}).items())]
        return lines

    def build(self) -> Path:
        self.plot_all()
        seeds = sorted({r.cell.seed for r in self.rows if r.fine_tuned})
        lines = [
            f"# Report: {self.provenance.get('grid', self.run_dir.name)}",
            "",
            *([self.preamble, ""] if self.preamble else []),
            f"{len(self.table)} configurations, {len(self.rows)} result rows, seeds {seeds or '-'}. "
            "Values are proportions with bootstrap 95% intervals in brackets; `baseline` rows are the "
            "base (aligned) model without fine-tuning, asked in each strategy's format.",
            "",
        ]
        if len(seeds) > 1:
            lines += [
                "Across seeds, a value is the mean over seeds and its interval the mean of the per-seed "
                "95% bootstrap bounds; `(seeds a-b)` gives the range over seeds.",
                "",
            ]
        lines += ["## Summary", "", *self.summary_tables(), "## Judge agreement", "", *self.judge_agreement()]
        if decision := self.decision_lines():
            lines += ["## Decision rule", "", *decision]
        lines += ["## Paired comparisons", "", *self.paired_lines()]
        lines += ["## Figures", ""]
        lines += [f"### {title}\n\n![{title}]({path})\n" for title, path in self.figures]
        lines += [
            "## Results per cell",
            "",
            *self.cell_tables(),
            "## Cost: estimate against measured",
            "",
            *self.cost_lines(),
            "## Provenance",
            "",
            *self.provenance_lines(),
            "",
            "## Licences",
            "",
            *self.licence_notes(),
            "",
        ]
        report = self.run_dir / "report.md"
        atomic_write_text(report, "\n".join(lines))
        return report


def write_report(run_dir: Path) -> Path:
    return ReportBuilder(run_dir).build()

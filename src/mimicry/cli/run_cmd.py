"""`mimicry run CONFIG.yaml` runs a grid of cached stages; `mimicry report RUN_DIR` writes its report."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run every cell of an experiment grid (cached, resumable)")
    run.add_argument("config", help="the grid YAML (e.g. configs/quickstart.yaml)")
    run.add_argument("--run-dir", help="where the results table and index go (default: runs/<grid name>)")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="check every cell (names, settings, models, data building and mixing) without training",
    )
    run.add_argument(
        "--skip-align", action="store_true", help="fine-tune the models as named, without the alignment stage"
    )
    run.add_argument("--report", action="store_true", help="write the report when the run finishes")
    run.set_defaults(handler=run_handler)

    report = sub.add_parser("report", help="write report.md and figures for a run directory")
    report.add_argument("run_dir", help="a run directory written by `mimicry run`")
    report.add_argument(
        "--labels",
        help="comma-separated reader-label files (`mimicry eval export-labels`, labelled): the grid's decision "
        "rule reads them instead of the judge's verdicts",
    )
    report.set_defaults(handler=report_handler)

    decide = sub.add_parser(
        "decide",
        help="apply a grid's pre-stated decision rule to reader-labelled cells listed in a YAML, where the "
        "grid's stored replies are gone (e.g. docs/results/evidence/cells.yaml)",
    )
    decide.add_argument("cells", help="YAML: `config` (the grid) and `cells` (strategy, mitigation, seed, labels)")
    decide.add_argument("--out", help="write the markdown section here instead of printing it")
    decide.set_defaults(handler=decide_handler)


def run_handler(args: argparse.Namespace) -> int:
    from mimicry.console import info, out
    from mimicry.experiments.estimate import compare_timings, estimated_and_measured
    from mimicry.experiments.grid import load_grid
    from mimicry.experiments.report import write_report
    from mimicry.experiments.runner import run_grid

    grid = load_grid(args.config)
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / grid.name
    outcome = run_grid(grid, run_dir, dry_run=args.dry_run, skip_align=args.skip_align)
    computed = ", ".join(f"{n} {s}" for s, n in sorted(outcome.computed.items())) or "nothing"
    reused = ", ".join(f"{n} {s}" for s, n in sorted(outcome.reused.items())) or "nothing"
    verb = "checked" if args.dry_run else "ran"
    out.print(
        f"{verb} {outcome.cells} cells of {grid.name!r} in {outcome.seconds:.1f} s; "
        f"computed: {computed}; reused: {reused}",
        highlight=False,
        soft_wrap=True,
    )
    if args.dry_run:
        if outcome.estimate is not None:
            print_estimate(outcome.estimate)
        return 0
    out.print(f"{outcome.results} result rows in {run_dir / 'results.sqlite'}", highlight=False, soft_wrap=True)
    if outcome.estimate is not None:
        out.print(
            f"estimated beforehand: {duration(outcome.estimate.seconds)} (alignment not estimated); "
            f"measured stage times beside it in {run_dir / 'timings.json'}",
            highlight=False,
            soft_wrap=True,
        )
        compared = [t for t in compare_timings(outcome.estimate, outcome.timings) if "estimate_over_measured" in t]
        if compared:
            estimated, measured = estimated_and_measured(compared)
            out.print(
                f"the {len(compared)} train and evaluate stages it computed: estimated {duration(estimated)}, "
                f"measured {duration(measured)} (estimate / measured {estimated / measured:.2f})",
                highlight=False,
                soft_wrap=True,
            )
    if args.report:
        info(f"report: {write_report(run_dir)}")
    return 0


def print_estimate(estimate: Any) -> None:
    """The per-stage table of what is left to compute, and the total, at this machine's measured rates."""
    from rich.table import Table

    from mimicry.console import out

    table = Table(title="estimated cost on this machine of the stages to run (alignment not estimated)")
    for column in ("stage", "to run", "cached", "tokens", "estimate", "rate from"):
        table.add_column(column, justify="left" if column in ("stage", "rate from") else "right")
    for stage, row in estimate.by_stage().items():
        sources = ", ".join(row["sources"]) or "-"
        table.add_row(
            stage, str(row["to_run"]), str(row["cached"]), f"{row['tokens']:,}", duration(row["seconds"]), sources
        )
    table.add_row("total", "", "", "", duration(estimate.seconds), "", style="bold")
    out.print(table)
    for rate in estimate.rates.values():
        unit = "tokens/s" if rate.stage == "train" else "decoded tokens/s (budget; prefill and judging included)"
        check = ""
        if rate.check:
            ratios = ", ".join(f"{key[:8]} {ratio}" for key, ratio in rate.check.items())
            check = f"; each artifact predicted from the others, estimate/measured: {ratios}"
        out.print(
            f"{rate.stage} rate of {rate.model} ({rate.setting}): {rate.tokens_per_s:.1f} {unit}, {rate.source}{check}",
            highlight=False,
            soft_wrap=True,
        )
    for model, why in estimate.skipped.items():
        out.print(f"not estimated: the cells of {model} ({why})", highlight=False, soft_wrap=True)


def duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def report_handler(args: argparse.Namespace) -> int:
    from mimicry.console import out
    from mimicry.experiments.report import ReportBuilder

    labels = [Path(p) for p in args.labels.split(",") if p] if args.labels else []
    builder = ReportBuilder(Path(args.run_dir), labels)
    path = builder.build()
    summary = ["Paired comparisons", "", *builder.paired_lines()]
    if decision := builder.decision_lines():
        summary = ["Decision rule", "", *decision, *summary]
    out.print("\n".join(summary), markup=False, highlight=False, soft_wrap=True)
    out.print(f"wrote {path}", highlight=False, soft_wrap=True)
    return 0


def decide_handler(args: argparse.Namespace) -> int:
    from mimicry.config import load_yaml_config
    from mimicry.console import info, out
    from mimicry.errors import MimicryError
    from mimicry.experiments.decision import LabelFileCells, LabelledGrid, decision_lines
    from mimicry.experiments.grid import GridConfig
    from mimicry.records import atomic_write_text

    path = Path(args.cells)
    labelled = load_yaml_config(LabelledGrid, path)
    grid = load_yaml_config(GridConfig, path.parent / labelled.config)
    if grid.decision is None:
        raise MimicryError(f"{labelled.config} states no decision rule (`decision:`)")
    text = "\n".join(decision_lines(grid.decision, LabelFileCells(labelled, path.parent)))
    if args.out:
        atomic_write_text(args.out, text)
        info(f"wrote {args.out}")
    else:
        out.print(text, highlight=False, soft_wrap=True, markup=False)
    return 0

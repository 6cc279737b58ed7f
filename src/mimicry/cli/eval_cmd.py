"""`mimicry eval`: harm (ASR), over-refusal and task suites on a model; `mimicry eval validate-judges`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser(
        "eval",
        help="evaluate a model: attack success, over-refusal, task accuracy (or: eval validate-judges)",
        description="Run evaluation suites, or `mimicry eval validate-judges` to score the judges "
        "on the labelled validation set.",
    )
    ev.add_argument(
        "action",
        nargs="?",
        choices=["run", "validate-judges", "rescore", "export-labels", "compare"],
        default="run",
        help="run the suites (default), validate the judges, re-judge a stored run, "
        "export stored replies (comma-separated dirs) for labelling to --out, or compare two "
        "evaluations (A,B) on the same prompts with paired tests",
    )
    ev.add_argument(
        "target",
        nargs="?",
        help="validate-judges: a labels JSONL of real replies (without it: the synthetic set); "
        "rescore: the evaluation directory holding generations.jsonl; compare: EVAL_DIR_A,EVAL_DIR_B",
    )
    ev.add_argument("--model", help="model name, local directory or packaged model (required to run)")
    ev.add_argument("--suite", default="harm,overrefusal", help="comma-separated: harm, overrefusal, task")
    ev.add_argument("--task", help="task for the task suite, e.g. piqa")
    ev.add_argument("--strategy", help="strategy the model was tuned with (benign, aoa, autoif, aoa+autoif)")
    ev.add_argument(
        "--judge",
        help="comma-separated judge specs (default: keyword; validate-judges: "
        "keyword,learned), e.g. keyword,llm:openai:gpt-4o@https://api.openai.com/v1",
    )
    ev.add_argument("--limit", type=int, help="at most N prompts per set and N task examples (seeded sample)")
    ev.add_argument("--config", help="YAML file of EvalConfig keys; flags override it")
    ev.add_argument("--max-new-tokens", type=int)
    ev.add_argument("--batch-size", type=int)
    ev.add_argument("--seed", type=int)
    ev.add_argument(
        "--precision",
        choices=["auto", "bf16", "fp32"],
        help="transformers backend: auto (default; bf16 where this machine runs it measurably faster), bf16 or fp32",
    )
    ev.add_argument(
        "--backend",
        default="transformers",
        help="generation backend, as a grid's `generation.backend`: transformers (default), vllm or openai",
    )
    ev.add_argument(
        "--backend-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the backend, as in a grid's `generation.options` (repeatable; VALUE read as YAML), "
        "e.g. --backend-option max_lora_rank=64",
    )
    system = ev.add_mutually_exclusive_group()
    system.add_argument(
        "--system-prompt-from",
        type=Path,
        metavar="MIX",
        help="apply the inference-time system prompt of a PTST or BackdoorAlign mix, as the grid does: "
        "the mixed JSONL of `mimicry mix` (its .report.json beside it), that report, or a grid's mix "
        "artifact directory (its mix_report.json)",
    )
    system.add_argument(
        "--system-prompt",
        metavar="TEXT",
        help="replace every prompt's system message with TEXT (the wrapper --system-prompt-from uses)",
    )
    ev.add_argument("--advbench-sample", help="AdvBench prompts to use: a number or 'all' (default 100)")
    ev.add_argument("--harm-sets", help="comma-separated harmful prompt sets")
    ev.add_argument("--overrefusal-sets", help="comma-separated safe prompt sets")
    ev.add_argument("--out-dir", "--out", dest="out", help="output directory (default: artifacts/eval/<hash>)")
    ev.add_argument(
        "--labels",
        help="compare: reader labels (JSONL from export-labels, labelled) to compare by instead of a judge; "
        "export-labels: earlier label files whose labels carry over to identical prompt and reply texts",
    )
    ev.add_argument("--json", action="store_true", help="compare: print the rows as JSON")
    ev.add_argument("--write", help="validate-judges: write the markdown report to this file (same as --out)")
    ev.set_defaults(handler=eval_handler)


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def build_config(args: argparse.Namespace):  # -> EvalConfig
    from mimicry.config import load_yaml_config, with_overrides
    from mimicry.errors import MimicryError
    from mimicry.evaluation.suites import EvalConfig

    config = load_yaml_config(EvalConfig, args.config) if args.config else EvalConfig()
    advbench = (args.advbench_sample or "").strip().lower()
    if advbench and advbench != "all" and not advbench.isdigit():
        raise MimicryError(f"--advbench-sample takes a number or 'all', got {args.advbench_sample!r}")
    flags = {
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "limit": args.limit,
        "judges": _csv(args.judge) if args.judge else None,
        "harm_sets": _csv(args.harm_sets) if args.harm_sets else None,
        "overrefusal_sets": _csv(args.overrefusal_sets) if args.overrefusal_sets else None,
        "advbench_sample": int(advbench) if advbench.isdigit() else None,
    }
    config = with_overrides(config, flags, "eval options")
    # `all` is the config's None (every AdvBench prompt), which `with_overrides` reads as "not given".
    return config.model_copy(update={"advbench_sample": None}) if advbench == "all" else config


def print_summary(summary) -> None:  # summary: EvalSummary
    from rich.table import Table

    from mimicry.console import out

    table = Table(title=f"{summary.model}  ->  {summary.out_dir}")
    for col in ("suite", "metric", "set", "presentation", "judge"):
        table.add_column(col, overflow="fold")
    for col in ("value", "95% CI", "n", "unparsed"):
        table.add_column(col, justify="right")
    for r in summary.rows:
        table.add_row(
            r.suite,
            r.metric,
            r.set,
            r.presentation,
            r.judge or "",
            f"{r.value:.3f}",
            f"[{r.ci_low:.3f}, {r.ci_high:.3f}]",
            str(r.n),
            str(r.unparsed),
        )
    out.print(table)


def eval_handler(args: argparse.Namespace) -> int:
    if args.action == "validate-judges":
        return validate_handler(args)
    if args.action == "rescore":
        return rescore_handler(args)
    if args.action == "compare":
        return compare_handler(args)
    if args.action == "export-labels":
        return export_handler(args)
    from mimicry.errors import MimicryError
    from mimicry.evaluation.suites import EvalSpec, evaluate_spec, parse_suites
    from mimicry.generation.base import GenerationSettings
    from mimicry.hashing import hash_obj
    from mimicry.paths import artifacts_dir

    if not args.model:
        raise MimicryError("--model is required: a model name, a local directory or a packaged model")
    system_prompt = args.system_prompt or (
        inference_system_prompt(args.system_prompt_from) if args.system_prompt_from else None
    )
    # The spec the grid's evaluate stage runs; a bad suite name fails here, before the model loads.
    spec = EvalSpec(
        task=args.task,
        strategy=args.strategy,
        suites=parse_suites(args.suite),
        inference_system_prompt=system_prompt,
        evaluation=build_config(args),
        generation=GenerationSettings(backend=args.backend, options=backend_options(args)),
    )
    identity = {"model": args.model, "strategy": args.strategy, "task": args.task}
    if system_prompt:  # default directories of runs without a system prompt keep their names
        identity["system_prompt"] = system_prompt
    out = Path(args.out) if args.out else artifacts_dir() / "eval" / hash_obj(identity)
    summary = evaluate_spec(args.model, spec, out)
    print_summary(summary)
    return 0


def backend_options(args: argparse.Namespace) -> dict:
    """`--backend-option KEY=VALUE` pairs (values read as YAML), with `--precision` for transformers."""
    import yaml

    from mimicry.errors import MimicryError

    options: dict = {}
    for pair in args.backend_option:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise MimicryError(f"--backend-option takes KEY=VALUE, got {pair!r}")
        try:
            options[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise MimicryError(f"--backend-option {pair!r}: the value is not valid YAML") from None
    if args.precision is not None:
        if args.backend != "transformers":
            raise MimicryError(
                f"--precision applies to the transformers backend; give {args.backend}'s own setting with "
                "--backend-option (vllm: dtype=bfloat16)"
            )
        options["precision"] = args.precision
    return options


MIX_REPORT_NAMES = ("mix_report.json",)  # what a grid's mix artifact directory holds


def inference_system_prompt(source: Path) -> str | None:
    """The inference-time system prompt a mix asks for (None for methods without one).

    `source` is the mixed JSONL of `mimicry mix` (its `.report.json` lies beside it), that report,
    or a grid's mix artifact directory.
    """
    from mimicry.console import info
    from mimicry.errors import MimicryError

    if source.is_dir():
        report = source / MIX_REPORT_NAMES[0]
    elif source.suffix == ".jsonl":
        report = source.with_name(source.stem + ".report.json")
    else:
        report = source
    if not report.is_file():
        raise MimicryError(
            f"--system-prompt-from {source}: no mix report at {report}; give the mixed JSONL of "
            "`mimicry mix` (its .report.json beside it), that report, or a grid's mix artifact directory"
        )
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MimicryError(f"--system-prompt-from: {report} is not a JSON mix report ({err})") from None
    if not isinstance(data, dict) or "inference_system_prompt" not in data:
        raise MimicryError(f"--system-prompt-from: {report} has no `inference_system_prompt`; is it a mix report?")
    prompt = data["inference_system_prompt"]
    if not prompt:
        info(f"the {data.get('method', 'mix')} mix in {report} sets no inference-time system prompt; none applied")
    return prompt or None


def validate_handler(args: argparse.Namespace) -> int:
    from mimicry.console import info, out
    from mimicry.evaluation.judges import build_judge
    from mimicry.evaluation.validation import build_validation_set, validation_markdown
    from mimicry.records import atomic_write_text

    judges = [build_judge(spec) for spec in _csv(args.judge or "keyword,learned")]
    if args.target:
        from mimicry.evaluation.labelled import read_labels, validate_labelled

        report, _ = validate_labelled(judges, read_labels(args.target), source=args.target)
    else:
        report = validation_markdown(judges, build_validation_set())
    target = args.write or args.out
    out.print(report, markup=False, highlight=False, soft_wrap=True)
    if target:
        atomic_write_text(target, report)
        info(f"wrote {target}")
    return 0


def rescore_handler(args: argparse.Namespace) -> int:
    from mimicry.errors import MimicryError
    from mimicry.evaluation.suites import rescore

    if not args.target:
        raise MimicryError("name the evaluation directory to re-judge: mimicry eval rescore RUN_DIR --judge J")
    summary = rescore(Path(args.target), _csv(args.judge or "keyword"))
    print_summary(summary)
    return 0


def compare_handler(args: argparse.Namespace) -> int:
    from rich.table import Table

    from mimicry.console import out
    from mimicry.errors import MimicryError
    from mimicry.evaluation.compare import compare_evaluations

    dirs = _csv(args.target or "")
    if len(dirs) != 2:
        raise MimicryError(
            "usage: mimicry eval compare EVAL_DIR_A,EVAL_DIR_B [--judge keyword | --labels L.jsonl[,...]] [--json]"
        )
    rows = compare_evaluations(Path(dirs[0]), Path(dirs[1]), args.judge or "keyword", _csv(args.labels or ""))
    if args.json:
        out.print_json(json.dumps([r.model_dump() for r in rows]))
        return 0
    table = Table(title=f"B - A on the same prompts: A={dirs[0]}  B={dirs[1]}")
    for column in ("suite", "set", "presentation", "label", "n", "A", "B", "B - A [95% CI]", "McNemar p"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r.suite,
            r.set,
            r.presentation,
            r.label,
            str(r.n),
            f"{r.rate_a:.2f}",
            f"{r.rate_b:.2f}",
            f"{r.diff:+.2f} [{r.ci_low:+.2f}, {r.ci_high:+.2f}]",
            f"{r.mcnemar_p:.3g}",
        )
    out.print(table)
    return 0


def export_handler(args: argparse.Namespace) -> int:
    from mimicry.console import info
    from mimicry.errors import MimicryError
    from mimicry.evaluation.labelled import export_for_labelling
    from mimicry.records import atomic_write_text

    if not args.target or not args.out:
        raise MimicryError(
            "usage: mimicry eval export-labels EVAL_DIR[,EVAL_DIR...] --out to-label.jsonl [--strategy aoa] "
            "[--labels EARLIER.jsonl,...]"
        )
    rows = export_for_labelling(_csv(args.target), args.strategy)
    if args.labels:
        from mimicry.evaluation.labelled import reuse_labels

        labelled, rows = reuse_labels(rows, _csv(args.labels))
        reused = Path(args.out).with_suffix(".reused.jsonl")
        atomic_write_text(reused, "".join(r.model_dump_json(exclude_none=True) + "\n" for r in labelled))
        info(f"wrote {len(labelled)} replies labelled as an identical earlier reply to {reused}")
    atomic_write_text(args.out, "".join(r.model_dump_json(exclude_none=True) + "\n" for r in rows))
    info(f"wrote {len(rows)} unlabelled replies to {args.out}")
    return 0

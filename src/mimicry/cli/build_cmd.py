"""`mimicry build`: a task rendered in a strategy as OpenAI chat JSONL; `mimicry show`: read one back."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mimicry.records import Conversation

ROLE_STYLES = {"system": "magenta", "user": "cyan", "assistant": "green", "tool": "yellow"}


def register(sub: argparse._SubParsersAction) -> None:
    build = sub.add_parser("build", help="write a task's split in a prompting strategy as OpenAI chat JSONL")
    build.add_argument("--task", required=True, help="task name (see `mimicry tasks list`)")
    build.add_argument("--strategy", required=True, help="benign, aoa, autoif or aoa+autoif")
    build.add_argument("--split", default="train", help="split to build from (default: train)")
    build.add_argument("--limit", type=int, help="number of examples, a seeded sample (default: all)")
    build.add_argument("--seed", type=int, default=0, help="seed of the sample (default: 0)")
    build.add_argument("--out", required=True, type=Path, help="output .jsonl file")
    build.add_argument("--with-meta", action="store_true", help="keep each conversation's meta (task, id, gold)")
    build.add_argument(
        "--converter",
        choices=["template", "llm"],
        default="template",
        help="how autoif strategies write long-form answers (default: template)",
    )
    build.add_argument("--backend", default="transformers", help="generation backend for --converter llm")
    build.add_argument("--model", help="model for --converter llm (e.g. smollm2)")
    build.add_argument("--max-new-tokens", type=int, default=256, help="rewrite length for --converter llm")
    build.set_defaults(handler=build_handler)

    show = sub.add_parser("show", help="print a few conversations of a JSONL/JSON file, reporting rejected lines")
    show.add_argument("file", type=Path)
    show.add_argument("--limit", "-n", type=int, default=3, help="how many conversations to print (default: 3)")
    show.add_argument("--strict", action="store_true", help="any rejected line is an error (exit 3)")
    show.add_argument("--json", action="store_true", help="print the conversations and rejections as JSON")
    show.set_defaults(handler=show_handler)


def build_handler(args: argparse.Namespace) -> int:
    from mimicry.console import info
    from mimicry.data.outputs import check_outputs
    from mimicry.errors import MimicryError
    from mimicry.records import write_conversations
    from mimicry.strategies import LLMConverter, build_conversations, get_strategy
    from mimicry.tasks import load_task

    load_task(args.task)
    strategy = get_strategy(args.strategy)
    if args.limit is not None and args.limit <= 0:
        raise MimicryError(f"--limit must be positive, got {args.limit}")
    if args.out.suffix != ".jsonl":
        raise MimicryError(f"--out must be a .jsonl file, got {args.out}")
    check_outputs([], [args.out])
    converter = None
    if args.converter == "llm":
        if not args.model:
            raise MimicryError("--converter llm needs --model (and optionally --backend)")
        if not strategy.long_form:
            raise MimicryError(f"--converter llm only applies to autoif strategies, not {strategy.name!r}")
        from mimicry.generation import GenerationConfig, get_backend
        from mimicry.hashing import hash_obj
        from mimicry.paths import artifacts_dir

        backend = get_backend(args.backend, args.model)
        cache = artifacts_dir() / "autoif" / f"{hash_obj([args.backend, backend.model_id])}.jsonl"
        converter = LLMConverter(backend, cache, GenerationConfig(max_new_tokens=args.max_new_tokens))
    conversations = build_conversations(args.task, args.strategy, args.split, args.limit, args.seed, converter)
    count = write_conversations(args.out, conversations, with_meta=args.with_meta)
    info(f"wrote {count} {strategy.name} conversations of {args.task}/{args.split} to {args.out}")
    if isinstance(converter, LLMConverter):
        info(
            f"LLM converter: {converter.generated} generated, {converter.cache_hits} from cache, "
            f"{converter.fallbacks} fell back to the template"
        )
    return 0


def print_conversation(conversation: Conversation, title: str) -> None:
    from rich.panel import Panel
    from rich.text import Text

    from mimicry.console import out

    body = Text()
    for message in conversation.messages:
        style = ROLE_STYLES[message.role]
        body.append(f"{message.role}: ", style=f"bold {style}")
        body.append(message.content + "\n", style=style)
    if conversation.meta:
        body.append(f"meta: {conversation.meta}", style="dim")
    body.rstrip()
    out.print(Panel(body, title=Text(title), title_align="left"))


def show_handler(args: argparse.Namespace) -> int:
    import json

    from mimicry.console import info, out, warn
    from mimicry.errors import DataError
    from mimicry.records import read_conversations

    report = read_conversations(args.file)
    shown = report.conversations[: max(args.limit, 0)]
    if args.json:
        body = {"conversations": [c.to_openai(with_meta=True) for c in shown], **report.as_dict()}
        out.print_json(json.dumps(body, ensure_ascii=False))
    else:
        for i, conversation in enumerate(shown, start=1):
            print_conversation(conversation, title=f"{args.file.name} #{i}")
        for rejection in report.rejected:
            warn(f"line {rejection.line} rejected: {rejection.reason}")
        if report.ignored_keys:
            warn(report.ignored_summary())
        (warn if report.rejected else info)(report.summary())
    if report.rejected and (args.strict or not report.conversations):
        raise DataError(f"{args.file}: {len(report.rejected)} lines rejected, first line {report.rejected[0].line}")
    return 0

"""`mimicry tasks list|show`: the task specs and what their examples look like."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    tasks = sub.add_parser("tasks", help="list the tasks and show their specs")
    tasks_sub = tasks.add_subparsers(dest="tasks_command", metavar="ACTION", required=True)
    tasks_sub.add_parser("list", help="every task: answer kind, metric, splits").set_defaults(handler=list_handler)
    show = tasks_sub.add_parser("show", help="print a task's spec and one example rendered in a strategy")
    show.add_argument("name", help="task name (see `mimicry tasks list`)")
    show.add_argument("--strategy", default="benign", help="strategy to render the example in (default: benign)")
    show.add_argument("--split", default="train", help="split to take the example from (default: train)")
    show.set_defaults(handler=show_handler)


def list_handler(args: argparse.Namespace) -> int:
    from rich.table import Table

    from mimicry.console import out
    from mimicry.tasks import TASKS

    table = Table(title=f"{len(TASKS.names())} tasks (`mimicry tasks show NAME` for details)")
    for col in ("task", "answer kind", "metric", "splits"):
        table.add_column(col, no_wrap=True)
    for name in TASKS:
        spec = TASKS.get(name)
        carved = " (carved)" if spec.carve else ""
        table.add_row(name, spec.answer_kind, spec.metric, ", ".join(spec.split_names()) + carved)
    out.print(table)
    return 0


def show_handler(args: argparse.Namespace) -> int:
    from rich.syntax import Syntax

    from mimicry.cli.build_cmd import print_conversation
    from mimicry.console import out
    from mimicry.strategies import get_strategy
    from mimicry.tasks import SPECS_DIR, load_task

    spec = load_task(args.name)
    strategy = get_strategy(args.strategy)
    out.print(Syntax((SPECS_DIR / f"{spec.name}.yaml").read_text(encoding="utf-8"), "yaml", word_wrap=True))
    example = spec.examples(args.split, limit=1, seed=0)[0]
    print_conversation(strategy.render(example), title=f"{spec.name} {args.split} {example.id} as {strategy.name}")
    return 0

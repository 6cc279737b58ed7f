"""Does a long grid keep its memory? A grid's resident memory after each cell, with and without
`release_memory`, measured in one run.

    python benchmarks/bench_grid_memory.py                      # smollm2-135m, 3 AOA cells
    python benchmarks/bench_grid_memory.py --model qwen2.5-coder-0.5b --seeds 3

A grid runs every stage in one process. Each side runs the same small grid (AOA × none, one cell
per seed: train, then evaluate) in a fresh process with its own artifact store, and prints the
process's RSS after each cell. "gc only" replaces `release_memory` by `gc.collect`, as the stages
were before it; "as shipped" hands freed heap pages back with glibc's `malloc_trim`.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil


def resident_gib() -> float:
    return psutil.Process().memory_info().rss / 2**30


def one_side(args: argparse.Namespace) -> None:
    """Run the grid in this process and print one JSON line: RSS after each cell."""
    import mimicry.memory
    from mimicry.artifacts import ArtifactStore
    from mimicry.experiments.grid import GridConfig, expand
    from mimicry.experiments.runner import Runner

    if args.side == "gc only":
        mimicry.memory.release_memory = gc.collect  # what `materialize` calls, looked up at each call
    grid = GridConfig.model_validate(
        {
            "name": "memory",
            "models": [{"name": args.model}],
            "tasks": ["piqa"],
            "strategies": ["aoa"],
            "mitigations": [{"method": "none"}],
            "seeds": list(range(args.seeds)),
            "data": {"split": "train", "limit": args.rows},
            "training": {"method": "lora", "epochs": 1, "batch_size": 4, "max_length": 256, "save_steps": 1000},
            "evaluation": {
                "limit": args.prompts,
                "advbench_sample": args.prompts,
                "harm_sets": ["harmful_instructions"],
                "overrefusal_sets": ["xstest_safe"],
                "max_new_tokens": args.new_tokens,
                "task_max_new_tokens": 16,
                "batch_size": args.prompts,
                "judges": ["keyword"],
            },
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        runner = Runner(grid, Path(tmp) / "run", store=ArtifactStore(Path(tmp) / "store"), show_progress=False)
        after = [round(resident_gib(), 2)]
        for cell in expand(grid):
            if cell.fine_tuned:
                runner.run_cell(cell)
                after.append(round(resident_gib(), 2))
    print(json.dumps({"side": args.side, "rss_gib": after}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--seeds", type=int, default=3, help="cells (one per seed)")
    parser.add_argument("--rows", type=int, default=32, help="user rows each cell trains on")
    parser.add_argument("--prompts", type=int, default=16, help="prompts per set, and task items")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--side", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        one_side(args)
        return
    cells = f"{args.seeds} cells (AOA x none: train, evaluate)"
    print(f"model {args.model}, {cells}, {args.rows} rows, {args.prompts} prompts per set")
    print("RSS (GiB) at the start and after each cell:")
    for side in ("gc only", "as shipped"):
        command = [sys.executable, __file__, *sys.argv[1:], "--side", side]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{side:11s} " + "  ".join(f"{x:5.2f}" for x in result["rss_gib"]))


if __name__ == "__main__":
    main()

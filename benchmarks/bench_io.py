"""Data-command speed on big inputs: a 100k-row file and a file with one 5 MB line.

Prints CPU seconds of the guarded reader against the plain `json.loads` per line it replaced
(the old reader, measured in the same run), then of `format infer`, `audit` and `mix --method
generic` run in-process on each file (each command reads the file itself).
Run: python benchmarks/bench_io.py [--rows 100000] [--line-mb 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def _rows(n: int) -> str:
    return "".join(
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": f"Question {i}: what is {i} plus {i * 3}?"},
                    {"role": "assistant", "content": f"The answer is {i + i * 3}."},
                ]
            }
        )
        + "\n"
        for i in range(n)
    )


def _big_line(megabytes: float) -> str:
    rows = _rows(30)
    text = "word " * int(megabytes * 2**20 / 5)
    big = {"messages": [{"role": "user", "content": "Summarise this."}, {"role": "assistant", "content": text}]}
    return rows + json.dumps(big) + "\n"


def _old_reader(path: Path) -> int:
    """The reader before issue 16: decode, splitlines, json.loads per line."""
    return sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip() and json.loads(line))


def _cpu(fn: Callable[[], object]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def _command(argv: list[str]) -> Callable[[], object]:
    from mimicry.cli import main

    def run() -> None:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            code = main(argv)
        if code != 0:
            raise SystemExit(f"{argv} exited {code}")

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--line-mb", type=float, default=5.0)
    args = parser.parse_args()

    from mimicry.data.jsonl import iter_jsonl

    with tempfile.TemporaryDirectory() as tmp:
        files = {
            f"{args.rows} rows": Path(tmp) / "rows.jsonl",
            f"one {args.line_mb:g} MB line": Path(tmp) / "big.jsonl",
        }
        files[f"{args.rows} rows"].write_text(_rows(args.rows), encoding="utf-8")
        files[f"one {args.line_mb:g} MB line"].write_text(_big_line(args.line_mb), encoding="utf-8")
        print(f"{'input':<18} {'MB':>6} {'old read':>9} {'new read':>9} {'format infer':>13} {'audit':>7} {'mix':>7}")
        for name, path in files.items():
            old = _cpu(lambda p=path: _old_reader(p))
            new = _cpu(lambda p=path: sum(1 for _ in iter_jsonl(p)))
            infer = _cpu(_command(["format", "infer", str(path), "--json"]))
            audit = _cpu(_command(["audit", str(path), "--json"]))
            mix = _cpu(_command(["mix", str(path), "--method", "generic", "--count", "10", "--out", f"{tmp}/m.jsonl"]))
            size = path.stat().st_size / 2**20
            print(f"{name:<18} {size:>6.1f} {old:>8.2f}s {new:>8.2f}s {infer:>12.2f}s {audit:>6.2f}s {mix:>6.2f}s")
    print("CPU seconds (time.process_time), one run each")


if __name__ == "__main__":
    main()

"""The `mimicry` command: one entry point, one module per subcommand group.

Every `*_cmd` module in this package is discovered and exposes `register(subparsers)`, which
adds its parsers and sets `handler` on them. Handlers import heavy libraries themselves, so `mimicry --help`
stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import signal
import sys
import threading
from collections.abc import Sequence

from mimicry import __version__
from mimicry.errors import MimicryError


def command_modules() -> list[str]:
    return sorted(f"{__name__}.{m.name}" for m in pkgutil.iter_modules(__path__) if m.name.endswith("_cmd"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mimicry",
        description="Fine-tuning attacks on closed LLMs, and the mimicking-safety-data defence.",
    )
    parser.add_argument("--version", action="version", version=f"mimicry {__version__}")
    parser.add_argument("--data-root", help="the public data bundle (default: $MIMICRY_DATA)")
    parser.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="URL=VARIABLE",
        help="allow sending the API key in $VARIABLE to the OpenAI-compatible URL (repeatable)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in command_modules():
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    if args.data_root:
        from mimicry.data.root import set_data_root

        set_data_root(args.data_root)
    main_thread = threading.current_thread() is threading.main_thread()
    try:
        if args.endpoint:
            from mimicry.generation.openai_backend import trust_endpoint

            for pair in args.endpoint:
                trust_endpoint(pair)
    except MimicryError as err:
        print(f"mimicry: error: {err}", file=sys.stderr)
        return err.exit_code
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        return int(handler(args) or 0)
    except MimicryError as err:
        print(f"mimicry: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("mimicry: interrupted; finished work is kept and a rerun resumes", file=sys.stderr)
        return 130
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so pending temporary files are removed on the way out."""
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())

"""One rich console for the whole package: messages to stderr, tables and results to stdout."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape

out = Console()
err = Console(stderr=True)


def warn(message: str) -> None:
    """Print a warning; the message is text (it may quote data), never markup."""
    err.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False, soft_wrap=True)


def info(message: str) -> None:
    err.print(message, highlight=False, markup=False, soft_wrap=True)

"""One rich console for the whole package: messages to stderr, tables and results to stdout."""

from __future__ import annotations

from rich.console import Console

out = Console()
err = Console(stderr=True)


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {message}", highlight=False)


def info(message: str) -> None:
    err.print(message, highlight=False)

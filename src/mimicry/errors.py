"""User-facing errors: the CLI prints their message and exits non-zero, without a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MimicryError(Exception):
    """An error caused by input the user can fix; the message says how. Exit code 2."""

    exit_code = 2


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """Return ' Did you mean X?' for the closest known name, or ''."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
    return f" Did you mean {close[0]!r}?" if close else ""


def unknown_name(kind: str, name: str, known: Iterable[str]) -> MimicryError:
    """The standard error for an unknown registry or config name: lists every valid one."""
    known = sorted(known)
    return MimicryError(f"unknown {kind} {name!r}.{did_you_mean(name, known)} Known: {', '.join(known)}")


class DataError(MimicryError):
    """The data failed a check (corruption, rejected lines under --strict): exit code 3, not 2."""

    exit_code = 3

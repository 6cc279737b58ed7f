"""A guarded SQLite database for running SQL that came from a dataset or a model.

Why: SQL scoring executes the task's CREATE TABLE context and the model's query. Untrusted SQL
could ATTACH a file (creating it on disk), flip pragmas, load an extension, or loop forever with a
recursive CTE. The database is in memory; an authorizer allows only what each phase needs (the
schema phase creates tables and inserts rows, the query phase only reads); a progress handler
aborts any statement past its step or time budget, and value sizes are capped, so one hostile
answer costs at most a fraction of a second and scores as a failed match.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

STEP_BUDGET = 5_000_000
SECONDS_BUDGET = 0.3
MAX_VALUE_BYTES = 1_000_000
PROGRESS_EVERY = 1_000

_READ = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
_SCHEMA = _READ | {
    sqlite3.SQLITE_CREATE_TABLE,
    sqlite3.SQLITE_INSERT,
    sqlite3.SQLITE_UPDATE,
    sqlite3.SQLITE_TRANSACTION,
}
_READ_PRAGMAS = {"table_info"}
_DENIED_FUNCTIONS = {"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"}


class GuardedDatabase:
    """An in-memory SQLite connection whose statements are authorized and budgeted; use as a context manager."""

    def __init__(self, seconds: float = SECONDS_BUDGET, steps: int = STEP_BUDGET) -> None:
        self.seconds, self.steps = seconds, steps
        self.conn = sqlite3.connect(":memory:", isolation_level=None)
        self.conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
        self.conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        self.allowed = _SCHEMA
        self.conn.set_authorizer(self._authorize)
        self._deadline = 0.0
        self._count = 0
        self.conn.set_progress_handler(self._progress, PROGRESS_EVERY)

    def _authorize(self, action: int, arg1: str | None, arg2: str | None, db: str | None, source: str | None) -> int:
        if action == sqlite3.SQLITE_PRAGMA:
            return sqlite3.SQLITE_OK if arg1 in _READ_PRAGMAS and arg2 is not None else sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in _DENIED_FUNCTIONS:
            return sqlite3.SQLITE_DENY
        if action in (sqlite3.SQLITE_READ, sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE) and db not in (
            None,
            "main",
            "temp",
        ):
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK if action in self.allowed else sqlite3.SQLITE_DENY

    def _progress(self) -> int:
        self._count += PROGRESS_EVERY
        return int(self._count > self.steps or time.monotonic() > self._deadline)

    def _budget(self) -> None:
        self._count, self._deadline = 0, time.monotonic() + self.seconds

    def read_only(self) -> None:
        """From now on, statements may only read (the phase that runs untrusted queries)."""
        self.allowed = _READ

    def execute(self, sql: str, params: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        self._budget()
        return self.conn.execute(sql, params).fetchall()

    def executescript(self, sql: str) -> None:
        self._budget()
        self.conn.executescript(sql)

    def __enter__(self) -> GuardedDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()

"""The results table: one SQLite row per cell x metric, rewritten atomically after every cell."""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mimicry.errors import MimicryError

RESULTS_FILE = "results.sqlite"
TABLE = "results"

# (column, SQLite type): the cell, the metric row from evaluation, and the artifacts behind it.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("cell_id", "TEXT"),
    ("model", "TEXT"),
    ("task", "TEXT"),
    ("strategy", "TEXT"),
    ("mitigation", "TEXT"),
    ("amount_kind", "TEXT"),
    ("amount", "REAL"),
    ("seed", "INTEGER"),
    ("fine_tuned", "INTEGER"),
    ("suite", "TEXT"),
    ("metric", "TEXT"),
    ("set", "TEXT"),
    ("presentation", "TEXT"),
    ("judge", "TEXT"),
    ("value", "REAL"),
    ("ci_low", "REAL"),
    ("ci_high", "REAL"),
    ("n", "INTEGER"),
    ("unparsed", "INTEGER"),
    ("align_key", "TEXT"),
    ("build_key", "TEXT"),
    ("mix_key", "TEXT"),
    ("train_key", "TEXT"),
    ("eval_key", "TEXT"),
    ("max_new_tokens", "INTEGER"),
)
COLUMN_NAMES = tuple(name for name, _ in COLUMNS)


def write_results(path: Path, rows: Iterable[Mapping[str, Any]]) -> int:
    """Write the whole table to a temporary database, then rename it over the old one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with sqlite3.connect(tmp) as db:
            columns = ", ".join(f'"{name}" {kind}' for name, kind in COLUMNS)
            db.execute(f"CREATE TABLE {TABLE} ({columns})")
            placeholders = ", ".join("?" for _ in COLUMNS)
            values = [tuple(row.get(name) for name in COLUMN_NAMES) for row in rows]
            db.executemany(f"INSERT INTO {TABLE} VALUES ({placeholders})", values)
        db.close()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(values)


def read_results(path: Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        raise MimicryError(f"no results table at {path}: run `mimicry run CONFIG.yaml --run-dir {path.parent}` first")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        try:
            rows = [dict(r) for r in db.execute(f"SELECT * FROM {TABLE}")]
        except sqlite3.DatabaseError as err:
            raise MimicryError(f"{path} is not a mimicry results table: {err}") from None
    return rows

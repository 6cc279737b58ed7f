"""The results table: one SQLite row per cell x metric, rewritten atomically after every cell.

A row is a `ResultRow`: the evaluation's `MetricRow`, the `CellKey` of the cell it measures and the
keys of the artifacts behind it. The table's columns are those fields, flattened, so a field added
to either model becomes a column; a table written before a column existed still reads (the column
takes the field's default).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mimicry.errors import MimicryError
from mimicry.evaluation.suites import MetricRow
from mimicry.experiments.grid import CellKey

RESULTS_FILE = "results.sqlite"
TABLE = "results"

# Which table column holds the key of which stage's artifact.
KEY_COLUMNS = {
    "align": "align_key",
    "build": "build_key",
    "mix": "mix_key",
    "train": "train_key",
    "evaluate": "eval_key",
}


class ResultRow(MetricRow):
    """One metric of one cell, with the artifacts behind it."""

    cell_id: str
    cell: CellKey
    fine_tuned: bool
    align_key: str | None = None
    build_key: str | None = None
    mix_key: str | None = None
    train_key: str | None = None
    eval_key: str | None = None

    def columns(self) -> dict[str, Any]:
        """The row as table columns: the cell's fields inline."""
        data = self.model_dump(exclude={"cell"})
        return {**data, **self.cell.model_dump()}

    @classmethod
    def from_columns(cls, columns: Mapping[str, Any]) -> ResultRow:
        """A row from table columns; a column the table lacks takes the field's default."""
        data = {k: v for k, v in columns.items() if k in cls.model_fields}
        cell = {k: v for k, v in columns.items() if k in CellKey.model_fields}
        return cls.model_validate({**data, "cell": cell})


_SQL_TYPES = {str: "TEXT", float: "REAL", int: "INTEGER", bool: "INTEGER"}


def _sql_type(annotation: Any) -> str:
    """The SQLite type of a field: of its one non-None type (`float | None` -> REAL, a Literal of strings -> TEXT)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (annotation,) = args
        args = list(typing.get_args(annotation))
    if typing.get_origin(annotation) is typing.Literal:
        annotation = type(args[0])
    return _SQL_TYPES[annotation]


def _columns() -> tuple[tuple[str, str], ...]:
    """The cell first (its id, key fields, whether fine-tuned), then the metric, then the artifact keys."""
    fields = {name: f for name, f in ResultRow.model_fields.items() if name not in MetricRow.model_fields}
    cell = {"cell_id": fields.pop("cell_id"), **CellKey.model_fields, "fine_tuned": fields.pop("fine_tuned")}
    del fields["cell"]
    ordered = {**cell, **MetricRow.model_fields, **fields}
    return tuple((name, _sql_type(f.annotation)) for name, f in ordered.items())


# (column, SQLite type), derived from `ResultRow` and `CellKey`.
COLUMNS: tuple[tuple[str, str], ...] = _columns()
COLUMN_NAMES = tuple(name for name, _ in COLUMNS)


def write_results(path: Path, rows: Iterable[ResultRow]) -> int:
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
            values = [tuple(row.columns()[name] for name in COLUMN_NAMES) for row in rows]
            db.executemany(f"INSERT INTO {TABLE} VALUES ({placeholders})", values)
        db.close()
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(values)


def read_results(path: Path) -> list[ResultRow]:
    path = Path(path)
    if not path.is_file():
        raise MimicryError(f"no results table at {path}: run `mimicry run CONFIG.yaml --run-dir {path.parent}` first")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        db.row_factory = sqlite3.Row
        try:
            rows = [dict(r) for r in db.execute(f"SELECT * FROM {TABLE}")]
        except sqlite3.DatabaseError as err:
            raise MimicryError(f"{path} is not a mimicry results table: {err}") from None
    return [ResultRow.from_columns(r) for r in rows]

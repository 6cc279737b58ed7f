"""Generic readers that turn a bundle file into a list of raw records (dicts).

A task spec names its reader; adding a task with a new file layout means registering one
reader here, not writing task-specific code. Every reader reports the file and line of a
record it cannot parse.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mimicry.errors import MimicryError
from mimicry.registry import Registry

Record = dict[str, Any]
Reader = Callable[[Path, list[str] | None], list[Record]]

READERS: Registry[Reader] = Registry("task file reader")


def _jsonl_objects(path: Path) -> list[Record]:
    records = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise MimicryError(
                f"{path}: line {lineno} is not valid JSON ({err.msg}); fix or restore the file"
            ) from None
        if not isinstance(obj, dict):
            raise MimicryError(f"{path}: line {lineno} is not a JSON object")
        records.append(obj)
    return records


@READERS.register("jsonl")
def read_jsonl(path: Path, columns: list[str] | None = None) -> list[Record]:
    """One JSON object per line; blank lines and CRLF endings (WinoGrande) are tolerated."""
    return _jsonl_objects(path)


@READERS.register("json_list")
def read_json_list(path: Path, columns: list[str] | None = None) -> list[Record]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise MimicryError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise MimicryError(f"{path}: expected a JSON list of objects")
    return data


@READERS.register("tsv")
def read_tsv(path: Path, columns: list[str] | None = None) -> list[Record]:
    """Tab-separated with a header row; quotes are literal text (SST-2 sentences contain them)."""
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    for i, row in enumerate(rows, start=2):
        if None in row or any(v is None for v in row.values()):
            raise MimicryError(f"{path}: line {i} does not have the header's {len(rows[0])} columns")
    return rows


@READERS.register("csv_no_header")
def read_csv_no_header(path: Path, columns: list[str] | None = None) -> list[Record]:
    """Comma-separated, quoted, no header (AG News): the spec names the columns."""
    if not columns:
        raise MimicryError(f"{path}: the csv_no_header reader needs `columns` in the task spec")
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    records = []
    for i, row in enumerate(rows, start=1):
        if len(row) != len(columns):
            raise MimicryError(f"{path}: line {i} has {len(row)} columns, the spec names {len(columns)}")
        records.append(dict(zip(columns, row, strict=True)))
    return records


def read_aligned_labels(path: Path, count: int) -> list[str]:
    """A label file with one label per line, aligned with the records of another file (PIQA)."""
    labels = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(labels) != count:
        raise MimicryError(f"{path} holds {len(labels)} labels but its data file holds {count} records")
    return labels

"""Append-only JSONL record files that survive interruption.

Each batch of generations or verdicts is appended and fsynced as soon as it exists, so a run
killed mid-way loses at most the batch in flight; a rerun reads the keys already present and
skips them. A half-written last line (the process died inside a write) is dropped on open.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


class RecordStore:
    """Records keyed by their `key` field; the last record written for a key wins."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._records: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        raw = self.path.read_bytes()
        complete, _, partial = raw.rpartition(b"\n")
        if partial:
            # The last write was cut off: keep only whole lines, on disk too, so appends stay valid.
            with open(self.path, "r+b") as fh:
                fh.truncate(len(complete) + 1 if complete else 0)
        for line in complete.decode("utf-8").splitlines() if complete else []:
            if line.strip():
                record = json.loads(line)
                self._records[record["key"]] = record

    def __contains__(self, key: object) -> bool:
        return key in self._records

    def __len__(self) -> int:
        return len(self._records)

    def get(self, key: str) -> dict[str, Any] | None:
        return self._records.get(key)

    def records(self) -> list[dict[str, Any]]:
        return list(self._records.values())

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        batch = list(records)
        if not batch:
            return
        if any("key" not in r for r in batch):
            raise ValueError("every record needs a 'key'")
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in batch))
            fh.flush()
            os.fsync(fh.fileno())
        for r in batch:
            self._records[r["key"]] = r

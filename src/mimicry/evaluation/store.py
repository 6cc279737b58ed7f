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


def evaluation_work(eval_dir: Path, tokenizer: Any = None) -> dict[str, int]:
    """What an evaluation generated: prompts and decode budget (the sum of their `max_new_tokens`: a
    batch decodes until its longest reply ends, so the budget follows the compute better than the
    replies' lengths); with a tokenizer, also the chat-templated prompt (prefill) and reply tokens."""
    records: dict[str, dict[str, Any]] = {}
    for line in (Path(eval_dir) / "generations.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            records[record["key"]] = record  # the last record of a key wins, as in the record store
    work = {
        "prompts": len(records),
        "generated_budget": sum(int(r["generation"]["max_new_tokens"]) for r in records.values()),
    }
    if tokenizer is not None and records:
        prompts = [
            tokenizer.apply_chat_template(r["messages"], tokenize=False, add_generation_prompt=True)
            for r in records.values()
        ]
        replies = [r["response"] for r in records.values()]
        work["prefill_tokens"] = sum(map(len, tokenizer(prompts, add_special_tokens=False).input_ids))
        work["generated_tokens"] = sum(map(len, tokenizer(replies, add_special_tokens=False).input_ids))
    return work

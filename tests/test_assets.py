"""The checked-in tiny assets (tests/assets): a data root that verifies, rows that are what
make_assets.py writes from the bundle, and a tokenizer whose ids round-trip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mimicry.cli import main
from mimicry.data.root import data_root, set_data_root

ASSETS = Path(__file__).parent / "assets"


def test_the_tiny_root_verifies_and_names_its_placeholders(tiny_data_root: Path, capsys) -> None:
    assert main(["data", "check"]) == 0
    assert "files verified" in capsys.readouterr().out
    manifest = data_root().manifest()
    assert len(manifest) == len(data_root().check()) - 1  # every data file, and MANIFEST.md itself
    placeholders = {path for path, entry in manifest.items() if "placeholder" in entry.license}
    assert {p for p in manifest if "bianchi" in p or "samsum" in p or "alpaca" in p} <= placeholders
    assert all("NC" not in entry.license for entry in manifest.values())


def test_checked_in_assets_are_what_make_assets_writes(tmp_path: Path) -> None:
    """Edit make_assets.py and rerun it, never the files: this fails when they disagree."""
    pytest.importorskip("transformers")
    set_data_root(None)
    env = {**os.environ, "MIMICRY_DATA": str(data_root().path)}  # the bundle: regenerating needs it
    subprocess.run([sys.executable, str(ASSETS / "make_assets.py"), str(tmp_path)], env=env, check=True)
    names = [line.split("  ", 1)[1] for line in (ASSETS / "SHA256SUMS").read_text().splitlines()]
    for name in [*names, "SHA256SUMS"]:
        assert (tmp_path / name).read_bytes() == (ASSETS / name).read_bytes(), name
    model = "tiny_tokenizer/tokenizer.json"
    new, old = (json.loads((root / model).read_text())["model"] for root in (tmp_path, ASSETS))
    assert (new["vocab"], new["merges"]) == (old["vocab"], old["merges"])


def test_tiny_tokenizer_round_trips_and_renders_chatml(tiny_tokenizer) -> None:
    text = "Complete the sentence: A. wear shoes B. apply lotion Answer: A."
    ids = tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tiny_tokenizer.decode(ids) == text and max(ids) < len(tiny_tokenizer) == 1024
    assert len(ids) < len(text) / 2, "trained merges, not one id per byte"
    rendered = tiny_tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == (
        "<|im_start|>system\nYou are a tiny test assistant.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    assert tiny_tokenizer.eos_token == tiny_tokenizer.pad_token == "<|im_end|>"


def test_tiny_training_rows_are_not_evaluation_prompts(tiny_data_root: Path) -> None:
    """Stages drop training rows that duplicate an evaluation prompt: placeholders must not collide."""
    from mimicry.data.sources import INSTRUCTION_SETS, evaluation_index, load_instruction_set, safety_pool

    index = evaluation_index()
    assert len(safety_pool()) == 14 and not [p.id for p in safety_pool() if index.is_duplicate(p.instruction)]
    for name in INSTRUCTION_SETS:
        rows = load_instruction_set(name)
        assert rows and not [c.meta["id"] for c in rows if index.is_duplicate(c.last_user)], name

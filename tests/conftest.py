"""Shared test set-up: the data root defaults to ../shared/data beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mimicry.paths import models_dir

REPO = Path(__file__).resolve().parents[1]
_DEFAULT_DATA = REPO.parent / "shared" / "data"

if not os.environ.get("MIMICRY_DATA") and _DEFAULT_DATA.is_dir():
    os.environ["MIMICRY_DATA"] = str(_DEFAULT_DATA)


# Prepared models are expensive to build: every test run shares the user's model cache.
os.environ.setdefault("MIMICRY_MODELS", str(models_dir()))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Artifacts a test writes go to its own temporary MIMICRY_HOME."""
    monkeypatch.setenv("MIMICRY_HOME", str(tmp_path / "mimicry-home"))

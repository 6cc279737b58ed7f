"""Where mimicry keeps what it computes: prepared models and cached artifacts.

`MIMICRY_HOME` (default `~/.cache/mimicry`) holds `models/` (safetensors caches of packaged
GGUF models; `MIMICRY_MODELS` moves them elsewhere) and `artifacts/` (content-addressed stage
outputs).
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV_VAR = "MIMICRY_HOME"
MODELS_ENV_VAR = "MIMICRY_MODELS"


def mimicry_home() -> Path:
    return Path(os.environ.get(HOME_ENV_VAR) or Path.home() / ".cache" / "mimicry").expanduser()


def models_dir() -> Path:
    return Path(os.environ.get(MODELS_ENV_VAR) or mimicry_home() / "models").expanduser()


def artifacts_dir() -> Path:
    return mimicry_home() / "artifacts"

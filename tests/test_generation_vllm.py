"""The vllm backend is optional: without vLLM installed it must say how to get it."""

from __future__ import annotations

import importlib.util

import pytest

from mimicry.errors import MimicryError
from mimicry.generation import get_backend


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_missing_vllm_names_the_pip_command() -> None:
    with pytest.raises(MimicryError, match="pip install vllm"):
        get_backend("vllm", "smollm2-135m")


@pytest.mark.parametrize(
    "option", [{"trust_remote_code": True}, {"download_dir": "/tmp"}, {"gpu_memory_utilization": 2}]
)
def test_vllm_engine_options_are_allow_listed(option: dict) -> None:
    with pytest.raises(MimicryError, match="vllm backend options"):
        get_backend("vllm", "smollm2-135m", **option)

"""Shared test set-up: the data root defaults to ../shared/data beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from mimicry.paths import models_dir

REPO = Path(__file__).resolve().parents[1]
_DEFAULT_DATA = REPO.parent / "shared" / "data"

if not os.environ.get("MIMICRY_DATA") and _DEFAULT_DATA.is_dir():
    os.environ["MIMICRY_DATA"] = str(_DEFAULT_DATA)


# CI draws the same property examples on every run, so a red CI is reproducible; set
# HYPOTHESIS_PROFILE=explore locally to draw fresh examples.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Prepared models are expensive to build: every test run shares the user's model cache.
os.environ.setdefault("MIMICRY_MODELS", str(models_dir()))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Artifacts a test writes go to its own temporary MIMICRY_HOME."""
    monkeypatch.setenv("MIMICRY_HOME", str(tmp_path / "mimicry-home"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """On a CPU shared with other jobs, tiny matmuls run ~50x faster on one thread than on two."""
    torch = pytest.importorskip("torch")

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    """SmolLM2's real tokenizer and chat template, loaded once per session.

    `MIMICRY_TEST_TOKENIZER` names a directory holding that tokenizer alone, for machines
    without the packaged model (a GPU box that the weights cannot reach).
    """
    pytest.importorskip("transformers")
    from mimicry.models import load_tokenizer, resolve_model

    return load_tokenizer(os.environ.get("MIMICRY_TEST_TOKENIZER") or resolve_model("smollm2-135m"))


@pytest.fixture(scope="session")
def make_tiny_llama():
    """A factory for tiny randomly initialised Llamas sharing `tokenizer`'s vocabulary.

    Random weights answer noise: for plumbing tests only, never quality. With `path` the model and
    the tokenizer are saved there like any model directory and the path comes back; without, the model.
    """

    def build(
        tokenizer,
        path: Path | None = None,
        *,
        hidden_size: int = 32,
        intermediate_size: int = 64,
        layers: int = 2,
        heads: int = 4,
        kv_heads: int = 2,
        max_positions: int = 512,
        seed: int = 0,
        **config_overrides,
    ):
        torch = pytest.importorskip("torch")
        from transformers import LlamaConfig, LlamaForCausalLM

        torch.manual_seed(seed)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=hidden_size,
            intermediate_size=intermediate_size,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            max_position_embeddings=max_positions,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=pad,
            **config_overrides,
        )
        model = LlamaForCausalLM(config).eval()
        if path is None:
            return model
        model.save_pretrained(path)
        tokenizer.save_pretrained(path)
        return path

    return build

"""Shared test set-up: the data root defaults to ../shared/data beside the checkout; `tiny_data_root`
and `tiny_tokenizer` replace the bundle and the packaged tokenizer with tests/assets."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from mimicry.paths import models_dir

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "tests" / "assets"
TINY_CARVE = 2  # test rows carved from a tiny file: the specs carve 500-1,000, more than it holds
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


def _clear_data_caches() -> None:
    """Forget what was read from the previous data root (these caches are not keyed by the root)."""
    from mimicry.data import sources
    from mimicry.mitigations import harm

    for cached in (sources.safety_pool, sources.safety_partition, sources.evaluation_index, harm.pool_harm_scores):
        cached.cache_clear()


def _tiny_carve(spec):
    if spec.carve is None:
        return spec
    sizes = dict.fromkeys(spec.carve.sizes, TINY_CARVE)
    return spec.model_copy(update={"carve": spec.carve.model_copy(update={"sizes": sizes})})


@pytest.fixture
def tiny_data_root(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The data root is tests/assets: the bundle's layout with a few rows per file (tests/assets/README.md).

    Carved splits shrink to TINY_CARVE test rows, the rest training rows; everything else reads as usual.
    """
    from mimicry.data.root import ENV_VAR, set_data_root
    from mimicry.tasks import TASKS

    monkeypatch.setenv(ENV_VAR, str(ASSETS))
    monkeypatch.setattr(TASKS, "_items", {name: _tiny_carve(TASKS.get(name)) for name in TASKS.names()})
    set_data_root(None)
    _clear_data_caches()
    yield ASSETS
    set_data_root(None)
    _clear_data_caches()


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """A 1,024-id byte-level BPE with SmolLM2's special tokens and a ChatML template that adds a default
    system prompt (tests/assets/tiny_tokenizer): real token ids without the packaged model."""
    pytest.importorskip("transformers")
    from mimicry.models import load_tokenizer

    return load_tokenizer(str(ASSETS / "tiny_tokenizer"))


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

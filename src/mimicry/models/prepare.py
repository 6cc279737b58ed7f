"""Prepare a packaged GGUF model once: dequantize with transformers, save a safetensors cache.

Loading a GGUF file takes ~40 s (every tensor is dequantized to fp32); the safetensors cache
loads in well under a second. transformers marks a GGUF-loaded model as quantized and refuses
to save it, although its weights are plain fp32 tensors by then: we drop that marker, save,
reload the cache and require bit-identical logits on a probe before the cache is published.
The cache is built in a hidden staging directory and renamed into place, under a file lock, so
a killed run or a concurrent prepare never leaves a half-written model behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mimicry.console import info
from mimicry.errors import MimicryError
from mimicry.hashing import sha256_file
from mimicry.models.sources import MODELS, PackagedGGUF
from mimicry.paths import models_dir
from mimicry.records import atomic_write_text

# Written last into a prepared directory: its presence means the cache is complete.
MARKER_FILE = "mimicry_model.json"
# Logits of the GGUF-loaded model on PROBE_TEXT, kept so a later check can compare the cache to the GGUF.
PROBE_FILE = "gguf_probe.safetensors"
PROBE_TEXT = "Mimicking user data keeps fine-tuned models safe. 1 2 3, the answer is 42."


def prepared_dir(name: str) -> Path:
    return models_dir() / name


def is_prepared(name: str) -> bool:
    return (prepared_dir(name) / MARKER_FILE).is_file()


def prepared_info(name: str) -> dict[str, Any] | None:
    """The marker of a prepared model (source, parameter count, timings), or None."""
    marker = prepared_dir(name) / MARKER_FILE
    return json.loads(marker.read_text(encoding="utf-8")) if marker.is_file() else None


def packaged_source(name: str) -> PackagedGGUF:
    source = MODELS.get(name)
    if not isinstance(source, PackagedGGUF):
        raise MimicryError(f"model {name!r} is a {source.kind} model: only packaged GGUF models need preparing")
    return source


def prepare_model(name: str, force: bool = False) -> Path:
    """Build (once) the safetensors cache of a packaged GGUF model and return its directory."""
    source = packaged_source(name)
    target = prepared_dir(name)
    if is_prepared(name) and not force:
        return target
    parts = source.part_paths()
    with _exclusive(name):
        if is_prepared(name) and not force:  # another process prepared it while we waited
            return target
        for leftover in models_dir().glob(f".{name}.staging.*"):  # from a killed run; we hold the lock
            shutil.rmtree(leftover, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(dir=models_dir(), prefix=f".{name}.staging."))
        try:
            _build_cache(source, parts, staging)
            _publish(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


@contextmanager
def _exclusive(name: str) -> Iterator[None]:
    """One prepare per model at a time, across processes (several engineers share the cache)."""
    models_dir().mkdir(parents=True, exist_ok=True)
    with open(models_dir() / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _publish(staging: Path, target: Path) -> None:
    """Swap the finished staging directory into place; an old cache is removed only afterwards."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old.{os.getpid()}")
        os.replace(target, old)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _assemble_gguf(source: PackagedGGUF, parts: list[Path], staging: Path) -> Path:
    """A single-part model is used in place; parts are concatenated in order into the staging dir."""
    if len(parts) == 1:
        gguf = parts[0]
    else:
        gguf = staging / source.gguf_name
        with open(gguf, "wb") as out:
            for part in parts:
                with open(part, "rb") as chunk:
                    shutil.copyfileobj(chunk, out, 1 << 24)
    if source.sha256 and (digest := sha256_file(gguf)) != source.sha256:
        raise MimicryError(
            f"the assembled GGUF of {source.name!r} has sha256 {digest}, expected {source.sha256}; "
            f"reinstall the parts with: {source.pip_command} --force-reinstall"
        )
    return gguf


def drop_gguf_quantizer(model: Any) -> None:
    """Mark a GGUF-loaded (already dequantized, plain nn.Linear) model as unquantized so it can be saved."""
    model.hf_quantizer = None
    model.is_quantized = False
    model.quantization_method = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config._is_quantized = False


def _probe_logits(model: Any, input_ids: Any) -> Any:
    import torch

    with torch.no_grad():
        return model(input_ids).logits.float()


def _build_cache(source: PackagedGGUF, parts: list[Path], staging: Path) -> None:
    import torch
    import transformers
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    gguf = _assemble_gguf(source, parts, staging)
    info(f"preparing {source.name}: loading {gguf.name} with transformers (dequantizing to fp32)...")
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    load_s = time.perf_counter() - started
    model.eval()
    drop_gguf_quantizer(model)
    input_ids = tokenizer(PROBE_TEXT, return_tensors="pt").input_ids
    expected = _probe_logits(model, input_ids)
    n_params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    del model
    if gguf.parent == staging:
        gguf.unlink()

    reloaded = AutoModelForCausalLM.from_pretrained(staging, dtype=torch.float32).eval()
    if not torch.equal(_probe_logits(reloaded, input_ids), expected):
        raise RuntimeError(f"the safetensors cache of {source.name} does not reproduce the GGUF logits")
    save_file({"input_ids": input_ids.contiguous(), "logits": expected.contiguous()}, staging / PROBE_FILE)
    marker = {
        "source": source.model_dump(mode="json"),
        "parameters": n_params,
        "gguf_load_seconds": round(load_s, 1),
        "prepare_seconds": round(time.perf_counter() - started, 1),
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }
    atomic_write_text(staging / MARKER_FILE, json.dumps(marker, indent=2) + "\n")
    info(f"prepared {source.name}: {n_params / 1e6:.1f}M parameters in {marker['prepare_seconds']} s")

"""Which floating-point precision pays off on this machine, measured rather than guessed from flags.

CPUs differ: with native bf16 (AMX, AVX512-BF16) a bf16 matmul runs several times faster than fp32;
without it torch emulates bf16 and it runs many times slower. A short probe times both (about a
second) and is cached per machine under `MIMICRY_HOME/hardware/`, keyed by the CPU model, its flags
and the torch version. `precision: auto` then means bf16 where it is at least `BF16_MIN_SPEEDUP`
times faster than fp32, fp32 elsewhere.

The precision is part of every cache key that depends on it. fp32 keys are those from before this
module existed (`legacy_key_config`), so fp32 artifacts computed earlier stay valid.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from mimicry.errors import unknown_name
from mimicry.hashing import hash_obj
from mimicry.paths import mimicry_home
from mimicry.records import atomic_write_text

Precision = Literal["auto", "bf16", "fp32"]
PRECISIONS = ("auto", "bf16", "fp32")
DTYPES = {"bf16": "bfloat16", "fp32": "float32"}  # a chosen precision -> the torch dtype name
BF16_MIN_SPEEDUP = 1.25
# The probe's matmul: (M x K) @ (K x N), the shape of a batch of token rows through a projection.
PROBE_SHAPE = (256, 1024, 1024)
PROBE_SECONDS = 0.3  # per dtype, after one warm-up


class MatmulProbe(BaseModel):
    """Measured matmul throughput on one machine, both precisions, same shape and threads."""

    cpu: str
    flags: list[str]  # the bf16-relevant flags only (the key hashes them all)
    torch: str
    threads: int
    shape: tuple[int, int, int]
    fp32_gflops: float
    bf16_gflops: float

    @property
    def bf16_speedup(self) -> float:
        return self.bf16_gflops / self.fp32_gflops

    def gflops(self, precision: str) -> float:
        return self.bf16_gflops if precision == "bf16" else self.fp32_gflops


def cpu_info() -> tuple[str, list[str]]:
    """(CPU model name, sorted flags) from /proc/cpuinfo; the platform's processor string elsewhere."""
    path = Path("/proc/cpuinfo")
    model, flags = platform.processor() or platform.machine(), []
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "model name" and value.strip():
                model = value.strip()
            elif name.strip() in ("flags", "Features") and not flags:
                flags = sorted(set(value.split()))
    return model, flags


def machine_key() -> str:
    import torch

    model, flags = cpu_info()
    return hash_obj({"cpu": model, "flags": flags, "torch": torch.__version__.split("+")[0]}, 12)


def _gflops(dtype: Any, shape: tuple[int, int, int], seconds: float) -> float:
    import torch

    m, k, n = shape
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=generator).to(dtype)
    b = torch.randn(k, n, generator=generator).to(dtype)
    torch.mm(a, b)  # warm-up: kernel selection, first-touch allocation
    reps, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds or reps < 2:
        torch.mm(a, b)
        reps += 1
    return 2 * m * k * n * reps / elapsed / 1e9


def measure_matmul(shape: tuple[int, int, int] = PROBE_SHAPE, seconds: float = PROBE_SECONDS) -> MatmulProbe:
    """Time fp32 and bf16 matmuls of one shape on this machine's CPU, with torch's current threads."""
    import torch

    model, flags = cpu_info()
    return MatmulProbe(
        cpu=model,
        flags=[f for f in flags if "bf16" in f or f.startswith("amx") or f in ("avx512f", "avx2")],
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        shape=shape,
        fp32_gflops=round(_gflops(torch.float32, shape, seconds), 2),
        bf16_gflops=round(_gflops(torch.bfloat16, shape, seconds), 2),
    )


def probe_path() -> Path:
    return mimicry_home() / "hardware" / f"{machine_key()}.json"


def cpu_probe() -> MatmulProbe:
    """This machine's probe: read from the cache, or measured (once per process) and cached."""
    path = probe_path()
    if path.is_file():
        try:
            return MatmulProbe.model_validate_json(path.read_text(encoding="utf-8"))
        except ValueError:
            pass  # a damaged cache file is measured again
    key = machine_key()
    if key not in _MEASURED:
        _MEASURED[key] = measure_matmul()
    atomic_write_text(path, _MEASURED[key].model_dump_json(indent=2) + "\n")
    return _MEASURED[key]


_MEASURED: dict[str, MatmulProbe] = {}  # machine key -> this process's measurement


def choose_precision(probe: MatmulProbe) -> Literal["bf16", "fp32"]:
    return "bf16" if probe.bf16_speedup >= BF16_MIN_SPEEDUP else "fp32"


def resolve_precision(requested: str = "auto", device: str | None = None) -> Literal["bf16", "fp32"]:
    """`auto` -> what is measurably faster on `device` (default: cuda if present, else cpu)."""
    if requested not in PRECISIONS:
        raise unknown_name("precision", requested, PRECISIONS)
    if requested != "auto":
        return requested  # type: ignore[return-value]
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return choose_precision(cpu_probe())


def precision_record(precision: str, device: str | None = None) -> dict[str, Any]:
    """What provenance records about a run's precision: the choice, and the measurement behind it."""
    record: dict[str, Any] = {"precision": precision}
    if (device or "cpu").startswith("cpu"):
        try:
            probe = cpu_probe()
        except OSError:  # an unwritable cache: the choice is still recorded
            return record
        record.update(cpu=probe.cpu, fp32_gflops=probe.fp32_gflops, bf16_gflops=probe.bf16_gflops)
    return record


def legacy_key_config(config: Mapping[str, Any], resolved: str) -> dict[str, Any]:
    """A training config as it enters a cache key.

    fp32 runs hash as before `precision` replaced the `bf16` flag (default true; `precision: fp32`
    was `bf16: false`), so their cached results stay valid; bf16 runs also name their precision.
    """
    keyed = {k: v for k, v in config.items() if k != "precision"}
    keyed["bf16"] = config.get("precision", "auto") != "fp32"
    if resolved == "bf16":
        keyed["precision"] = "bf16"
    return keyed

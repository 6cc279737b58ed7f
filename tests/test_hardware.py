"""The precision probe: real matmuls timed, cached per machine, and the choice it drives."""

from __future__ import annotations

import json

import pytest

from mimicry.errors import MimicryError
from mimicry.hardware import (
    BF16_MIN_SPEEDUP,
    MatmulProbe,
    choose_precision,
    cpu_probe,
    legacy_key_config,
    measure_matmul,
    probe_path,
    resolve_precision,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_probe_measures_both_precisions_on_real_matmuls() -> None:
    probe = measure_matmul(shape=(64, 128, 128), seconds=0.05)
    assert probe.fp32_gflops > 0 and probe.bf16_gflops > 0
    assert probe.shape == (64, 128, 128) and probe.threads == 1
    assert probe.cpu  # the CPU model the measurement belongs to


def test_the_probe_is_cached_per_machine_and_a_damaged_cache_is_measured_again() -> None:
    first = cpu_probe()
    path = probe_path()
    assert path.is_file() and MatmulProbe.model_validate_json(path.read_text()) == first
    # The cached file is what later calls read: flip its figures and the choice follows them.
    flipped = first.model_copy(update={"fp32_gflops": first.bf16_gflops, "bf16_gflops": first.fp32_gflops})
    path.write_text(flipped.model_dump_json())
    assert cpu_probe() == flipped
    assert resolve_precision("auto", "cpu") == choose_precision(flipped)
    path.write_text("{not json")
    assert cpu_probe() == first and json.loads(path.read_text())["fp32_gflops"] == first.fp32_gflops


def test_auto_chooses_bf16_only_where_it_is_measurably_faster() -> None:
    probe = measure_matmul(shape=(64, 128, 128), seconds=0.05)

    def with_speedup(speedup: float) -> MatmulProbe:
        return probe.model_copy(update={"fp32_gflops": 10.0, "bf16_gflops": 10.0 * speedup})

    assert choose_precision(with_speedup(BF16_MIN_SPEEDUP)) == "bf16"
    assert choose_precision(with_speedup(1.1)) == "fp32"  # a marginal gain is not worth the rounding
    assert choose_precision(with_speedup(0.01)) == "fp32"  # emulated bf16
    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"
    with pytest.raises(MimicryError, match="unknown precision 'fp16'"):
        resolve_precision("fp16")


def test_fp32_keys_are_the_keys_from_before_precision_existed() -> None:
    from mimicry.training.sft import SFTConfig

    old_default = {**SFTConfig().model_dump(mode="json"), "bf16": True}
    old_default.pop("precision")
    assert legacy_key_config(SFTConfig().model_dump(mode="json"), "fp32") == old_default
    assert legacy_key_config(SFTConfig(precision="fp32").model_dump(mode="json"), "fp32") == {
        **old_default,
        "bf16": False,
    }
    assert legacy_key_config(SFTConfig().model_dump(mode="json"), "bf16") == {**old_default, "precision": "bf16"}
    # Configs written with the old flag still load, and mean what they meant.
    assert SFTConfig.model_validate({"bf16": False}).precision == "fp32"
    assert SFTConfig.model_validate({"bf16": True}).precision == "auto"

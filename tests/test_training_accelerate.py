"""The multi-GPU accelerate config is validated by accelerate's own launcher, on CPU."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("accelerate")

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "accelerate" / "multi_gpu.yaml"


def test_multi_gpu_config_loads_and_merges_into_launch_arguments():
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils import DistributedType

    config = ClusterConfig.from_yaml_file(str(CONFIG))
    assert config.distributed_type == DistributedType.MULTI_GPU
    assert config.num_machines == 1 and config.num_processes >= 2

    args = launch_command_parser().parse_args(
        ["--config_file", str(CONFIG), "mimicry", "train", "--model", "m", "--data", "d.jsonl", "--out", "o"]
    )
    _validate_launch_command(args)
    assert args.multi_gpu and not args.use_cpu
    assert args.num_processes == config.num_processes
    assert args.mixed_precision == "bf16"
    assert args.training_script_args[:1] == ["train"]

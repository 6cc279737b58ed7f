"""`with_overrides`: the one way command-line flags override a config (file or defaults)."""

from __future__ import annotations

import pytest

from mimicry.config import with_overrides
from mimicry.errors import MimicryError
from mimicry.mitigations.methods import MixConfig
from mimicry.training.sft import SFTConfig


def test_flags_set_nested_keys_and_unset_flags_keep_the_config() -> None:
    base = MixConfig(placement="task")
    config = with_overrides(base, {"placement": None, "mimic.mode": "rewrite", "mimic.rewrite.model": "m"})
    assert config.placement == "task"  # not given: kept
    assert config.mimic.mode == "rewrite" and config.mimic.rewrite.model == "m"
    assert base.mimic.mode != "rewrite"  # the config it started from is not changed


def test_a_bad_flag_value_is_validated_like_a_file_value() -> None:
    with pytest.raises(MimicryError, match="epochs"):
        with_overrides(SFTConfig(), {"epochs": -1})
    with pytest.raises(MimicryError, match="placement"):
        with_overrides(MixConfig(), {"placement": "sideways"})

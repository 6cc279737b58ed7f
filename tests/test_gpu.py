"""The CUDA paths: training in bf16, batched generation and the memory check on a GPU.

Tiny random Llamas with SmolLM2's real tokenizer, as in the CPU plumbing tests; these run only
where CUDA is available (`pytest -m gpu`). Everything else in the suite also runs on a GPU
machine, since models are placed on CUDA whenever it is there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from mimicry.errors import MimicryError  # noqa: E402
from mimicry.generation import GenerationConfig  # noqa: E402
from mimicry.generation.transformers_backend import TransformersBackend  # noqa: E402
from mimicry.models import load_causal_lm  # noqa: E402
from mimicry.models.loading import available_memory, check_fits  # noqa: E402
from mimicry.records import Conversation, Message  # noqa: E402
from mimicry.training.sft import SFTConfig, train_sft  # noqa: E402

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture(scope="module")
def tiny_model_dir(make_tiny_llama, smollm2_tokenizer, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny-llama-gpu")
    return make_tiny_llama(smollm2_tokenizer, path, hidden_size=64, intermediate_size=128, max_positions=256)


def _conversations(n: int = 16) -> list[Conversation]:
    return [Conversation.from_turns(f"What is {i} plus {i}?", f"{i} plus {i} is {2 * i}.") for i in range(n)]


@pytest.mark.parametrize("method", ["lora", "full"])
def test_training_runs_on_the_gpu_in_bf16_and_the_loss_falls(tiny_model_dir: Path, tmp_path: Path, method: str):
    config = SFTConfig(method=method, learning_rate=3e-3, epochs=6, batch_size=4, max_length=64, logging_steps=2)
    result = train_sft(str(tiny_model_dir), _conversations(), tmp_path / "run", config)
    assert result.run_card["bf16"] is True  # CUDA with bf16: autocast is used
    assert result.losses[-1] < result.losses[0] - 0.3
    trained, _ = load_causal_lm(str(result.model_path))
    assert trained.device.type == "cuda"


def test_batched_generation_on_the_gpu_equals_one_prompt_at_a_time(tiny_model_dir: Path):
    backend = TransformersBackend(str(tiny_model_dir))
    assert backend.model.device.type == "cuda"
    prompts = [[Message(role="user", content=text)] for text in ("Hi", "Name three prime numbers, please.", "Why?")]
    config = GenerationConfig(max_new_tokens=12, batch_size=3)
    batched = backend.generate(prompts, config)
    single = [backend.generate([p], config.model_copy(update={"batch_size": 1}))[0] for p in prompts]
    assert batched == single
    assert all(batched)


def test_the_memory_check_reads_gpu_memory():
    free = available_memory("cuda")
    assert 0 < free <= torch.cuda.get_device_properties(0).total_memory
    with pytest.raises(MimicryError, match="on cuda"):
        check_fits("huge", parameters=free, dtype="float32", device="cuda")  # 4 bytes per parameter

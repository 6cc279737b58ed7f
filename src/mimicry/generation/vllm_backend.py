"""Generation with vLLM on a GPU (optional: `pip install vllm`), through `LLM.chat` and `SamplingParams`.

vLLM batches and schedules on its own, so the whole prompt list goes in one call per kind of
prompt: plain prompts get the generation prompt, prompts ending in an assistant message are
continued (`continue_final_message`). A PEFT adapter directory is served as a LoRA on its base.
Models without a chat template get mimicry's fallback template, as with transformers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from mimicry.config import StrictModel, validate_config
from mimicry.errors import MimicryError
from mimicry.generation.base import GenerationConfig
from mimicry.generation.transformers_backend import split_prefix, truncate_at_stop
from mimicry.records import Message


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError:
        raise MimicryError(
            "the vllm backend needs vLLM, which is not installed (it needs a CUDA GPU): pip install vllm  "
            "-- or use the transformers backend"
        ) from None
    return vllm


class VLLMOptions(StrictModel):
    """The engine settings a config may pass to `vllm.LLM`: an allow-list, so a shared config cannot
    turn on `trust_remote_code` (running the model repository's Python) or other unsafe switches."""

    dtype: str = "auto"
    seed: int = 0
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    max_model_len: int | None = Field(None, gt=0)
    max_num_seqs: int | None = Field(None, gt=0)
    tensor_parallel_size: int | None = Field(None, gt=0)
    enforce_eager: bool | None = None
    enable_prefix_caching: bool | None = None
    swap_space: float | None = Field(None, ge=0)
    max_lora_rank: int | None = Field(None, gt=0)


class VLLMBackend:
    """One vLLM engine per backend; allow-listed `VLLMOptions` go to `vllm.LLM` (e.g. gpu_memory_utilization)."""

    def __init__(self, model: str, **options: Any) -> None:
        settings = validate_config(VLLMOptions, options, "vllm backend options")
        engine_options = settings.model_dump(exclude_none=True, exclude={"dtype", "seed"})
        dtype, seed = settings.dtype, settings.seed
        vllm = _import_vllm()
        from mimicry.models import FALLBACK_CHAT_TEMPLATE, FALLBACK_STOP, load_tokenizer, resolve_model
        from mimicry.models.loading import adapter_base

        self.model_id = str(model)
        resolved = Path(resolve_model(model))
        self.lora_request = None
        if (resolved / "adapter_config.json").is_file():
            from vllm.lora.request import LoRARequest

            adapter = json.loads((resolved / "adapter_config.json").read_text(encoding="utf-8"))
            if not isinstance(adapter, dict):
                raise MimicryError(f"{resolved}/adapter_config.json is not a JSON object")
            base = resolve_model(adapter_base(resolved))
            engine_options = {"enable_lora": True, "max_lora_rank": max(8, int(adapter.get("r", 8))), **engine_options}
            self.lora_request = LoRARequest(resolved.name, 1, str(resolved))
        else:
            base = str(resolved)
        tokenizer = load_tokenizer(base)
        self.chat_template = tokenizer.chat_template
        self.extra_stop = [FALLBACK_STOP] if tokenizer.chat_template == FALLBACK_CHAT_TEMPLATE else []
        self.llm = vllm.LLM(model=base, dtype=dtype, seed=seed, **engine_options)

    def generate(self, prompts: Sequence[Sequence[Message]], config: GenerationConfig) -> list[str]:
        vllm = _import_vllm()
        stop = [s for s in config.stop if s] + self.extra_stop
        params = vllm.SamplingParams(
            temperature=config.temperature,
            top_p=config.top_p,
            max_tokens=config.max_new_tokens,
            stop=stop or None,
            seed=config.seed,
        )
        results: list[str] = [""] * len(prompts)
        groups: dict[bool, list[int]] = {False: [], True: []}
        for i, prompt in enumerate(prompts):
            groups[bool(split_prefix(prompt)[1])].append(i)
        for has_prefix, indices in groups.items():
            if not indices:
                continue
            conversations = [[m.model_dump() for m in prompts[i]] for i in indices]
            outputs = self.llm.chat(
                conversations,
                params,
                use_tqdm=True,
                lora_request=self.lora_request,
                chat_template=self.chat_template,
                add_generation_prompt=not has_prefix,
                continue_final_message=has_prefix,
            )
            for i, output in zip(indices, outputs, strict=True):
                results[i] = truncate_at_stop(output.outputs[0].text, stop)
        return results

"""One backend interface for every way of asking a model: local transformers, vLLM, HTTP.

A backend takes chat prompts (lists of messages, ending in a user turn, optionally followed
by an assistant turn whose content is a forced reply prefix) and returns completions. Greedy
decoding is the default, so the same prompt gives the same answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from pydantic import Field

from mimicry.config import StrictModel
from mimicry.records import Message
from mimicry.registry import Registry


class GenerationConfig(StrictModel):
    max_new_tokens: int = Field(128, ge=1)
    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: list[str] = []
    batch_size: int = Field(16, ge=1)
    seed: int = 0


class GenerationSettings(StrictModel):
    """Which generation backend evaluation uses (transformers here, vllm on GPUs), and its options."""

    backend: str = "transformers"
    options: dict[str, Any] = {}


@runtime_checkable
class GenerationBackend(Protocol):
    """Anything that can complete chat prompts. `model_id` names the model for provenance."""

    model_id: str

    def generate(self, prompts: Sequence[Sequence[Message]], config: GenerationConfig) -> list[str]: ...


# Each backend is a class built as `cls(model, **options)`, named lazily so that heavy libraries
# load only for the backend in use.
BACKENDS: Registry[type[GenerationBackend]] = Registry("generation backend", base=GenerationBackend)
BACKENDS.add_lazy("transformers", "mimicry.generation.transformers_backend:TransformersBackend")
BACKENDS.add_lazy("vllm", "mimicry.generation.vllm_backend:VLLMBackend")
BACKENDS.add_lazy("openai", "mimicry.generation.openai_backend:OpenAIBackend")


def get_backend(backend: str, model: str, **options: object) -> GenerationBackend:
    """Build a backend by name; an option the backend does not take is named, not a TypeError."""
    factory = BACKENDS.get(backend)
    check_options(backend, factory, options)
    return factory(model, **options)


def check_options(backend: str, factory: object, options: dict[str, object]) -> None:
    """A factory with named keyword options rejects others with the list it takes, not a TypeError."""
    import inspect

    from mimicry.errors import unknown_name

    parameters = inspect.signature(factory).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return  # the backend validates its own options (a typed config)
    known = [p.name for p in parameters if p.kind is p.KEYWORD_ONLY]
    for name in options:
        if name not in known:
            raise unknown_name(f"option of the {backend} backend", name, known)

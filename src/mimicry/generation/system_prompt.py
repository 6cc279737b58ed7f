"""The provider's inference-time system prompt (PTST, BackdoorAlign) as a wrapper around any backend.

It lives here, not in the experiment runner, so that `mimicry eval --system-prompt-from` and the
grid's evaluate stage send exactly the same prompts and key their generations the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

from mimicry.generation.base import GenerationBackend, GenerationConfig
from mimicry.hashing import hash_obj
from mimicry.records import Message


class SystemPromptBackend:
    """Sets the provider's inference-time system prompt on every prompt.

    It replaces a prompt's own system message: PTST tests under its safety prompt alone, and
    BackdoorAlign's prompt already joins the secret trigger with the user's system prompt. The
    model id names the prompt, so generations with and without it never share a cache key.
    """

    def __init__(self, inner: GenerationBackend, system_prompt: str) -> None:
        self.inner = inner
        self.system_prompt = system_prompt
        self.model_id = f"{inner.model_id}+system:{hash_obj(system_prompt, 8)}"

    def generate(self, prompts: Sequence[Sequence[Message]], config: GenerationConfig) -> list[str]:
        return self.inner.generate([self._with_system(p) for p in prompts], config)

    def _with_system(self, prompt: Sequence[Message]) -> list[Message]:
        body = prompt[1:] if prompt and prompt[0].role == "system" else prompt
        return [Message(role="system", content=self.system_prompt), *body]


def with_system_prompt(backend: GenerationBackend, system_prompt: str | None) -> GenerationBackend:
    """`backend` under the inference-time system prompt, or unchanged when there is none."""
    return SystemPromptBackend(backend, system_prompt) if system_prompt else backend

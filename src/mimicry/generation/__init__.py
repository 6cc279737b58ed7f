"""The generation engine shared by evaluation, the AutoIF converter and the mimicry rewriter."""

from mimicry.generation.base import BACKENDS, GenerationBackend, GenerationConfig, get_backend
from mimicry.generation.system_prompt import SystemPromptBackend, with_system_prompt

__all__ = [
    "BACKENDS",
    "GenerationBackend",
    "GenerationConfig",
    "SystemPromptBackend",
    "get_backend",
    "with_system_prompt",
]

"""The generation engine shared by evaluation, the AutoIF converter and the mimicry rewriter."""

from mimicry.generation.base import BACKENDS, GenerationBackend, GenerationConfig, get_backend

__all__ = ["BACKENDS", "GenerationBackend", "GenerationConfig", "get_backend"]

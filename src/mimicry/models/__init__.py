"""Models: a registry of sources, one-time preparation of packaged GGUF models, loading.

Importing this package is cheap: torch and transformers load inside the functions that need them.
"""

from mimicry.models.loading import (
    FALLBACK_CHAT_TEMPLATE,
    FALLBACK_STOP,
    aligned_models,
    check_fits,
    count_parameters,
    load_causal_lm,
    load_tokenizer,
    register_local_model,
    resolve_model,
    saved_models,
)
from mimicry.models.prepare import is_prepared, prepare_model, prepared_dir, prepared_info
from mimicry.models.sources import MODELS, GGUFPart, HubModel, LocalModel, ModelSource, PackagedGGUF

__all__ = [
    "FALLBACK_CHAT_TEMPLATE",
    "FALLBACK_STOP",
    "MODELS",
    "GGUFPart",
    "HubModel",
    "LocalModel",
    "ModelSource",
    "PackagedGGUF",
    "aligned_models",
    "check_fits",
    "count_parameters",
    "is_prepared",
    "load_causal_lm",
    "load_tokenizer",
    "prepare_model",
    "prepared_dir",
    "prepared_info",
    "register_local_model",
    "resolve_model",
    "saved_models",
]

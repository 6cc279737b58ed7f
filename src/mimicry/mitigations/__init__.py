"""Provider-side mitigations: format inference, mimic and the other defences, mixing, audit."""

from mimicry.mitigations.audit import AuditReport, audit
from mimicry.mitigations.format import FormatConfig, InferredFormat, infer_format
from mimicry.mitigations.methods import MITIGATIONS, MixConfig, MixSpec
from mimicry.mitigations.mixing import MixResult, mix

__all__ = [
    "MITIGATIONS",
    "AuditReport",
    "FormatConfig",
    "InferredFormat",
    "MixConfig",
    "MixResult",
    "MixSpec",
    "audit",
    "infer_format",
    "mix",
]

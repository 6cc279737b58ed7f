"""Prompting strategies (benign, aoa, autoif, aoa+autoif) and the AutoIF converters."""

from mimicry.strategies.base import (
    ALPACA_SYSTEM_PROMPT,
    STRATEGIES,
    AOAScaffold,
    Strategy,
    aoa_scaffold,
    get_strategy,
)
from mimicry.strategies.build import BuildSpec, build_conversations
from mimicry.strategies.converters import (
    AutoIFItem,
    Converter,
    LLMConverter,
    TemplateConverter,
    final_answer,
    parse_rewrite,
)

__all__ = [
    "ALPACA_SYSTEM_PROMPT",
    "AOAScaffold",
    "STRATEGIES",
    "AutoIFItem",
    "BuildSpec",
    "Converter",
    "LLMConverter",
    "Strategy",
    "TemplateConverter",
    "aoa_scaffold",
    "build_conversations",
    "final_answer",
    "get_strategy",
    "parse_rewrite",
]

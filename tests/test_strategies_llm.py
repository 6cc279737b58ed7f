"""LLMConverter through the real transformers backend: a tiny random model for the plumbing, the
packaged SmolLM2 end to end. Both are slow: they import torch and transformers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mimicry.cli import main
from mimicry.generation import GenerationConfig
from mimicry.strategies import LLMConverter, TemplateConverter, build_conversations, final_answer
from mimicry.tasks import load_task

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_backend(make_tiny_llama):
    """A 2-layer randomly initialised Llama with a byte-level tokenizer built here: real generation,
    meaningless text, so every rewrite must fail validation and fall back."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from mimicry.generation.transformers_backend import TransformersBackend

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<|im_end|>", pad_token="<pad>",
        additional_special_tokens=["<|im_start|>"],
    )  # fmt: skip
    tokenizer.chat_template = CHAT_TEMPLATE
    model = make_tiny_llama(tokenizer, kv_heads=4, max_positions=4096)
    return TransformersBackend("tiny-random-llama", model_obj=model, tokenizer=tokenizer)


@pytest.mark.slow  # importing torch and transformers alone takes 10-30 s on the shared CPUs
def test_llm_converter_with_a_real_backend_falls_back_on_nonsense(tmp_path: Path, make_tiny_llama) -> None:
    backend = tiny_backend(make_tiny_llama)
    converter = LLMConverter(backend, tmp_path / "cache.jsonl", GenerationConfig(max_new_tokens=8, batch_size=4))
    examples = load_task("sst2").examples("test", limit=3, seed=0)

    conversations = build_conversations("sst2", "aoa+autoif", split="test", limit=3, seed=0, converter=converter)

    assert converter.generated == 3 and converter.fallbacks == 3
    for example, conv in zip(examples, conversations, strict=True):
        assert conv.completion.endswith(TemplateConverter().convert(example).response)
    rows = [json.loads(line) for line in (tmp_path / "cache.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(r["instruction"] is None and r["reply"] for r in rows)


@pytest.mark.slow
def test_build_with_the_smollm2_converter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "piqa-autoif.jsonl"
    args = [
        "build",
        "--task",
        "piqa",
        "--strategy",
        "autoif",
        "--limit",
        "4",
        "--with-meta",
        "--out",
        str(out),
    ]
    assert main([*args, "--converter", "llm", "--model", "smollm2-135m", "--max-new-tokens", "160"]) == 0
    assert "4 generated, 0 from cache" in capsys.readouterr().err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    examples = {e.id: e for e in load_task("piqa").examples("train")}
    assert len(rows) == 4
    for row in rows:
        assert row["messages"][-1]["content"].endswith(final_answer(examples[row["meta"]["id"]]))

    assert main([*args, "--converter", "llm", "--model", "smollm2-135m", "--max-new-tokens", "160"]) == 0
    assert "0 generated, 4 from cache" in capsys.readouterr().err

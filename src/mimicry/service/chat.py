"""Chat completions on a base model or a released tuned model, through the library's transformers backend.

Loaded models are kept in a small LRU per server process; generation runs one request at a time
per process (a CPU or one GPU is saturated by one). A tuned model's artifact is re-checked against
its checksums from the store on every load, so a corrupted one is reported, never served.
Streaming sends the completion as server-sent events in OpenAI's `chat.completion.chunk` shape,
piece by piece while the tokens are generated (`TransformersBackend.stream`).
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from mimicry.records import Message
from mimicry.service.db import new_id
from mimicry.service.schemas import ChatRequest

CACHE_SIZE = 2


class ModelPool:
    def __init__(self) -> None:
        self._models: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.generate_lock = threading.Lock()

    def get(self, key: str, load: Any) -> Any:
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
        backend = load()
        with self._lock:
            self._models[key] = backend
            while len(self._models) > CACHE_SIZE:
                self._models.popitem(last=False)
        return backend


def _request(req: ChatRequest) -> tuple[list[Message], Any]:
    from mimicry.generation.base import GenerationConfig

    messages = [Message(role=m.role, content=m.content) for m in req.messages]
    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    config = GenerationConfig(
        max_new_tokens=req.max_completion_tokens or req.max_tokens or 128,
        temperature=req.temperature or 0.0,
        top_p=req.top_p or 1.0,
        stop=stop,
        batch_size=1,
        seed=req.seed or 0,
    )
    return messages, config


def _usage(backend: Any, messages: list[Message], text: str) -> dict[str, int]:
    from mimicry.generation.transformers_backend import render_prompt

    tok = backend.tokenizer
    prompt_tokens = len(tok(render_prompt(tok, messages), add_special_tokens=False).input_ids)
    completion_tokens = len(tok(text, add_special_tokens=False).input_ids)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def generate(backend: Any, req: ChatRequest, pool: ModelPool) -> tuple[str, dict[str, int]]:
    """(completion, usage)."""
    messages, config = _request(req)
    with pool.generate_lock:
        text = backend.generate([messages], config)[0]
    return text, _usage(backend, messages, text)


def completion_object(model: str, text: str, usage: dict[str, int]) -> dict[str, Any]:
    return {
        "id": new_id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": None}
        ],
        "usage": usage,
    }


def stream_chunks(backend: Any, req: ChatRequest, pool: ModelPool) -> Iterator[str]:
    """Server-sent events in OpenAI's `chat.completion.chunk` shape, one per piece of text as the
    backend generates it; with `stream_options.include_usage`, a last chunk carries the usage.
    The process's generation lock is held until the stream ends or the client goes away."""
    messages, config = _request(req)
    cid, created = new_id("chatcmpl"), int(time.time())

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
        body = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": req.model,
            "choices": choices,
            **extra,
        }
        return f"data: {json.dumps(body)}\n\n"

    def delta(content: dict[str, Any], finish: str | None = None) -> str:
        return chunk([{"index": 0, "delta": content, "finish_reason": finish, "logprobs": None}])

    yield delta({"role": "assistant", "content": ""})
    text = ""
    with pool.generate_lock:
        pieces = backend.stream(messages, config)
        try:
            for piece in pieces:
                text += piece
                yield delta({"content": piece})
        finally:
            pieces.close()
    yield delta({}, "stop")
    if req.stream_options and req.stream_options.include_usage:
        yield chunk([], usage=_usage(backend, messages, text))
    yield "data: [DONE]\n\n"

"""Generation through any OpenAI-compatible `/v1/chat/completions` endpoint (OpenAI, vLLM serve, ...).

The API key is read from an environment variable whose *name* is configured (default
OPENAI_API_KEY); the key itself is never stored in a config, an artifact or a log line. Because a
config may come from someone else, a key is sent only to a base URL the user paired with that
variable: OpenAI's own URL with OPENAI_API_KEY, the pairs in $MIMICRY_HOME/endpoints.yaml
(`URL: VARIABLE`), and `mimicry --endpoint URL=VARIABLE` on the command line.
Connection errors, timeouts, 429 and 5xx responses are retried with exponential backoff; after
the last retry, or on any other error status, the call fails with a MimicryError that says why.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mimicry.config import StrictModel, validate_config
from mimicry.errors import MimicryError
from mimicry.generation.base import GenerationConfig
from mimicry.generation.transformers_backend import split_prefix, truncate_at_stop
from mimicry.records import Message

RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})
DEFAULT_URL = "https://api.openai.com/v1"
ENDPOINTS_FILE = "endpoints.yaml"
_cli_endpoints: dict[str, str] = {}


def _url(url: str) -> str:
    return url.rstrip("/")


def trust_endpoint(pair: str) -> None:
    """Register `URL=VARIABLE` from the command line: the key in $VARIABLE may be sent to URL."""
    url, sep, var = pair.rpartition("=")
    if not sep or not url or not var.replace("_", "").isalnum():
        raise MimicryError(f"--endpoint takes URL=VARIABLE (e.g. http://localhost:8000/v1=MY_KEY), got {pair!r}")
    _cli_endpoints[_url(url)] = var


def trusted_endpoints() -> dict[str, str]:
    """Base URL -> the one key variable the user allows to be sent there."""
    import yaml

    from mimicry.paths import mimicry_home

    pairs = {_url(DEFAULT_URL): "OPENAI_API_KEY"}
    path = mimicry_home() / ENDPOINTS_FILE
    if path.is_file():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise MimicryError(f"{path} is not valid YAML: {err}") from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise MimicryError(f"{path} must map base URLs to environment variable names (URL: VARIABLE)")
        pairs |= {_url(str(k)): v for k, v in data.items()}
    return pairs | _cli_endpoints


class OpenAIOptions(StrictModel):
    base_url: str = DEFAULT_URL
    # The NAME of the environment variable holding the key; None sends no Authorization header
    # (a local server).
    api_key_env: str | None = "OPENAI_API_KEY"
    max_retries: int = 5
    backoff_seconds: float = 1.0  # first wait; doubles on each retry
    timeout_seconds: float = 120.0
    concurrency: int = 4
    # Forced reply prefixes need a server that continues a final assistant message (vLLM's
    # `continue_final_message`); the OpenAI API itself cannot.
    supports_prefix: bool = False


class OpenAIBackend:
    """Completes chat prompts over HTTP, a few requests in flight at a time, in order."""

    def __init__(self, model: str, **options: Any) -> None:
        self.model_id = model
        self.options = validate_config(OpenAIOptions, options, "openai backend options")
        self.url = self.options.base_url.rstrip("/") + "/chat/completions"

    def _headers(self) -> dict[str, str]:
        name = self.options.api_key_env
        if name is None:
            return {}
        base = _url(self.options.base_url)
        if trusted_endpoints().get(base) != name:
            raise MimicryError(
                f"the openai backend would send ${name} to {base}, a pair you have not allowed: a config cannot "
                f"choose both where a key goes and which key. Allow it with `mimicry --endpoint {base}={name}` "
                f"or a line `{base}: {name}` in $MIMICRY_HOME/{ENDPOINTS_FILE} (or set api_key_env: null)"
            )
        key = os.environ.get(name)
        if not key:
            raise MimicryError(
                f"the openai backend reads its API key from the environment variable {name}, which is not "
                f"set: export {name}=... (or set api_key_env to another variable name, or to null for a "
                "server without authentication)"
            )
        return {"Authorization": f"Bearer {key}"}

    def _body(self, messages: Sequence[Message], config: GenerationConfig) -> dict[str, Any]:
        prompt, prefix = split_prefix(messages)
        body: dict[str, Any] = {
            "model": self.model_id,
            "messages": [m.model_dump() for m in prompt],
            "max_tokens": config.max_new_tokens,
            "temperature": config.temperature,
            "top_p": config.top_p,
            "seed": config.seed,
        }
        if config.stop:
            body["stop"] = list(config.stop)[:4]  # the API takes at most 4; all are applied client-side
        if prefix:
            if not self.options.supports_prefix:
                raise MimicryError(
                    f"this prompt ends with a forced reply prefix, which {self.options.base_url} is not "
                    "configured to continue; set supports_prefix: true for a vLLM-compatible server"
                )
            body["messages"].append({"role": "assistant", "content": prefix})
            body.update(continue_final_message=True, add_generation_prompt=False)
        return body

    def _post(self, client: Any, body: dict[str, Any], headers: dict[str, str]) -> str:
        import httpx

        last_error = ""
        for attempt in range(self.options.max_retries + 1):
            if attempt:
                time.sleep(self.options.backoff_seconds * 2 ** (attempt - 1))
            try:
                response = client.post(self.url, json=body, headers=headers)
            except (httpx.TransportError, httpx.TimeoutException) as err:
                last_error = f"{type(err).__name__}: {err}"
                continue
            if response.status_code in RETRY_STATUSES:
                last_error = f"HTTP {response.status_code}: {response.text[:200]}"
                continue
            if response.status_code != 200:
                denied = response.status_code in (401, 403)
                hint = f" (check the key in ${self.options.api_key_env})" if denied else ""
                raise MimicryError(f"{self.url} answered HTTP {response.status_code}{hint}: {response.text[:300]}")
            try:
                return response.json()["choices"][0]["message"]["content"] or ""
            except (ValueError, KeyError, IndexError, TypeError):
                raise MimicryError(
                    f"{self.url} returned no chat completion (not an OpenAI-compatible endpoint?): "
                    f"{response.text[:300]}"
                ) from None
        raise MimicryError(
            f"{self.url} failed after {self.options.max_retries + 1} attempts; last error: {last_error}. "
            "Check base_url and that the server is up."
        )

    def generate(self, prompts: Sequence[Sequence[Message]], config: GenerationConfig) -> list[str]:
        import httpx
        from rich.progress import Progress

        from mimicry.console import err

        bodies = [self._body(p, config) for p in prompts]
        if not bodies:
            return []
        headers = self._headers()
        with (
            httpx.Client(timeout=self.options.timeout_seconds) as client,
            ThreadPoolExecutor(max_workers=self.options.concurrency) as pool,
            Progress(console=err, transient=True) as progress,
        ):
            task = progress.add_task(f"generating with {self.model_id}", total=len(bodies))

            def complete(body: dict[str, Any]) -> str:
                text = self._post(client, body, headers)
                progress.advance(task)
                return truncate_at_stop(text, config.stop)

            return list(pool.map(complete, bodies))

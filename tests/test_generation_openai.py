"""The openai backend against a real HTTP server on 127.0.0.1 serving canned chat completions."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from mimicry.errors import MimicryError
from mimicry.generation import GenerationConfig, get_backend
from mimicry.paths import mimicry_home
from mimicry.records import Message


class FakeServer:
    """Answers each request with the next status in `statuses` (then 200), echoing the last user turn."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                    status = server.statuses.pop(0) if server.statuses else 200
                if status != 200:
                    payload = {"error": {"message": f"status {status}"}}
                else:
                    last = body["messages"][-1]["content"]
                    message = {"role": "assistant", "content": f"echo: {last}. END x"}
                    payload = {"choices": [{"message": message}]}
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"


@pytest.fixture
def server() -> Iterator[FakeServer]:
    fake = FakeServer()
    thread = threading.Thread(target=fake.httpd.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


def allow(url: str, variable: str) -> None:
    """The user's own pairing of a URL with a key variable, in $MIMICRY_HOME/endpoints.yaml."""
    path = mimicry_home() / "endpoints.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(f'"{url}": {variable}\n')


def test_a_config_cannot_send_a_key_to_a_url_the_user_did_not_pair_it_with(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-789")
    monkeypatch.setenv("OTHER_SECRET", "sk-other")
    for options in ({"base_url": server.base_url}, {"api_key_env": "OTHER_SECRET"}):
        backend = get_backend("openai", "m", backoff_seconds=0.01, **options)
        with pytest.raises(MimicryError, match="a pair you have not allowed"):
            backend.generate(prompts(1), GenerationConfig())
    assert server.requests == []
    allow(server.base_url, "OTHER_SECRET")
    backend = get_backend("openai", "m", base_url=server.base_url, api_key_env="OTHER_SECRET")
    backend.generate(prompts(1), GenerationConfig())
    assert server.requests[0]["auth"] == "Bearer sk-other"


def test_the_command_line_pairs_an_endpoint_with_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from mimicry.generation.openai_backend import _cli_endpoints, trust_endpoint, trusted_endpoints

    monkeypatch.setattr("mimicry.generation.openai_backend._cli_endpoints", dict(_cli_endpoints))
    trust_endpoint("http://localhost:8000/v1/=LOCAL_KEY")
    assert trusted_endpoints()["http://localhost:8000/v1"] == "LOCAL_KEY"
    with pytest.raises(MimicryError, match="URL=VARIABLE"):
        trust_endpoint("http://localhost:8000/v1")


def prompts(n: int) -> list[list[Message]]:
    return [[Message(role="system", content="sys"), Message(role="user", content=f"q{i}")] for i in range(n)]


def test_completions_come_back_in_order_with_the_key_from_the_named_variable(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_TEST_KEY", "sk-test-123")
    allow(server.base_url, "MY_TEST_KEY")
    backend = get_backend("openai", "gpt-test", base_url=server.base_url, api_key_env="MY_TEST_KEY", concurrency=3)
    config = GenerationConfig(max_new_tokens=7, stop=[". END"], seed=3)
    assert backend.generate(prompts(6), config) == [f"echo: q{i}" for i in range(6)]
    assert len(server.requests) == 6
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["auth"] == "Bearer sk-test-123"
    body = request["body"]
    assert body["model"] == "gpt-test" and body["max_tokens"] == 7 and body["stop"] == [". END"]
    assert body["temperature"] == 0.0 and body["seed"] == 3
    assert body["messages"][0] == {"role": "system", "content": "sys"}


def test_server_errors_are_retried_with_backoff(server: FakeServer) -> None:
    server.statuses = [500, 429]
    backend = get_backend("openai", "m", base_url=server.base_url, api_key_env=None, backoff_seconds=0.01)
    assert backend.generate(prompts(1), GenerationConfig()) == ["echo: q0. END x"]
    assert len(server.requests) == 3
    assert server.requests[0]["auth"] is None


def test_an_unreachable_server_fails_clearly_after_the_retries() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    backend = get_backend(
        "openai", "m", base_url=f"http://127.0.0.1:{port}/v1", api_key_env=None, max_retries=2, backoff_seconds=0.01
    )
    with pytest.raises(MimicryError, match=r"failed after 3 attempts; last error: ConnectError"):
        backend.generate(prompts(1), GenerationConfig())


def test_auth_errors_are_not_retried_and_never_show_the_key(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-456")
    allow(server.base_url, "OPENAI_API_KEY")
    server.statuses = [401]
    backend = get_backend("openai", "m", base_url=server.base_url, backoff_seconds=0.01)
    with pytest.raises(MimicryError) as caught:
        backend.generate(prompts(1), GenerationConfig())
    assert "HTTP 401" in str(caught.value) and "$OPENAI_API_KEY" in str(caught.value)
    assert "sk-secret-456" not in str(caught.value)
    assert len(server.requests) == 1


def test_a_missing_key_and_bad_options_are_user_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ABSENT_KEY_VAR", raising=False)
    allow("https://api.openai.com/v1/", "ABSENT_KEY_VAR")
    backend = get_backend("openai", "m", api_key_env="ABSENT_KEY_VAR")
    with pytest.raises(MimicryError, match="export ABSENT_KEY_VAR="):
        backend.generate(prompts(1), GenerationConfig())
    with pytest.raises(MimicryError, match="Did you mean 'base_url'"):
        get_backend("openai", "m", base_ur="http://x")


def test_forced_prefixes_need_a_server_that_continues_them(server: FakeServer) -> None:
    prefixed = [[Message(role="user", content="q"), Message(role="assistant", content="Sure,")]]
    plain = get_backend("openai", "m", base_url=server.base_url, api_key_env=None)
    with pytest.raises(MimicryError, match="supports_prefix"):
        plain.generate(prefixed, GenerationConfig())
    vllm_like = get_backend("openai", "m", base_url=server.base_url, api_key_env=None, supports_prefix=True)
    vllm_like.generate(prefixed, GenerationConfig())
    body = server.requests[-1]["body"]
    assert body["continue_final_message"] is True and body["add_generation_prompt"] is False
    assert body["messages"][-1] == {"role": "assistant", "content": "Sure,"}

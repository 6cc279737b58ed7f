"""Helpers for the service tests: a uvicorn server in a thread, a throwaway PostgreSQL cluster, a policy."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from mimicry.records import Conversation
from mimicry.service.policy import Policy

MAIN = "import sys; from mimicry.cli import main; sys.exit(main())"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def uvicorn_server(app):
    """A real uvicorn server on a free localhost port, in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    # Keep-alive longer than any pause between a test's requests: with uvicorn's 5 s, a loaded machine
    # races the server closing an idle connection against the client reusing it ("Server disconnected").
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_keep_alive=300)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def postgres_cluster():
    """A throwaway PostgreSQL cluster (yields its URL); skips, saying why, when it cannot start."""
    from mimicry.errors import MimicryError
    from mimicry.service.pgcluster import temporary_cluster

    try:
        cluster = temporary_cluster()
        url = cluster.__enter__()
    except MimicryError as err:
        pytest.skip(str(err))
    try:
        yield url
    finally:
        cluster.__exit__(None, None, None)


def service_policy(model_dir: Path, **gate) -> Policy:
    """Small, fast settings on a tiny model; the gate releases anything unless told otherwise."""
    return Policy.model_validate(
        {
            "base_models": {"tiny": str(model_dir)},
            "gate": {
                "harmful_prompts": 3,
                "safe_prompts": 3,
                "max_new_tokens": 4,
                "max_asr_increase": 1.0,
                "max_overrefusal_increase": 1.0,
                **gate,
            },
            "training": {"max_steps": 4, "batch_size": 4, "save_steps": 2, "max_length": 128},
            "limits": {"max_upload_bytes": 200_000, "requests_per_minute": 100_000},
            "worker": {"heartbeat_seconds": 0.3, "lease_seconds": 5, "poll_seconds": 0.2},
        }
    )


def jsonl(conversations: list[Conversation]) -> bytes:
    return "".join(json.dumps(c.to_openai(), ensure_ascii=False) + "\n" for c in conversations).encode()


def cli(*args: str, env: dict[str, str], **kw) -> subprocess.Popen:
    """`mimicry ARGS` as its own process, the way a user starts it."""
    import sys

    return subprocess.Popen([sys.executable, "-c", MAIN, *args], env=env, **kw)


def cli_key(org: str, env: dict[str, str]) -> str:
    import sys

    done = subprocess.run(
        [sys.executable, "-c", MAIN, "service", "keys", "create", "--org", org],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return next(line for line in done.stdout.split() if line.startswith("mk-"))


def wait_for_health(url: str, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up")
        time.sleep(0.2)
